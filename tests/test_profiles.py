"""pdlib.profiles: every profile plans every figure, keeps the paper's depths, and the paper profile
follows
the paper's figure captions; overrides are checked."""

import dataclasses

import pytest

import pdlib.profiles
from pdlib import make_model
from pdlib.experiments import TASKS
from pdlib.profiles import CHAPTER_FIGURES, FIGURES, KINDS, PROFILES, Setup, get_profile, plan_table

FOUR = ("fashion_mnist", "svhn", "cifar10", "cifar100")


@pytest.mark.parametrize("name", PROFILES)
def test_every_profile_plans_every_figure(name):
    profile = PROFILES[name]
    assert [figure for figure, _ in profile.plan] == list(FIGURES)
    for figure in FIGURES:
        setup = profile.setup(figure)
        assert isinstance(setup, Setup) and setup.kind in KINDS and setup.n_models >= 1
        assert set(setup.datasets) <= set(TASKS) and set(setup.archs) <= {
            "mlp",
            "vgg16",
            "resnet18",
        }
        assert setup.datasets and setup.archs and setup.n_pool >= 0
        assert (
            setup.describe(profile).count(" · ") == 3
        )  # one line: tasks · archs · networks · images
    with pytest.raises(ValueError, match="figure must be one of"):
        profile.setup("fig9")


def test_chapters_draw_every_figure_once():
    drawn = [figure for figures in CHAPTER_FIGURES.values() for figure in figures]
    assert sorted(drawn) == sorted(FIGURES)


@pytest.mark.parametrize("name", PROFILES)
def test_profiles_keep_depth(name):
    profile = PROFILES[name]
    for arch, n_probes in {"mlp": 9, "vgg16": 15, "resnet18": 11}.items():
        width = min(profile.width(arch), 8)  # the depth does not depend on the width
        assert len(make_model(arch, 10, 1, 28, width=width).probe_points) == n_probes
        assert profile.train_config(arch).epochs >= 1
        assert profile.width(arch) == (profile.mlp_width if arch == "mlp" else profile.conv_width)


def test_paper_profile_is_full_scale():
    paper = PROFILES["paper"]
    assert (
        paper.mlp_width == 2048
        and paper.conv_width == 64
        and paper.n_pool == 0
        and paper.n_test == 0
    )


@pytest.mark.parametrize(
    "figure, datasets, archs, n_models, kind",
    [
        ("fig1_right", FOUR, ("resnet18",), None, "seeds"),
        ("fig2_left", FOUR, ("mlp", "vgg16", "resnet18"), None, "seeds"),
        ("fig3", ("cifar10",), ("resnet18",), 250, "ensemble"),  # CIFAR10, ResNet18, 250 models
        ("fig4_left", ("cifar100",), ("resnet18",), 250, "ensemble"),
        ("fig4_middle", FOUR, ("resnet18",), 25, "seeds"),  # 25 full-data models
        ("fig4_right", FOUR, ("resnet18",), 250, "ensemble"),
        ("fig5_left", FOUR, ("vgg16",), 250, "ensemble"),  # VGG16 on the four datasets
        ("fig5_noise", ("cifar10",), ("vgg16",), 5, "noise"),
        ("fig6_margins", ("cifar10",), ("vgg16",), 25, "seeds"),  # CIFAR10, VGG16, 25 seeds
        ("fig6_hinge", ("cifar10",), ("vgg16",), 1, "hinge"),
        (
            "fig7_8",
            ("cifar10",),
            ("resnet18",),
            250,
            "ensemble",
        ),  # the layer-4 k-NN fix: CIFAR10, ResNet18
    ],
)
def test_paper_profile_follows_the_figure_captions(figure, datasets, archs, n_models, kind):
    setup = PROFILES["paper"].setup(figure)
    assert setup.datasets == datasets and setup.archs == archs and setup.kind == kind
    if n_models is not None:
        assert setup.n_models == n_models


def test_paper_dryrun_is_the_paper_plan_at_toy_scale():
    paper, dryrun = PROFILES["paper"], PROFILES["paper-dryrun"]
    for figure in FIGURES:
        big, small = paper.setup(figure), dryrun.setup(figure)
        assert (small.datasets, small.archs, small.kind) == (big.datasets, big.archs, big.kind)
        assert 1 <= small.n_models <= min(big.n_models, 10)
        assert small.n_pool <= 100
    assert dryrun.n_pool and dryrun.n_pool < 1000


def test_cpu_profiles_run_offline_datasets():
    for name in ("smoke", "laptop"):
        for figure in FIGURES:
            assert all(TASKS[task].offline for task in PROFILES[name].setup(figure).datasets), (
                name,
                figure,
            )


def test_plan_table():
    table = plan_table()
    assert table.shape == (len(FIGURES), 3) and list(table.columns) == ["paper", "laptop", "smoke"]
    assert list(table.index) == list(FIGURES.values())
    assert table.loc[FIGURES["fig3"], "paper"] == (
        "cifar10 · resnet18 · ensemble of 250 on random 90:10 splits, about 25 held-out "
        "appearances per point (min 12) · full training split"
    )
    assert "10 held-out appearances per point (min 10)" in table.loc[FIGURES["fig7_8"], "laptop"]
    assert plan_table(("smoke",), ("fig3", "fig4_left")).shape == (2, 1)
    assert table.map(lambda v: bool(str(v).strip())).all().all()


def test_overrides():
    assert get_profile("laptop", n_pool=500).n_pool == 500
    assert (
        get_profile("laptop", n_pool=0).n_pool == PROFILES["laptop"].n_pool
    )  # 0 = keep the preset
    assert get_profile("laptop", hinge_lr=None).hinge_lr == PROFILES["laptop"].hinge_lr
    assert get_profile("smoke") == PROFILES["smoke"]
    assert dataclasses.replace(get_profile("smoke"), n_pool=10).n_pool == 10
    with pytest.raises(ValueError, match="unknown profile field.*n_sedes"):
        get_profile("laptop", n_sedes=5)
    with pytest.raises(ValueError, match="profile must be one of"):
        get_profile("desktop")


def test_a_plan_must_set_up_every_figure():
    with pytest.raises(ValueError, match="missing"):
        pdlib.profiles._plan(fig3=Setup(("digits",), ("mlp",), 2, "seeds"))


def test_folds_hold_every_point_out_equally_often():
    # the plan's appearances are what the split function does (tests/test_ensembles.py checks it)
    setup = Setup(("digits",), ("mlp",), 20, "ensemble", folds=8)
    assert setup.appearances() == (2.5, 2.0)  # folds 0-3 held out 3 times, folds 4-7 twice
    assert Setup(("digits",), ("mlp",), 4, "ensemble", folds=10).appearances() == (0.0, 0.0)
    assert setup.holdout_fraction == 1 / 8 and setup.split() == "87.5:12.5"
    random = Setup(("digits",), ("mlp",), 100, "ensemble")
    assert random.holdout_fraction == 0.1 and random.appearances() == (10.0, 2.0)


def test_laptop_statistics_rest_on_ten_appearances():
    laptop = PROFILES["laptop"]
    for figure in ("fig3", "fig4_left", "fig7_8"):
        assert laptop.setup(figure).appearances()[1] >= 10, figure
    two = laptop.setup("fig5_left")
    assert two.datasets == ("fashion_mnist", "digits")
    assert two.n_models_for("digits") < two.n_models_for("fashion_mnist") == 80
