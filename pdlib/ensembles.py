"""Ensembles on the paper's 90:10 protocol, run locally or on a Ray cluster.

Model ``i`` is the template :class:`~pdlib.runs.RunConfig` with seed ``template.seed + i`` (its own
initialisation, batch order and split). Each model is one cached artifact written atomically by
the driver, so an interrupted run resumes where it stopped. Runs are not bit-identical across
machines or thread counts; every artifact records its threads and device.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np
import torch

from pdlib._progress import progress_bar
from pdlib.cache import (
    Artifact,
    artifact_version,
    config_hash,
    is_cached,
    load_artifact,
    save_artifact,
    stamp,
)
from pdlib.metrics import (
    consensus_class,
    consensus_consistency,
    consistency_score,
    even_checkpoints,
    iteration_learned,
    rescale_iteration,
    split_means,
)
from pdlib.runs import RUNS_KIND, RunConfig, compute_run

__all__ = [
    "Ensemble",
    "ensemble_configs",
    "run_ensemble",
    "ensemble_statistics",
    "held_out_probe_counts",
    "ProbeCounts",
    "EnsembleStatistics",
    "EXECUTORS",
]

EXECUTORS = ("local", "ray")


def ensemble_configs(template: RunConfig, n_models: int) -> list[RunConfig]:
    """The configs of an ensemble's models: seeds ``template.seed .. template.seed + n_models -
    1``."""
    if isinstance(n_models, bool) or not isinstance(n_models, int) or n_models < 1:
        raise ValueError(f"n_models must be a positive integer, got {n_models!r}")
    if not 0 < template.holdout_fraction < 1:
        raise ValueError(
            "template.holdout_fraction must be in (0, 1) for an ensemble (0.1 is the paper's "
            f"90:10); got {template.holdout_fraction}"
        )
    return [dataclasses.replace(template, seed=template.seed + i) for i in range(n_models)]


@dataclass(frozen=True)
class Ensemble:
    """The cached models of one ensemble, loaded one at a time; ``ensemble[:20]`` is a
    sub-ensemble."""

    configs: tuple[RunConfig, ...]

    def __len__(self) -> int:
        return len(self.configs)

    def __getitem__(self, models: slice) -> Ensemble:
        return Ensemble(self.configs[models])

    def artifacts(self) -> Iterator[Artifact]:
        """Yield each model's artifact in seed order, never holding two at once."""
        for config in self.configs:
            artifact = load_artifact(RUNS_KIND, config)
            if artifact is None:
                raise FileNotFoundError(
                    f"model with seed {config.seed} is not computed; run run_ensemble first"
                )
            yield artifact

    def missing(self, with_weights: int = 0) -> list[RunConfig]:
        """Configs without a complete artifact (or, for the first ``with_weights``, without stored
        weights)."""
        return [
            config
            for i, config in enumerate(self.configs)
            if not is_cached(RUNS_KIND, config, with_weights=i < with_weights)
        ]


def _compute(
    config: RunConfig, device: str | None, keep_weights: bool, threads: int | None
) -> tuple:
    """One model, in whatever process the executor chose; the driver writes the artifact."""
    start = time.perf_counter()
    if threads:
        torch.set_num_threads(threads)
    arrays, meta, *weights = compute_run(
        config, device=device, progress=False, keep_weights=keep_weights
    )
    # Provenance of the process (and machine) that computed the model, not of the driver.
    meta = stamp(meta, time.perf_counter() - start)
    return arrays, meta, ({k: v.cpu() for k, v in weights[0].items()} if weights else None)


def run_ensemble(
    template: RunConfig,
    n_models: int,
    *,
    executor: str = "local",
    device: str | None = None,
    keep_weights: int = 0,
    ray_address: str | None = None,
    threads_per_task: int = 1,
    progress: bool | None = None,
) -> Ensemble:
    """Train and probe ``n_models`` networks on random 90:10 splits (cached, resumable).

    Parameters
    ----------
    template : RunConfig
        Model 0's config; ``holdout_fraction`` must be in (0, 1) (0.1 in the paper).
    n_models : int
        Ensemble size r.
    executor : {"local", "ray"}
        ``local``: one model after another in this process; ``ray``: one task per model on a Ray
        cluster (``pip install 'pdlib[ray]'``), a GPU per task where there are GPUs.
    device : str, optional
        Torch device inside each task; defaults to CUDA when available.
    keep_weights : int
        Store the weights of the first ``keep_weights`` models.
    ray_address : str, optional
        For ``ray.init``; ``None`` starts or reuses a local cluster.
    threads_per_task : int
        CPUs (and torch threads) per Ray task.
    progress : bool, optional
        Progress bar over models.

    Returns
    -------
    Ensemble
    """
    if executor not in EXECUTORS:
        raise ValueError(f"executor must be one of {', '.join(EXECUTORS)}; got {executor!r}")
    ensemble = Ensemble(tuple(ensemble_configs(template, n_models)))
    pending = ensemble.missing(with_weights=keep_weights)
    keep = {config for config in ensemble.configs[:keep_weights]}
    bar = progress_bar(
        total=len(ensemble),
        initial=len(ensemble) - len(pending),
        desc="models",
        enabled=progress,
        unit="model",
    )
    try:
        for config, (arrays, meta, weights) in _execute(
            pending, executor, device, keep, ray_address, threads_per_task
        ):
            save_artifact(
                RUNS_KIND, config, arrays, {**meta, "executor": executor}, weights=weights
            )
            bar.update(1)
    finally:
        bar.close()
    return ensemble


def _execute(pending, executor, device, keep, ray_address, threads):
    """Yield ``(config, (arrays, meta, weights))`` as models finish."""
    if not pending:
        return
    if executor == "local":
        for config in pending:
            yield config, _compute(config, device, config in keep, None)
        return
    try:
        import ray
    except ImportError as error:
        raise ImportError("executor='ray' needs Ray: pip install 'pdlib[ray]'") from error
    if not ray.is_initialized():
        ray.init(address=ray_address, include_dashboard=False, log_to_driver=False)
    gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
    # Workers find the data where the driver does, including arrays registered with pdlib.userdata.
    forwarded = {
        name: os.environ[name]
        for name in ("PDLIB_DATA", "PDLIB_FILE_DATA", "PDLIB_QUIET")
        if name in os.environ
    }
    task = ray.remote(num_cpus=threads, num_gpus=gpus, runtime_env={"env_vars": forwarded})(
        _compute
    )
    refs = {task.remote(config, device, config in keep, threads): config for config in pending}
    while refs:
        done, _ = ray.wait(list(refs), num_returns=1)
        yield refs.pop(done[0]), ray.get(done[0])


@dataclass(frozen=True, eq=False)
class EnsembleStatistics(Mapping):
    """The per-point statistics of an ensemble of ``r`` models over ``n`` pool points.

    Per (model, point), shape (r, n): ``predictions`` (the network's class), ``held_out`` (in the
    model's validation split), ``depth`` (PD), ``undecided`` (no depth: the softmax probe
    disagrees with the network) and ``iteration`` (rescaled iteration learned, NaN without
    checkpoints). Per point, shape (n,): ``labels`` (the reference labels), ``n_held_out`` and
    ``n_trained`` (appearances), ``consistency`` (Eq. 1), ``consensus`` (-1 if never held out),
    ``consensus_consistency`` (Eq. 2), ``depth_val``/``depth_train`` and
    ``iteration_val``/``iteration_train`` (means over held-out / training appearances). Per model:
    ``train_accuracy`` (r,). And ``n_models``, ``n_probes``, ``n_classes``.

    Fields read as attributes or, like a read-only mapping, as ``stats["depth_val"]``; ``{**stats,
    "depth": other}`` gives a dict with one field replaced (the permuted controls).
    """

    predictions: np.ndarray
    held_out: np.ndarray
    depth: np.ndarray
    undecided: np.ndarray
    iteration: np.ndarray
    labels: np.ndarray
    n_held_out: np.ndarray
    n_trained: np.ndarray
    consistency: np.ndarray
    consensus: np.ndarray
    consensus_consistency: np.ndarray
    depth_val: np.ndarray
    depth_train: np.ndarray
    iteration_val: np.ndarray
    iteration_train: np.ndarray
    n_models: int
    n_probes: int
    n_classes: int
    train_accuracy: np.ndarray

    def __getitem__(self, key: str):
        if key not in self.__dataclass_fields__:
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self):
        return iter(self.__dataclass_fields__)

    def __len__(self) -> int:
        return len(self.__dataclass_fields__)

    __eq__ = object.__eq__  # arrays: identity, not an elementwise (ambiguous) comparison
    __hash__ = object.__hash__


#: The statistics of the last few ensembles read, keyed by their models' configs and cache
#: versions: a chapter asks for the same ensemble's statistics for several figures.
_STATISTICS: dict = {}
_KEEP_STATISTICS = 2


def ensemble_statistics(
    ensemble: Ensemble, *, reference: str = "labels", observers: tuple = ()
) -> EnsembleStatistics:
    """Per-point statistics of an ensemble (the models' stacked (r, n) arrays through
    :mod:`pdlib.metrics`), as an :class:`EnsembleStatistics`.

    ``reference``: the labels consistency and the consensus tie rule refer to, ``"labels"`` (ground
    truth) or ``"fit_labels"`` (the labels trained on). The result is kept for the same models
    until their cached artifacts change: treat it as read-only.
    ``observers``: callables given each model's artifact as it streams past, so that another
    per-model sum needs no second pass over the ensemble (the statistics are then recomputed).
    """
    if observers:
        return _ensemble_statistics(ensemble, reference, observers)
    versions = tuple(
        (config_hash(config), artifact_version(RUNS_KIND, config)) for config in ensemble.configs
    )
    key = (reference, versions)
    if key not in _STATISTICS:
        while len(_STATISTICS) >= _KEEP_STATISTICS:
            _STATISTICS.pop(next(iter(_STATISTICS)))
        _STATISTICS[key] = _ensemble_statistics(ensemble, reference)
    return _STATISTICS[key]


def _ensemble_statistics(
    ensemble: Ensemble, reference: str, observers: tuple = ()
) -> EnsembleStatistics:
    """:func:`ensemble_statistics`, computed (the models' artifacts streamed once)."""
    rows = {"predictions": [], "held_out": [], "depth": [], "undecided": [], "iteration": []}
    train_accuracy, labels, n_probes, n_classes = [], None, 0, 0
    for artifact in ensemble.artifacts():
        for observe in observers:
            observe(artifact)
        pool = ~artifact["is_test"]
        labels, n_probes, n_classes = (
            artifact[reference][pool],
            len(artifact.meta["probe_names"]),
            artifact["logits"].shape[1],
        )
        history = artifact["checkpoint_predictions"]
        if history.size:  # the iteration learned reads the even schedule, not first-epoch extras
            n_even = artifact.meta["config"]["train"]["n_checkpoints"]
            history = history[even_checkpoints(artifact["checkpoint_steps"], n_even)]
        rows["predictions"].append(artifact["network_predictions"][pool])
        rows["held_out"].append(~artifact["in_train"][pool])
        rows["depth"].append(artifact["depth"][pool])
        rows["undecided"].append(
            artifact["probe_predictions"][-1, pool] != artifact["network_predictions"][pool]
        )
        rows["iteration"].append(
            rescale_iteration(iteration_learned(history[:, pool])).astype(np.float32)
            if history.size
            else np.full(int(pool.sum()), np.nan, np.float32)
        )
        train_accuracy.append(artifact.meta["train_accuracy"])
    if labels is None:
        raise ValueError("the ensemble has no models")
    stacked = {name: np.stack(values) for name, values in rows.items()}
    held_out, predictions = stacked["held_out"], stacked["predictions"]
    consensus = consensus_class(predictions, held_out, labels, n_classes)
    depth_val, depth_train = split_means(stacked["depth"], held_out)
    iteration_val, iteration_train = split_means(stacked["iteration"], held_out)
    return EnsembleStatistics(
        **stacked,
        labels=labels,
        n_held_out=held_out.sum(axis=0),
        n_trained=(~held_out).sum(axis=0),
        consistency=consistency_score(predictions, held_out, labels),
        consensus=consensus,
        consensus_consistency=consensus_consistency(predictions, held_out, consensus),
        depth_val=depth_val,
        depth_train=depth_train,
        iteration_val=iteration_val,
        iteration_train=iteration_train,
        n_models=len(ensemble),
        n_probes=n_probes,
        n_classes=n_classes,
        train_accuracy=np.asarray(train_accuracy),
    )


@dataclass
class ProbeCounts:
    """Per-point, per-probe k-NN counts over an ensemble's held-out appearances
    (:func:`held_out_probe_counts`), summed over the models.

    ``n_held_out`` (n_pool,): appearances of each point; per target class array ``t``:
    ``votes[t]`` and ``hits[t]`` (n_probes, n_pool), the probes' votes for and predictions of the
    target, and ``network_hits[t]`` (n_pool,); ``rule_hits`` (n_probes, n_probes + 1, n_pool):
    hits on the *first* target of "probe ``p`` if PD >= ``t`` else the network" (``t =
    n_probes``: never the probe); ``k``: neighbours per probe; ``n_probes``.
    """

    n_held_out: np.ndarray
    votes: dict
    hits: dict
    network_hits: dict
    rule_hits: np.ndarray
    k: int
    n_probes: int

    @classmethod
    def zeros(cls, targets: dict, n_pool: int, n_probes: int, k: int) -> ProbeCounts:
        """Empty counts for ``targets`` (name -> classes (n_pool,))."""
        return cls(
            n_held_out=np.zeros(n_pool, np.int64),
            votes={name: np.zeros((n_probes, n_pool), np.int64) for name in targets},
            hits={name: np.zeros((n_probes, n_pool), np.int64) for name in targets},
            network_hits={name: np.zeros(n_pool, np.int64) for name in targets},
            rule_hits=np.zeros((n_probes, n_probes + 1, n_pool), np.int64),
            k=k,
            n_probes=n_probes,
        )

    def add(self, points, probe_predictions, probe_votes, network, depth, targets: dict) -> None:
        """Add one model's held-out ``points`` (m,): its probes' predictions (n_probes, m) and
        votes (n_probes, m, n_classes), the network's predictions and PD (m,)."""
        self.n_held_out[points] += 1
        for name, value in targets.items():
            target = value[points]
            valid = target >= 0
            safe = np.maximum(target, 0)
            self.votes[name][:, points] += np.where(
                valid, np.take_along_axis(probe_votes, safe[None, :, None], 2)[..., 0], 0
            )
            self.hits[name][:, points] += (probe_predictions == target) & valid
            self.network_hits[name][points] += (network == target) & valid
        first = targets[next(iter(targets))][points]
        probe_right, network_right = probe_predictions == first, network == first
        for threshold in range(self.n_probes + 1):
            self.rule_hits[:, threshold, points] += np.where(
                depth >= threshold, probe_right, network_right
            )


def held_out_probe_counts(ensemble: Ensemble, targets: dict) -> ProbeCounts:
    """Per-point, per-probe k-NN votes and hits over held-out appearances (streaming, O(n_probes^2 *
    n)).

    Parameters
    ----------
    ensemble : Ensemble
    targets : dict of str to array-like of int, shape (n_pool,)
        Classes to score against, e.g. ``{"ground truth": labels}``; -1 is never a hit.

    Returns
    -------
    ProbeCounts
    """
    counts = None
    classes = {name: np.asarray(value, dtype=np.int64) for name, value in targets.items()}
    for artifact in ensemble.artifacts():
        pool = ~artifact["is_test"]
        points = np.flatnonzero(~artifact["in_train"][pool])
        probe_predictions = artifact["probe_predictions"][:, pool][:, points].astype(np.int64)
        if counts is None:
            n_pool = int(pool.sum())
            for name, value in classes.items():
                if value.shape != (n_pool,):
                    raise ValueError(
                        f"targets[{name!r}] has shape {value.shape}, expected ({n_pool},)"
                    )
            k = int(artifact.meta["config"]["k"])
            counts = ProbeCounts.zeros(classes, n_pool, probe_predictions.shape[0], k)
        counts.add(
            points,
            probe_predictions,
            artifact["votes"][:, pool][:, points],
            artifact["network_predictions"][pool][points].astype(np.int64),
            artifact["depth"][pool][points].astype(np.int64),
            classes,
        )
    if counts is None:
        raise ValueError("the ensemble has no models")
    return counts
