"""The networks behind each figure, as cached runs at a profile's scale: what the chapters call.

Everything goes through :func:`pdlib.runs.run_model` or :func:`pdlib.ensembles.run_ensemble`, so
nothing cached is retrained and figures with one set-up share networks. Seed runs train on the
whole pool and keep their weights; ensembles use the 90:10 protocol with prediction checkpoints.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from pdlib.cache import Artifact, load_or_compute
from pdlib.data import DatasetNotFoundError, load_dataset
from pdlib.ensembles import Ensemble, ensemble_statistics, run_ensemble
from pdlib.margins import input_margin, output_margin
from pdlib.profiles import Profile
from pdlib.runs import RUNS_KIND, RunConfig, load_model, run_data, run_model
from pdlib.training import TrainConfig

__all__ = [
    "TASKS",
    "Task",
    "available_tasks",
    "plan_tasks",
    "run_config",
    "seed_configs",
    "seed_runs",
    "ensemble",
    "KEEP_WEIGHTS",
    "noisy_label_runs",
    "zero_hinge_configs",
    "margin_statistics",
    "figure_footer",
    "fig4_panels",
]

#: Ensemble models whose weights are stored (the sensitivity appendix re-probes them).
KEEP_WEIGHTS = 4


@dataclass(frozen=True)
class Task:
    """A classification task: a dataset, or a class subset of one."""

    dataset: str  # name accepted by pdlib.load_dataset
    classes: tuple[int, ...] = ()  # class subset in the dataset's indices; () = all
    offline: bool = False  # always available without a download


TASKS = {
    "digits": Task("digits", offline=True),
    "fashion_mnist": Task("fashion_mnist", offline=True),
    # T-shirt / pullover / coat / shirt: the four Fashion-MNIST classes most often confused.
    "fashion_mnist_hard": Task("fashion_mnist", classes=(0, 2, 4, 6), offline=True),
    "svhn": Task("svhn"),
    "cifar10": Task("cifar10"),
    "cifar100": Task("cifar100"),
}


def available_tasks(names) -> tuple[list[str], list[str]]:
    """The tasks of ``names`` whose files are on disk, and those that are not (no download).

    >>> available_tasks(["digits"])
    (['digits'], [])
    """
    found, missing = [], []
    for name in names:
        task = TASKS[name]
        try:
            if task.dataset != "digits":
                load_dataset(task.dataset, "train", download=False)
            found.append(name)
        except DatasetNotFoundError:
            missing.append(name)
    return found, missing


def plan_tasks(profile: Profile, figure: str) -> tuple[list[str], list[str]]:
    """The tasks of ``figure``'s set-up that can run here, and those whose files are missing.

    ``paper`` profiles raise for a missing dataset (naming the download command); others skip it.
    """
    found, missing = available_tasks(profile.setup(figure).datasets)
    if missing and profile.name.startswith("paper"):
        names = " ".join(sorted({TASKS[task].dataset for task in missing}))
        raise DatasetNotFoundError(
            f"the {profile.name} profile needs {', '.join(missing)} for {figure}; run `python -m "
            f"pdlib download {names}` first"
        )
    return found, missing


def run_config(
    profile: Profile, task: str, arch: str, seed: int = 0, *, n_pool: int = 0, **changes
) -> RunConfig:
    """The :class:`RunConfig` of one network on ``task`` at ``profile``'s scale."""
    spec = TASKS[task]
    fields = dict(
        dataset=spec.dataset,
        classes=spec.classes,
        arch=arch,
        width=profile.width(arch),
        train=profile.train_config(arch),
        n_pool=n_pool or profile.n_pool,
        n_test=profile.n_test,
        seed=seed,
    )
    return RunConfig(**{**fields, **changes})


def seed_configs(
    profile: Profile, figure: str, task: str, arch: str, n_models: int = 0
) -> list[RunConfig]:
    """The configs of a ``seeds`` figure's networks: seeds ``0 .. n - 1`` on the whole pool."""
    setup = profile.setup(figure)
    return [
        run_config(profile, task, arch, seed, n_pool=setup.n_pool)
        for seed in range(n_models or setup.n_models)
    ]


def seed_runs(
    profile: Profile,
    figure: str,
    task: str,
    arch: str,
    n_models: int = 0,
    progress: bool | None = None,
) -> list[Artifact]:
    """The networks of a ``seeds`` figure (:func:`seed_configs`), cached with their weights."""
    return [
        run_model(config, keep_weights=True, progress=progress)
        for config in seed_configs(profile, figure, task, arch, n_models)
    ]


def ensemble(
    profile: Profile,
    figure: str,
    task: str,
    arch: str,
    n_models: int = 0,
    *,
    label_noise: float = 0.0,
    noise_pair: tuple = (),
    noise_targets: tuple = (),
    holdout_folds: int = 0,
    executor: str = "local",
    progress: bool | None = None,
) -> Ensemble:
    """The ensemble of an ``ensemble`` figure (cached, resumable; ``executor="ray"`` spreads it).

    Same task, architecture, pool and folds share models (10 models are the first 10 of 40). The
    split is the set-up's (:attr:`pdlib.profiles.Setup.folds`) unless ``holdout_folds`` is given
    (see :class:`pdlib.runs.RunConfig`). The networks are compiled when the set-up trains at least
    :attr:`pdlib.profiles.Profile.min_compiled_networks` of them on ``task``.
    """
    setup = profile.setup(figure)
    folds = holdout_folds or setup.folds
    planned = setup.n_models_for(task)
    train = dataclasses.replace(
        profile.train_config(arch, ensemble=True),
        n_checkpoints=profile.n_checkpoints,
        first_epoch_checkpoints=profile.first_epoch_checkpoints,
    )
    if planned < profile.min_compiled_networks:
        train = dataclasses.replace(train, compile=False)
    # checkpoint_test off: the ensembles' figures read the iteration learned of pool points only.
    template = run_config(
        profile,
        task,
        arch,
        n_pool=setup.n_pool,
        holdout_fraction=1 / folds if folds else 0.1,
        train=train,
        label_noise=label_noise,
        noise_pair=tuple(noise_pair),
        noise_targets=tuple(noise_targets),
        holdout_folds=folds,
        checkpoint_test=False,
    )
    return run_ensemble(
        template,
        n_models or planned,
        executor=executor,
        keep_weights=KEEP_WEIGHTS,
        progress=progress,
    )


def noisy_label_runs(
    profile: Profile,
    task: str,
    arch: str,
    n_seeds: int,
    *,
    noise: float = 0.4,
    epoch_factor: int = 2,
    n_checkpoints: int = 40,
    untrained: bool = False,
    progress: bool | None = None,
) -> list[Artifact]:
    """Networks trained on the whole pool with a fraction ``noise`` of its labels randomised (Fig.
    5).

    Every seed sees the same corruption (``data_seed``) and trains ``epoch_factor`` times the
    profile's epochs; ``untrained``: the networks at initialisation, probed on the same labels (the
    inference curve's negative control).
    """
    base = profile.train_config(arch)
    train = dataclasses.replace(
        base,
        epochs=0 if untrained else epoch_factor * base.epochs,
        n_checkpoints=0 if untrained else n_checkpoints,
    )
    return [
        run_model(
            run_config(profile, task, arch, seed, label_noise=noise, train=train), progress=progress
        )
        for seed in range(n_seeds)
    ]


def zero_hinge_configs(
    profile: Profile,
    task: str,
    arch: str,
    *,
    n_train: int,
    lr: float = 0.0,
    head_init_scale: float = 1e-4,
    momentum: float = 0.9,
    seed: int = 0,
) -> dict:
    """The three networks of Fig. 6 right, on the same ``n_train`` points and initialisation.

    ``untrained``; ``0-Hinge``: full-batch GD with momentum at a constant ``lr`` (0: the profile's
    ``hinge_lr``), no weight decay, up to ``profile.hinge_steps`` steps, stopping at zero loss;
    ``cross-entropy``: the profile's SGD for twice its epochs. The head's initial weights are scaled
    by ``head_init_scale``, which with ``lr`` sets the size of 0-Hinge margins. Two controls
    separate the loss from the regime: ``cross-entropy, 0-Hinge regime`` (the 0-Hinge optimiser,
    steps and head, cross-entropy loss) and ``0-Hinge, default head`` (the head left at its default
    initialisation, on its own initial weights otherwise the same).
    """
    base = profile.train_config(arch)
    ce = dataclasses.replace(base, epochs=2 * base.epochs, n_checkpoints=profile.n_checkpoints)
    hinge = TrainConfig(
        epochs=profile.hinge_steps,
        batch_size=n_train,
        lr=lr or profile.hinge_lr,
        momentum=momentum,
        weight_decay=0.0,
        warmup_fraction=0.0,
        n_checkpoints=max(profile.n_checkpoints, profile.hinge_steps // 50),
        loss="zero_hinge",
        schedule="constant",
        stop_at_zero_loss=True,
        micro_batch=profile.hinge_micro_batch,
    )
    untrained = dataclasses.replace(hinge, epochs=0, n_checkpoints=0)
    ce_regime = dataclasses.replace(hinge, loss="cross_entropy", stop_at_zero_loss=False)
    networks = (
        ("untrained", untrained, head_init_scale),
        ("0-Hinge", hinge, head_init_scale),
        ("cross-entropy", ce, head_init_scale),
        ("cross-entropy, 0-Hinge regime", ce_regime, head_init_scale),
        ("0-Hinge, default head", hinge, 1.0),
    )
    return {
        name: run_config(
            profile, task, arch, seed, n_pool=n_train, train=train, head_init_scale=scale
        )
        for name, train, scale in networks
    }


def margin_statistics(configs: list[RunConfig]) -> dict:
    """Output and input margins of the test points under each network (weights loaded, margins
    cached).

    Returns ``depth``, ``undecided``, ``output_margin``, ``input_margin`` (n_models, n_test),
    ``labels``, ``n_probes``.
    """

    def compute(config):
        return {"input_margin": input_margin(load_model(config), run_data(config).test_inputs)}, {}

    out = {"depth": [], "undecided": [], "output_margin": [], "input_margin": []}
    runs = [run_model(config, keep_weights=True) for config in configs]
    for run, config in zip(runs, configs, strict=False):
        test = run["is_test"]
        cached = load_or_compute(
            f"margins-{RUNS_KIND}", config, lambda config=config: compute(config)
        )
        out["depth"].append(run["depth"][test].astype(np.int64))
        out["undecided"].append(run["undecided"][test])
        out["output_margin"].append(output_margin(run["logits"][test]))
        out["input_margin"].append(cached["input_margin"])
    return {
        **{name: np.stack(values) for name, values in out.items()},
        "labels": runs[0]["labels"][runs[0]["is_test"]],
        "n_probes": len(runs[0].meta["probe_names"]),
    }


def figure_footer(
    profile: Profile,
    figure: str,
    *,
    task: str | None = None,
    arch: str | None = None,
    n_models: int | None = None,
    extra: str = "",
) -> str:
    """The provenance line under a figure: profile, dataset, architecture and number of networks."""
    setup = profile.setup(figure)
    parts = [
        f"profile {profile.name}",
        task or ", ".join(setup.datasets),
        arch or ", ".join(setup.archs),
        f"{n_models or setup.n_models} network{'s' if (n_models or setup.n_models) != 1 else ''}"
        + (f" on {setup.split()} splits" if setup.kind == "ensemble" else ""),
    ]
    return " · ".join(parts + ([extra] if extra else []))


def fig4_panels(
    profile: Profile, *, executor: str = "local", control_seed: int = 0
) -> tuple[dict, dict, dict]:
    """Fig. 4 left and middle: ``(panels, bounds, control)``.

    ``panels`` {title: (PD, C*)}: the ensemble of ``fig4_left`` (one value per point) and, for the
    first task of ``fig4_middle``, PD of the test points from each full-pool network against C* of
    the others (every rotation). ``bounds``: :func:`pdlib.analysis.consensus_bounds`.
    ``permute_seed``: the negative control (PD permuted across points).
    """
    from pdlib.analysis import consensus_bounds, cross_model_consensus

    left, middle = profile.setup("fig4_left"), profile.setup("fig4_middle")
    stats = ensemble_statistics(
        ensemble(profile, "fig4_left", left.datasets[0], left.archs[0], executor=executor)
    )
    task = plan_tasks(profile, "fig4_middle")[0][0]
    cross = cross_model_consensus(seed_runs(profile, "fig4_middle", task, middle.archs[0]))
    bounds = consensus_bounds(stats, cross)
    control = consensus_bounds(stats, cross, permute_seed=control_seed)
    seen = stats["n_held_out"] > 0
    panels = {
        f"ensemble, {left.datasets[0]}": (
            stats["depth_val"][seen],
            stats["consensus_consistency"][seen],
        ),
        f"1 vs others, {task}": (cross["depth"].ravel(), cross["consensus_consistency"].ravel()),
    }
    return panels, bounds, control
