"""The experiments behind each chapter, as cached runs at a profile's scale.

Notebooks call these in a line or two; every network goes through
:func:`pdlib.runs.run_model`, so nothing is retrained once it is cached.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from pdlib.cache import Artifact
from pdlib.data import DatasetNotFoundError, load_dataset
from pdlib.ensembles import Ensemble, ensemble_statistics, run_ensemble
from pdlib.metrics import depth_correlation_matrix, probe_accuracy, rescale_depth, softmax_disagreement
from pdlib.profiles import Profile
from pdlib.runs import RunConfig, run_model
from pdlib.training import TrainConfig

__all__ = ["TASKS", "Task", "available_tasks", "run_config", "run_model_for", "train_seeds", "seed_agreement",
           "probe_accuracy_curves", "runs_table", "gallery_arrays", "ensemble_template", "train_ensemble",
           "full_pool_configs", "full_pool_models", "cross_model_consensus", "ensemble_statistics", "ensemble_table", "NOISE_SETS",
           "noisy_label_runs", "noise_learning_curves", "noise_inference_curves", "zero_hinge_configs",
           "margin_statistics"]


@dataclass(frozen=True)
class Task:
    """A classification task: a dataset, or a class subset of one."""

    dataset: str  # name accepted by pdlib.load_dataset
    classes: tuple[int, ...] = ()  # class subset in the dataset's indices; () = all
    offline: bool = False  # always available without a download


TASKS = {
    "digits": Task("digits", offline=True),
    "fashion_mnist": Task("fashion_mnist", offline=True),
    # Shirt / T-shirt / pullover / coat: the four Fashion-MNIST classes most often confused.
    "fashion_mnist_hard": Task("fashion_mnist", classes=(0, 2, 4, 6), offline=True),
    "svhn": Task("svhn"),
    "cifar10": Task("cifar10"),
    "cifar100": Task("cifar100"),
}


def available_tasks(names, *, download: bool = False) -> list[str]:
    """The tasks of ``names`` whose data is on disk (or downloadable when ``download``)."""
    available = []
    for name in names:
        task = TASKS[name]
        if task.offline or download:
            available.append(name)
            continue
        try:
            load_dataset(task.dataset, "train", download=False)
            available.append(name)
        except DatasetNotFoundError:
            continue
    return available


def run_config(profile: Profile, task: str, arch: str, seed: int, **changes) -> RunConfig:
    """The :class:`RunConfig` of one network at ``profile``'s scale."""
    spec = TASKS[task]
    fields = dict(dataset=spec.dataset, classes=spec.classes, arch=arch, width=profile.width(arch),
                  train=profile.train_config(arch), n_pool=profile.n_pool, n_test=profile.n_test, seed=seed)
    return RunConfig(**{**fields, **changes})


def train_seeds(profile: Profile, task: str, arch: str, n_seeds: int, seed: int = 0,
                progress: bool | None = None) -> list[Artifact]:
    """``n_seeds`` networks trained on the same pool with seeds ``seed, seed + 1, ...``."""
    return [run_model(run_config(profile, task, arch, seed + i), progress=progress) for i in range(n_seeds)]


def seed_agreement(runs_by_arch: dict) -> dict:
    """PD agreement between seeds and architectures, on the training and validation splits.

    Parameters
    ----------
    runs_by_arch : dict of str to list of Artifact
        Runs on the same points (same pool and test subset).

    Returns
    -------
    dict with
        ``names`` (list of str), ``train`` and ``validation`` correlation matrices
        (see :func:`pdlib.metrics.depth_correlation_matrix`), and ``mean_rescaled``:
        per architecture, the seed-mean PD of every point rescaled to [0, 1], shape (n,).
    """
    out = {}
    for split, mask_name in (("train", "in_train"), ("validation", None)):
        depths = {}
        for arch, runs in runs_by_arch.items():
            mask = runs[0][mask_name] if mask_name else ~runs[0]["in_train"]
            depths[arch] = [run["depth"][mask] for run in runs]
        out["names"], out[split] = depth_correlation_matrix(depths)
    out["mean_rescaled"] = {
        arch: rescale_depth(np.mean([run["depth"] for run in runs], axis=0), len(runs[0].meta["probe_names"]))
        for arch, runs in runs_by_arch.items()
    }
    return out


def probe_accuracy_curves(runs: list[Artifact]) -> dict:
    """Mean k-NN probe accuracy per probe over ``runs``, for training and validation points.

    Returns
    -------
    dict of str to ndarray of float, shape (n_probes,)
        Keys "train (leave-one-out)" and "validation".
    """
    curves = {"train (leave-one-out)": [], "validation": []}
    for run in runs:
        for split, mask in (("train (leave-one-out)", run["in_train"]), ("validation", ~run["in_train"])):
            curves[split].append(probe_accuracy(run["probe_predictions"][:, mask], run["labels"][mask]))
    return {split: np.mean(values, axis=0) for split, values in curves.items()}


def run_model_for(profile: Profile, task: str, arch: str, seed: int = 0, progress: bool | None = None) -> Artifact:
    """One network on ``task`` at ``profile``'s scale (cached)."""
    return run_model(run_config(profile, task, arch, seed), progress=progress)


def runs_table(runs_by_arch: dict):
    """One row per network: fit, accuracy, mean PD, softmax disagreement and wall time.

    Returns
    -------
    pandas.DataFrame indexed by (architecture, seed)
    """
    import pandas as pd

    rows = []
    for arch, runs in runs_by_arch.items():
        for run in runs:
            train, held_out = run["in_train"], ~run["in_train"]
            rows.append({
                "architecture": arch,
                "seed": run.meta["config"]["seed"],
                "train accuracy": run.meta["train_accuracy"],
                "test accuracy": run.meta["test_accuracy"],
                "mean PD train": float(run["depth"][train].mean()),
                "mean PD validation": float(run["depth"][held_out].mean()),
                "max PD": len(run.meta["probe_names"]) - 1,
                "softmax probe disagrees (%)": 100 * softmax_disagreement(run["probe_predictions"],
                                                                          run["network_predictions"]),
                "train s": run.meta["seconds"]["train"],
                "probe s": run.meta["seconds"]["probe"],
            })
    return pd.DataFrame(rows).set_index(["architecture", "seed"])


def gallery_arrays(runs: list[Artifact]) -> dict:
    """Training-pool points of ``runs`` with their seed-mean PD, for the Fig. 1 gallery.

    Returns
    -------
    dict of ndarray, each of shape (n_pool,)
        ``labels``, ``predictions`` (the first network's) and ``mean_depth``.
    """
    pool = ~runs[0]["is_test"]
    return {
        "labels": runs[0]["labels"][pool],
        "predictions": runs[0]["network_predictions"][pool].astype(np.int64),
        "mean_depth": np.mean([run["depth"][pool] for run in runs], axis=0),
    }


def ensemble_template(profile: Profile, task: str, arch: str, seed: int = 0) -> RunConfig:
    """Model 0 of a 90:10 ensemble at ``profile``'s scale, recording prediction checkpoints."""
    train = dataclasses.replace(profile.train_config(arch), n_checkpoints=profile.n_checkpoints)
    return run_config(profile, task, arch, seed, holdout_fraction=0.1, train=train)


def train_ensemble(profile: Profile, task: str, arch: str, n_models: int, seed: int = 0, *,
                   executor: str = "local", workers: int = 1, progress: bool | None = None) -> Ensemble:
    """Train (or load) an ensemble of ``n_models`` networks on random 90:10 splits of the pool."""
    return run_ensemble(ensemble_template(profile, task, arch, seed), n_models, executor=executor,
                        workers=workers, progress=progress)


#: Seeds of full-pool networks start here, far from any ensemble's seeds.
FULL_POOL_SEED_OFFSET = 10_000


def full_pool_configs(profile: Profile, task: str, arch: str, n_models: int, seed: int = 0) -> list[RunConfig]:
    """Configs of ``n_models`` networks trained on the whole pool (no holdout)."""
    train = dataclasses.replace(profile.train_config(arch), n_checkpoints=profile.n_checkpoints)
    return [run_config(profile, task, arch, FULL_POOL_SEED_OFFSET + seed + i, train=train) for i in range(n_models)]


def full_pool_models(profile: Profile, task: str, arch: str, n_models: int, seed: int = 0,
                     progress: bool | None = None) -> list[Artifact]:
    """``n_models`` networks trained on the whole pool (no holdout), for Fig. 4 middle and Fig. 6."""
    return [run_model(config, progress=progress) for config in full_pool_configs(profile, task, arch, n_models, seed)]


def cross_model_consensus(runs: list[Artifact]) -> dict:
    """PD of the test points from the first network; consensus and C* from all the others.

    Returns
    -------
    dict of ndarray, each of shape (n_test,)
        ``depth`` (first network), ``consensus`` and ``consensus_consistency`` (the rest).
    """
    from pdlib.consistency import consensus_class, consensus_consistency

    if len(runs) < 2:
        raise ValueError(f"runs must hold at least 2 networks, got {len(runs)}")
    test = runs[0]["is_test"]
    labels = runs[0]["labels"][test]
    others = np.stack([run["network_predictions"][test] for run in runs[1:]]).astype(np.int64)
    held_out = np.ones_like(others, dtype=bool)
    n_classes = runs[0]["logits"].shape[1]
    consensus = consensus_class(others, held_out, labels, n_classes)
    return {"depth": runs[0]["depth"][test].astype(np.int64), "consensus": consensus,
            "consensus_consistency": consensus_consistency(others, held_out, consensus)}


def ensemble_table(stats: dict):
    """Headline numbers of an ensemble as a one-column table."""
    import pandas as pd

    seen = stats["n_held_out"] > 0
    rows = {
        "networks": stats["n_models"],
        "points (pool)": int(len(seen)),
        "mean training accuracy": float(np.mean(stats["train_accuracy"])),
        "mean held-out accuracy": float(stats["val_correct_pairs"].mean()),
        "mean times held out": float(stats["n_held_out"][seen].mean()),
        "mean PD (validation)": float(np.nanmean(stats["depth_val"])),
        "mean PD (train)": float(np.nanmean(stats["depth_train"])),
        "consensus ≠ ground truth (%)": 100 * float(np.mean(stats["consensus"][seen] != stats["labels"][seen])),
    }
    return pd.DataFrame({"value": rows}).round(3)


# --- Section 3.2: learning with corrupted labels ----------------------------------------------

#: The four sets of Fig. 5 (middle and right), in plotting order.
NOISE_SETS = ("clean training points", "corrupted, scored against the new label",
              "corrupted, scored against the original label", "test points")


def noisy_label_runs(profile: Profile, task: str, arch: str, n_seeds: int, *, noise: float = 0.4,
                     epochs: int = 0, n_checkpoints: int = 0, seed: int = 0,
                     progress: bool | None = None) -> list[Artifact]:
    """Networks trained on the whole pool with a fraction ``noise`` of its labels randomised.

    The corruption is drawn once (``data_seed``), so every seed sees the same corrupted
    labels; seeds differ in initialisation and batch order. ``epochs`` and
    ``n_checkpoints`` of 0 keep the profile's values.
    """
    base = profile.train_config(arch)
    train = dataclasses.replace(base, epochs=epochs or base.epochs,
                                n_checkpoints=n_checkpoints or profile.n_checkpoints)
    return [run_model(run_config(profile, task, arch, seed + i, label_noise=noise, train=train), progress=progress)
            for i in range(n_seeds)]


def _noise_sets(run: Artifact) -> dict:
    """Each Fig. 5 set as (mask over all points, the labels it is scored against)."""
    corrupted, train = run["corrupted"], run["in_train"] & ~run["is_test"]
    return {
        NOISE_SETS[0]: (train & ~corrupted, run["labels"]),
        NOISE_SETS[1]: (train & corrupted, run["fit_labels"]),
        NOISE_SETS[2]: (train & corrupted, run["labels"]),
        NOISE_SETS[3]: (run["is_test"], run["labels"]),
    }


def noise_learning_curves(run: Artifact) -> dict:
    """Fig. 5 middle: accuracy of the network on each set at every checkpoint.

    Returns
    -------
    dict
        ``steps`` (T+1,) SGD steps, and per set name an ndarray (T+1,) of accuracy.
    """
    history = run["checkpoint_predictions"]
    if not history.size:
        raise ValueError("the run has no checkpoints: train it with TrainConfig(n_checkpoints > 0)")
    curves = {"steps": run["checkpoint_steps"]}
    for name, (mask, target) in _noise_sets(run).items():
        curves[name] = (history[:, mask] == target[mask]).mean(axis=1)
    return curves


def noise_inference_curves(run: Artifact) -> dict:
    """Fig. 5 right: k-NN probe accuracy on each set, probe by probe.

    Training points are scored leave-one-out by probes fitted on the corrupted labels.

    Returns
    -------
    dict of str to ndarray, shape (n_probes,)
    """
    return {name: probe_accuracy(run["probe_predictions"][:, mask], target[mask])
            for name, (mask, target) in _noise_sets(run).items()}


# --- Section 3.3: margins and the 0-Hinge intervention ----------------------------------------

def zero_hinge_configs(profile: Profile, task: str, arch: str, *, n_train: int, steps: int, lr: float,
                       momentum: float = 0.9, seed: int = 0) -> dict:
    """The three networks of Fig. 6 right, on the same ``n_train`` training points.

    - ``untrained``: the initialisation (0 steps);
    - ``0-Hinge``: full-batch gradient descent with momentum on the 0-Hinge loss, constant
      learning rate ``lr`` (small), no weight decay, at most ``steps`` steps: it stops as
      soon as the loss is exactly 0, i.e. every training point is classified correctly;
    - ``cross-entropy``: the profile's SGD + momentum schedule (large initial learning rate),
      with twice its epochs when ``n_train`` is smaller than the pool, so that it fits.

    Returns
    -------
    dict of str to RunConfig
    """
    base = profile.train_config(arch)
    # Twice the epochs on a smaller training set, so the control fits it too (longer runs at the
    # profile's large learning rate diverge now and then).
    factor = 2 if n_train < (profile.n_pool or n_train) else 1
    ce = dataclasses.replace(base, epochs=base.epochs * factor, n_checkpoints=profile.n_checkpoints)
    hinge = TrainConfig(epochs=steps, batch_size=n_train, lr=lr, momentum=momentum, weight_decay=0.0,
                        warmup_fraction=0.0, n_checkpoints=max(profile.n_checkpoints, steps // 10), loss="zero_hinge",
                        schedule="constant", stop_at_zero_loss=True)
    untrained = dataclasses.replace(hinge, epochs=0, n_checkpoints=0)
    return {name: run_config(profile, task, arch, seed, n_pool=n_train, train=train)
            for name, train in (("untrained", untrained), ("0-Hinge", hinge), ("cross-entropy", ce))}


def margin_statistics(configs: list[RunConfig], *, progress: bool | None = None) -> dict:
    """Output and input margins of the test points under each network, with their PD.

    The input margin needs the weights: :func:`pdlib.runs.trained_model` retrains each
    network once (deterministically) and caches them; the margins are cached too.

    Returns
    -------
    dict of ndarray
        ``depth``, ``output_margin`` and ``input_margin``, each (n_models, n_test);
        ``labels`` (n_test,).
    """
    from pdlib.cache import load_or_compute
    from pdlib.margins import input_margin, output_margin
    from pdlib.runs import RUNS_KIND, run_data, trained_model

    def compute(config):
        model = trained_model(config, progress=progress)
        inputs = run_data(config).test_inputs
        return {"input_margin": input_margin(model, inputs)}, {}

    out = {"depth": [], "output_margin": [], "input_margin": []}
    for config in configs:
        run = run_model(config, progress=progress)
        test = run["is_test"]
        cached = load_or_compute(f"margins-{RUNS_KIND}", config, lambda config=config: compute(config))
        out["depth"].append(run["depth"][test].astype(np.int64))
        out["output_margin"].append(output_margin(run["logits"][test]))
        out["input_margin"].append(cached["input_margin"])
        labels = run["labels"][test]
    return {**{name: np.stack(values) for name, values in out.items()}, "labels": labels}
