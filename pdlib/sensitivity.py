"""How prediction depth moves with the choices the paper leaves open (the sensitivity appendix).

A trained network is re-probed once, and every variant is derived from the same
embeddings and neighbour lists:

- ``k``: the first ``k`` of each point's 100 nearest neighbours (the lists are sorted);
- counting a training point among its own neighbours instead of leaving it out: the point
  itself (distance 0) followed by its first ``k - 1`` leave-one-out neighbours;
- probes fitted on the ensemble's consensus labels instead of the training labels: the
  same neighbours, other labels;
- reduced embeddings for wide convolutional maps (2 x 2 average pooling, or a Gaussian
  random projection), which need their own neighbour search.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from pdlib.capture import capture_embeddings
from pdlib.depth import prediction_depth
from pdlib.knn import knn_neighbours, vote
from pdlib.models import INPUT, SOFTMAX
from pdlib.runs import RunConfig, run_data, run_model, trained_model

__all__ = ["DEFAULT_VARIANT", "neighbour_variants", "reduced_embedding_variants", "rank_correlation"]

#: The paper's choice, against which every variant is compared.
DEFAULT_VARIANT = "k = 30, leave-one-out, training labels"


def rank_correlation(a, b) -> float:
    """Spearman rank correlation over the pairs where both are finite (average ranks for ties).

    NaN when fewer than 3 pairs remain or either side is constant.
    """
    from scipy.stats import spearmanr

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep], b[keep]
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(spearmanr(a, b).statistic)


def _recapture(config: RunConfig, progress):
    """A cached run, its retrained network, its inputs (pool then test) and every probe's embedding."""
    run = run_model(config, progress=progress)
    model = trained_model(config, progress=progress)
    data = run_data(config)
    inputs = torch.cat([data.pool_inputs, data.test_inputs])
    return run, model, inputs, capture_embeddings(model, inputs, progress=progress)


def _probe_all(embeddings: dict, in_train: np.ndarray, k: int) -> dict:
    """Leave-one-out neighbours of the training points and neighbours of the others, per probe."""
    train, held_out = np.flatnonzero(in_train), np.flatnonzero(~in_train)
    out = {}
    for name, embedding in embeddings.items():
        reference = embedding[train]
        neighbours = np.empty((len(in_train), k), dtype=np.int64)
        neighbours[train] = knn_neighbours(reference, None, k=k)
        neighbours[held_out] = knn_neighbours(reference, embedding[held_out], k=k)
        out[name] = neighbours  # indices into the training points
    return out


def _depth(neighbours: dict, labels: np.ndarray, network: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    predictions = np.stack([vote(lists, labels, n_classes)[0] for lists in neighbours.values()])
    return predictions, prediction_depth(predictions, network)


def neighbour_variants(config: RunConfig, consensus, *, ks=(1, 5, 10, 30, 100), progress: bool | None = None) -> dict:
    """PD of every point of one network under each probe variant that reuses the neighbours.

    Parameters
    ----------
    config : RunConfig
        A cached run (e.g. one model of an ensemble); its weights come from
        :func:`pdlib.runs.trained_model`.
    consensus : array-like of int, shape (n_pool,)
        Consensus class of each pool point (-1 where unknown: the label is kept).
    ks : sequence of int
        Neighbour counts to compare; must include ``config.k``.

    Returns
    -------
    dict
        ``variants``: name to (probe predictions (n_probes, n), PD (n,)), the default
        first; ``in_train`` (n,) bool; ``network`` (n,) predictions; ``cached_depth``
        (n,) the run's stored PD, which the default variant must reproduce.
    """
    if config.k not in ks:
        raise ValueError(f"ks must include the run's k = {config.k}, got {ks}")
    run, model, inputs, captured = _recapture(config, progress)
    in_train = run["in_train"]
    n_classes = captured.logits.shape[1]
    network = captured.logits.argmax(axis=1)
    train = np.flatnonzero(in_train)
    fit_labels = run["fit_labels"][train]
    neighbours = _probe_all(captured.embeddings, in_train, max(ks))

    variants = {}
    for k in sorted(ks, key=lambda value: value != config.k):
        name = DEFAULT_VARIANT if k == config.k else f"k = {k}"
        variants[name] = _depth({p: lists[:, :k] for p, lists in neighbours.items()}, fit_labels, network, n_classes)
    # Counting the point itself: only training points change (held-out points are not in the support set).
    position = np.full(len(in_train), -1)
    position[train] = np.arange(len(train))
    with_self = {}
    for probe, lists in neighbours.items():
        lists = lists[:, :config.k].copy()
        lists[train] = np.concatenate([position[train, None], lists[train, :config.k - 1]], axis=1)
        with_self[probe] = lists
    variants["point counts itself"] = _depth(with_self, fit_labels, network, n_classes)
    consensus = np.asarray(consensus, dtype=np.int64)
    pool_labels = run["fit_labels"][~run["is_test"]]
    consensus_labels = np.where(consensus >= 0, consensus, pool_labels)[train]
    variants["consensus labels"] = _depth({p: lists[:, :config.k] for p, lists in neighbours.items()},
                                          consensus_labels, network, n_classes)
    return {"variants": variants, "in_train": in_train, "network": network, "cached_depth": run["depth"]}


def _map_shapes(model, sample: torch.Tensor, names) -> dict:
    """Shape of each probe's activation for one input, e.g. (C, H, W) for a convolutional map."""
    shapes, handles = {}, []
    modules = dict(model.named_modules())
    for name in names:
        if name not in (INPUT, SOFTMAX):
            handles.append(modules[name].register_forward_hook(
                lambda _m, _i, out, name=name: shapes.__setitem__(name, tuple(out.shape[1:]))))
    try:
        with torch.inference_mode():
            model(sample)
    finally:
        for handle in handles:
            handle.remove()
    shapes[INPUT] = tuple(sample.shape[1:])
    return shapes


def reduced_embedding_variants(config: RunConfig, *, min_features: int = 1024, projection_dim: int = 256,
                               seed: int = 0, progress: bool | None = None) -> dict:
    """Exact probes against probes on reduced embeddings, for probes wider than ``min_features``.

    Reductions (only for convolutional maps with more than ``min_features`` numbers; the
    other probes are left exact):

    - ``average pooling 2x2``: the map pooled over 2 x 2 windows (4x fewer features);
    - ``random projection to {projection_dim}``: a fixed Gaussian projection (seeded), which
      preserves distances up to a factor 1 ± O(1/sqrt(projection_dim)).

    Returns
    -------
    dict
        ``probe_names``; ``reduced`` (list of the probe names that were reduced);
        ``variants``: name to (probe predictions (n_probes, n), PD (n,)), exact first;
        ``features``: name to the number of features of each probe.
    """
    run, model, inputs, captured = _recapture(config, progress)
    names = list(captured.embeddings)
    shapes = _map_shapes(model, inputs[:1], names)
    wide = [name for name in names if len(shapes.get(name, ())) == 3 and captured.embeddings[name].shape[1] > min_features]
    in_train = run["in_train"]
    network = captured.logits.argmax(axis=1)
    n_classes = captured.logits.shape[1]
    fit_labels = run["fit_labels"][in_train]

    def pooled(name, embedding):
        maps = torch.from_numpy(embedding).view(-1, *shapes[name])
        return F.avg_pool2d(maps, 2, ceil_mode=True).flatten(1).numpy()

    generator = np.random.default_rng(seed)

    def projected(name, embedding):
        matrix = generator.standard_normal((embedding.shape[1], projection_dim)).astype(np.float32)
        return embedding @ (matrix / np.sqrt(projection_dim))

    reductions = {"exact": None, "average pooling 2x2": pooled, f"random projection to {projection_dim}": projected}
    variants, features = {}, {}
    for variant, reduce in reductions.items():
        embeddings = {name: (reduce(name, emb) if reduce is not None and name in wide else emb)
                      for name, emb in captured.embeddings.items()}
        features[variant] = [embeddings[name].shape[1] for name in names]
        neighbours = _probe_all(embeddings, in_train, config.k)
        variants[variant] = _depth(neighbours, fit_labels, network, n_classes)
    return {"probe_names": names, "reduced": wide, "variants": variants, "features": features,
            "cached_depth": run["depth"]}
