"""What the chapters compute from cached runs and ensemble statistics: tables and measurements.

Pure functions of :class:`~pdlib.cache.Artifact` lists and of
:func:`pdlib.ensembles.ensemble_statistics`; nothing here trains.
"""

from __future__ import annotations

import numpy as np

from pdlib.metrics import (
    accuracy_by_depth,
    bootstrap_interval,
    consensus_class,
    consensus_consistency,
    depth_correlation_matrix,
    lower_envelope,
    mean_by_depth,
    pearson,
    pearson_interval,
    probe_accuracy,
    rescale_depth,
    softmax_disagreement,
)

__all__ = [
    "show",
    "runs_table",
    "gallery",
    "seed_agreement",
    "probe_accuracy_curves",
    "mean_with_interval",
    "mean_depth_per_point",
    "ensemble_table",
    "bound_with_interval",
    "cross_model_consensus",
    "accuracy_gain",
    "iteration_readings",
    "iteration_table",
    "iteration_panels",
    "margin_correlations",
]


def show(
    table, caption: str, *, formats: dict | None = None, precision: int = 3, index: bool = True
):
    """A DataFrame as the book shows it (a pandas Styler): a caption, integers as integers, floats
    at ``precision``."""
    import pandas as pd

    formats = dict(formats or {})
    for column in table.columns:
        if column not in formats and pd.api.types.is_float_dtype(table[column]):
            formats[column] = f"{{:.{precision}f}}"
        elif column not in formats and pd.api.types.is_integer_dtype(table[column]):
            formats[column] = "{:,d}"
    styler = table.style.format(formats, na_rep="—").set_caption(caption)
    return styler if index else styler.hide(axis="index")


# --- Section 2 ------------------------------------------------------------------------------------


def runs_table(runs_by_arch: dict):
    """One row per network (indexed by architecture, seed): fit, accuracy, mean PD, softmax
    disagreement, time."""
    import pandas as pd

    rows = []
    for arch, runs in runs_by_arch.items():
        for run in runs:
            train, held_out = run["in_train"], ~run["in_train"]
            rows.append(
                {
                    "architecture": arch,
                    "seed": int(run.meta["config"]["seed"]),
                    "train accuracy": run.meta["train_accuracy"],
                    "test accuracy": run.meta["test_accuracy"],
                    "mean PD (train)": float(run["depth"][train].mean()),
                    "mean PD (test)": float(run["depth"][held_out].mean()),
                    "max PD": len(run.meta["probe_names"]) - 1,
                    "softmax probe disagrees (%)": 100
                    * softmax_disagreement(run["probe_predictions"], run["network_predictions"]),
                    "train time (s)": run.meta["seconds"]["train"],
                }
            )
    return pd.DataFrame(rows).set_index(["architecture", "seed"])


def gallery(runs: list, config) -> dict:
    """The keyword arguments of :func:`pdlib.figures.fig1_depth_gallery` for the pool of ``runs``
    (mean PD)."""
    from pdlib.data import dataset_info
    from pdlib.plotting import display_images
    from pdlib.runs import run_data

    pool, data, info = ~runs[0]["is_test"], run_data(config), dataset_info(config.dataset)
    return {
        "images": display_images(data.pool_inputs, info.mean, info.std),
        "labels": runs[0]["labels"][pool],
        "predictions": runs[0]["network_predictions"][pool].astype(np.int64),
        "depth": np.mean([run["depth"][pool] for run in runs], axis=0),
        "class_names": data.class_names,
    }


def seed_agreement(runs_by_arch: dict) -> dict:
    """PD correlation matrices between seeds and architectures: ``names``, ``train``,
    ``validation``, ``n_*``."""
    out = {}
    for split in ("train", "validation"):
        depths = {
            arch: [
                run["depth"][run["in_train"] if split == "train" else ~run["in_train"]]
                for run in runs
            ]
            for arch, runs in runs_by_arch.items()
        }
        out["names"], out[split] = depth_correlation_matrix(depths)
        out[f"n_{split}"] = len(next(iter(depths.values()))[0])
    return out


def probe_accuracy_curves(runs: list) -> dict:
    """Mean k-NN probe accuracy per probe over ``runs``: "train (leave-one-out)" and "test"
    (n_probes,)."""
    curves = {"train (leave-one-out)": [], "test": []}
    for run in runs:
        for split, mask in (("train (leave-one-out)", run["in_train"]), ("test", ~run["in_train"])):
            curves[split].append(
                probe_accuracy(run["probe_predictions"][:, mask], run["labels"][mask])
            )
    return {split: np.mean(values, axis=0) for split, values in curves.items()}


def mean_with_interval(values, *, seed: int = 0) -> tuple[float, float, float]:
    """Mean of ``values`` and its 95 % bootstrap interval (points resampled)."""
    values = np.asarray(values, dtype=np.float64)
    return (float(values.mean()), *bootstrap_interval(np.mean, values, n_boot=500, seed=seed))


def mean_depth_per_point(artifacts_or_stats, n_probes: int | None = None) -> np.ndarray:
    """Per pool point, the mean PD rescaled to [0, 1]: over seed runs' training splits, or PD_train
    of an ensemble."""
    if isinstance(artifacts_or_stats, dict):
        stats = artifacts_or_stats
        return rescale_depth(stats["depth_train"], stats["n_probes"])
    runs = artifacts_or_stats
    pool = ~runs[0]["is_test"]
    return rescale_depth(
        np.mean([run["depth"][pool] for run in runs], axis=0),
        n_probes or len(runs[0].meta["probe_names"]),
    )


# --- Section 3.1 ----------------------------------------------------------------------------------


def ensemble_table(stats: dict):
    """Headline numbers of an ensemble: a DataFrame of "quantity" (with units) and "value"
    (text)."""
    import pandas as pd

    seen = stats["n_held_out"] > 0
    held = stats["held_out"]
    correct = stats["predictions"][held] == np.broadcast_to(stats["labels"], held.shape)[held]
    rows = [
        ("networks", f"{stats['n_models']:,d}"),
        ("pool points", f"{len(seen):,d}"),
        ("points held out at least once", f"{int(seen.sum()):,d}"),
        ("mean training accuracy (%)", f"{100 * np.mean(stats['train_accuracy']):.2f}"),
        ("mean held-out accuracy (%)", f"{100 * correct.mean():.1f}"),
        ("mean times held out", f"{stats['n_held_out'][seen].mean():.1f}"),
        ("mean PD_val (layers)", f"{np.nanmean(stats['depth_val']):.2f}"),
        ("mean PD_train (layers)", f"{np.nanmean(stats['depth_train']):.2f}"),
        (
            "consensus ≠ label (%)",
            f"{100 * np.mean(stats['consensus'][seen] != stats['labels'][seen]):.1f}",
        ),
    ]
    return pd.DataFrame(rows, columns=["quantity", "value"])


def bound_with_interval(depth, cstar, max_depth: int, *, seed: int = 0, n_boot: int = 200) -> dict:
    """The lower envelope of C* against PD rescaled to [0, 1], with a bootstrap interval of its
    slope."""
    x, y = np.asarray(depth, float) / max_depth, np.asarray(cstar, float)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    fit = lower_envelope(x, y)
    low, high = bootstrap_interval(
        lambda a, b: lower_envelope(a, b)["slope"], x, y, n_boot=n_boot, seed=seed
    )
    return {**fit, "slope_low": low, "slope_high": high}


def cross_model_consensus(runs: list) -> dict:
    """Test points: PD from the first network, consensus and C* from all the others (Fig. 4
    middle)."""
    if len(runs) < 2:
        raise ValueError(f"runs must hold at least 2 networks, got {len(runs)}")
    test = runs[0]["is_test"]
    labels = runs[0]["labels"][test]
    others = np.stack([run["network_predictions"][test] for run in runs[1:]]).astype(np.int64)
    everyone = np.ones_like(others, dtype=bool)
    consensus = consensus_class(others, everyone, labels, runs[0]["logits"].shape[1])
    return {
        "depth": runs[0]["depth"][test].astype(np.int64),
        "consensus": consensus,
        "consensus_consistency": consensus_consistency(others, everyone, consensus),
    }


def accuracy_gain(stats: dict, *, seed: int = 0) -> dict:
    """Held-out accuracy against PD (Fig. 4 right) and low- minus high-PD accuracy (first vs last
    third).

    The interval resamples points (all appearances of a point together).
    """
    held, n_probes = stats["held_out"], stats["n_probes"]
    model, point = np.nonzero(held)
    depth = stats["depth"][model, point].astype(np.int64)
    correct = stats["predictions"][model, point] == stats["labels"][point]
    accuracy, count = accuracy_by_depth(depth, correct, n_probes)
    max_depth = n_probes - 1
    low, high = depth <= max_depth // 3, depth >= 2 * max_depth // 3

    def gain(d, c):
        lo, hi = d <= max_depth // 3, d >= 2 * max_depth // 3
        return c[lo].mean() - c[hi].mean() if lo.any() and hi.any() else np.nan

    interval = bootstrap_interval(gain, depth, correct, n_boot=300, seed=seed, groups=point)
    return {
        "accuracy": accuracy,
        "count": count,
        "acc_low": float(correct[low].mean()) if low.any() else np.nan,
        "acc_high": float(correct[high].mean()) if high.any() else np.nan,
        "share_low": float(low.mean()),
        "gain": float(gain(depth, correct)),
        "gain_low": interval[0],
        "gain_high": interval[1],
    }


# --- Section 3.2 and 3.3 --------------------------------------------------------------------------


def iteration_readings(stats: dict) -> dict:
    """Pearson r of PD and rescaled iteration learned: reading -> (r, low, high, n).

    Per appearance (Fig. 5 left; held-out or trained (model, point) pairs) and per point (PD_val).
    """
    out = {}
    for reading, mask in (
        ("per appearance, validation", stats["held_out"]),
        ("per appearance, training", ~stats["held_out"]),
    ):
        r = pearson(stats["depth"][mask], stats["iteration"][mask])
        n = int(np.isfinite(stats["iteration"][mask]).sum())
        out[reading] = (r, *pearson_interval(r, n), n)
    r = pearson(stats["depth_val"], stats["iteration_val"])
    n = int((np.isfinite(stats["depth_val"]) & np.isfinite(stats["iteration_val"])).sum())
    out["per point, validation"] = (r, *pearson_interval(r, n), n)
    return out


def iteration_table(readings: dict, paper: dict):
    """One row per (dataset, reading) of :func:`iteration_readings`, beside the paper's r."""
    import pandas as pd

    return pd.DataFrame(
        [
            {
                "dataset": task,
                "reading": name,
                "r": r,
                "95 % CI low": low,
                "95 % CI high": high,
                "pairs": n,
                "paper": paper.get(task, np.nan),
            }
            for task, by_reading in readings.items()
            for name, (r, low, high, n) in by_reading.items()
        ]
    )


def iteration_panels(stats_by_name: dict) -> dict:
    """Fig. 5 left: per panel (validation / training appearances), per ensemble, (mean iteration,
    share, r)."""
    panels = {"validation-split appearances": {}, "training-split appearances": {}}
    for name, stats in stats_by_name.items():
        for title, mask in (
            ("validation-split appearances", stats["held_out"]),
            ("training-split appearances", ~stats["held_out"]),
        ):
            depth, iteration = stats["depth"][mask].astype(np.int64), stats["iteration"][mask]
            mean, count = mean_by_depth(depth, iteration, stats["n_probes"])
            panels[title][name] = (mean, count / max(count.sum(), 1), pearson(depth, iteration))
    return panels


def margin_correlations(margins: dict) -> dict:
    """Per test point, mean PD and each margin's geometric mean over networks, and r:
    ``mean_depth``,
    ``geometric``, ``r`` {name: (r, low, high)}; zero or infinite margins are left out of r.
    """
    mean_depth = margins["depth"].mean(axis=0)
    geometric, r = {}, {}
    for name, key in (("output margin", "output_margin"), ("input margin", "input_margin")):
        with np.errstate(divide="ignore"):
            logs = np.log10(margins[key])
        values = logs.mean(axis=0)
        geometric[name] = 10**values
        value = pearson(mean_depth, np.where(np.isfinite(values), values, np.nan))
        r[name] = (value, *pearson_interval(value, int(np.isfinite(values).sum())))
    return {"mean_depth": mean_depth, "geometric": geometric, "r": r}


#: The four sets of Fig. 5 (middle and right), in plotting order.
NOISE_SETS = (
    "clean training points",
    "corrupted, scored against the new label",
    "corrupted, scored against the original label",
    "test points",
)


def _noise_sets(run) -> dict:
    corrupted, train = run["corrupted"], run["in_train"] & ~run["is_test"]
    return {
        NOISE_SETS[0]: (train & ~corrupted, run["labels"]),
        NOISE_SETS[1]: (train & corrupted, run["fit_labels"]),
        NOISE_SETS[2]: (train & corrupted, run["labels"]),
        NOISE_SETS[3]: (run["is_test"], run["labels"]),
    }


def noise_curves(run) -> tuple[dict, dict]:
    """Fig. 5 middle and right: ``(training, inference)`` accuracy of each set per checkpoint /
    probe.

    ``training`` also has ``steps``; training points are scored leave-one-out against corrupted
    labels.
    """
    history = run["checkpoint_predictions"]
    if not history.size:
        raise ValueError("the run has no checkpoints: train it with TrainConfig(n_checkpoints > 0)")
    training, inference = {"steps": run["checkpoint_steps"]}, {}
    for name, (mask, target) in _noise_sets(run).items():
        training[name] = (history[:, mask] == target[mask]).mean(axis=1)
        inference[name] = probe_accuracy(run["probe_predictions"][:, mask], target[mask])
    return training, inference


def curve_features(curves: dict, *, margin: float = 0.02) -> dict:
    """The paper's three features of a learning curve (after its first point), beyond ``margin``:
    ``original first`` (original class ahead of the new one somewhere), ``crossing`` (and behind at
    the end), ``test maximum before the end``.
    """
    gap = curves[NOISE_SETS[2]][1:] - curves[NOISE_SETS[1]][1:]
    test = curves[NOISE_SETS[3]][1:]
    return {
        "original first": bool(gap.max() > margin),
        "crossing": bool(gap.max() > 0 and gap[-1] < 0),
        "test maximum before the end": bool(test.max() - test[-1] > margin),
        "gap": float(gap.max()),
        "drop": float(test.max() - test[-1]),
        "peak": int(np.argmax(test)) + 1,
    }


def hinge_summary(runs: dict, *, seed: int = 0) -> dict:
    """Fig. 6 right: per network ("untrained", "0-Hinge", "cross-entropy") probe curves and margins.

    Returns ``table``, ``curves`` {network: {split: (n_probes,)}} and ``by_split`` (the same,
    transposed), ``margin_ratio``, ``pd_gap`` and ``gain_excess`` (value, low, high), and
    ``softmax_only``: the 0-Hinge training points whose softmax probe disagrees with the network.
    """
    import pandas as pd

    rows, curves, per_point = [], {}, {}
    for name, run in runs.items():
        train, test = run["in_train"] & ~run["is_test"], run["is_test"]
        curves[name] = {
            "training split (leave-one-out)": probe_accuracy(
                run["probe_predictions"][:, train], run["fit_labels"][train]
            ),
            "test split": probe_accuracy(
                run["probe_predictions"][:, test], run["fit_labels"][test]
            ),
        }
        margin = np.diff(np.sort(run["logits"][train], axis=1)[:, -2:], axis=1)[:, 0].astype(
            np.float64
        )
        hidden_hits = (run["probe_predictions"][1:-1, train] == run["fit_labels"][train]).mean(
            axis=0
        )
        per_point[name] = (margin, run["depth"][train].astype(np.float64), hidden_hits)
        rows.append(
            {
                "network": name,
                "training accuracy": run.meta["train_accuracy"],
                "test accuracy": run.meta["test_accuracy"],
                "output margin, mean": margin.mean(),
                "output margin, std": margin.std(),
                "mean PD (train)": run["depth"][train].mean(),
                "mean PD (test)": run["depth"][test].mean(),
                "steps": int(run["checkpoint_steps"][-1]) if run["checkpoint_steps"].size else 0,
            }
        )
    (m_h, d_h, h_h), (m_c, d_c, h_c), (_, _, h_u) = (
        per_point[n] for n in ("0-Hinge", "cross-entropy", "untrained")
    )

    def measure(statistic, *arrays):
        return (
            float(statistic(*arrays)),
            *bootstrap_interval(statistic, *arrays, n_boot=300, seed=seed),
        )

    hinge = runs["0-Hinge"]
    train = hinge["in_train"] & ~hinge["is_test"]
    by_split = {
        split: {net: c[split] for net, c in curves.items()} for split in next(iter(curves.values()))
    }
    return {
        "table": pd.DataFrame(rows).set_index("network"),
        "curves": curves,
        "by_split": by_split,
        "margin_ratio": measure(lambda h, c: c.mean() / max(h.mean(), 1e-30), m_h, m_c),
        "pd_gap": measure(lambda h, c: h.mean() - c.mean(), d_h, d_c),
        "gain_excess": measure(
            lambda h, c, u: (h - u).mean() - 0.25 * (c - u).mean(), h_h, h_c, h_u
        ),
        "softmax_only": softmax_disagreement(
            hinge["probe_predictions"][:, train], hinge["network_predictions"][train]
        ),
    }
