"""Named scale presets: ``smoke`` (CI), ``laptop`` (default book build), ``paper`` (GPU).

A profile shrinks the width of the networks, the number of images and the number of
models, never their depth: the MLP keeps 7 hidden layers, VGG16 13 conv layers and
ResNet18 8 residual blocks in every profile. Any field can be overridden:

>>> get_profile("smoke", n_seeds=3).n_seeds
3
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from pdlib.training import TrainConfig

__all__ = ["Profile", "PROFILES", "get_profile"]


@dataclass(frozen=True)
class Profile:
    """Scale of every experiment in the book."""

    name: str  # "smoke", "laptop" or "paper"
    n_pool: int  # training-split images per dataset (stratified); 0 = the whole split
    n_test: int  # test-split images scored as validation points; 0 = the whole split
    n_seeds: int  # independently seeded networks per architecture (seed/architecture agreement)
    mlp_width: int  # hidden units of each of the MLP's 7 hidden layers
    conv_width: int  # channels of the first stage of VGG16 and ResNet18 (64 in the paper)
    mlp_train: TrainConfig  # optimiser and epochs for the MLP
    vgg16_train: TrainConfig  # optimiser and epochs for VGG16
    resnet18_train: TrainConfig  # optimiser and epochs for ResNet18
    ensemble_arch: str  # architecture of the 90:10 ensembles (Sections 3 and 4)
    ensemble_size: int  # models r per 90:10 ensemble; each point is held out by about r / 10
    n_full_models: int  # models trained on the whole pool (Fig. 4 middle, Fig. 6)
    n_checkpoints: int  # prediction snapshots over training, for iteration learned

    def width(self, arch: str) -> int:
        """Width argument of :func:`pdlib.make_model` for ``arch``."""
        return self.mlp_width if arch == "mlp" else self.conv_width

    def train_config(self, arch: str) -> TrainConfig:
        """Training settings for ``arch``."""
        return getattr(self, f"{arch}_train")


PROFILES = {
    # Each notebook in about a minute on 2 CPU cores: nbval and CI.
    "smoke": Profile(
        name="smoke", n_pool=1000, n_test=300, n_seeds=2, mlp_width=64, conv_width=4,
        mlp_train=TrainConfig(epochs=30, batch_size=64, lr=0.05),
        vgg16_train=TrainConfig(epochs=12, batch_size=64, lr=0.05),
        resnet18_train=TrainConfig(epochs=10, batch_size=64, lr=0.05),
        ensemble_arch="mlp", ensemble_size=10, n_full_models=3, n_checkpoints=10,
    ),
    # The default of `make book`: sized from measured CPU throughput (MLP 7x256 ~12k img/s,
    # VGG16 width 8 ~1.3k img/s, ResNet18 width 8 ~0.5-1k img/s on 2 cores).
    "laptop": Profile(
        name="laptop", n_pool=4000, n_test=1000, n_seeds=2, mlp_width=256, conv_width=8,
        # lr 0.1 diverged for 1 MLP of 40 (seed 31); 0.05 fits every seed to > 99.9 %.
        mlp_train=TrainConfig(epochs=30, batch_size=128, lr=0.05),
        vgg16_train=TrainConfig(epochs=15, batch_size=128, lr=0.05),
        resnet18_train=TrainConfig(epochs=12, batch_size=128, lr=0.1),
        ensemble_arch="mlp", ensemble_size=40, n_full_models=5, n_checkpoints=20,
    ),
    # Full-width networks on full datasets: for a GPU.
    "paper": Profile(
        name="paper", n_pool=0, n_test=0, n_seeds=5, mlp_width=2048, conv_width=64,
        mlp_train=TrainConfig(epochs=40, batch_size=128, lr=0.05),
        vgg16_train=TrainConfig(epochs=40, batch_size=128, lr=0.05),
        resnet18_train=TrainConfig(epochs=40, batch_size=128, lr=0.1),
        ensemble_arch="resnet18", ensemble_size=250, n_full_models=25, n_checkpoints=40,
    ),
}


def get_profile(name: str, **overrides) -> Profile:
    """The preset ``name`` with some fields replaced; unknown fields are rejected.

    Parameters
    ----------
    name : {"smoke", "laptop", "paper"}
    **overrides
        Profile fields to replace. Values of ``0`` or ``None`` keep the preset, so a
        papermill parameter cell can hold ``n_pool = 0`` meaning "profile default".
    """
    if name not in PROFILES:
        raise ValueError(f"profile must be one of {', '.join(PROFILES)}; got {name!r}")
    fields = {f.name for f in dataclasses.fields(Profile)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ValueError(f"unknown profile field(s) {', '.join(unknown)}; valid: {', '.join(sorted(fields))}")
    return dataclasses.replace(PROFILES[name], **{k: v for k, v in overrides.items() if v not in (0, None)})
