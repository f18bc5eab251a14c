"""What Sections 3.2 and 3.3 compute from cached runs: iteration learned, margins, label-noise
curves and the 0-Hinge intervention.

Pure functions of :class:`~pdlib.cache.Artifact` lists and of
:func:`pdlib.ensembles.ensemble_statistics`; intervals resample networks and points together
(:func:`pdlib.intervals.two_level_interval`) wherever a statistic pools several networks.
"""

from __future__ import annotations

import numpy as np

from pdlib.intervals import bootstrap_interval, two_level_interval
from pdlib.margins import output_margin
from pdlib.metrics import binned_correlation, mean_by_depth, pearson, probe_accuracy

__all__ = [
    "iteration_readings",
    "iteration_table",
    "iteration_panels",
    "margin_correlations",
    "NOISE_SETS",
    "noise_curves",
    "curve_features",
    "CURVE_FEATURES",
    "feature_counts",
    "hinge_cause",
    "hinge_summary",
    "hinge_learning_curves",
]


def _held_mean(values, mask) -> np.ndarray:
    """Per column, the mean of ``values`` where ``mask``, as :func:`pdlib.metrics.split_means`
    takes it (a NaN makes the mean NaN): (r, n), (r, n) -> (n,)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(mask, values, 0).sum(axis=0) / mask.sum(axis=0)


def iteration_readings(stats: dict, *, n_boot: int = 300, seed: int = 0) -> dict:
    """Pearson r of PD and rescaled iteration learned: reading -> (r, low, high, n).

    Per appearance (held-out or trained (model, point) pairs; the verdict's reading), per point
    (PD_val against the mean iteration over the same appearances) and over the PD bins of Fig. 5
    (left) (PD against the mean iteration at that PD; ``n`` counts the bins with 20 appearances).
    Intervals resample networks and points.
    """
    depth, iteration = stats["depth"].astype(np.float64), stats["iteration"].astype(np.float64)
    held = stats["held_out"]
    n_probes = stats["n_probes"]
    statistics = {
        "per appearance, validation": lambda d, it, h: pearson(d[h], it[h]),
        "per appearance, training": lambda d, it, h: pearson(d[~h], it[~h]),
        "per point, validation": lambda d, it, h: pearson(_held_mean(d, h), _held_mean(it, h)),
        "over PD bins, validation": lambda d, it, h: binned_correlation(d[h], it[h], n_probes),
    }
    pairs = {
        "per appearance, validation": int((held & np.isfinite(iteration)).sum()),
        "per appearance, training": int((~held & np.isfinite(iteration)).sum()),
        "per point, validation": int(
            (np.isfinite(stats["depth_val"]) & np.isfinite(stats["iteration_val"])).sum()
        ),
        "over PD bins, validation": int(
            (mean_by_depth(depth[held].astype(np.int64), iteration[held], n_probes)[1] >= 20).sum()
        ),
    }
    out = {}
    for reading, statistic in statistics.items():
        interval = two_level_interval(statistic, depth, iteration, held, n_boot=n_boot, seed=seed)
        value = (  # the point reading from the ensemble's own PD_val and iteration_val
            pearson(stats["depth_val"], stats["iteration_val"])
            if reading == "per point, validation"
            else statistic(depth, iteration, held)
        )
        out[reading] = (value, *interval, pairs[reading])
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


def margin_correlations(
    margins: dict, *, n_boot: int = 300, seed: int = 0, permute_seed: int | None = None
) -> dict:
    """Per test point, mean PD and each margin's geometric mean over networks, and r:
    ``mean_depth``, ``geometric``, ``r`` {name: (r, low, high)}; zero or infinite margins are left
    out of r. Intervals resample networks and points. ``permute_seed``: the negative control, PD
    moved to other points by one seeded permutation.
    """
    depth = margins["depth"].astype(np.float64)
    if permute_seed is not None:
        depth = depth[:, np.random.default_rng(permute_seed).permutation(depth.shape[1])]
    mean_depth = depth.mean(axis=0)

    def correlation(d, logs):
        values = logs.mean(axis=0)
        return pearson(d.mean(axis=0), np.where(np.isfinite(values), values, np.nan))

    geometric, r = {}, {}
    for name, key in (("output margin", "output_margin"), ("input margin", "input_margin")):
        with np.errstate(divide="ignore"):
            logs = np.log10(margins[key]).astype(np.float64)
        geometric[name] = 10 ** logs.mean(axis=0)
        interval = two_level_interval(correlation, depth, logs, n_boot=n_boot, seed=seed)
        r[name] = (correlation(depth, logs), *interval)
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
    labels. A run without checkpoints (an untrained network) gives a one-point training curve.
    """
    history, steps = run["checkpoint_predictions"], run["checkpoint_steps"]
    if not history.size:  # an untrained network: its curve is its one prediction
        history, steps = run["network_predictions"][None, :], np.zeros(1, np.int64)
    training, inference = {"steps": steps}, {}
    for name, (mask, target) in _noise_sets(run).items():
        training[name] = (history[:, mask] == target[mask]).mean(axis=1)
        inference[name] = probe_accuracy(run["probe_predictions"][:, mask], target[mask])
    return training, inference


def curve_features(curves: dict, *, margin: float = 0.02) -> dict:
    """The paper's three features of a learning curve (after its first point), beyond ``margin``:
    ``original first`` (original class ahead of the new one somewhere), ``crossing`` (and behind at
    the end), ``test maximum before the end``.
    """
    start = 1 if len(curves[NOISE_SETS[3]]) > 1 else 0  # an untrained network has one point
    gap = curves[NOISE_SETS[2]][start:] - curves[NOISE_SETS[1]][start:]
    test = curves[NOISE_SETS[3]][start:]
    return {
        "original first": bool(gap.max() > margin),
        "crossing": bool(gap.max() > 0 and gap[-1] < 0),
        "test maximum before the end": bool(test.max() - test[-1] > margin),
        "gap": float(gap.max()),
        "drop": float(test.max() - test[-1]),
        "peak": int(np.argmax(test)) + 1,
    }


#: The paper's three features of a learning curve under label noise (:func:`curve_features`).
CURVE_FEATURES = ("original first", "crossing", "test maximum before the end")


def feature_counts(runs) -> tuple[dict, list]:
    """For label-noise runs: ``(present, features)``; ``present`` feature -> (seeds showing it in
    both the training and the inference curve, seeds), ``features`` per seed the pair of
    :func:`curve_features` dicts (training, inference)."""
    features = [tuple(curve_features(curve) for curve in noise_curves(run)) for run in runs]
    present = {
        name: (sum(t[name] and i[name] for t, i in features), len(features))
        for name in CURVE_FEATURES
    }
    return present, features


def hinge_summary(runs: dict, *, seed: int = 0) -> dict:
    """Fig. 6 right: per network ("untrained", "0-Hinge", "cross-entropy", and any controls) probe
    curves, margins and PD.

    Returns ``table`` (one row per network), ``curves`` {network: {split: (n_probes,)}} and
    ``by_split`` (the same, transposed); ``margin_ratio``, ``pd_gap`` and ``gain_excess`` (value,
    low, high; points resampled: one network per arm) comparing "0-Hinge" with "cross-entropy";
    ``pd_gap`` counts the training points with a depth under both networks, ``pd_gap_all`` every
    point (an undecided point at the softmax index); ``softmax_only``: the 0-Hinge training
    points without a depth (their softmax probe disagrees with the network).
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
        margin = output_margin(run["logits"][train])
        probes = run["probe_predictions"][:, train]
        hidden_hits = (probes[1:-1] == run["fit_labels"][train]).mean(axis=0)
        undecided = run["undecided"][train]
        depth = run["depth"][train].astype(np.float64)
        per_point[name] = (margin, depth, hidden_hits, undecided)
        rows.append(
            {
                "network": name,
                "training accuracy": run.meta["train_accuracy"],
                "test accuracy": run.meta["test_accuracy"],
                "output margin, mean": margin.mean(),
                "output margin, std": margin.std(),
                "mean PD (train)": depth.mean(),
                "mean PD, decided": depth[~undecided].mean() if (~undecided).any() else np.nan,
                "undecided (%)": 100 * undecided.mean(),
                "steps": int(run["checkpoint_steps"][-1]) if run["checkpoint_steps"].size else 0,
            }
        )
    (m_h, d_h, h_h, u_h), (m_c, d_c, h_c, u_c) = (
        per_point[n] for n in ("0-Hinge", "cross-entropy")
    )
    h_u = per_point["untrained"][2]

    def measure(statistic, *arrays):
        return (
            float(statistic(*arrays)),
            *bootstrap_interval(statistic, *arrays, n_boot=300, seed=seed),
        )

    decided = ~u_h & ~u_c
    by_split = {
        split: {net: c[split] for net, c in curves.items()} for split in next(iter(curves.values()))
    }
    gap = lambda h, c: h.mean() - c.mean()  # noqa: E731
    return {
        "table": pd.DataFrame(rows).set_index("network"),
        "curves": curves,
        "by_split": by_split,
        "margin_ratio": measure(lambda h, c: c.mean() / max(h.mean(), 1e-30), m_h, m_c),
        "pd_gap": measure(gap, d_h[decided], d_c[decided])
        if decided.sum() > 1
        else (np.nan, np.nan, np.nan),
        "pd_gap_all": measure(gap, d_h, d_c),
        "gain_excess": measure(
            lambda h, c, u: (h - u).mean() - 0.25 * (c - u).mean(), h_h, h_c, h_u
        ),
        "softmax_only": float(u_h.mean()),
    }


def hinge_learning_curves(runs: dict) -> dict:
    """Training accuracy (against the labels trained on) at each checkpoint: network -> (steps,
    accuracy), both (T+1,) (the paper's Appendix A.7)."""
    curves = {}
    for name, run in runs.items():
        if not run["checkpoint_steps"].size:
            continue
        train = run["in_train"] & ~run["is_test"]
        history = run["checkpoint_predictions"][:, train]
        curves[name] = (run["checkpoint_steps"], (history == run["fit_labels"][train]).mean(axis=1))
    return curves


def hinge_cause(table, *, fitted: float = 0.99) -> str:
    """What the 0-Hinge controls of :func:`hinge_summary`'s ``table`` say about the cause of the
    vanishing margins, composed from their numbers: whether each control fitted its training points
    (accuracy >= ``fitted``), its margin against the 0-Hinge one, and what follows (the loss or
    the regime; the head's initial scale)."""
    row = table.loc
    hinge, ce = row["0-Hinge", "output margin, mean"], row["cross-entropy", "output margin, mean"]

    def describe(name):
        margin, accuracy = row[name, "output margin, mean"], row[name, "training accuracy"]
        steps = int(row[name, "steps"])
        text = (
            f"fits {100 * accuracy:.1f} % of its training points in {steps:,d} steps and ends with "
            f"a margin of {margin:.3g} ({margin / max(hinge, 1e-30):.3g}x the 0-Hinge margin)"
        )
        return text, margin / max(hinge, 1e-30), accuracy >= fitted

    regime, regime_ratio, regime_fit = describe("cross-entropy, 0-Hinge regime")
    if not regime_fit:
        regime += (
            ": it has not fitted its data, so at this learning rate it cannot tell the loss from "
            "the regime"
        )
    elif regime_ratio >= 1e3:
        regime += (
            f", {regime_ratio * hinge / ce:.2g}x standard cross-entropy's: the loss, not the "
            "regime, removes the margin"
        )
    else:
        regime += ": the regime alone keeps margins small, so the loss is not the whole cause"
    head, head_ratio, head_fit = describe("0-Hinge, default head")
    head += (
        ": the tiny head sets the size of the 0-Hinge margin"
        if head_ratio >= 10
        else ": the head's scale matters little"
    )
    if not head_fit:
        head += ", and without it 0-Hinge does not fit its data in as many steps"
    return f"Cross-entropy under the 0-Hinge regime {regime}. 0-Hinge with the default head {head}."
