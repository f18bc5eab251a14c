"""Which score ranks suspected label errors: the noise settings it is designed on and judged on,
the rule that chooses it, and where it stands against its peers.

Fixed in code before any evaluation run:

- :data:`DESIGN_SETTINGS`: the four settings on which the "Finding label errors" chapter designed
  and judged the old suspicion score (uniform and T-shirt/top ↔ shirt noise at 10 % and 30 %);
- :data:`EVALUATION_SETTINGS`: six settings no score was chosen on: other rates, other confusable
  pairs, asymmetric noise, and a second dataset;
- :data:`SELECTION_RULE`, which :func:`select_ranking` applies to the design settings to choose one
  of :data:`pdlib.labelnoise.CANDIDATES` (the audit's :data:`pdlib.labelnoise.RANKING`);
- :func:`peer_standing`: the chosen ranking against the best of its peers (cleanlab's
  self-confidence on the out-of-fold probabilities, and AUM), by a paired bootstrap over points.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pdlib.intervals import bootstrap_interval
from pdlib.labelnoise import (
    CANDIDATES,
    METHODS,
    PEERS,
    RANKING,
    auroc,
    average_precision,
    candidate_name,
    precision_at_k,
)

__all__ = [
    "NoiseSetting",
    "ORIGINAL",
    "DESIGN_SETTINGS",
    "EVALUATION_SETTINGS",
    "plan_key",
    "MEASURES",
    "SELECTION_RULE",
    "selection_table",
    "select_ranking",
    "standing",
    "paired_difference",
    "peer_standing",
    "standing_table",
    "settings_table",
    "Study",
    "study",
    "fig_detection",
    "summary_table",
]


@dataclass(frozen=True)
class NoiseSetting:
    """One way of corrupting a pool's labels (:func:`pdlib.sampling.corrupt_labels`).

    ``rate`` of the labels change: to any other class (uniform), within ``pair`` (each of its two
    classes loses ``rate`` of its images to the other), or to ``targets[c]`` for class ``c``
    (asymmetric).
    """

    name: str
    task: str = "fashion_mnist"  # a key of pdlib.experiments.TASKS
    rate: float = 0.0
    pair: tuple[int, ...] = ()
    targets: tuple[int, ...] = ()

    def noise(self) -> dict:
        """The keyword arguments of :func:`pdlib.experiments.ensemble` for this setting."""
        return {"label_noise": self.rate, "noise_pair": self.pair, "noise_targets": self.targets}

    def describe(self, class_names=None) -> str:
        """The noise in words, e.g. ``"20% uniform (to any other class)"``.

        >>> NoiseSetting("x", rate=0.25, pair=(2, 4)).describe(["a", "b", "c", "d", "e"])
        '25% of each class, c ↔ e'
        """
        name = (lambda c: class_names[c]) if class_names is not None else str
        if self.rate == 0:
            return "none"
        if self.pair:
            return f"{self.rate:.0%} of each class, {name(self.pair[0])} ↔ {name(self.pair[1])}"
        if self.targets:
            return f"{self.rate:.0%} of each class c to class c + 1 (mod {len(self.targets)})"
        return f"{self.rate:.0%} uniform (to any other class)"


ORIGINAL = NoiseSetting("original labels")
#: The chapter's settings since it was written: the old suspicion score was designed on them.
DESIGN_SETTINGS = (
    NoiseSetting("uniform 10%", rate=0.1),
    NoiseSetting("T-shirt/top ↔ shirt 10%", rate=0.1, pair=(0, 6)),
    NoiseSetting("uniform 30%", rate=0.3),
    NoiseSetting("T-shirt/top ↔ shirt 30%", rate=0.3, pair=(0, 6)),
)
#: Settings that no score was chosen on (Fashion-MNIST classes: 2 pullover, 4 coat, 5 sandal,
#: 7 sneaker); asymmetric noise is the "pair flipping" of Han et al. (2018), class c -> c + 1.
EVALUATION_SETTINGS = (
    NoiseSetting("uniform 5%", rate=0.05),
    NoiseSetting("uniform 20%", rate=0.2),
    NoiseSetting("pullover ↔ coat 25%", rate=0.25, pair=(2, 4)),
    NoiseSetting("sandal ↔ sneaker 25%", rate=0.25, pair=(5, 7)),
    NoiseSetting("asymmetric 20% (c → c + 1)", rate=0.2, targets=(1, 2, 3, 4, 5, 6, 7, 8, 9, 0)),
    NoiseSetting("digits, uniform 20%", task="digits", rate=0.2),
)


def plan_key(setting: NoiseSetting) -> str:
    """The plan key (:data:`pdlib.profiles.FIGURES`) of a setting's ensemble: evaluation settings
    have their own set-up (at the laptop profile, a smaller pool)."""
    return "label_errors_evaluation" if setting in EVALUATION_SETTINGS else "label_errors"


MEASURES = ("AUROC", "average precision", "precision at k")
_FUNCTIONS = dict(zip(MEASURES, (auroc, average_precision, precision_at_k), strict=True))

SELECTION_RULE = (
    "The ranking score is the candidate with the highest criterion: the mean over the four design "
    "settings of the mean of its AUROC, average precision and precision at k. Criteria equal to 3 "
    "decimals go to the candidate with fewer signals, then to the one listed first."
)


def selection_table(detections: dict):
    """Every candidate's criterion (:data:`SELECTION_RULE`), best first: a DataFrame indexed by
    candidate name, one column per design setting (the mean of :data:`MEASURES` there),
    ``criterion`` and ``signals`` (how many).

    ``detections``: setting name -> :func:`pdlib.labelnoise.detection_table` of
    :func:`pdlib.labelnoise.candidate_scores`.
    """
    import pandas as pd

    names = [candidate_name(c) for c in CANDIDATES]
    table = pd.DataFrame(
        {setting: t.loc[names, list(MEASURES)].mean(axis=1) for setting, t in detections.items()}
    )
    table["criterion"] = table.mean(axis=1)
    table["signals"] = [len(c) for c in CANDIDATES]
    table["listed"] = np.arange(len(CANDIDATES))
    table["rounded"] = -table["criterion"].round(3)
    table = table.sort_values(["rounded", "signals", "listed"]).drop(columns=["rounded", "listed"])
    table.index.name = "candidate"
    return table


def select_ranking(detections: dict) -> tuple[str, ...]:
    """The signals of the candidate :data:`SELECTION_RULE` chooses (see :func:`selection_table`)."""
    chosen = selection_table(detections).index[0]
    return next(c for c in CANDIDATES if candidate_name(c) == chosen)


def standing(low: float, high: float) -> str:
    """ "ahead" if a difference's 95 % interval lies above 0, "behind" if below, else "level".

    >>> standing(0.01, 0.05), standing(-0.05, -0.01), standing(-0.01, 0.02), standing(0.0, 0.1)
    ('ahead', 'behind', 'level', 'level')
    """
    return "ahead" if low > 0 else "behind" if high < 0 else "level"


def paired_difference(score, other, truth, measure: str, *, n_boot: int = 1000, seed: int = 0):
    """``measure(score) - measure(other)`` on the same points, and its 95 % interval from
    resampling points (both scores resampled together): ``(difference, low, high)``."""
    function = _FUNCTIONS[measure]
    score, other, truth = (np.asarray(a) for a in (score, other, truth))

    def difference(a, b, t):
        return function(a, t) - function(b, t)

    low, high = bootstrap_interval(difference, score, other, truth, n_boot=n_boot, seed=seed)
    return difference(score, other, truth), low, high


def peer_standing(
    scores: dict,
    corrupted,
    *,
    method: str = METHODS[0],
    peers=PEERS,
    measures=("AUROC", "average precision"),
    n_boot: int = 1000,
    seed: int = 0,
):
    """Where ``method`` stands against the best of ``peers``, measure by measure.

    Parameters
    ----------
    scores : dict
        Method name -> (n,) score (:func:`pdlib.labelnoise.method_scores`).
    corrupted : array-like of bool, shape (n,)
    method : str
    peers : sequence of str
        The best peer on a measure is the one with the highest value on all points.
    measures : sequence of str
        From :data:`MEASURES`.

    Returns
    -------
    pandas.DataFrame, one row per measure: ``value``, ``best peer``, ``peer value``,
    ``difference``, ``low``, ``high`` (its paired 95 % interval) and ``standing``
    (:func:`standing`).
    """
    import pandas as pd

    truth = np.asarray(corrupted, dtype=bool)
    rows = []
    for measure in measures:
        values = {name: _FUNCTIONS[measure](scores[name], truth) for name in (method, *peers)}
        peer = max(peers, key=values.get)
        difference, low, high = paired_difference(
            scores[method], scores[peer], truth, measure, n_boot=n_boot, seed=seed
        )
        rows.append(
            {
                "measure": measure,
                "value": values[method],
                "best peer": peer,
                "peer value": values[peer],
                "difference": difference,
                "low": low,
                "high": high,
                "standing": standing(low, high),
            }
        )
    return pd.DataFrame(rows).set_index("measure")


def standing_table(standings: dict):
    """The :func:`peer_standing` tables of several settings as one table of display strings."""
    import pandas as pd

    return pd.DataFrame(
        [
            {
                "setting": setting,
                "measure": measure,
                "ranking score": f"{row['value']:.3f}",
                "best peer": f"{row['best peer']} {row['peer value']:.3f}",
                "difference [95 %]": (
                    f"{row['difference']:+.3f} [{row['low']:+.3f}, {row['high']:+.3f}]"
                ),
                "standing": row["standing"],
            }
            for setting, table in standings.items()
            for measure, row in table.iterrows()
        ]
    )


def settings_table(corrupted: dict):
    """The settings of the study, one row each: role, setting, dataset, noise and labels flipped.

    ``corrupted``: setting name -> (n,) bool, for :data:`ORIGINAL` and every design and evaluation
    setting (task names are pdlib.data dataset names).
    """
    import pandas as pd

    from pdlib.data import dataset_info

    roles = {ORIGINAL: "reference", **dict.fromkeys(DESIGN_SETTINGS, "design")}
    roles |= dict.fromkeys(EVALUATION_SETTINGS, "evaluation")
    return pd.DataFrame(
        [
            {
                "role": role,
                "setting": setting.name,
                "dataset": setting.task,
                "noise": setting.describe(dataset_info(setting.task).class_names),
                "flipped labels": (
                    f"{int(np.sum(corrupted[setting.name])):,} of {len(corrupted[setting.name]):,}"
                ),
            }
            for setting, role in roles.items()
        ]
    )


@dataclass(frozen=True)
class Study:
    """The chapter's design/evaluation study (:func:`study`); tables are pandas DataFrames."""

    detection: dict  # setting -> detection_table of METHODS (design and evaluation settings)
    selection: object  # selection_table of the design settings
    chosen: tuple  # the signals SELECTION_RULE chooses here
    standing: dict  # evaluation setting -> peer_standing against cleanlab and AUM
    against_aum: dict  # evaluation setting -> peer_standing against AUM alone
    control: dict  # evaluation setting -> peer_standing of a random ranking (never ahead)

    def numbers(self) -> dict:
        """The chapter's glued sentences: the choice, where the ranking is behind, what the
        PD-based signal adds to AUM, and the control."""

        def counts(standings):
            outcomes = [s for table in standings.values() for s in table["standing"]]
            return (
                ", ".join(
                    f"{word} in {outcomes.count(word)}" for word in ("ahead", "level", "behind")
                )
                + f" of {len(outcomes)}"
            )

        behind = [
            f"{setting} ({', '.join(table.index[table['standing'] == 'behind'])})"
            for setting, table in self.standing.items()
            if (table["standing"] == "behind").any()
        ]
        below = [
            f"{setting} {measure} ({row['difference']:+.3f}, level)"
            for setting, table in self.standing.items()
            for measure, row in table.iterrows()
            if row["difference"] < 0 and row["standing"] != "behind"
        ]
        never_ahead = all((t["standing"] != "ahead").all() for t in self.control.values())
        return {
            "chosen_here": candidate_name(self.chosen),
            "audit_ranking": candidate_name(RANKING),
            "same_choice": "the same" if tuple(self.chosen) == tuple(RANKING) else "not the same",
            "criterion": float(self.selection["criterion"].iloc[0]),
            "standing_counts": counts(self.standing),
            "behind_settings": "; ".join(behind) or "none",
            "below_not_behind": "; ".join(below) or "none",
            "against_aum_counts": counts(self.against_aum),
            "control_counts": counts(self.control),
            "control_never_ahead": never_ahead,
        }


def study(tables: dict, corrupted: dict, *, n_boot: int = 200, n_boot_paired: int = 1000):
    """The design/evaluation study on scored ensembles.

    Parameters
    ----------
    tables : dict
        Setting name -> :func:`pdlib.labelnoise.example_scores` of its ensemble, for every
        :data:`DESIGN_SETTINGS` and :data:`EVALUATION_SETTINGS` entry.
    corrupted : dict
        Setting name -> (n,) bool, the flipped labels.
    n_boot, n_boot_paired : int
        Resamples of the detection tables' intervals and of the paired differences.
    """
    from pdlib.labelnoise import candidate_scores, detection_table, method_scores, signal_scores

    design = [s.name for s in DESIGN_SETTINGS]
    evaluation = [s.name for s in EVALUATION_SETTINGS]
    signals = {name: signal_scores(tables[name]) for name in (*design, *evaluation)}
    scores = {name: method_scores(tables[name], signals[name]) for name in signals}
    candidates = {
        name: detection_table(
            candidate_scores(tables[name], signals[name]), corrupted[name], n_boot=0
        )
        for name in design
    }
    rng = np.random.default_rng(0)
    control = {
        name: peer_standing(
            {**scores[name], "random": rng.random(len(corrupted[name]))},
            corrupted[name],
            method="random",
            n_boot=n_boot_paired,
        )
        for name in evaluation
    }
    return Study(
        detection={
            name: detection_table(score, corrupted[name], n_boot=n_boot)
            for name, score in scores.items()
        },
        selection=selection_table(candidates),
        chosen=select_ranking(candidates),
        standing={
            name: peer_standing(scores[name], corrupted[name], n_boot=n_boot_paired)
            for name in evaluation
        },
        against_aum={
            name: peer_standing(scores[name], corrupted[name], peers=("AUM",), n_boot=n_boot_paired)
            for name in evaluation
        },
        control=control,
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
