"""Per-example difficulty and label-error scores from a 90:10 ensemble, and how well they find
errors.

Everything uses the *given* labels (those trained on), all a user auditing a dataset knows.
:data:`METHODS` are the rankings compared in the "Finding label errors" chapter, from one ensemble.

The suspicion score ``(1 - Ĉ) * (1 + (PD_train - PD_val) / max_PD) / 2``, in [0, 1]: the share of
held-out networks rejecting the label (Eq. 1), weighted by the position along the diagonal of the
(PD_val, PD_train) plane, from "ambiguous unless the label is given" (0) to "looks like a different
class" (1), where a mislabeled image sits (decided early when held out, memorised late).
"""

from __future__ import annotations

import numpy as np

from pdlib.difficulty import CORNERS, corner_distances
from pdlib.ensembles import Ensemble, ensemble_statistics
from pdlib.intervals import bootstrap_interval
from pdlib.margins import output_margin

__all__ = [
    "suspicion_score",
    "example_scores",
    "METHODS",
    "method_scores",
    "auroc",
    "average_precision",
    "precision_at_k",
    "detection_table",
    "rank_methods",
    "fig_detection",
    "summary_table",
    "top_suspects",
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
    (training means), ``difficulty type`` (nearest corner), ``distance to corner``, ``suspicion``,
    ``held out``, ``trained on``; ``.attrs`` holds the out-of-fold ``probabilities`` (n, n_classes)
    among others.
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
    return table


#: Label-error rankings compared in the book; higher score = more likely mislabeled.
METHODS = (
    "pdlib suspicion score",
    "PD plane: 'looks like a different class' corner",
    "consensus ≠ label, ranked by C*",
    "consistency Ĉ",
    "cleanlab label quality",
    "AUM",
    "training loss",
)


def method_scores(table) -> dict:
    """Each method's score for every example of :func:`example_scores` (NaN-free; higher = more
    suspicious)."""
    import warnings

    with (
        warnings.catch_warnings()
    ):  # cleanlab imports tqdm.auto, which warns in a kernel without ipywidgets
        warnings.filterwarnings("ignore", message="IProgress not found")
        from cleanlab.rank import get_label_quality_scores

    labels, consensus = table.attrs["labels"], table.attrs["consensus"]
    probabilities = np.nan_to_num(
        table.attrs["probabilities"], nan=1.0 / table.attrs["probabilities"].shape[1]
    )
    max_depth = table.attrs["max_depth"]
    distances = corner_distances(
        table["PD_val"].to_numpy(), table["PD_train"].to_numpy(), max_depth
    )
    corner = -distances[list(CORNERS).index("looks like a different class")]
    cstar = table["C*"].to_numpy()
    scores = {
        METHODS[0]: table["suspicion"].to_numpy(),
        METHODS[1]: corner,
        METHODS[2]: np.where(consensus != labels, cstar, -cstar),
        METHODS[3]: 1 - table["Ĉ"].to_numpy(),
        METHODS[4]: 1 - get_label_quality_scores(labels, probabilities),
        METHODS[5]: -table["AUM"].to_numpy(),
        METHODS[6]: table["training loss"].to_numpy(),
    }
    return {name: np.nan_to_num(score, nan=-np.inf) for name, score in scores.items()}


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
    ends = np.r_[
        np.flatnonzero(np.diff(score)), len(score) - 1
    ]  # last index of each distinct score
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
    intervals.

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
            low, high = bootstrap_interval(measure, finite, truth, n_boot=n_boot, seed=seed)
            row |= {name: measure(finite, truth), f"{name} low": low, f"{name} high": high}
        rows.append(row)
    table = pd.DataFrame(rows).set_index("method")
    table.attrs["k"] = k
    return table


def rank_methods(table, reference: str = METHODS[0], measure: str = "AUROC") -> tuple[str, str]:
    """Where ``reference`` stands among the methods of :func:`detection_table` on ``measure``:
    ``(standing, reason)``.

    "best": its 95 % interval lies above every other's; "behind": some interval lies above its own;
    else "tied".

    >>> import pandas as pd
    >>> t = pd.DataFrame({"AUROC": [0.9, 0.7], "AUROC low": [0.85, 0.6], "AUROC high": [0.95, 0.8]},
    ...                  index=["a", "b"])
    >>> rank_methods(t, "a")[0], rank_methods(t, "b")[0]
    ('best', 'behind')
    """
    mine = table.loc[reference]
    others = table.drop(index=reference)
    above = others[others[f"{measure} low"] > mine[f"{measure} high"]]
    if len(above):
        best = above[measure].idxmax()
        return "behind", (
            f"{reference} {measure} {mine[measure]:.3f} is below {best} "
            f"{above.loc[best, measure]:.3f} (95 % intervals apart)"
        )
    if (mine[f"{measure} low"] > others[f"{measure} high"]).all():
        return (
            "best",
            f"{reference} {measure} {mine[measure]:.3f} is above every other method (95 % "
            "intervals apart)",
        )
    tied = others[others[f"{measure} high"] >= mine[f"{measure} low"]].index.tolist()
    return (
        "tied",
        f"{reference} {measure} {mine[measure]:.3f}; intervals overlap with {', '.join(tied)}",
    )


def fig_detection(
    tables: dict, *, footer: str, measures=("AUROC", "average precision", "precision at k")
):
    """One panel per measure: each method's value and 95 % interval, one colour per noise
    setting."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    from pdlib.plotting import WIDTH, figure_legend, finish_figure

    settings = list(tables)
    fig, axes = plt.subplots(
        1, len(measures), figsize=(WIDTH, 0.42 * len(METHODS) + 1.6), sharey=True
    )
    colours = dict(zip(settings, sns.color_palette("deep", len(settings)), strict=False))
    rows = np.arange(len(METHODS))
    for ax, measure in zip(axes, measures, strict=False):
        for offset, setting in zip(np.linspace(-0.3, 0.3, len(settings)), settings, strict=False):
            t = tables[setting].reindex(list(METHODS))
            error = np.vstack([t[measure] - t[f"{measure} low"], t[f"{measure} high"] - t[measure]])
            ax.errorbar(
                t[measure],
                rows + offset,
                xerr=np.clip(error, 0, None),
                fmt="o",
                ms=3,
                lw=1,
                color=colours[setting],
                label=setting,
            )
        ax.set(xlabel=measure, xlim=(0, 1.02), yticks=rows)
    axes[0].set_yticklabels(
        [m.replace(": ", ":\n").replace(", ranked", ",\nranked") for m in METHODS], fontsize=7
    )
    axes[0].invert_yaxis()
    fig.tight_layout(rect=(0, 0, 1, 0.9))
    figure_legend(fig, axes[0], ncol=len(settings))
    return finish_figure(fig, footer, "label_error_detection")


def summary_table(tables: dict, measures=("AUROC", "average precision", "precision at k")):
    """The detection tables of several settings as one table of "value [low, high]" strings."""
    import pandas as pd

    rows = [
        {
            "setting": setting,
            "method": method,
            "k": table.attrs["k"],
            **{
                m: f"{row[m]:.3f} [{row[f'{m} low']:.3f}, {row[f'{m} high']:.3f}]" for m in measures
            },
        }
        for setting, table in tables.items()
        for method, row in table.iterrows()
    ]
    return pd.DataFrame(rows)


def top_suspects(table, n: int) -> np.ndarray:
    """Pool indices of the ``n`` examples of highest suspicion (ties by index), most suspicious
    first."""
    score = table["suspicion"].fillna(-1.0).to_numpy()
    return np.lexsort((np.arange(len(score)), -score))[:n]
