"""How prediction depth moves with the choices the paper leaves open (the sensitivity appendix).

A cached network is loaded from its stored weights and re-probed once; the variants ``k`` (a
prefix of the sorted neighbour lists), a training point counting itself, and consensus labels
reuse the same neighbour lists; reduced embeddings (2 x 2 pooling, random projection) need their
own search. Capture goes probe group by probe group (:func:`pdlib.probes.captures`).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from pdlib.knn import knn_neighbours, vote
from pdlib.metrics import prediction_depth
from pdlib.probes import captures
from pdlib.runs import RunConfig, load_model, run_data, run_model

__all__ = [
    "variant_numbers",
    "reduced_numbers",
    "DEFAULT_VARIANT",
    "neighbour_variants",
    "reduced_embedding_variants",
    "variants_table",
    "reduced_tables",
]

#: The paper's choice, against which every variant is compared.
DEFAULT_VARIANT = "k = 30, leave-one-out, training labels"


def _network(config: RunConfig):
    """The cached run, its network (from stored weights), and its pool-then-test inputs."""
    run = run_model(config, keep_weights=True)
    data = run_data(config)
    return run, load_model(config), torch.cat([data.pool_inputs, data.test_inputs])


def _neighbours(embedding: np.ndarray, in_train: np.ndarray, k: int) -> np.ndarray:
    """Neighbours (n, k) among the training points: leave-one-out for those, plain for the
    others."""
    train, held_out = np.flatnonzero(in_train), np.flatnonzero(~in_train)
    neighbours = np.empty((len(in_train), k), dtype=np.int64)
    neighbours[train] = knn_neighbours(embedding[train], None, k=k)
    neighbours[held_out] = knn_neighbours(embedding[train], embedding[held_out], k=k)
    return neighbours


def _depth(predictions: list, network: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    predictions = np.stack(predictions)
    return predictions, prediction_depth(predictions, network)


def neighbour_variants(config: RunConfig, consensus, *, ks=(1, 5, 10, 30, 100)) -> dict:
    """PD of every point of one network under each variant that reuses the neighbour lists.

    ``config``: a cached run with stored weights; ``consensus`` (n_pool,) (-1: keep the label);
    ``ks`` must include ``config.k``. Returns ``variants`` {name: (probe predictions (n_probes, n),
    PD (n,))}, the default first, ``in_train`` and ``cached_depth`` (the run's stored PD).
    """
    if config.k not in ks:
        raise ValueError(f"ks must include the run's k = {config.k}, got {ks}")
    run, model, inputs = _network(config)
    in_train, train = run["in_train"], np.flatnonzero(run["in_train"])
    fit_labels, n_classes = run["fit_labels"][train], run["logits"].shape[1]
    consensus = np.asarray(consensus, dtype=np.int64)
    consensus_labels = np.where(consensus >= 0, consensus, run["fit_labels"][~run["is_test"]])[
        train
    ]
    position = np.full(len(in_train), -1)
    position[train] = np.arange(len(train))
    names = [
        DEFAULT_VARIANT if k == config.k else f"k = {k}"
        for k in sorted(ks, key=lambda k: k != config.k)
    ]
    predictions = {name: [] for name in names + ["point counts itself", "consensus labels"]}
    network = None
    for group, (captured,) in captures(model, [inputs], progress=False):
        network = captured.logits.argmax(axis=1)
        for probe in group:
            lists = _neighbours(captured.embeddings[probe], in_train, max(ks))
            for name, k in zip(names, sorted(ks, key=lambda k: k != config.k), strict=False):
                predictions[name].append(vote(lists[:, :k], fit_labels, n_classes)[0])
            # Only training points change when a point counts itself (the others are not in the
            # support set).
            with_self = lists[:, : config.k].copy()
            with_self[train] = np.concatenate(
                [position[train, None], lists[train, : config.k - 1]], axis=1
            )
            predictions["point counts itself"].append(vote(with_self, fit_labels, n_classes)[0])
            predictions["consensus labels"].append(
                vote(lists[:, : config.k], consensus_labels, n_classes)[0]
            )
    return {
        "variants": {name: _depth(values, network) for name, values in predictions.items()},
        "in_train": in_train,
        "cached_depth": run["depth"],
    }


def reduced_embedding_variants(
    config: RunConfig, *, min_features: int = 1024, projection_dim: int = 256, seed: int = 0
) -> dict:
    """Exact probes against probes on reduced embeddings, for convolutional maps wider than
    ``min_features``.

    Reductions: ``average pooling 2x2`` and ``random projection to {projection_dim}`` (seeded
    Gaussian). Returns ``probe_names``, ``reduced`` (the reduced probes), ``variants`` (as in
    :func:`neighbour_variants`, exact first) and ``features`` per probe.
    """
    run, model, inputs = _network(config)
    in_train, n_classes = run["in_train"], run["logits"].shape[1]
    fit_labels = run["fit_labels"][in_train]
    shapes = _map_shapes(model, inputs[:1])
    generator = np.random.default_rng(seed)

    def pooled(name, embedding):
        return (
            F.avg_pool2d(torch.from_numpy(embedding).view(-1, *shapes[name]), 2, ceil_mode=True)
            .flatten(1)
            .numpy()
        )

    def projected(name, embedding):
        matrix = generator.standard_normal((embedding.shape[1], projection_dim)).astype(np.float32)
        return embedding @ (matrix / np.sqrt(projection_dim))

    reductions = {
        "exact": None,
        "average pooling 2x2": pooled,
        f"random projection to {projection_dim}": projected,
    }
    predictions = {name: [] for name in reductions}
    features = {name: [] for name in reductions}
    names, wide, network = [], [], None
    for group, (captured,) in captures(model, [inputs], progress=False):
        network = captured.logits.argmax(axis=1)
        for probe in group:
            embedding = captured.embeddings[probe]
            names.append(probe)
            is_wide = len(shapes.get(probe, ())) == 3 and embedding.shape[1] > min_features
            wide += [probe] if is_wide else []
            for variant, reduce in reductions.items():
                reduced = reduce(probe, embedding) if reduce is not None and is_wide else embedding
                features[variant].append(reduced.shape[1])
                lists = _neighbours(reduced, in_train, config.k)
                predictions[variant].append(vote(lists, fit_labels, n_classes)[0])
    return {
        "probe_names": names,
        "reduced": wide,
        "features": features,
        "cached_depth": run["depth"],
        "variants": {name: _depth(values, network) for name, values in predictions.items()},
    }


def _map_shapes(model, sample: torch.Tensor) -> dict:
    """Shape of each probed module's output for one input, e.g. (C, H, W)."""
    shapes, modules = {}, dict(model.named_modules())
    handles = [
        modules[name].register_forward_hook(
            lambda _m, _i, out, name=name: shapes.__setitem__(name, tuple(out.shape[1:]))
        )
        for name in model.probe_points
        if name in modules
    ]
    try:
        with torch.inference_mode():
            model(sample)
    finally:
        for handle in handles:
            handle.remove()
    return shapes


def variants_table(reprobed: list, stats: dict):
    """Each variant of :func:`neighbour_variants` (``reprobed``, several networks of the ensemble of
    ``stats``) against the default over every (network, point) pair: mean PD, and Spearman
    correlations with the default and with the consistency score. A DataFrame indexed by variant.
    """
    import pandas as pd

    from pdlib.metrics import rank_correlation

    n_pool = len(stats["labels"])
    held = np.concatenate([~r["in_train"][:n_pool] for r in reprobed])
    consistency = np.tile(stats["consistency"], len(reprobed))
    default = np.concatenate([r["variants"][DEFAULT_VARIANT][1][:n_pool] for r in reprobed])
    rows = []
    for name in reprobed[0]["variants"]:
        depth = np.concatenate([r["variants"][name][1][:n_pool] for r in reprobed])
        rows.append(
            {
                "variant": name,
                "mean PD (train)": depth[~held].mean(),
                "mean PD (held out)": depth[held].mean(),
                "rank corr. with default (train)": rank_correlation(depth[~held], default[~held]),
                "rank corr. with default (held out)": rank_correlation(depth[held], default[held]),
                "rank corr. PD_train vs consistency": rank_correlation(
                    depth[~held], consistency[~held]
                ),
                "rank corr. PD_val vs consistency": rank_correlation(
                    depth[held], consistency[held]
                ),
            }
        )
    return pd.DataFrame(rows).set_index("variant")


def reduced_tables(reduced: dict):
    """Per reduced probe, label agreement with exact; per variant, PD agreement: ``(per_probe,
    summary)``."""
    import pandas as pd

    from pdlib.metrics import rank_correlation

    names = reduced["probe_names"]
    exact_predictions, exact_depth = reduced["variants"]["exact"]
    per_probe = pd.DataFrame(
        [
            {
                "variant": variant,
                "probe": name,
                "features (exact)": reduced["features"]["exact"][i],
                "features (reduced)": reduced["features"][variant][i],
                "label agreement with exact (%)": 100
                * np.mean(predictions[i] == exact_predictions[i]),
            }
            for variant, (predictions, _) in reduced["variants"].items()
            if variant != "exact"
            for i, name in enumerate(names)
            if name in reduced["reduced"]
        ],
        columns=[
            "variant",
            "probe",
            "features (exact)",
            "features (reduced)",
            "label agreement with exact (%)",
        ],
    )
    summary = pd.DataFrame(
        [
            {
                "variant": variant,
                "PD agreement with exact (%)": 100 * np.mean(depth == exact_depth),
                "rank corr. of PD with exact": rank_correlation(depth, exact_depth),
                "mean PD": depth.mean(),
            }
            for variant, (_, depth) in reduced["variants"].items()
        ]
    ).set_index("variant")
    return per_probe, summary


def variant_numbers(reprobed: list, variants) -> dict:
    """The numbers the appendix quotes from :func:`variants_table`: ``reproduced`` (% of cached
    PDs the default variant reproduces), ``n_reprobed`` and per variant ``rho_train_*``,
    ``rho_held_*`` and ``pd_train_*`` (keyed by the variant's name without spaces or "=")."""
    numbers = {
        "reproduced": 100
        * float(
            np.mean(
                [np.mean(r["variants"][DEFAULT_VARIANT][1] == r["cached_depth"]) for r in reprobed]
            )
        ),
        "n_reprobed": len(reprobed),
    }
    for name, row in variants.iterrows():
        key = name.split(",")[0].replace(" ", "").replace("=", "")
        numbers[f"rho_train_{key}"] = row["rank corr. with default (train)"]
        numbers[f"rho_held_{key}"] = row["rank corr. with default (held out)"]
        numbers[f"pd_train_{key}"] = row["mean PD (train)"]
    return numbers


def reduced_numbers(reduced: dict, per_probe, summary) -> dict:
    """The numbers the appendix quotes from :func:`reduced_tables`: probes reduced, and per
    reduction (``pool``: pooled, ``proj``: projected) the mean and least label agreement with the
    exact embedding over probes, the PD agreement and the rank correlation of PD."""
    pooled, projected = [v for v in reduced["variants"] if v != "exact"]
    agreement = per_probe.groupby("variant")["label agreement with exact (%)"].agg(["mean", "min"])
    numbers = {"n_wide": len(reduced["reduced"]), "n_conv_probes": len(reduced["probe_names"])}
    for name, key in ((pooled, "pool"), (projected, "proj")):
        for stat in ("mean", "min"):
            numbers[f"agree_{key}_{stat}"] = (
                agreement.loc[name, stat] if name in agreement.index else float("nan")
            )
        numbers[f"pd_agree_{key}"] = summary.loc[name, "PD agreement with exact (%)"]
        numbers[f"rho_{key}"] = summary.loc[name, "rank corr. of PD with exact"]
    return numbers
