"""Section 4: four types of difficulty in the (PD_val, PD_train) plane, and a mid-layer k-NN fix.

Both axes are a point's mean PD over held-out (PD_val) or training (PD_train) appearances,
rescaled to [0, 1] by the architecture's largest PD; :data:`CORNERS` names the corners.
Pure functions of per-point arrays (:func:`pdlib.ensembles.ensemble_statistics`,
:func:`pdlib.ensembles.held_out_probe_counts`).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from pdlib._checks import check_positive_int
from pdlib.intervals import bootstrap_interval, wilson_interval

if TYPE_CHECKING:
    import pandas

    from pdlib.ensembles import ProbeCounts

__all__ = [
    "CORNERS",
    "corner_groups",
    "corner_distances",
    "corner_table",
    "corner_display",
    "split_points",
    "group_probe_curves",
    "middle_probe",
    "probe_fix",
    "paired_comparison",
    "random_group",
    "corner_evidence",
    "group_size_table",
    "choose_probe_layer",
    "pd_switch_rule",
    "fix_table",
    "rule_table",
]

#: Corner name -> (rescaled PD_val, rescaled PD_train).
CORNERS = {
    "easy": (0.0, 0.0),
    "looks like a different class": (0.0, 1.0),
    "ambiguous unless the label is given": (1.0, 0.0),
    "ambiguous": (1.0, 1.0),
}


def corner_distances(depth_val, depth_train, max_depth: int) -> np.ndarray:
    """Distance of each point to each corner of the rescaled (PD_val, PD_train) plane: (n,), (n,)
    -> (4, n), corners in the order of :data:`CORNERS` (NaN where a PD is NaN).

    >>> corner_distances([0.0, 4.0], [0.0, 4.0], 4)[:, 0].round(3).tolist()
    [0.0, 1.0, 1.0, 1.414]
    """
    x = np.asarray(depth_val, dtype=np.float64) / max_depth
    y = np.asarray(depth_train, dtype=np.float64) / max_depth
    return np.stack([np.hypot(x - cx, y - cy) for cx, cy in CORNERS.values()])


def corner_groups(depth_val, depth_train, max_depth: int, *, n: int = 100, candidates=None) -> dict:
    """The ``n`` points closest to each corner of the rescaled (PD_val, PD_train) plane.

    Parameters
    ----------
    depth_val, depth_train : array-like of float, shape (n_points,)
        Mean PD over held-out and training appearances; NaN points are never chosen.
    max_depth : int
        Largest PD of the architecture (number of probes - 1).
    n : int
        Points per corner (fewer if fewer are eligible).
    candidates : array-like of bool, shape (n_points,), optional
        Restrict the choice, e.g. to one class.

    Returns
    -------
    dict of str to ndarray of int64
        Per corner of :data:`CORNERS`, point indices by increasing distance to it (ties by index).
    """
    val = np.asarray(depth_val, dtype=np.float64)
    train = np.asarray(depth_train, dtype=np.float64)
    if val.ndim != 1 or val.shape != train.shape:
        raise ValueError(
            f"depth_val and depth_train must be 1-D of equal length, got {val.shape} "
            f"and {train.shape}"
        )
    check_positive_int(max_depth, "max_depth")
    check_positive_int(n, "n")
    eligible = np.isfinite(val) & np.isfinite(train)
    if candidates is not None:
        candidates = np.asarray(candidates, dtype=bool)
        if candidates.shape != val.shape:
            raise ValueError(f"candidates has shape {candidates.shape}, expected {val.shape}")
        eligible &= candidates
    index = np.flatnonzero(eligible)
    distances = corner_distances(val[index], train[index], max_depth)
    groups = {}
    for name, distance in zip(CORNERS, distances, strict=True):
        order = np.lexsort((index, distance))[:n]  # ties by index: deterministic
        groups[name] = index[order]
    return groups


def corner_table(stats: dict, groups: dict, max_depth: int, *, seed: int = 0):
    """Per corner group: size, distance, mean PDs, C* (95 % interval), Ĉ, consensus ≠ label and the
    share of its held-out appearances without a depth; a DataFrame."""
    import pandas as pd

    rows = []
    distances = dict(
        zip(
            CORNERS,
            corner_distances(stats["depth_val"], stats["depth_train"], max_depth),
            strict=True,
        )
    )
    for name, index in groups.items():
        cstar = stats["consensus_consistency"][index]
        cstar = cstar[np.isfinite(cstar)]
        low, high = (
            bootstrap_interval(np.mean, cstar, n_boot=500, seed=seed)
            if len(cstar)
            else (np.nan, np.nan)
        )
        rows.append(
            {
                "corner": name,
                "points": len(index),
                "distance to corner": float(distances[name][index].mean()),
                "mean PD_val": float(stats["depth_val"][index].mean()),
                "mean PD_train": float(stats["depth_train"][index].mean()),
                "C*": float(cstar.mean()) if len(cstar) else np.nan,
                "C* low": low,
                "C* high": high,
                "Ĉ": float(np.nanmean(stats["consistency"][index])),
                "consensus ≠ label": int(
                    np.sum(stats["consensus"][index] != stats["labels"][index])
                ),
                "undecided (%)": 100
                * float(stats["undecided"][:, index][stats["held_out"][:, index]].mean())
                if "undecided" in stats
                else np.nan,
            }
        )
    return pd.DataFrame(rows).set_index("corner")


def corner_display(corners):
    """:func:`corner_table` as the book shows it: C* and its interval in one column, "0.72 [0.67,
    0.76]", so that the table fits the page's column."""
    shown = corners.drop(columns=["C* low", "C* high"])
    shown["C*"] = [
        f"{row['C*']:.2f} [{row['C* low']:.2f}, {row['C* high']:.2f}]"
        for _, row in corners.iterrows()
    ]
    return shown


def split_points(points, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split point indices into two random halves (seeded): one to choose on, one to report on."""
    points = np.asarray(points, dtype=np.int64)
    shuffled = np.random.default_rng(seed).permutation(points)
    half = (len(points) + 1) // 2
    return np.sort(shuffled[:half]), np.sort(shuffled[half:])


def group_probe_curves(counts: ProbeCounts, points, target: str) -> dict:
    """Fig. 8: a group's mean probe confidence and accuracy for one target class, layer by layer.

    ``counts`` is :func:`pdlib.ensembles.held_out_probe_counts`, ``points`` the group's pool indices
    and ``target`` a key of its ``targets``. Returns ``confidence`` and ``accuracy`` (n_probes,)
    over the group's held-out appearances, ``network_accuracy`` (float) and ``appearances`` (int).
    """
    points = np.asarray(points, dtype=np.int64)
    appearances = int(counts.n_held_out[points].sum())
    if appearances == 0:
        nan = np.full(counts.n_probes, np.nan)
        return {"confidence": nan, "accuracy": nan, "network_accuracy": math.nan, "appearances": 0}
    return {
        "confidence": counts.votes[target][:, points].sum(axis=1) / (counts.k * appearances),
        "accuracy": counts.hits[target][:, points].sum(axis=1) / appearances,
        "network_accuracy": float(counts.network_hits[target][points].sum() / appearances),
        "appearances": appearances,
    }


def _accuracy_report(hits: int, trials: int) -> dict:
    low, high = wilson_interval(hits, trials)
    return {
        "hits": int(hits),
        "trials": int(trials),
        "accuracy": hits / trials if trials else math.nan,
        "ci_low": low,
        "ci_high": high,
    }


def _reports(counts: ProbeCounts, target: str, points, name: str, hits) -> dict:
    """``network`` and ``name`` accuracy reports over the held-out appearances of ``points``."""
    trials = int(counts.n_held_out[points].sum())
    return {
        "network": _accuracy_report(int(counts.network_hits[target][points].sum()), trials),
        name: _accuracy_report(int(hits.sum()), trials),
    }


def middle_probe(n_probes: int) -> int:
    """The middle probe, fixed before any data are seen: ``(n_probes - 1) // 2`` (ResNet18: "layer
    4").

    >>> middle_probe(11), middle_probe(15), middle_probe(9)
    (5, 7, 4)
    """
    return (n_probes - 1) // 2


def probe_fix(counts: ProbeCounts, points, *, target: str, layer: int) -> dict:
    """Accuracy of the network and of probe ``layer`` over the held-out appearances of ``points``.

    ``counts`` should come from models that did not choose ``points``. Returns ``network`` and
    ``probe`` reports: ``hits``, ``trials``, ``accuracy`` and a 95 % Wilson interval.
    """
    points = np.asarray(points, dtype=np.int64)
    return {
        "layer": layer,
        "points": len(points),
        **_reports(counts, target, points, "probe", counts.hits[target][layer, points]),
    }


def paired_comparison(
    counts: ProbeCounts,
    points,
    *,
    target: str,
    layer: int,
    against: int | None = None,
    seed: int = 0,
) -> dict:
    """Probe ``layer`` against the network (``against=None``) or probe ``against``, paired on the
    same held-out appearances of ``points``.

    Returns ``accuracy`` and ``baseline_accuracy`` (fractions), ``trials``, and ``gain`` (accuracy
    minus the baseline's) and ``error_reduction`` (the fraction of the baseline's errors removed),
    each ``(value, low, high)`` with a 95 % interval resampling points, so that a point's
    appearances stay together.
    """
    points = np.asarray(points, dtype=np.int64)
    trials = counts.n_held_out[points].astype(np.float64)
    hits = counts.hits[target][layer, points].astype(np.float64)
    baseline = (
        counts.network_hits[target][points]
        if against is None
        else counts.hits[target][against, points]
    ).astype(np.float64)

    def gain(n, h, b):
        return (h.sum() - b.sum()) / n.sum() if n.sum() else np.nan

    def reduction(n, h, b):
        errors = n.sum() - b.sum()
        return 1 - (n.sum() - h.sum()) / errors if errors else np.nan

    def measure(statistic):
        interval = bootstrap_interval(statistic, trials, hits, baseline, n_boot=1000, seed=seed)
        return (float(statistic(trials, hits, baseline)), *interval)

    total = trials.sum()
    return {
        "accuracy": hits.sum() / total if total else np.nan,
        "baseline_accuracy": baseline.sum() / total if total else np.nan,
        "trials": int(total),
        "gain": measure(gain),
        "error_reduction": measure(reduction),
    }


def random_group(candidates, size: int, seed: int) -> np.ndarray:
    """``size`` points drawn without replacement from ``candidates`` (seeded, sorted): the negative
    control of a corner group."""
    candidates = np.asarray(candidates, dtype=np.int64)
    return np.sort(np.random.default_rng(seed).choice(candidates, size, replace=False))


def corner_evidence(plane: dict, counts: ProbeCounts, *, n: int, target: str = "ground truth"):
    """What :func:`pdlib.verdicts.judge_difficulty_types` reads for one difficulty plane:
    ``(corners, unless)``, the :func:`corner_table` of the ``n`` points nearest each corner and the
    middle probe against the softmax probe on "ambiguous unless the label is given"
    (:func:`paired_comparison`).

    ``plane``: :func:`pdlib.ensembles.ensemble_statistics` (or a permuted or decided-only copy);
    ``counts``: :func:`pdlib.ensembles.held_out_probe_counts` of the same ensemble.
    """
    n_probes = plane["n_probes"]
    groups = corner_groups(plane["depth_val"], plane["depth_train"], n_probes - 1, n=n)
    unless = paired_comparison(
        counts,
        groups["ambiguous unless the label is given"],
        target=target,
        layer=middle_probe(n_probes),
        against=n_probes - 1,
    )
    return corner_table(plane, groups, n_probes - 1), unless


def group_size_table(
    first: dict,
    later: ProbeCounts,
    *,
    sizes=(25, 50, 100, 200),
    target: str = "ground truth",
    corner: str = "ambiguous unless the label is given",
) -> pandas.DataFrame:
    """The decoupled k-NN fix against the group's size: the ``sizes`` points nearest ``corner`` in
    the plane of ``first`` (:func:`pdlib.ensembles.ensemble_statistics` of the choosing networks),
    scored with the middle probe on ``later`` (the others). The paper's group, 100 of CIFAR10's
    50,000 training images, is the last row.
    """
    import pandas as pd

    n_probes = first["n_probes"]
    placed = int((np.isfinite(first["depth_val"]) & np.isfinite(first["depth_train"])).sum())
    rows = []
    for size in sizes:
        group = corner_groups(first["depth_val"], first["depth_train"], n_probes - 1, n=size)
        found = paired_comparison(later, group[corner], target=target, layer=middle_probe(n_probes))
        reduction = found["error_reduction"]
        rows.append(
            {
                "points": len(group[corner]),
                "share of the plane (%)": 100 * len(group[corner]) / max(placed, 1),
                "appearances": f"{found['trials']:,d}",
                "network (%)": 100 * found["baseline_accuracy"],
                "middle probe (%)": 100 * found["accuracy"],
                "errors removed (%)": f"{100 * reduction[0]:.0f} "
                f"[{100 * reduction[1]:.0f}, {100 * reduction[2]:.0f}]",
            }
        )
    paper = {"points": 100, "share of the plane (%)": 100 * 100 / 50_000, "appearances": "—"}
    paper |= {"network (%)": 25.0, "middle probe (%)": 98.0, "errors removed (%)": "97 (paper)"}
    return pd.DataFrame([*rows, paper])


def choose_probe_layer(counts: ProbeCounts, points, *, target: str, seed: int = 0) -> dict:
    """Pick the probe on one (seeded) half of a group and score it on the other half.

    Returns ``layer`` (best held-out accuracy on the selection half, ties to the earlier probe),
    ``selection_accuracy``, ``selection`` and ``evaluation`` (point counts) and the ``network`` and
    ``probe`` reports of :func:`probe_fix` on the evaluation half.
    """
    select, evaluate = split_points(points, seed)
    trials_select = counts.n_held_out[select].sum()
    if trials_select == 0 or counts.n_held_out[evaluate].sum() == 0:
        raise ValueError("both halves of the group need held-out appearances")
    accuracy = counts.hits[target][:, select].sum(axis=1) / trials_select
    layer = int(np.argmax(accuracy))
    return {
        "layer": layer,
        "selection_accuracy": accuracy,
        "selection": len(select),
        "evaluation": len(evaluate),
        **_reports(counts, target, evaluate, "probe", counts.hits[target][layer, evaluate]),
    }


def pd_switch_rule(counts: ProbeCounts, points, *, target: str, seed: int = 0) -> dict:
    """Choose "use probe ``p`` instead of the network when its PD is at least ``t``" on one half,
    score on the other.

    The rule never needs the label. Returns ``layer``, ``threshold`` (``n_probes`` = never switch;
    preferred on ties), ``selection``/``evaluation`` counts and ``network`` and ``rule`` reports.
    """
    select, evaluate = split_points(points, seed)
    rule = counts.rule_hits
    trials_select = counts.n_held_out[select].sum()
    if trials_select == 0:
        raise ValueError("the selection half has no held-out appearances")
    accuracy = rule[:, :, select].sum(axis=2) / trials_select  # (n_probes, n_probes + 1)
    # Prefer "never switch" on ties, then the earliest layer: no change without evidence.
    best = accuracy.max()
    candidates = np.argwhere(np.isclose(accuracy, best, rtol=0, atol=1e-12))
    never = [tuple(c) for c in candidates if c[1] == counts.n_probes]
    layer, threshold = never[0] if never else tuple(candidates[0])
    return {
        "layer": int(layer),
        "threshold": int(threshold),
        "selection": len(select),
        "evaluation": len(evaluate),
        **_reports(counts, target, evaluate, "rule", rule[layer, threshold, evaluate]),
    }


def _percent(report: dict) -> str:
    return (
        f"{100 * report['accuracy']:.1f} % ({report['hits']}/{report['trials']}; "
        f"{100 * report['ci_low']:.1f}–{100 * report['ci_high']:.1f})"
    )


def fix_table(decoupled: dict, splits: list, probe_names) -> pandas.DataFrame:
    """The k-NN fix: the decoupled result (:func:`probe_fix`) and each halving
    (:func:`choose_probe_layer`)."""
    import pandas as pd

    rows = [
        {
            "evaluation": "decoupled: group from the first half of the networks, scored on the "
            "others",
            "probe": f"{probe_names[decoupled['layer']]} (fixed in advance)",
            "network": _percent(decoupled["network"]),
            "probe accuracy": _percent(decoupled["probe"]),
        }
    ]
    rows += [
        {
            "evaluation": f"halving {i + 1}: layer chosen on {s['selection']} points, scored on "
            f"{s['evaluation']}",
            "probe": probe_names[s["layer"]],
            "network": _percent(s["network"]),
            "probe accuracy": _percent(s["probe"]),
        }
        for i, s in enumerate(splits)
    ]
    return pd.DataFrame(rows)


def rule_table(rule: dict, probe_names, n_probes: int) -> pandas.DataFrame:
    """The PD switch rule (:func:`pd_switch_rule`) as one row."""
    import pandas as pd

    switch = "never" if rule["threshold"] >= n_probes else f"PD ≥ {rule['threshold']}"
    return pd.DataFrame(
        [
            {
                "rule": f"use {probe_names[rule['layer']]} when {switch}",
                "points (choose / score)": f"{rule['selection']} / {rule['evaluation']}",
                "network": _percent(rule["network"]),
                "rule accuracy": _percent(rule["rule"]),
            }
        ]
    )
