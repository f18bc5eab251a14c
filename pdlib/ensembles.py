"""Ensembles on the paper's 90:10 protocol, run locally or on a Ray cluster.

Model ``i`` of an ensemble is the template :class:`~pdlib.runs.RunConfig` with seed
``template.seed + i``: its own initialisation, batch order and random 90:10 split of the
pool. Each model is one cached artifact (see :func:`pdlib.runs.run_model`), written
atomically by the driver process, so killing a run at any moment loses no finished
model and re-running it only computes what is missing.

Results are bit-identical whichever executor runs them: every model is computed with
the same fixed number of torch threads (``threads``), since a GEMM split over a
different number of threads may round differently.
"""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch

from pdlib._progress import progress_bar
from pdlib.cache import Artifact, load_artifact, provenance, save_artifact
from pdlib.runs import RUNS_KIND as _KIND
from pdlib.runs import RunConfig, compute_run

__all__ = ["Ensemble", "ensemble_configs", "run_ensemble", "ensemble_statistics", "held_out_probe_counts", "EXECUTORS"]

EXECUTORS = ("local", "process", "ray")


def ensemble_configs(template: RunConfig, n_models: int) -> list[RunConfig]:
    """The configs of an ensemble's models: seeds ``template.seed .. template.seed + n_models - 1``."""
    if isinstance(n_models, bool) or not isinstance(n_models, int) or n_models < 1:
        raise ValueError(f"n_models must be a positive integer, got {n_models!r}")
    if not 0 < template.holdout_fraction < 1:
        raise ValueError(
            f"template.holdout_fraction must be in (0, 1) for an ensemble (0.1 is the paper's 90:10); "
            f"got {template.holdout_fraction}")
    return [dataclasses.replace(template, seed=template.seed + i) for i in range(n_models)]


@contextlib.contextmanager
def _torch_threads(threads: int):
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _compute_with_threads(config: RunConfig, threads: int, device: str | None) -> tuple[dict, dict]:
    """One model, in whatever process the executor chose; the driver writes the artifact."""
    start = time.perf_counter()
    with _torch_threads(threads):
        arrays, meta = compute_run(config, device=device, progress=False)
        # Provenance of the process (and machine) that computed the model, not of the driver.
        where = provenance(meta.get("device"))
    return arrays, {**meta, "seconds_total": time.perf_counter() - start, "provenance": where}


@dataclass(frozen=True)
class Ensemble:
    """The cached models of one ensemble; artifacts are loaded one at a time."""

    configs: tuple[RunConfig, ...]

    def __len__(self) -> int:
        return len(self.configs)

    def artifacts(self) -> Iterator[Artifact]:
        """Yield each model's artifact in seed order, never holding two at once."""
        for config in self.configs:
            artifact = load_artifact(_KIND, config)
            if artifact is None:
                raise FileNotFoundError(f"model with seed {config.seed} is not computed; run run_ensemble first")
            yield artifact

    def missing(self) -> list[RunConfig]:
        """Configs whose artifact is not (completely) written yet."""
        return [config for config in self.configs if load_artifact(_KIND, config) is None]


def run_ensemble(
    template: RunConfig,
    n_models: int,
    *,
    executor: str = "local",
    workers: int = 1,
    threads: int | None = None,
    device: str | None = None,
    ray_address: str | None = None,
    progress: bool | None = None,
) -> Ensemble:
    """Train and probe ``n_models`` networks on random 90:10 splits (cached, resumable).

    Parameters
    ----------
    template : RunConfig
        Model 0's config; ``holdout_fraction`` must be in (0, 1) (0.1 in the paper).
    n_models : int
        Ensemble size r.
    executor : {"local", "process", "ray"}
        ``local`` runs the models one after another in this process; ``process`` uses a
        pool of ``workers`` processes; ``ray`` schedules one task per model on a Ray
        cluster (``pip install pdlib[ray]``), requesting a GPU per task when the
        cluster has GPUs.
    workers : int
        Processes for the ``process`` executor.
    threads : int, optional
        Torch threads per model. Fixed across executors so that artifacts are
        bit-identical; defaults to ``max(1, cpu_count // workers)`` for ``local`` and
        ``process``, and 1 for ``ray``. Pass the same value to compare executors.
    device : str, optional
        Torch device inside each task; defaults to CUDA when available there.
    ray_address : str, optional
        Address for ``ray.init`` (an existing cluster); ``None`` starts or reuses a
        local instance.
    progress : bool, optional
        Progress bar with ETA over models.

    Returns
    -------
    Ensemble
    """
    if executor not in EXECUTORS:
        raise ValueError(f"executor must be one of {', '.join(EXECUTORS)}; got {executor!r}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    ensemble = Ensemble(tuple(ensemble_configs(template, n_models)))
    pending = ensemble.missing()
    if threads is None:
        threads = 1 if executor == "ray" else max(1, (multiprocessing.cpu_count() or 1) // workers)
    bar = progress_bar(total=len(ensemble), initial=len(ensemble) - len(pending), desc="models",
                       enabled=progress, unit="model")
    try:
        for config, (arrays, meta) in _execute(pending, executor, workers, threads, device, ray_address):
            save_artifact(_KIND, config, arrays, {**meta, "executor": executor})
            bar.update(1)
    finally:
        bar.close()
    return ensemble


def _execute(pending, executor, workers, threads, device, ray_address):
    """Yield ``(config, (arrays, meta))`` as models finish."""
    if not pending:
        return
    if executor == "local":
        for config in pending:
            yield config, _compute_with_threads(config, threads, device)
    elif executor == "process":
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            futures = {pool.submit(_compute_with_threads, config, threads, device): config for config in pending}
            for future in as_completed(futures):
                yield futures[future], future.result()
    else:
        yield from _execute_ray(pending, threads, device, ray_address)


def _execute_ray(pending, threads, device, ray_address):
    try:
        import ray
    except ImportError as error:
        raise ImportError("executor='ray' needs Ray: pip install 'pdlib[ray]'") from error
    if not ray.is_initialized():
        ray.init(address=ray_address, include_dashboard=False, log_to_driver=False)
    gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
    task = ray.remote(num_cpus=threads, num_gpus=gpus)(_compute_with_threads)
    refs = {task.remote(config, threads, device): config for config in pending}
    while refs:
        done, _ = ray.wait(list(refs), num_returns=1)
        config = refs.pop(done[0])
        yield config, ray.get(done[0])


def ensemble_statistics(ensemble: Ensemble) -> dict:
    """Per-point statistics of an ensemble, streaming over its artifacts (memory O(n * n_classes)).

    Parameters
    ----------
    ensemble : Ensemble
        Models on 90:10 splits of the same pool (and test subset).

    Returns
    -------
    dict
        Over the ``n`` pool points (the test points are never in a training split):

        - ``labels`` (n,) ground truth; ``n_held_out`` and ``n_trained`` (n,) int: models that
          held the point out / trained on it;
        - ``consistency`` (n,) float: Eq. 1, the fraction of held-out models predicting the
          label (NaN if never held out);
        - ``consensus`` (n,) int: their majority class, ties to the label, then to the smallest
          index (-1 if never held out); ``consensus_consistency`` (n,) float: Eq. 2;
        - ``depth_val`` and ``depth_train`` (n,) float: mean PD over held-out / training
          appearances (NaN where there are none);
        - ``val_depth_pairs`` (m,) int8 and ``val_correct_pairs`` (m,) bool: PD and
          correctness of every held-out prediction, for accuracy against depth;
          ``val_iteration_pairs`` (m,) float32: its rescaled iteration learned (NaN without
          checkpoints); ``train_depth_pairs`` and ``train_iteration_pairs`` the same for every
          training-split appearance;
        - ``iteration_val`` and ``iteration_train`` (n,) float: mean rescaled iteration
          learned (95th percentile of each model = 1) over the two kinds of appearance;
        - ``n_models``, ``n_probes``, ``n_classes`` and ``train_accuracy`` (r,).
    """
    from pdlib.consistency import EnsembleAccumulator, iteration_learned, rescale_iteration

    accumulator = iterations = labels = None
    depth_pairs, correct_pairs, iteration_pairs, train_accuracy = [], [], [], []
    train_depth_pairs, train_iteration_pairs = [], []
    n_probes = 0
    for artifact in ensemble.artifacts():
        pool = ~artifact["is_test"]
        held_out = ~artifact["in_train"][pool]
        predictions = artifact["network_predictions"][pool].astype(np.int64)
        depth = artifact["depth"][pool].astype(np.int64)
        if accumulator is None:
            labels = artifact["labels"][pool]
            accumulator = EnsembleAccumulator(len(labels), artifact["logits"].shape[1])
            iterations = EnsembleAccumulator(len(labels), artifact["logits"].shape[1])
            n_probes = len(artifact.meta["probe_names"])
        accumulator.add(predictions, held_out, depth)
        history = artifact["checkpoint_predictions"]
        if history.size:
            # Rescaled iteration learned, averaged with the same held-out / trained split as PD.
            iteration = rescale_iteration(iteration_learned(history[:, pool]))
            iterations.add(predictions, held_out, iteration)
        else:
            iteration = np.full(len(depth), np.nan)
        iteration_pairs.append(iteration[held_out].astype(np.float32))
        train_iteration_pairs.append(iteration[~held_out].astype(np.float32))
        train_depth_pairs.append(depth[~held_out].astype(np.int8))
        depth_pairs.append(depth[held_out].astype(np.int8))
        correct_pairs.append(predictions[held_out] == labels[held_out])
        train_accuracy.append(artifact.meta["train_accuracy"])
    if accumulator is None:
        raise ValueError("the ensemble has no models")
    stats = accumulator.result(labels)
    has_history = iterations.n_models > 0
    nan = np.full(len(labels), np.nan)
    return {
        **stats,
        "labels": labels,
        "iteration_val": iterations.depth_val if has_history else nan,
        "iteration_train": iterations.depth_train if has_history else nan,
        "val_depth_pairs": np.concatenate(depth_pairs), "val_correct_pairs": np.concatenate(correct_pairs),
        "val_iteration_pairs": np.concatenate(iteration_pairs),
        "train_depth_pairs": np.concatenate(train_depth_pairs),
        "train_iteration_pairs": np.concatenate(train_iteration_pairs),
        "n_models": len(ensemble), "n_probes": n_probes, "n_classes": accumulator.n_classes,
        "train_accuracy": np.asarray(train_accuracy),
    }


def held_out_probe_counts(ensemble: Ensemble, targets: dict) -> dict:
    """Per-point, per-probe k-NN votes and hits over held-out appearances (streaming).

    For Section 4: how confident and how accurate each probe is, layer by layer, about a
    point when it was in a model's validation split, and what a "use probe ``p`` when the
    network's PD is at least ``t``" rule would have scored. Memory is
    O(n_probes^2 * n), independent of the number of models.

    Parameters
    ----------
    ensemble : Ensemble
    targets : dict of str to array-like of int, shape (n_pool,)
        Classes to score against, e.g. ``{"ground truth": labels, "consensus": consensus}``;
        entries of -1 are never counted as hits.

    Returns
    -------
    dict
        - ``n_held_out`` (n_pool,) int64: held-out appearances of each point;
        - ``votes[name]`` (n_probes, n_pool) int64: total votes (out of ``k`` per appearance)
          the probe gave the target class; ``hits[name]`` (n_probes, n_pool) int64:
          appearances where the probe predicted it; ``network_hits[name]`` (n_pool,) int64;
        - ``rule_hits`` (n_probes, n_probes + 1, n_pool) int64: appearances where
          "probe ``p`` if PD >= ``t`` else the network" predicts the *first* target
          (``t = n_probes`` never uses the probe);
        - ``k`` and ``n_probes``.
    """
    n_held_out = votes = hits = network_hits = rule_hits = None
    k = n_probes = 0
    for artifact in ensemble.artifacts():
        pool = ~artifact["is_test"]
        held_out = ~artifact["in_train"][pool]
        points = np.flatnonzero(held_out)
        probe_predictions = artifact["probe_predictions"][:, pool][:, points].astype(np.int64)
        probe_votes = artifact["votes"][:, pool][:, points]
        network = artifact["network_predictions"][pool][points].astype(np.int64)
        depth = artifact["depth"][pool][points].astype(np.int64)
        if n_held_out is None:
            n_pool, n_probes = int(pool.sum()), probe_predictions.shape[0]
            k = int(artifact.meta["config"]["k"])
            classes = {name: np.asarray(value, dtype=np.int64) for name, value in targets.items()}
            for name, value in classes.items():
                if value.shape != (n_pool,):
                    raise ValueError(f"targets[{name!r}] has shape {value.shape}, expected ({n_pool},)")
            n_held_out = np.zeros(n_pool, np.int64)
            votes = {name: np.zeros((n_probes, n_pool), np.int64) for name in classes}
            hits = {name: np.zeros((n_probes, n_pool), np.int64) for name in classes}
            network_hits = {name: np.zeros(n_pool, np.int64) for name in classes}
            rule_hits = np.zeros((n_probes, n_probes + 1, n_pool), np.int64)
        n_held_out[points] += 1
        for name, value in classes.items():
            target = value[points]
            valid = target >= 0
            safe = np.maximum(target, 0)
            votes[name][:, points] += np.where(valid, np.take_along_axis(probe_votes, safe[None, :, None], 2)[..., 0], 0)
            hits[name][:, points] += (probe_predictions == target) & valid
            network_hits[name][points] += (network == target) & valid
        first = classes[next(iter(classes))][points]
        probe_right = probe_predictions == first  # (n_probes, m)
        network_right = network == first
        for threshold in range(n_probes + 1):
            use_probe = depth >= threshold
            rule_hits[:, threshold, points] += np.where(use_probe, probe_right, network_right)
    if n_held_out is None:
        raise ValueError("the ensemble has no models")
    return {"n_held_out": n_held_out, "votes": votes, "hits": hits, "network_hits": network_hits,
            "rule_hits": rule_hits, "k": k, "n_probes": n_probes}
