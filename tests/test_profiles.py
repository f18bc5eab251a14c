"""Profiles keep the paper's depths and reject unknown fields."""

import pytest

from pdlib import make_model
from pdlib.profiles import PROFILES, get_profile


@pytest.mark.parametrize("name", PROFILES)
def test_profiles_keep_depth(name):
    profile = PROFILES[name]
    for arch, n_probes in {"mlp": 9, "vgg16": 15, "resnet18": 11}.items():
        model = make_model(arch, 10, 1, 28, width=profile.width(arch))
        assert len(model.probe_points) == n_probes
        assert profile.train_config(arch).epochs >= 1


def test_paper_profile_is_full_scale():
    paper = PROFILES["paper"]
    assert paper.mlp_width == 2048 and paper.conv_width == 64 and paper.n_pool == 0


def test_overrides():
    assert get_profile("laptop", n_seeds=5).n_seeds == 5
    assert get_profile("laptop", n_seeds=0).n_seeds == PROFILES["laptop"].n_seeds  # 0 = keep the preset
    with pytest.raises(ValueError, match="unknown profile field"):
        get_profile("laptop", n_sedes=5)
    with pytest.raises(ValueError, match="profile must be one of"):
        get_profile("desktop")
