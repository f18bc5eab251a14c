"""One cached experiment unit: train a network on a data pool, then probe every point.

A run takes a stratified pool of a dataset's training split (optionally a class subset), holds
out a fraction (90:10) or nothing, trains one network on the rest and probes every pool point and
a stratified test subset. Results are cached by config hash (:mod:`pdlib.cache`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from pdlib._checks import default_device
from pdlib.cache import Artifact, is_cached, load_artifact, load_or_compute
from pdlib.data import dataset_info, load_dataset
from pdlib.knn import DEFAULT_K
from pdlib.models import make_model
from pdlib.probes import probe_model
from pdlib.sampling import corrupt_labels, select_classes, stratified_subset, train_val_split
from pdlib.training import TrainConfig, train_model

__all__ = [
    "RunConfig",
    "run_model",
    "compute_run",
    "RunData",
    "run_data",
    "load_model",
    "FORMAT_VERSION",
    "RUNS_KIND",
]

#: Bump when a change to training, probing or the config changes results: old cached runs are then
#: ignored (and a warning names their folder). v3: the pure-torch k-NN, AUM, stored weights. v4:
#: training points' checkpoint predictions from their mini-batch forward passes.
FORMAT_VERSION = 4
#: Cache folder of run artifacts.
RUNS_KIND = f"runs-v{FORMAT_VERSION}"


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines one trained-and-probed network."""

    dataset: str  # name accepted by pdlib.load_dataset
    arch: str  # "mlp", "vgg16" or "resnet18"
    width: int  # hidden units (mlp) or first-stage channels (conv nets)
    train: TrainConfig = field(default_factory=TrainConfig)  # optimiser settings and epochs
    n_pool: int = 0  # images drawn (stratified) from the training split; 0 = all of them
    n_test: int = 0  # images drawn (stratified) from the test split and scored; 0 = all
    classes: tuple[int, ...] = ()  # class subset, relabelled 0..m-1 in this order; () = all classes
    holdout_fraction: float = 0.0  # fraction of the pool held out as validation split (0.1 = 90:10)
    # 0: each seed holds out its own random subset (the paper). n > 0: the pool is cut once (by
    # data_seed) into n equal folds and seed s holds out fold s mod n, so that in an ensemble of
    # r = m * n models every point is held out exactly m times (holdout_fraction is then 1 / n).
    holdout_folds: int = 0
    label_noise: float = (
        0.0  # fraction of pool labels replaced by another class (fixed by data_seed)
    )
    noise_pair: tuple[
        int, ...
    ] = ()  # (a, b): flip labels only between classes a and b; () = uniform noise
    # Asymmetric noise: class c's flipped labels become noise_targets[c]; () = none. Left out of
    # the config hash at its default, so runs cached before it keep their keys.
    noise_targets: tuple[int, ...] = field(default=(), metadata={"hash": "omit_default"})
    seed: int = 0  # seeds initialisation, batch order and the holdout split
    data_seed: int = 0  # seeds the choice of the pool and test subsets
    k: int = DEFAULT_K  # neighbours per k-NN probe
    head_init_scale: float = (
        1.0  # factor on the last layer's initial weights (its bias is 0); 0-Hinge uses 1e-4
    )
    # Predict the test images at every checkpoint too (Fig. 5 middle/right reads them); ensembles,
    # whose figures read pool points only, leave them out (-1 in checkpoint_predictions).
    checkpoint_test: bool = True


@dataclass(frozen=True)
class RunData:
    """The images a run uses: pool (training-split images) then test images."""

    pool_inputs: torch.Tensor  # (n_pool, C, H, W)
    pool_labels: np.ndarray  # (n_pool,) int64 ground truth
    pool_index: np.ndarray  # (n_pool,) index into the dataset's training split
    test_inputs: torch.Tensor  # (n_test, C, H, W)
    test_labels: np.ndarray  # (n_test,)
    test_index: np.ndarray  # (n_test,) index into the test split
    class_names: tuple[str, ...]


def _subset(data, n: int, seed: int):
    labels = data.labels.numpy()
    index = (
        np.arange(len(labels)) if n == 0 or n >= len(labels) else stratified_subset(labels, n, seed)
    )
    return data.inputs[torch.as_tensor(index)], labels[index], index


def run_data(config: RunConfig) -> RunData:
    """Load and subset the images of ``config`` (deterministic by ``data_seed``)."""
    # Shared splits: select_classes and _subset index them, which copies.
    train, test = (load_dataset(config.dataset, split, shared=True) for split in ("train", "test"))
    if config.classes:
        train, test = select_classes(train, config.classes), select_classes(test, config.classes)
    pool_inputs, pool_labels, pool_index = _subset(train, config.n_pool, config.data_seed)
    test_inputs, test_labels, test_index = _subset(test, config.n_test, config.data_seed + 1)
    return RunData(
        pool_inputs,
        pool_labels,
        pool_index,
        test_inputs,
        test_labels,
        test_index,
        train.class_names,
    )


@dataclass(frozen=True)
class _Prepared:
    data: RunData
    n_classes: int
    fit_labels: np.ndarray  # (n_pool,) the labels the network is trained on
    corrupted: np.ndarray  # (n_pool,) bool
    in_train: np.ndarray  # (n_pool,) bool
    model: torch.nn.Module  # initialised, untrained

    @property
    def train_inputs(self) -> torch.Tensor:
        return self.data.pool_inputs[torch.as_tensor(self.in_train)]

    @property
    def all_inputs(self) -> torch.Tensor:
        return torch.cat([self.data.pool_inputs, self.data.test_inputs])


def _prepare(config: RunConfig) -> _Prepared:
    """Data, labels, split and initial network of ``config`` (deterministic)."""
    data = run_data(config)
    n_pool = len(data.pool_labels)
    info = dataset_info(config.dataset)
    n_classes = len(config.classes) or info.n_classes
    fit_labels, corrupted = (
        corrupt_labels(
            data.pool_labels,
            config.label_noise,
            n_classes,
            config.data_seed,
            pair=config.noise_pair or None,
            targets=config.noise_targets or None,
        )
        if config.label_noise > 0
        else (data.pool_labels, np.zeros(n_pool, dtype=bool))
    )
    if config.holdout_folds:
        fold = np.empty(n_pool, dtype=np.int64)
        fold[np.random.default_rng(config.data_seed).permutation(n_pool)] = (
            np.arange(n_pool) % config.holdout_folds
        )
        in_train = fold != config.seed % config.holdout_folds
    elif config.holdout_fraction > 0:
        in_train = train_val_split(n_pool, config.seed, 1 - config.holdout_fraction)
    else:
        in_train = np.ones(n_pool, dtype=bool)
    model = make_model(
        config.arch,
        n_classes,
        info.in_channels,
        info.image_size,
        width=config.width,
        seed=config.seed,
        head_init_scale=config.head_init_scale,
    )
    return _Prepared(data, n_classes, fit_labels, corrupted, in_train, model)


def compute_run(
    config: RunConfig, device=None, progress: bool | None = None, keep_weights: bool = False
) -> tuple:
    """Train and probe the network of ``config``, uncached: ``(arrays, meta[, state_dict])``."""
    prepared = _prepare(config)
    data, model, in_train, fit_labels = (
        prepared.data,
        prepared.model,
        prepared.in_train,
        prepared.fit_labels,
    )
    all_inputs = prepared.all_inputs  # pool then test images, concatenated once
    held_out = np.concatenate([~in_train, np.ones(len(data.test_labels), dtype=bool)])
    tracked = held_out.copy()
    tracked[len(in_train) :] = config.checkpoint_test
    if config.train.n_checkpoints == 0:
        tracked[:] = False
    fit = train_model(
        model,
        prepared.train_inputs,
        fit_labels[in_train],
        config.train,
        seed=config.seed,
        device=device,
        track_inputs=all_inputs[torch.as_tensor(tracked)] if tracked.any() else None,
        progress=progress,
    )
    start = time.perf_counter()
    probed = probe_model(
        model,
        prepared.train_inputs,
        fit_labels[in_train],
        all_inputs[torch.as_tensor(held_out)],
        k=config.k,
        device=device,
        progress=progress,
    )
    probe_seconds = time.perf_counter() - start

    def merge(train_part, query_part, axis):
        """Scatter leave-one-out and held-out results back into pool-then-test order."""
        shape = list(train_part.shape)
        shape[axis] = len(held_out)
        out = np.empty(shape, dtype=train_part.dtype)
        index = [slice(None)] * len(shape)
        index[axis] = ~held_out
        out[tuple(index)] = train_part
        index[axis] = held_out
        out[tuple(index)] = query_part
        return out

    checkpoints = np.full((len(fit.checkpoint_steps), len(held_out)), -1, dtype=np.int16)
    if checkpoints.size:
        checkpoints[:, ~held_out] = fit.checkpoint_train_predictions
        if tracked.any():
            checkpoints[:, tracked] = fit.checkpoint_predictions
    labels = np.concatenate([data.pool_labels, data.test_labels])
    network = merge(probed.train_network_predictions, probed.query_network_predictions, 0)
    is_test = np.arange(len(held_out)) >= len(data.pool_labels)
    aum = np.full(len(held_out), np.nan, dtype=np.float32)
    aum[~held_out] = fit.aum
    arrays = {
        "labels": labels.astype(np.int64),
        "fit_labels": np.concatenate([fit_labels, data.test_labels]).astype(np.int64),
        "corrupted": np.concatenate(
            [prepared.corrupted, np.zeros(len(data.test_labels), dtype=bool)]
        ),
        "is_test": is_test,
        "in_train": ~held_out,
        "dataset_index": np.concatenate([data.pool_index, data.test_index]).astype(np.int64),
        "probe_predictions": merge(
            probed.train_probe_predictions, probed.query_probe_predictions, 1
        ).astype(np.int16),
        "votes": merge(probed.train_votes, probed.query_votes, 1),
        "network_predictions": network.astype(np.int16),
        "logits": merge(probed.train_logits, probed.query_logits, 0),
        "depth": merge(probed.train_depth, probed.query_depth, 0).astype(np.int8),
        "undecided": merge(probed.train_undecided, probed.query_undecided, 0),
        "aum": aum,
        "loss_history": fit.loss_history,
        "checkpoint_steps": fit.checkpoint_steps,
        "checkpoint_predictions": checkpoints,
    }
    meta = {
        "probe_names": list(probed.probe_names),
        "class_names": list(data.class_names),
        "train_accuracy": fit.train_accuracy,
        "test_accuracy": float((network[is_test] == labels[is_test]).mean())
        if is_test.any()
        else None,
        "seconds": {"train": fit.seconds, "probe": probe_seconds, **probed.seconds},
        "compiled": fit.compiled,
        "device": str(device or default_device()),
    }
    return (arrays, meta, model.state_dict()) if keep_weights else (arrays, meta)


def run_model(
    config: RunConfig,
    *,
    device=None,
    progress: bool | None = None,
    use_cache: bool = True,
    keep_weights: bool = False,
) -> Artifact:
    """Train and probe one network, or load it from the cache.

    Parameters
    ----------
    config : RunConfig
    device : str or torch.device, optional
        Defaults to CUDA when available; not part of the cache key.
    progress : bool, optional
    use_cache : bool
        ``False`` recomputes and overwrites the cached artifact.
    keep_weights : bool
        Also store the weights (:func:`load_model`); a cached run without them is recomputed once.

    Returns
    -------
    Artifact
        Over ``n = n_pool + n_test`` points, pool first: ``labels``, ``fit_labels`` (trained on),
        ``corrupted``, ``is_test``, ``in_train``, ``dataset_index`` (n,); ``probe_predictions``
        (n_probes, n) int16 and ``votes`` (n_probes, n, n_classes) (training points leave-one-out);
        ``network_predictions`` (n,) int16, ``logits`` (n, n_classes), ``depth`` (n,) int8,
        ``undecided`` (n,) bool (no depth: the softmax probe disagrees with the network), ``aum``
        (n,) (NaN off the training split); ``loss_history``, ``checkpoint_steps`` (T+1,) and
        ``checkpoint_predictions`` (T+1, n) (training points as their latest mini-batch predicted
        them, held-out points in eval mode, -1 for test points when ``checkpoint_test`` is off).
        ``meta``: names, accuracies, timings, provenance.
    """
    if keep_weights and use_cache:  # a cached run without its weights is recomputed once
        use_cache = not is_cached(RUNS_KIND, config) or is_cached(
            RUNS_KIND, config, with_weights=True
        )
    run = load_or_compute(
        RUNS_KIND,
        config,
        lambda: compute_run(config, device, progress, keep_weights),
        use_cache=use_cache,
    )
    if "undecided" not in run.arrays:  # cached before runs stored it; the same from what they hold
        run.arrays["undecided"] = run["probe_predictions"][-1] != run["network_predictions"]
    return run


def load_model(config: RunConfig, *, device=None) -> torch.nn.Module:
    """The trained network of a run cached with ``keep_weights=True``, in eval mode on ``device``
    (CPU).

    Raises :class:`FileNotFoundError` if the run or its weights are not cached.
    """
    artifact = load_artifact(RUNS_KIND, config)
    if artifact is None:
        raise FileNotFoundError(
            f"run not computed yet: call run_model(config, keep_weights=True) first ({config})"
        )
    if artifact.weights_path is None:
        raise FileNotFoundError(
            "run cached without its weights: recompute it with run_model(config, "
            f"keep_weights=True) ({artifact.path})"
        )
    info = dataset_info(config.dataset)
    model = make_model(
        config.arch,
        len(artifact.meta["class_names"]),
        info.in_channels,
        info.image_size,
        width=config.width,
    )
    model.load_state_dict(artifact.load_weights())
    return model.to(device or "cpu").eval()
