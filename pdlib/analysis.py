"""What the chapters compute from cached runs and ensemble statistics: tables and measurements.

Pure functions of :class:`~pdlib.cache.Artifact` lists and of
:func:`pdlib.ensembles.ensemble_statistics`; nothing here trains.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from pdlib.intervals import bootstrap_interval, two_level_interval
from pdlib.learning import (  # noqa: F401  (the chapters read them from analysis too)
    CURVE_FEATURES,
    NOISE_SETS,
    curve_features,
    feature_counts,
    hinge_cause,
    hinge_learning_curves,
    hinge_summary,
    iteration_panels,
    iteration_readings,
    iteration_table,
    margin_correlations,
    noise_curves,
)
from pdlib.metrics import (
    accuracy_by_depth,
    consensus_class,
    consensus_consistency,
    depth_correlation_matrix,
    lower_envelope,
    mean_by_depth,
    probe_accuracy,
    rescale_depth,
)
from pdlib.resolution import (  # noqa: F401  (the chapters read them from analysis too)
    iteration_resolution,
    resolution_display,
    resolution_numbers,
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
    "ensemble_numbers",
    "fig3_numbers",
    "bound_lines",
    "bound_with_interval",
    "cross_model_consensus",
    "mean_curve_slope",
    "consensus_bounds",
    "accuracy_gain",
    "permute_points",
    "decided_plane",
    "iteration_readings",
    "iteration_table",
    "iteration_panels",
    "margin_correlations",
]


def show(
    table,
    caption: str,
    *,
    formats: dict | None = None,
    precision: int = 3,
    index: bool = True,
    text: bool = False,
):
    """A DataFrame as the book shows it (a pandas Styler): a caption, integers as integers, floats
    at ``precision``; ``text``: cells of prose (the claims tables), aligned left and on top."""
    import pandas as pd

    formats = dict(formats or {})
    for column in table.columns:
        if column not in formats and pd.api.types.is_float_dtype(table[column]):
            formats[column] = f"{{:.{precision}f}}"
        elif column not in formats and pd.api.types.is_integer_dtype(table[column]):
            formats[column] = "{:,d}"
    styler = table.style.format(formats, na_rep="—").set_caption(caption)
    if text:
        styler = styler.set_properties(**{"text-align": "left", "vertical-align": "top"})
    return styler if index else styler.hide(axis="index")


# --- Section 2 ------------------------------------------------------------------------------------


def runs_table(runs_by_arch: dict):
    """One row per network (indexed by architecture, seed): fit, accuracy, mean PD, the share of
    undecided points (the softmax probe disagrees with the network), time."""
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
                    "undecided (%)": 100 * float(run["undecided"].mean()),
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


def seed_agreement(runs_by_arch: dict, *, permute_seed: int | None = None) -> dict:
    """PD correlation matrices between seeds and architectures: ``names``, ``train``,
    ``validation``, ``n_*``. ``permute_seed``: the negative control, each network's PD permuted
    across its points (its own seeded permutation)."""
    rng = None if permute_seed is None else np.random.default_rng(permute_seed)
    out = {}
    for split in ("train", "validation"):
        depths = {
            arch: [
                run["depth"][run["in_train"] if split == "train" else ~run["in_train"]]
                for run in runs
            ]
            for arch, runs in runs_by_arch.items()
        }
        if rng is not None:
            depths = {arch: [rng.permutation(d) for d in ds] for arch, ds in depths.items()}
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
    if isinstance(artifacts_or_stats, Mapping):  # ensemble statistics, not a list of runs
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
        (
            "median / fewest times held out",
            f"{np.median(stats['n_held_out']):g} / {stats['n_held_out'].min()}",
        ),
        ("mean PD_val (layers)", f"{np.nanmean(stats['depth_val']):.2f}"),
        ("mean PD_train (layers)", f"{np.nanmean(stats['depth_train']):.2f}"),
        (
            "consensus ≠ label (%)",
            f"{100 * np.mean(stats['consensus'][seen] != stats['labels'][seen]):.1f}",
        ),
    ]
    return pd.DataFrame(rows, columns=["quantity", "value"])


def ensemble_numbers(stats: dict) -> dict:
    """What the text quotes about an ensemble: ``n_models``, ``mean_held_out`` (appearances per
    point seen at least once), ``median_held_out`` and ``min_held_out`` (over every point) and
    ``undecided_val`` (% of the held-out appearances without a depth)."""
    seen = stats["n_held_out"][stats["n_held_out"] > 0]
    return {
        "n_models": stats["n_models"],
        "mean_held_out": float(seen.mean()),
        "median_held_out": float(np.median(stats["n_held_out"])),
        "min_held_out": int(stats["n_held_out"].min()),
        "undecided_val": 100 * float(stats["undecided"][stats["held_out"]].mean()),
    }


def fig3_numbers(stats: dict) -> dict:
    """Fig. 3's reading: among points with PD_val in the first third, the % with consistency >= ½
    where the consensus is the label (``low_pd_right``) and <= ½ where it is not
    (``low_pd_wrong``, NaN without such points); ``n_differs``: points whose consensus differs."""
    seen = stats["n_held_out"] > 0
    matches = stats["consensus"] == stats["labels"]
    low = seen & (stats["depth_val"] <= (stats["n_probes"] - 1) / 3)
    consistency = stats["consistency"]
    wrong = low & ~matches
    return {
        "low_pd_right": 100 * float(np.mean(consistency[low & matches] >= 0.5)),
        "low_pd_wrong": 100 * float(np.mean(consistency[wrong] <= 0.5)) if wrong.any() else np.nan,
        "n_differs": int((seen & ~matches).sum()),
    }


def bound_lines(bounds: dict) -> dict:
    """The two lines of :func:`consensus_bounds` as text, "a − b" (``bound_line``: the envelope,
    ``cross_line``: the mean curve)."""

    def line(fit):
        sign = "−" if fit["slope"] < 0 else "+"
        return f"{fit['intercept']:.2f} {sign} {abs(fit['slope']):.2f}"

    return {"bound_line": line(bounds["envelope"]), "cross_line": line(bounds["mean_curve"])}


def bound_with_interval(depth, cstar, max_depth: int, *, seed: int = 0, n_boot: int = 200) -> dict:
    """The lower envelope of C* against PD rescaled to [0, 1], with a bootstrap interval of its
    slope (points resampled: one PD_val and one C* per point)."""
    x, y = np.asarray(depth, float) / max_depth, np.asarray(cstar, float)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    fit = lower_envelope(x, y)
    low, high = bootstrap_interval(
        lambda a, b: lower_envelope(a, b)["slope"], x, y, n_boot=n_boot, seed=seed
    )
    return {**fit, "slope_low": low, "slope_high": high}


def cross_model_consensus(runs: list) -> dict:
    """Fig. 4 (middle) as the paper does it: for each network in turn, PD of the test points from
    it and their consensus class and C* from all the others.

    Returns ``depth``, ``consensus`` and ``consensus_consistency``, each (r, n_test): row ``i``
    holds network ``i`` out.
    """
    if len(runs) < 2:
        raise ValueError(f"runs must hold at least 2 networks, got {len(runs)}")
    test = runs[0]["is_test"]
    labels = runs[0]["labels"][test]
    predictions = np.stack([run["network_predictions"][test] for run in runs]).astype(np.int64)
    n_classes = runs[0]["logits"].shape[1]
    out = {"depth": [], "consensus": [], "consensus_consistency": []}
    for i, run in enumerate(runs):
        others = np.delete(predictions, i, axis=0)
        everyone = np.ones_like(others, dtype=bool)
        consensus = consensus_class(others, everyone, labels, n_classes)
        out["depth"].append(run["depth"][test].astype(np.int64))
        out["consensus"].append(consensus)
        out["consensus_consistency"].append(consensus_consistency(others, everyone, consensus))
    return {name: np.stack(values) for name, values in out.items()}


def mean_curve_slope(depth, cstar, n_probes: int, *, min_count: int = 20) -> dict:
    """The mean of C* at each PD and the least-squares line through it against PD / max.

    Only PD values with at least ``min_count`` pairs enter the line. Returns ``mean``, ``count``
    (n_probes,), ``slope`` and ``intercept``.
    """
    mean, count = mean_by_depth(np.ravel(depth), np.ravel(cstar).astype(np.float64), n_probes)
    used = count >= min_count
    if used.sum() < 2:
        return {"mean": mean, "count": count, "slope": np.nan, "intercept": np.nan}
    x = np.arange(n_probes)[used] / (n_probes - 1)
    slope, intercept = np.polyfit(x, mean[used], 1)
    return {"mean": mean, "count": count, "slope": float(slope), "intercept": float(intercept)}


def consensus_bounds(stats: dict, cross: dict, *, permute_seed: int | None = None) -> dict:
    """Fig. 4 left and middle, judged: the ensemble's lower envelope (``envelope``,
    :func:`bound_with_interval`) and the mean C* per PD of :func:`cross_model_consensus` with a
    slope interval resampling networks and points (``mean_curve``); ``median_appearances``.

    ``permute_seed``: the negative control, PD permuted across points in both.
    """
    n_probes = stats["n_probes"]
    seen = stats["n_held_out"] > 0
    depth_val, depth = stats["depth_val"][seen], cross["depth"]
    if permute_seed is not None:
        rng = np.random.default_rng(permute_seed)
        depth_val, depth = rng.permutation(depth_val), depth[:, rng.permutation(depth.shape[1])]
    cstar = cross["consensus_consistency"]
    curve = mean_curve_slope(depth, cstar, n_probes)
    interval = two_level_interval(
        lambda d, c: mean_curve_slope(d, c, n_probes)["slope"], depth, cstar, n_boot=200
    )
    return {
        "envelope": bound_with_interval(
            depth_val, stats["consensus_consistency"][seen], n_probes - 1
        ),
        "mean_curve": {**curve, "slope_low": interval[0], "slope_high": interval[1]},
        "median_appearances": float(np.median(stats["n_held_out"][seen])),
    }


def permute_points(stats: dict, seed: int) -> dict:
    """The negative control of the PD claims: ``stats`` with every PD quantity (``depth``,
    ``undecided``, ``depth_val``, ``depth_train``) moved to another point by one seeded permutation;
    labels, predictions and held-out masks stay where they were."""
    order = np.random.default_rng(seed).permutation(len(stats["labels"]))
    permuted = {key: stats[key][:, order] for key in ("depth", "undecided") if key in stats}
    return {
        **stats,
        **permuted,
        "depth_val": stats["depth_val"][order],
        "depth_train": stats["depth_train"][order],
    }


def accuracy_gain(stats: dict, *, seed: int = 0, n_boot: int = 300) -> dict:
    """Held-out accuracy against PD (Fig. 4 right) and low- minus high-PD accuracy (first vs last
    third).

    ``gain_low``/``gain_high``: interval resampling networks and points; ``gain_decided``: the gain
    over appearances with a depth only (value, low, high).
    """
    n_probes, max_depth = stats["n_probes"], stats["n_probes"] - 1
    held, depth = stats["held_out"], stats["depth"].astype(np.int64)
    correct = stats["predictions"] == stats["labels"][None, :]
    undecided = stats.get("undecided", np.zeros_like(held))

    def gain(d, c, mask):
        d, c = d[mask], c[mask]
        lo, hi = d <= max_depth // 3, d >= 2 * max_depth // 3
        return c[lo].mean() - c[hi].mean() if lo.any() and hi.any() else np.nan

    def measure(mask):
        interval = two_level_interval(gain, depth, correct, mask, n_boot=n_boot, seed=seed)
        return (float(gain(depth, correct, mask)), *interval)

    accuracy, count = accuracy_by_depth(depth[held], correct[held], n_probes)
    low, high = depth[held] <= max_depth // 3, depth[held] >= 2 * max_depth // 3
    value, gain_low, gain_high = measure(held)
    return {
        "accuracy": accuracy,
        "count": count,
        "acc_low": float(correct[held][low].mean()) if low.any() else np.nan,
        "acc_high": float(correct[held][high].mean()) if high.any() else np.nan,
        "share_low": float(low.mean()),
        "undecided": float(undecided[held].mean()),
        "gain": value,
        "gain_low": gain_low,
        "gain_high": gain_high,
        "gain_decided": measure(held & ~undecided),
    }


def decided_plane(stats: dict) -> dict:
    """``stats`` with PD_val and PD_train averaged over decided appearances only (NaN where a point
    has none): the difficulty plane without undecided points."""
    depth, held = stats["depth"].astype(np.float64), stats["held_out"]
    decided = ~stats["undecided"]
    with np.errstate(invalid="ignore", divide="ignore"):
        val, train = (
            np.where(mask, depth, 0).sum(axis=0) / mask.sum(axis=0)
            for mask in (held & decided, ~held & decided)
        )
    return {**stats, "depth_val": val, "depth_train": train}
