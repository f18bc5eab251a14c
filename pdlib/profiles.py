"""Named scale presets and, per figure, which datasets, architectures and networks produce it.

``smoke`` (CI), ``laptop`` (the default book build, 2 CPU cores), ``paper`` (the paper's set-ups,
for a GPU) and ``paper-dryrun`` (the paper's plan at toy scale on stand-in files: every code path
of a GPU run, on a CPU, in minutes). A profile shrinks widths, images and the number of
networks, never depth: the MLP keeps 7 hidden layers, VGG16 13 conv layers, ResNet18 8 blocks.

>>> get_profile("laptop").setup("fig3").archs
('vgg16',)
>>> get_profile("paper").setup("fig3").describe(get_profile("paper")).split(" · ")[2]
'ensemble of 250 on random 90:10 splits, about 25 held-out appearances per point (min 12)'
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from pdlib.training import TrainConfig

__all__ = [
    "Setup",
    "Profile",
    "PROFILES",
    "FIGURES",
    "CHAPTER_FIGURES",
    "get_profile",
    "plan_table",
]

#: What each key of a plan produces, in book order.
FIGURES = {
    "fig1_left": "Fig. 1 left: easiest and hardest training images",
    "fig1_right": "Fig. 1 right: PD distribution per dataset",
    "fig2_left": "Fig. 2 left: PD correlation between seeds and architectures",
    "fig2_right": "Fig. 2 right: per-point mean PD, architecture against architecture",
    "fig3": "Fig. 3: consistency against PD",
    "fig4_left": "Fig. 4 left: consensus-consistency bound",
    "fig4_middle": "Fig. 4 middle: PD of one network, C* of the others",
    "fig4_right": "Fig. 4 right: accuracy against PD",
    "fig5_left": "Fig. 5 left: iteration learned against PD",
    "fig5_noise": "Fig. 5 middle, right: learning curves with 40 % label noise",
    "fig6_margins": "Fig. 6 left, middle: output and input margins",
    "fig6_hinge": "Fig. 6 right: the 0-Hinge intervention",
    "fig7_8": "Fig. 7, Fig. 8 and the mid-layer k-NN fix",
    "label_errors": "Finding label errors: original labels and design settings",
    "label_errors_evaluation": "Finding label errors: evaluation settings",
    "sensitivity": "Sensitivity appendix: re-probed networks",
}

#: The figures each chapter draws (its parameters box shows their set-ups).
CHAPTER_FIGURES = {
    "section2_prediction_depth": ("fig1_left", "fig1_right", "fig2_left", "fig2_right"),
    "section3_consistency": ("fig3", "fig4_left", "fig4_middle", "fig4_right"),
    "section3_learning_margins": ("fig5_left", "fig5_noise", "fig6_margins", "fig6_hinge"),
    "section4_difficulty_types": ("fig7_8",),
    "label_errors": ("label_errors", "label_errors_evaluation"),
    "appendix_sensitivity": ("sensitivity",),
}

KINDS = {
    "seeds": "networks on the whole pool",
    "ensemble": "ensemble",
    "noise": "label-noise networks",
    "hinge": "0-Hinge, CE and untrained",
    "reprobe": "ensemble networks re-probed",
}


@dataclass(frozen=True)
class Setup:
    """The networks behind one figure."""

    datasets: tuple[
        str, ...
    ]  # tasks (keys of pdlib.experiments.TASKS), first one where a figure shows one
    archs: tuple[str, ...]  # architectures
    n_models: int  # networks per (dataset, architecture): seeds, ensemble size r, or noise seeds
    kind: str  # a key of KINDS
    n_pool: int = 0  # training-split images when they differ from the profile's; 0 = the profile's
    # Ensembles: hold out one of `folds` fixed folds per network (network s holds out fold
    # s mod folds), so that r networks hold every point out exactly r / folds times; 0 = an
    # independent random 90:10 split per network, as the paper (about r / 10 times, binomially).
    folds: int = 0
    # (task, networks) where a task has fewer networks than n_models (a cheaper second dataset).
    models_per_task: tuple[tuple[str, int], ...] = ()

    def n_models_for(self, task: str) -> int:
        """Networks per architecture on ``task``."""
        return dict(self.models_per_task).get(task, self.n_models)

    @property
    def holdout_fraction(self) -> float:
        """Share of the pool each ensemble network holds out (0.1 for random 90:10 splits)."""
        return 1 / self.folds if self.folds else 0.1

    def appearances(self, task: str | None = None) -> tuple[float, float]:
        """``(median, minimum)`` held-out appearances per point of an ensemble on ``task``: exact
        for folds; for random 90:10 splits the binomial median and the 0.1 % quantile, the
        smallest count about one point in a thousand gets.

        >>> Setup(("digits",), ("mlp",), 80, "ensemble", folds=8).appearances()
        (10.0, 10.0)
        >>> Setup(("cifar10",), ("resnet18",), 250, "ensemble").appearances()
        (25.0, 12.0)
        """
        r = self.n_models_for(task) if task else self.n_models
        if self.folds:
            counts = [len(range(fold, r, self.folds)) for fold in range(self.folds)]
            return float(np.median(counts)), float(min(counts))
        from scipy.stats import binom

        return float(binom.median(r, 0.1)), float(binom.ppf(0.001, r, 0.1))

    def split(self) -> str:
        """The ensemble's split, e.g. ``90:10`` or ``87.5:12.5``."""
        held = 100 * self.holdout_fraction
        return f"{100 - held:g}:{held:g}"

    def describe(self, profile: Profile) -> str:
        """One line for the plan tables, e.g. ``cifar10 · resnet18 · ensemble of 250 on random 90:10
        splits, about 25 held-out appearances per point (min 12) · full training split``."""
        pool = self.n_pool or profile.n_pool
        images = "full training split" if pool == 0 else f"{pool:,} images"
        if pool and len(self.datasets) > 1:
            images = f"up to {images} each"
        datasets, archs = ", ".join(self.datasets), ", ".join(self.archs)
        if self.kind == "ensemble":
            networks = "ensemble of " + "; ".join(
                self._ensemble_text(task) for task in self.datasets if task in self._counted()
            )
        else:
            networks = f"{KINDS[self.kind]}, {self.n_models}"
            others = [f"{task} {n}" for task, n in self.models_per_task if task in self.datasets]
            networks += f" ({', '.join(others)})" if others else ""
        return f"{datasets} · {archs} · {networks} · {images}"

    def _counted(self) -> list:
        """The tasks whose ensemble text differs: the first, and those with their own count."""
        return [self.datasets[0], *(t for t, _ in self.models_per_task if t in self.datasets[1:])]

    def _ensemble_text(self, task: str) -> str:
        median, least = self.appearances(task)
        splits = f"{self.split()} folds" if self.folds else "random 90:10 splits"
        exact = "" if self.folds else "about "
        lead = f"{task}: " if len(self._counted()) > 1 else ""
        plural = "" if median == 1 else "s"
        return (
            f"{lead}{self.n_models_for(task)} on {splits}, {exact}{median:g} held-out "
            f"appearance{plural} per point (min {least:g})"
        )


@dataclass(frozen=True)
class Profile:
    """Scale of every experiment in the book, and the plan of each figure."""

    name: str  # "smoke", "laptop", "paper" or "paper-dryrun"
    n_pool: int  # training-split images per dataset (stratified); 0 = the whole split
    n_test: int  # test-split images scored as validation points; 0 = the whole split
    mlp_width: int  # hidden units of each of the MLP's 7 hidden layers
    conv_width: int  # channels of the first stage of VGG16 and ResNet18 (64 in the paper)
    mlp_train: TrainConfig  # optimiser and epochs for the MLP
    vgg16_train: TrainConfig  # optimiser and epochs for VGG16
    resnet18_train: TrainConfig  # optimiser and epochs for ResNet18
    n_checkpoints: int  # prediction snapshots over training, for the iteration learned
    hinge_lr: float  # learning rate of the 0-Hinge network's full-batch gradient descent
    hinge_steps: int  # most full-batch steps of the 0-Hinge network (it stops once the loss is 0)
    hinge_micro_batch: (
        int  # images per forward pass of the full-batch 0-Hinge steps (0 = all at once)
    )
    plan: tuple[tuple[str, Setup], ...]  # figure key (FIGURES) -> its networks
    # Compile (TrainConfig.compile) the networks of seed sets too, not only of ensembles. On a CPU
    # the one-off compile (30-60 s per network shape) costs more than it saves for 1-5 networks.
    compile_seeds: bool = False
    # Extra snapshots of the ensembles' networks inside their first epoch, for the iteration
    # learned's resolution table (Section 3.2); the verdict reads the n_checkpoints even ones.
    first_epoch_checkpoints: int = 0
    # Ensembles of fewer networks (of one shape, per task) train eagerly: on a CPU they do not pay
    # back the one-off compile (30-60 s against about 1 s saved per network).
    min_compiled_networks: int = 0

    def width(self, arch: str) -> int:
        """Width argument of :func:`pdlib.make_model` for ``arch``."""
        return self.mlp_width if arch == "mlp" else self.conv_width

    def train_config(self, arch: str, *, ensemble: bool = False) -> TrainConfig:
        """Training settings for ``arch``; ``torch.compile`` only for an ``ensemble``'s networks
        unless :attr:`compile_seeds`."""
        config = getattr(self, f"{arch}_train")
        if ensemble or self.compile_seeds:
            return config
        return dataclasses.replace(config, compile=False)

    def setup(self, figure: str) -> Setup:
        """The networks behind ``figure`` (a key of :data:`FIGURES`)."""
        plan = dict(self.plan)
        if figure not in plan:
            raise ValueError(f"figure must be one of {', '.join(FIGURES)}; got {figure!r}")
        return plan[figure]


def _plan(**setups: Setup) -> tuple[tuple[str, Setup], ...]:
    missing = set(FIGURES) - set(setups)
    if missing:
        raise ValueError(f"a plan must set up every figure; missing {sorted(missing)}")
    return tuple((figure, setups[figure]) for figure in FIGURES)


ARCHS = ("mlp", "vgg16", "resnet18")
FOUR = ("fashion_mnist", "svhn", "cifar10", "cifar100")
# Fashion-MNIST and its offline sanity tasks: the only paper dataset available without a download.
OFFLINE = ("digits", "fashion_mnist", "fashion_mnist_hard")

PAPER_PLAN = _plan(
    fig1_left=Setup(("cifar100", "svhn"), ("resnet18",), 5, "seeds"),
    fig1_right=Setup(FOUR, ("resnet18",), 5, "seeds"),
    fig2_left=Setup(FOUR, ARCHS, 5, "seeds"),
    fig2_right=Setup(("cifar10",), ARCHS, 250, "ensemble"),
    fig3=Setup(("cifar10",), ("resnet18",), 250, "ensemble"),
    fig4_left=Setup(("cifar100",), ("resnet18",), 250, "ensemble"),
    fig4_middle=Setup(FOUR, ("resnet18",), 25, "seeds"),
    fig4_right=Setup(FOUR, ("resnet18",), 250, "ensemble"),
    fig5_left=Setup(FOUR, ("vgg16",), 250, "ensemble"),
    fig5_noise=Setup(("cifar10",), ("vgg16",), 5, "noise"),
    fig6_margins=Setup(("cifar10",), ("vgg16",), 25, "seeds"),
    fig6_hinge=Setup(("cifar10",), ("vgg16",), 1, "hinge", n_pool=5000),
    fig7_8=Setup(("cifar10",), ("resnet18",), 250, "ensemble"),
    label_errors=Setup(("fashion_mnist",), ("resnet18",), 40, "ensemble", folds=10),
    label_errors_evaluation=Setup(
        ("fashion_mnist", "digits"), ("resnet18",), 40, "ensemble", folds=10
    ),
    sensitivity=Setup(("cifar10",), ("resnet18",), 4, "reprobe"),
)

# One VGG16 ensemble carries Sections 3.1, 3.2 (Fig. 5 left) and 4: conv nets matter for Fig. 5, 7
# and 8. 80 networks on 8 folds hold every point out exactly 10 times, the least at which C*
# resolves its 2 % envelope (10 % steps), on a split next to the paper's 90:10; the paper's random
# 90:10 splits need 100 networks for a median of 10. Measured on 2 cores (fp32 ~175 GFLOP/s), a
# network costs 6.7 s of training and 3.1 s of probes on a 1,750-image pool, 7.9 s and 3.8 s on
# 2,000 images: 1,750 keeps `make book` within 1.25x of its cost before the 80 networks.
LAPTOP_ENSEMBLE = Setup(("fashion_mnist",), ("vgg16",), 80, "ensemble", n_pool=1750, folds=8)
# The claims that need one dataset are repeated on the digits (always offline, 8x8 images, a
# VGG16 in about 3 s): 16 networks, two held-out appearances per point, as many as their
# per-appearance statistics need.
LAPTOP_TWO_DATASETS = dataclasses.replace(
    LAPTOP_ENSEMBLE, datasets=("fashion_mnist", "digits"), models_per_task=(("digits", 16),)
)

LAPTOP_PLAN = _plan(
    fig1_left=Setup(("fashion_mnist",), ("resnet18",), 2, "seeds"),
    fig1_right=Setup(OFFLINE, ("resnet18",), 1, "seeds"),
    fig2_left=Setup(("fashion_mnist", "digits"), ARCHS, 2, "seeds"),
    fig2_right=Setup(("fashion_mnist",), ARCHS, 2, "seeds"),
    fig3=LAPTOP_ENSEMBLE,
    fig4_left=LAPTOP_ENSEMBLE,
    fig4_middle=Setup(("fashion_mnist",), ("vgg16",), 5, "seeds", n_pool=2000),
    fig4_right=LAPTOP_TWO_DATASETS,
    fig5_left=LAPTOP_TWO_DATASETS,
    fig5_noise=Setup(("fashion_mnist",), ("mlp",), 3, "noise"),
    fig6_margins=Setup(("fashion_mnist", "digits"), ("vgg16",), 5, "seeds", n_pool=2000),
    fig6_hinge=Setup(("fashion_mnist",), ("mlp",), 1, "hinge", n_pool=1000),
    fig7_8=LAPTOP_ENSEMBLE,
    label_errors=Setup(("fashion_mnist",), ("mlp",), 20, "ensemble", n_pool=2000, folds=10),
    # The six evaluation settings at the design's scale (the digits: their whole training split).
    label_errors_evaluation=Setup(
        ("fashion_mnist", "digits"), ("mlp",), 20, "ensemble", n_pool=2000, folds=10
    ),
    sensitivity=Setup(("fashion_mnist",), ("vgg16",), 4, "reprobe", n_pool=2000),
)

SMOKE_PLAN = _plan(
    fig1_left=Setup(("fashion_mnist",), ("resnet18",), 2, "seeds"),
    fig1_right=Setup(OFFLINE, ("resnet18",), 1, "seeds"),
    fig2_left=Setup(("fashion_mnist", "digits"), ARCHS, 2, "seeds"),
    fig2_right=Setup(("fashion_mnist",), ARCHS, 2, "seeds"),
    **{
        figure: Setup(("fashion_mnist",), ("mlp",), 10, "ensemble")
        for figure in ("fig3", "fig4_left", "fig7_8")
    },
    **{
        figure: Setup(("fashion_mnist", "digits"), ("mlp",), 10, "ensemble")
        for figure in ("fig4_right", "fig5_left")
    },
    fig4_middle=Setup(("fashion_mnist",), ("mlp",), 3, "seeds"),
    fig5_noise=Setup(("fashion_mnist",), ("mlp",), 2, "noise"),
    fig6_margins=Setup(("fashion_mnist", "digits"), ("mlp",), 3, "seeds"),
    fig6_hinge=Setup(("fashion_mnist",), ("mlp",), 1, "hinge", n_pool=300),
    label_errors=Setup(("fashion_mnist",), ("mlp",), 10, "ensemble", folds=10),
    label_errors_evaluation=Setup(("fashion_mnist", "digits"), ("mlp",), 10, "ensemble", folds=10),
    sensitivity=Setup(("fashion_mnist",), ("mlp",), 2, "reprobe"),
)


def _dryrun_plan() -> tuple[tuple[str, Setup], ...]:
    """The paper's plan with at most 4 networks per ensemble, 2 per seed set, and small pools."""
    caps = {"ensemble": 4, "seeds": 2, "noise": 2, "hinge": 1, "reprobe": 2}
    return tuple(
        (
            figure,
            dataclasses.replace(
                setup,
                n_models=min(setup.n_models, caps[setup.kind]),
                n_pool=min(setup.n_pool, 100) if setup.n_pool else 0,
            ),
        )
        for figure, setup in PAPER_PLAN
    )


PROFILES = {
    # Each notebook in about a minute on 2 CPU cores: nbval and CI.
    "smoke": Profile(
        name="smoke",
        n_pool=1000,
        n_test=300,
        mlp_width=64,
        conv_width=4,
        mlp_train=TrainConfig(epochs=30, batch_size=64, lr=0.05),
        vgg16_train=TrainConfig(epochs=12, batch_size=64, lr=0.05),
        resnet18_train=TrainConfig(epochs=10, batch_size=64, lr=0.05),
        n_checkpoints=10,
        hinge_lr=1e-3,
        hinge_steps=1500,
        hinge_micro_batch=0,
        first_epoch_checkpoints=4,
        plan=SMOKE_PLAN,
    ),
    # The default of `make book`, sized from measured CPU throughput on 2 cores (MLP 7x256 ~20k
    # img/s, VGG16 width 8 ~1.3k img/s, ResNet18 width 8 ~1k img/s).
    "laptop": Profile(
        name="laptop",
        n_pool=4000,
        n_test=1000,
        mlp_width=256,
        conv_width=8,
        # lr 0.1 diverged for 1 MLP of 40 (seed 31); 0.05 fits every seed to > 99.9 %.
        mlp_train=TrainConfig(epochs=30, batch_size=128, lr=0.05),
        # Measured on a 2,000-image pool: 10 epochs fit 99.9 % of the training split in 15 s per
        # network (test 0.83); 15 epochs fit 100 % in 24 s (test 0.79). torch.compile trains the
        # conv nets 1.2x (VGG16) and 1.3x (ResNet18) faster than eager here, and not the MLP
        # (benchmarks/training.py); only the ensembles amortise its compile (compile_seeds).
        vgg16_train=TrainConfig(epochs=10, batch_size=128, lr=0.05, compile=True),
        resnet18_train=TrainConfig(epochs=12, batch_size=128, lr=0.1, compile=True),
        n_checkpoints=40,
        hinge_lr=1e-5,
        hinge_steps=3000,
        hinge_micro_batch=0,
        first_epoch_checkpoints=10,
        min_compiled_networks=20,
        plan=LAPTOP_PLAN,
    ),
    # The paper's set-ups: full-width networks on full datasets, 250-model ensembles. For a GPU.
    "paper": Profile(
        name="paper",
        n_pool=0,
        n_test=0,
        mlp_width=2048,
        conv_width=64,
        mlp_train=TrainConfig(epochs=40, batch_size=128, lr=0.05),
        vgg16_train=TrainConfig(epochs=40, batch_size=128, lr=0.05, compile=True),
        resnet18_train=TrainConfig(epochs=40, batch_size=128, lr=0.1, compile=True),
        n_checkpoints=40,
        hinge_lr=1e-5,
        hinge_steps=3000,
        hinge_micro_batch=1000,
        compile_seeds=True,
        plan=PAPER_PLAN,
    ),
    # The paper's plan (datasets, architectures, probes, chapters) at toy scale, on stand-in files.
    "paper-dryrun": Profile(
        name="paper-dryrun",
        n_pool=200,
        n_test=60,
        mlp_width=16,
        conv_width=2,
        mlp_train=TrainConfig(epochs=3, batch_size=50, lr=0.05),
        vgg16_train=TrainConfig(epochs=2, batch_size=50, lr=0.05),
        resnet18_train=TrainConfig(epochs=2, batch_size=50, lr=0.05),
        n_checkpoints=4,
        hinge_lr=1e-3,
        hinge_steps=20,
        hinge_micro_batch=32,
        plan=_dryrun_plan(),
    ),
}


def get_profile(name: str, **overrides) -> Profile:
    """The preset ``name`` with some fields replaced; unknown fields are rejected.

    Values of ``0`` or ``None`` keep the preset, so that a papermill parameter cell can hold
    ``n_pool = 0`` meaning "profile default".

    >>> get_profile("smoke", n_pool=500).n_pool
    500
    """
    if name not in PROFILES:
        raise ValueError(f"profile must be one of {', '.join(PROFILES)}; got {name!r}")
    fields = {f.name for f in dataclasses.fields(Profile)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ValueError(
            f"unknown profile field(s) {', '.join(unknown)}; valid: {', '.join(sorted(fields))}"
        )
    return dataclasses.replace(
        PROFILES[name], **{k: v for k, v in overrides.items() if v not in (0, None)}
    )


def plan_table(profiles=("paper", "laptop", "smoke"), figures=tuple(FIGURES)):
    """Per figure, the set-up of each profile: the table of the Reproduce page and parameters boxes.

    Returns
    -------
    pandas.DataFrame indexed by figure description, one column per profile
    """
    import pandas as pd

    rows = {
        FIGURES[f]: {p: PROFILES[p].setup(f).describe(PROFILES[p]) for p in profiles}
        for f in figures
    }
    return pd.DataFrame.from_dict(rows, orient="index")
