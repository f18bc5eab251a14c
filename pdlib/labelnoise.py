"""Per-example difficulty and label-error scores from a 90:10 ensemble, and how well they find
errors.

Everything uses the *given* labels (those trained on), all a user auditing a dataset knows.
:data:`METHODS` are the rankings compared in the "Finding label errors" chapter, from one ensemble.
The audit ranks by :func:`ranking_score`, the mean percentile rank of the :data:`RANKING` signals,
chosen among :data:`CANDIDATES` by the rule of :mod:`pdlib.labelrank`.

The suspicion score ``(1 - Ĉ) * (1 + (PD_train - PD_val) / max_PD) / 2``, in [0, 1]: the share of
held-out networks rejecting the label (Eq. 1), weighted by the position along the diagonal of the
(PD_val, PD_train) plane, from "ambiguous unless the label is given" (0) to "looks like a different
class" (1), where a mislabeled image sits (decided early when held out, memorised late).
"""

from __future__ import annotations

import warnings

import numpy as np

from pdlib.difficulty import CORNERS, corner_distances
from pdlib.ensembles import Ensemble, ensemble_statistics
from pdlib.intervals import bootstrap_interval
from pdlib.margins import output_margin

__all__ = [
    "suspicion_score",
    "example_scores",
    "SIGNALS",
    "CANDIDATES",
    "RANKING",
    "candidate_name",
    "signal_scores",
    "rank_average",
    "ranking_score",
    "METHODS",
    "PEERS",
    "method_scores",
    "candidate_scores",
    "auroc",
    "average_precision",
    "precision_at_k",
    "detection_table",
    "flipped_labels",
    "suspects_table",
    "top_suspects",
    "suspect_reasons",
]


def suspicion_score(consistency, depth_val, depth_train, max_depth: int) -> np.ndarray:
    """The suspicion score (module docstring), shape (n,); NaN where a point was never held out or
    trained on.

    >>> suspicion_score([0.0, 1.0, 0.5], [0, 0, 8], [8, 0, 8], 8).tolist()
    [1.0, 0.0, 0.25]
    """
    consistency, val, train = (
        np.asarray(a, dtype=np.float64) for a in (consistency, depth_val, depth_train)
    )
    return (1 - consistency) * (1 + (train - val) / max_depth) / 2


class _HeldOutMeans:
    """Out-of-fold softmax probabilities and output margins, AUM and training loss, averaged per
    point, one model at a time (an observer of :func:`pdlib.ensembles.ensemble_statistics`)."""

    def __init__(self):
        self.sums = {"probabilities": 0.0, "margin": 0.0, "aum": 0.0, "loss": 0.0}
        self.held_count = self.train_count = 0

    def add(self, artifact) -> None:
        from scipy.special import log_softmax

        pool = ~artifact["is_test"]
        held = ~artifact["in_train"][pool]
        logits = artifact["logits"][pool].astype(np.float64)
        log_p = log_softmax(logits, axis=1)
        given = artifact["fit_labels"][pool]
        sums = self.sums
        sums["probabilities"] = sums["probabilities"] + np.where(held[:, None], np.exp(log_p), 0.0)
        sums["margin"] = sums["margin"] + np.where(held, output_margin(logits), 0.0)
        sums["aum"] = sums["aum"] + np.where(
            held, 0.0, np.nan_to_num(artifact["aum"][pool].astype(np.float64))
        )
        sums["loss"] = sums["loss"] + np.where(held, 0.0, -log_p[np.arange(len(given)), given])
        self.held_count, self.train_count = self.held_count + held, self.train_count + ~held

    def result(self) -> dict:
        sums = self.sums
        with np.errstate(invalid="ignore", divide="ignore"):
            return {
                "probabilities": sums["probabilities"] / self.held_count[:, None],
                "output margin": sums["margin"] / self.held_count,
                "AUM": sums["aum"] / self.train_count,
                "training loss": sums["loss"] / self.train_count,
            }


def example_scores(ensemble: Ensemble, *, class_names=None):
    """One row per pool example, in pool order: the audit table (a pandas DataFrame).

    Columns: ``given label``, ``consensus class``, ``C*``, ``Ĉ``, ``PD_train``, ``PD_val``,
    ``iteration learned``, ``output margin`` (held-out mean), ``AUM`` and ``training loss``
    (training means), ``difficulty type`` (nearest corner), ``distance to corner``,
    ``suspicion``, ``ranking score`` (:func:`ranking_score`, the audit's ranking), ``held out``,
    ``trained on``; ``.attrs`` holds the out-of-fold ``probabilities`` (n, n_classes) among
    others.
    """
    import pandas as pd

    held_out_means = _HeldOutMeans()  # gathered in the same pass over the ensemble
    stats = ensemble_statistics(ensemble, reference="fit_labels", observers=(held_out_means.add,))
    max_depth = stats["n_probes"] - 1
    means = held_out_means.result()
    n = len(stats["labels"])
    corners = list(CORNERS)
    distance = corner_distances(stats["depth_val"], stats["depth_train"], max_depth)
    placed = np.isfinite(distance).all(
        axis=0
    )  # points never held out (or never trained on) have no place
    nearest = np.argmin(np.where(placed, distance, 0.0), axis=0)
    names = (
        (lambda c: class_names[c] if c >= 0 else "") if class_names is not None else (lambda c: c)
    )
    iteration = (
        np.nanmean(stats["iteration"], axis=0)
        if np.isfinite(stats["iteration"]).any()
        else np.full(n, np.nan)
    )
    table = pd.DataFrame(
        {
            "given label": [names(c) for c in stats["labels"]],
            "consensus class": [names(c) for c in stats["consensus"]],
            "C*": stats["consensus_consistency"],
            "Ĉ": stats["consistency"],
            "PD_train": stats["depth_train"],
            "PD_val": stats["depth_val"],
            "iteration learned": iteration,
            "output margin": means["output margin"],
            "AUM": means["AUM"],
            "training loss": means["training loss"],
            "difficulty type": [
                corners[i] if ok else "" for i, ok in zip(nearest, placed, strict=False)
            ],
            "distance to corner": np.where(placed, distance[nearest, np.arange(n)], np.nan),
            "suspicion": suspicion_score(
                stats["consistency"], stats["depth_val"], stats["depth_train"], max_depth
            ),
            "held out": stats["n_held_out"],
            "trained on": stats["n_trained"],
        }
    )
    table.index.name = "pool index"
    table.attrs.update(
        probabilities=means["probabilities"],
        labels=stats["labels"],
        consensus=stats["consensus"],
        n_models=stats["n_models"],
        max_depth=max_depth,
    )
    table.insert(table.columns.get_loc("suspicion") + 1, "ranking score", ranking_score(table))
    return table


#: The ensemble's per-example signals (:func:`signal_scores`), each oriented so that a higher value
#: is more suspicious: the old suspicion score, the PD plane's "looks like a different class"
#: corner, consensus ≠ label (by C*), 1 - Ĉ, cleanlab's self-confidence on the out-of-fold
#: probabilities, the held-out output margin, AUM and the training loss (over the networks trained
#: on the point), and how late it is learned (PD_train, iteration learned).
SIGNALS = (
    "suspicion",
    "PD corner",
    "consensus ≠ label",
    "1 − Ĉ",
    "cleanlab",
    "held-out margin",
    "AUM",
    "training loss",
    "PD_train",
    "iteration learned",
)

#: Candidate ranking scores, each the mean percentile rank (:func:`rank_average`) of its signals,
#: listed before any of them was measured (pdlib.labelrank.SELECTION_RULE chooses among them).
CANDIDATES = (
    *((signal,) for signal in SIGNALS),
    ("AUM", "training loss"),
    ("AUM", "cleanlab"),
    ("AUM", "training loss", "cleanlab"),
    ("AUM", "cleanlab", "1 − Ĉ"),
    ("AUM", "suspicion"),
    ("AUM", "PD_train"),
    ("AUM", "iteration learned"),
    ("AUM", "training loss", "cleanlab", "suspicion"),
    SIGNALS,
)

#: The audit's ranking score: the candidate that pdlib.labelrank.SELECTION_RULE chose on the design
#: settings of the laptop profile (criterion 0.753, next PD_train alone 0.745 and AUM + suspicion
#: 0.738; AUM alone 0.690); the "Finding label errors" chapter shows the selection.
RANKING = ("AUM", "PD_train")


def candidate_name(signals) -> str:
    """``"AUM + training loss"`` for ``("AUM", "training loss")``; ``"all signals"`` for
    :data:`SIGNALS`."""
    return "all signals" if tuple(signals) == SIGNALS else " + ".join(signals)


def signal_scores(table) -> dict:
    """Every :data:`SIGNALS` entry for the rows of :func:`example_scores`: name -> (n,) float, NaN
    where the point lacks it (never held out, or never trained on)."""
    with warnings.catch_warnings():  # cleanlab imports tqdm.auto, which warns without ipywidgets
        warnings.filterwarnings("ignore", message="IProgress not found")
        from cleanlab.rank import get_label_quality_scores

    labels, consensus = table.attrs["labels"], table.attrs["consensus"]
    probabilities = table.attrs["probabilities"]
    held = np.isfinite(probabilities).all(axis=1)
    self_confidence = get_label_quality_scores(
        labels, np.nan_to_num(probabilities, nan=1.0 / probabilities.shape[1])
    )
    distances = corner_distances(
        table["PD_val"].to_numpy(), table["PD_train"].to_numpy(), table.attrs["max_depth"]
    )
    cstar = table["C*"].to_numpy(np.float64)
    signals = {
        **_column_signals(table),
        "PD corner": -distances[list(CORNERS).index("looks like a different class")],
        "consensus ≠ label": np.where(consensus != labels, cstar, -cstar),
        "1 − Ĉ": 1 - table["Ĉ"].to_numpy(np.float64),
        "cleanlab": np.where(held, 1 - self_confidence, np.nan),
    }
    return {name: signals[name] for name in SIGNALS}


#: Signals that are one column of :func:`example_scores`: name -> (column, sign).
_COLUMNS = {
    "suspicion": ("suspicion", 1.0),
    "held-out margin": ("output margin", -1.0),
    "AUM": ("AUM", -1.0),
    "training loss": ("training loss", 1.0),
    "PD_train": ("PD_train", 1.0),
    "iteration learned": ("iteration learned", 1.0),
}


def _column_signals(table) -> dict:
    return {
        name: sign * table[column].to_numpy(np.float64) for name, (column, sign) in _COLUMNS.items()
    }


def rank_average(signals: dict, names) -> np.ndarray:
    """Mean percentile rank of the ``names`` signals, shape (n,), in (0, 1); higher = more
    suspicious.

    Each signal is ranked over the points that have it (ties share their mean rank) as
    ``(rank - 1/2) / count``; a point's score averages the signals it has (NaN if none).

    >>> signals = {"a": np.array([1.0, 2.0, 3.0, 4.0]), "b": np.array([1.0, 3.0, 2.0, np.nan])}
    >>> rank_average(signals, ["a"]).tolist()
    [0.125, 0.375, 0.625, 0.875]
    >>> np.round(rank_average(signals, ["a", "b"]), 3).tolist()  # the last point has "a" only
    [0.146, 0.604, 0.562, 0.875]
    """
    from scipy.stats import rankdata

    percentiles = []
    for name in names:
        score = np.asarray(signals[name], dtype=np.float64)
        defined = np.isfinite(score)
        percentile = np.full(len(score), np.nan)
        percentile[defined] = (rankdata(score[defined]) - 0.5) / max(defined.sum(), 1)
        percentiles.append(percentile)
    with warnings.catch_warnings():  # a point with none of the signals is NaN, as documented
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(np.vstack(percentiles), axis=0)


def ranking_score(table, signals=None) -> np.ndarray:
    """The audit's ranking score (:data:`RANKING`) for the rows of :func:`example_scores`, shape
    (n,)."""
    return rank_average(signal_scores(table) if signals is None else signals, RANKING)


def suspect_reasons(table, rows, signals=None, class_names=None) -> list[str]:
    """Why each of ``rows`` (positions in :func:`example_scores`) ranks high: its :data:`RANKING`
    signals with their share of points above them, and whether the held-out networks outvote its
    label.

    Returns one string per row, e.g. ``"AUM -1.85 (top 1 %); PD_train 7.80 (top 3 %); 2 of 2
    held-out networks reject the label (coat)"``.
    """
    if signals is None:  # the audit's table has the columns only: read the signals it can
        signals = _column_signals(table) if set(RANKING) <= set(_COLUMNS) else signal_scores(table)
    reasons = []
    for row in rows:
        parts = []
        for name in RANKING:
            values = np.asarray(signals[name], dtype=np.float64)
            value = values[row]
            if not np.isfinite(value):
                continue
            above = np.mean(values[np.isfinite(values)] >= value)
            sign = _COLUMNS.get(name, (None, 1.0))[1]  # shown as the column's value
            parts.append(f"{name} {sign * value:.2f} (top {max(1, round(100 * above))} %)")
        entry = table.iloc[row]
        consensus, held = entry["consensus class"], int(entry["held out"])
        if held and str(consensus) not in ("", str(entry["given label"])):
            votes = round((1 - entry["Ĉ"]) * held)
            voted = class_names[int(consensus)] if class_names is not None else consensus
            verb = "network rejects" if held == 1 else "networks reject"
            parts.append(f"{votes} of {held} held-out {verb} the label ({voted})")
        reasons.append("; ".join(parts))
    return reasons


#: Label-error rankings compared in the book; higher score = more likely mislabeled.
METHODS = (
    "pdlib ranking score",
    "pdlib suspicion score",
    "PD plane: 'looks like a different class' corner",
    "consensus ≠ label, ranked by C*",
    "consistency Ĉ",
    "cleanlab label quality",
    "AUM",
    "training loss",
)
#: The rankings the audit must match or beat (the issue's peers).
PEERS = ("cleanlab label quality", "AUM")
_METHOD_SIGNALS = dict(
    zip(
        METHODS[1:],
        (
            "suspicion",
            "PD corner",
            "consensus ≠ label",
            "1 − Ĉ",
            "cleanlab",
            "AUM",
            "training loss",
        ),
        strict=True,
    )
)


def method_scores(table, signals=None) -> dict:
    """Each method's score for every example of :func:`example_scores` (NaN-free; higher = more
    suspicious)."""
    signals = signal_scores(table) if signals is None else signals
    scores = {METHODS[0]: ranking_score(table, signals)}
    scores |= {method: signals[name] for method, name in _METHOD_SIGNALS.items()}
    return {name: np.nan_to_num(score, nan=-np.inf) for name, score in scores.items()}


def candidate_scores(table, signals=None) -> dict:
    """Every :data:`CANDIDATES` score for the rows of :func:`example_scores`, by
    :func:`candidate_name` (NaN-free)."""
    signals = signal_scores(table) if signals is None else signals
    return {
        candidate_name(names): np.nan_to_num(rank_average(signals, names), nan=-np.inf)
        for names in CANDIDATES
    }


def auroc(score, truth) -> float:
    """Area under the ROC curve (ties count half): the rank statistic, as scikit-learn's
    ``roc_auc_score``.

    >>> auroc([0.1, 0.4, 0.35, 0.8], [False, False, True, True])
    0.75
    """
    from scipy.stats import rankdata

    score, truth = np.asarray(score, dtype=np.float64), np.asarray(truth, dtype=bool)
    positives, negatives = truth.sum(), (~truth).sum()
    if positives == 0 or negatives == 0:
        return float("nan")
    return float(
        (rankdata(score)[truth].sum() - positives * (positives + 1) / 2) / (positives * negatives)
    )


def average_precision(score, truth) -> float:
    """Average precision over the distinct thresholds, as scikit-learn's
    ``average_precision_score``.

    >>> round(average_precision([0.1, 0.4, 0.35, 0.8], [False, False, True, True]), 4)
    0.8333
    """
    score, truth = np.asarray(score, dtype=np.float64), np.asarray(truth, dtype=bool)
    if not truth.any():
        return float("nan")
    order = np.argsort(-score, kind="stable")
    score, truth = score[order], truth[order]
    # last index of each distinct score (compared, not subtracted: -inf ties with -inf)
    ends = np.r_[np.flatnonzero(score[1:] != score[:-1]), len(score) - 1]
    true_positives = np.cumsum(truth)[ends]
    precision, recall = true_positives / (ends + 1), true_positives / truth.sum()
    return float(np.sum(np.diff(recall, prepend=0.0) * precision))


def precision_at_k(score, truth, k: int | None = None) -> float:
    """Fraction of the ``k`` highest scores that are true; ``k`` defaults to the number true.

    Scores tied at the k-th place count by their mean truth (the expectation over random tie
    breaks), so that a coarse score, and its bootstrap resamples, are not ranked by position.

    >>> precision_at_k([0.1, 0.4, 0.35, 0.8], [False, False, True, True])
    0.5
    >>> precision_at_k([1, 1, 1, 0], [True, False, False, True], k=2)  # two of three tied places
    0.3333333333333333
    """
    score, truth = np.asarray(score, dtype=np.float64), np.asarray(truth, dtype=bool)
    k = max(1, int(truth.sum())) if k is None else k
    kth = np.partition(score, len(score) - k)[len(score) - k]
    above, tied = score > kth, score == kth
    return float((truth[above].sum() + (k - above.sum()) * truth[tied].mean()) / k)


def detection_table(scores: dict, corrupted, *, n_boot: int = 200, seed: int = 0):
    """AUROC, average precision and precision at k (k = number corrupted), with 95 % bootstrap
    intervals (none with ``n_boot=0``).

    ``scores``: :func:`method_scores`; ``corrupted`` (n,) bool. Returns a DataFrame indexed by
    method.
    """
    import pandas as pd

    truth = np.asarray(corrupted, dtype=bool)
    k = int(truth.sum())
    measures = {
        "AUROC": auroc,
        "average precision": average_precision,
        "precision at k": precision_at_k,
    }
    rows = []
    for method, score in scores.items():
        finite = np.where(
            np.isfinite(score), score, np.min(score[np.isfinite(score)], initial=0) - 1
        )
        row = {"method": method}
        for name, measure in measures.items():
            row[name] = measure(finite, truth)
            if n_boot:
                low, high = bootstrap_interval(measure, finite, truth, n_boot=n_boot, seed=seed)
                row |= {f"{name} low": low, f"{name} high": high}
        rows.append(row)
    table = pd.DataFrame(rows).set_index("method")
    table.attrs["k"] = k
    return table


def flipped_labels(ensemble: Ensemble) -> np.ndarray:
    """Which pool labels the ensemble's networks were given flipped, shape (n,) bool, in pool order
    (one corruption per ensemble: every network has the same)."""
    first = next(ensemble.artifacts())
    return np.asarray(first["corrupted"][~first["is_test"]], dtype=bool)


def suspects_table(table, rows, class_names=None):
    """The ``rows`` of :func:`example_scores` (pool positions, most suspicious first) as the book
    and the report show them: rank, given label, consensus class, difficulty type, ranking score
    and :func:`suspect_reasons` (a DataFrame)."""
    import pandas as pd

    def name(value):
        return class_names[int(value)] if class_names is not None and value != "" else value

    chosen = table.iloc[list(rows)]
    return pd.DataFrame(
        {
            "rank": np.arange(1, len(chosen) + 1),
            "given label": [name(v) for v in chosen["given label"]],
            "consensus class": [name(v) for v in chosen["consensus class"]],
            "difficulty type": chosen["difficulty type"].to_numpy(),
            "ranking score": chosen["ranking score"].to_numpy(),
            "signals behind its rank": suspect_reasons(table, list(rows), class_names=class_names),
        }
    )


def top_suspects(table, n: int, column: str = "ranking score") -> np.ndarray:
    """Pool indices of the ``n`` examples of highest ``column`` (the ranking score; ties by
    index), most suspicious first."""
    score = table[column].fillna(-1.0).to_numpy()
    return np.lexsort((np.arange(len(score)), -score))[:n]
