"""A tested verdict function for each claim of the paper, returning one typed :class:`Judgement`.

Each claim is judged by a few tests, each "pass", "fail" or "undecided" (the 95 % interval
straddles the criterion, the paper's own number fixed in advance); :func:`verdict` combines them
into one of :data:`VERDICTS`. A size is compared with the paper's by a two-sided test with an
undecided zone (:func:`size_test`); a criterion that compares with the paper must be reachable
from our baseline (the k-NN fix is judged by the relative error reduction, which can reach the
paper's 97 % from any accuracy of the network). Every function is also run on a negative control
(the chapters, ``book/methods.md``), on which it must not read "reproduced" or "partly".
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "VERDICTS",
    "Test",
    "Judgement",
    "verdict",
    "interval_test",
    "size_test",
    "correlation_test",
    "across_datasets",
    "judge_ordering",
    "judge_seed_consistency",
    "judge_correlations",
    "judge_consensus_bound",
    "judge_accuracy_vs_depth",
    "judge_inference_curve",
    "judge_zero_hinge",
    "judge_difficulty_types",
    "judge_knn_fix",
    "MIN_APPEARANCES_FOR_ENVELOPE",
    "PAPER_KNN_ERROR_REDUCTION",
]

VERDICTS = ("reproduced", "partly reproduced", "not reproduced", "inconclusive", "not tested")
PASS, FAIL, UNDECIDED = "pass", "fail", "undecided"
#: Fig. 4 (left)'s 2 % envelope of C* needs C* to resolve steps of 0.1: a median of 10 appearances.
MIN_APPEARANCES_FOR_ENVELOPE = 10
#: The paper's k-NN fix: the network is right on 25 % of the group, the layer-4 probe on 98 %.
PAPER_KNN_ERROR_REDUCTION = 1 - (1 - 0.98) / (1 - 0.25)


@dataclass(frozen=True)
class Test:
    """One criterion's outcome: ``status`` is "pass", "fail" or "undecided"; ``text`` says why in
    numbers."""

    status: str
    text: str


@dataclass(frozen=True)
class Judgement:
    """A claim's verdict (one of :data:`VERDICTS`), its ``reason`` (every test and its outcome),
    the ``measured`` text the discussion table shows and the ``values`` behind it."""

    verdict: str
    reason: str
    measured: str
    values: dict = field(default_factory=dict)
    statuses: tuple[str, ...] = ()  # the outcomes of its tests (:meth:`of`), for across_datasets

    def __post_init__(self):
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {', '.join(VERDICTS)}; got {self.verdict!r}")

    def _repr_markdown_(self) -> str:
        return f"**{self.verdict}**: {self.reason}"

    @classmethod
    def of(cls, tests, measured: str, values: dict | None = None) -> Judgement:
        """The verdict of ``tests`` with their outcomes as the reason."""
        tests = list(tests)
        reason = "; ".join(f"{t.text} ({t.status})" for t in tests) or "no setting was run"
        statuses = tuple(sorted({t.status for t in tests}))
        return cls(verdict(tests), reason, measured, values or {}, statuses)


def verdict(tests) -> str:
    """All pass: reproduced; a fail: partly (another passes) or not reproduced; else undecided:
    inconclusive.

    >>> verdict([Test("pass", ""), Test("fail", "")])
    'partly reproduced'
    >>> verdict([Test("pass", ""), Test("undecided", "")])
    'inconclusive'
    """
    statuses = {test.status for test in tests}
    if not statuses:
        return "not tested"
    if FAIL in statuses:  # a criterion missed for certain: never merely inconclusive
        return "partly reproduced" if PASS in statuses else "not reproduced"
    return "reproduced" if statuses == {PASS} else "inconclusive"


def _test(passed: bool, failed: bool, text: str) -> Test:
    """Pass, or fail, or (neither) undecided."""
    return Test(PASS if passed else FAIL if failed else UNDECIDED, text)


def _interval(value: float, low: float, high: float, digits: str = ".2f") -> str:
    # Round-off of a bootstrap quantile (-4.9e-17) reads as zero.
    low, high = (0.0 if abs(x) < 1e-12 else x for x in (low, high))
    return f"{value:{digits}} [{low:{digits}}, {high:{digits}}]"


def interval_test(
    low: float, high: float, threshold: float, what: str, *, above: bool = True
) -> Test:
    """Pass when the whole interval is beyond ``threshold`` (above or below), fail when it is all
    short of it; undecided when it straddles (or touches) it, or is undefined.

    >>> interval_test(0.2, 0.4, 0.1, "gain").status, interval_test(0.0, 0.4, 0.1, "gain").status
    ('pass', 'undecided')
    """
    beyond, short = (
        (low > threshold, high < threshold) if above else (high < threshold, low > threshold)
    )
    side = ">" if above else "<"
    low, high = (0.0 if abs(x) < 1e-12 else x for x in (low, high))
    text = f"{what} 95 % CI [{low:.3g}, {high:.3g}] vs {side} {threshold:.3g}"
    return _test(beyond, short, text)


def size_test(low: float, high: float, paper: float, tolerance: float, what: str) -> Test:
    """Two-sided: pass when the interval lies within ``paper ± tolerance``, fail when it lies wholly
    outside, undecided when it crosses an edge of the zone.

    >>> [size_test(lo, hi, -0.7, 0.1, "r").status for lo, hi in [(-0.75, -0.65), (-0.55, -0.45),
    ...                                                          (-0.95, -0.85), (-0.65, -0.55)]]
    ['pass', 'fail', 'fail', 'undecided']
    """
    zone_low, zone_high = paper - tolerance, paper + tolerance
    text = f"{what} 95 % CI [{low:.2f}, {high:.2f}] vs the paper's {paper:.2f} ± {tolerance:.2f}"
    slack = 1e-9  # -0.7 - 0.1 is -0.7999999999999999 in floating point: the boundary is inside
    inside = zone_low - slack <= low and high <= zone_high + slack
    return _test(inside, high < zone_low - slack or low > zone_high + slack, text)


def correlation_test(r: float, low: float, high: float, paper: float, what: str) -> list[Test]:
    """A sign test (interval excludes 0 on the paper's side) and a two-sided size test (within 0.1
    of ``paper``, :func:`size_test`).

    >>> [t.status for t in correlation_test(-0.68, -0.72, -0.64, -0.70, "r")]
    ['pass', 'pass']
    >>> [t.status for t in correlation_test(-0.3, -0.4, -0.2, -0.70, "r")]
    ['pass', 'fail']
    """
    if math.isnan(r) or math.isnan(low) or math.isnan(high):
        return [Test(UNDECIDED, f"{what}: no correlation could be computed")]
    text = f"{what} r = {_interval(r, low, high)}"
    sign = 1.0 if paper > 0 else -1.0
    weak, strong = sorted((sign * low, sign * high))
    return [
        _test(weak > 0, strong < 0, f"{text}, sign of the paper's"),
        size_test(low, high, paper, 0.1, f"{what} r"),
    ]


#: The test outcomes a verdict implies where a judgement does not carry its own.
_IMPLIED = {
    "reproduced": (PASS,),
    "partly reproduced": (PASS, FAIL),
    "not reproduced": (FAIL,),
    "inconclusive": (UNDECIDED,),
}


def across_datasets(judgements: dict) -> Judgement:
    """One claim judged on several datasets, ``judgements`` {task: Judgement}, as one verdict: the
    rule of :func:`verdict` applied to the tests of every dataset together. So the claim reads
    reproduced only where every dataset reproduces it; partly where one dataset's test fails and
    another's passes; not reproduced where tests fail and none passes; inconclusive where none
    fails and one is undecided. Datasets not tested are left out.

    >>> r, n = Judgement("reproduced", "", "x"), Judgement("not reproduced", "", "y")
    >>> [across_datasets(j).verdict for j in ({"a": r, "b": r}, {"a": r, "b": n}, {"a": n, "b": n})]
    ['reproduced', 'partly reproduced', 'not reproduced']
    """
    tested = {task: j for task, j in judgements.items() if j.verdict != "not tested"}
    if len(tested) <= 1:
        judgement = next(iter(tested.values()), None) or next(iter(judgements.values()))
        return Judgement(
            judgement.verdict,
            judgement.reason,
            judgement.measured,
            judgement.values | {"per_dataset": _per_dataset(judgements)},
            judgement.statuses,
        )
    statuses = {status for j in tested.values() for status in (j.statuses or _IMPLIED[j.verdict])}
    return Judgement(
        verdict(Test(status, "") for status in statuses),
        "; ".join(f"{task}: {j.verdict} ({j.reason})" for task, j in judgements.items()),
        "; ".join(
            j.measured if j.measured.startswith(f"{task}:") else f"{task}: {j.measured}"
            for task, j in judgements.items()
        ),
        {"per_dataset": _per_dataset(judgements)},
        tuple(sorted(statuses)),
    )


def _per_dataset(judgements: dict) -> dict:
    return {task: {"verdict": j.verdict, "measured": j.measured} for task, j in judgements.items()}


def judge_ordering(means: dict, expected: tuple) -> Judgement:
    """Mean PD per dataset, ``means`` {task: (mean, low, high)}, in the ``expected`` order, each
    adjacent pair's intervals apart; not tested if one is missing."""
    ranked = sorted((name for name in expected if name in means), key=lambda t: means[t][0])
    measured = " < ".join(f"{name} {means[name][0]:.2f}" for name in ranked) or "—"
    missing = [name for name in expected if name not in means]
    if missing:
        return Judgement(
            "not tested",
            f"not run here: {', '.join(missing)} (not on disk; python -m pdlib download fetches "
            "them)",
            measured,
        )
    tests = [
        _test(
            means[easier][2] < means[harder][1],
            means[harder][2] < means[easier][1],
            f"{easier} {_interval(*means[easier])} < {harder} {_interval(*means[harder])}",
        )
        for easier, harder in itertools.pairwise(expected)
    ]
    return Judgement.of(tests, measured, {name: list(means[name]) for name in expected})


def judge_seed_consistency(agreement_by_task: dict) -> Judgement:
    """Fig. 2 left from :func:`pdlib.analysis.seed_agreement` per task: seed r >= 0.5, conv pair
    above the MLP's.

    Intervals are Fisher-z over the points (one level: the networks are what is compared); not
    tested without all three architectures, two seeds each.
    """
    from pdlib.intervals import pearson_interval

    tests, measured = [], []
    for task, agreement in agreement_by_task.items():
        names, matrix, n = agreement["names"], agreement["train"], agreement["n_train"]
        if sorted(names) != ["mlp", "resnet18", "vgg16"] or np.isnan(np.diag(matrix)).any():
            return Judgement(
                "not tested",
                f"{task}: needs mlp, vgg16 and resnet18 with two seeds each, got "
                f"{', '.join(names)}",
                "—",
            )
        r = {(a, b): matrix[names.index(a), names.index(b)] for a in names for b in names}
        ci = {pair: pearson_interval(value, n) for pair, value in r.items()}
        for arch in names:
            tests.append(
                interval_test(*ci[arch, arch], 0.5, f"{task} {arch} seeds r = {r[arch, arch]:.2f}")
            )
        conv, mlp = ci["resnet18", "vgg16"], [ci["resnet18", "mlp"], ci["vgg16", "mlp"]]
        tests.append(
            _test(
                all(conv[0] > high for _, high in mlp),
                any(conv[1] < low for low, _ in mlp),
                f"{task} r(resnet18, vgg16) = {r['resnet18', 'vgg16']:.2f} vs with the MLP "
                f"{r['resnet18', 'mlp']:.2f}, {r['vgg16', 'mlp']:.2f}",
            )
        )
        measured.append(f"{task}: seeds " + ", ".join(f"{a} {r[a, a]:.2f}" for a in names))
    return Judgement.of(tests, "; ".join(measured))


def judge_correlations(readings: dict, paper: dict) -> Judgement:
    """Correlation claims (iteration learned, margins): ``readings`` name -> ``(r, low, high)``,
    ``paper`` name -> the paper's r; names without a paper value are not judged."""
    judged = {name: value for name, value in readings.items() if name in paper}
    tests = [
        test
        for name, (r, low, high, *_) in judged.items()
        for test in correlation_test(r, low, high, paper[name], name)
    ]
    measured = "; ".join(
        f"{name}: r = {_interval(r, low, high)} (paper {paper[name]:.2f})"
        for name, (r, low, high, *_) in judged.items()
    )
    if not tests:
        return Judgement("not tested", "no setting of the paper was run", "—")
    return Judgement.of(tests, measured, {k: list(v) for k, v in judged.items()})


def judge_consensus_bound(bounds: dict) -> Judgement:
    """Fig. 4: PD gives a falling bound on C*, from :func:`pdlib.analysis.consensus_bounds`.

    ``mean_curve``: the line through the mean C* per PD against PD / max (Fig. 4 middle: PD from
    one network, C* from the others, every rotation); ``envelope``: the 2 % lower envelope over the
    ensemble (Fig. 4 left), judged only where the median point has
    :data:`MIN_APPEARANCES_FOR_ENVELOPE` appearances (below, C* is too coarse: undecided). Each
    slope must be below -0.1, with its 95 % interval.
    """
    curve, envelope = bounds["mean_curve"], bounds["envelope"]
    appearances = bounds["median_appearances"]
    curve_slope = (curve["slope"], curve["slope_low"], curve["slope_high"])
    envelope_slope = (envelope["slope"], envelope["slope_low"], envelope["slope_high"])
    what = f"mean C* per PD (one network vs the others) slope {curve['slope']:+.2f}"
    tests = [interval_test(*curve_slope[1:], -0.1, what, above=False)]
    if appearances >= MIN_APPEARANCES_FOR_ENVELOPE:
        what = f"ensemble envelope slope {envelope['slope']:+.2f}"
        tests.append(interval_test(*envelope_slope[1:], -0.1, what, above=False))
    else:
        tests.append(
            Test(
                UNDECIDED,
                f"ensemble envelope slope {envelope['slope']:+.2f} not judged: C* rests on a "
                f"median of {appearances:.0f} appearances per point, below the "
                f"{MIN_APPEARANCES_FOR_ENVELOPE} its 2 % quantile needs",
            )
        )
    measured = (
        f"slope of mean C* per PD/max {_interval(*curve_slope)}; ensemble envelope "
        f"{_interval(*envelope_slope)} (median {appearances:.0f} appearances)"
    )
    values = {"mean_curve": list(curve_slope), "envelope": list(envelope_slope)}
    return Judgement.of(tests, measured, values | {"median_appearances": appearances})


def judge_accuracy_vs_depth(gain: dict) -> Judgement:
    """Fig. 4 right from :func:`pdlib.analysis.accuracy_gain`: held-out accuracy in the first third
    of PD exceeds the last third by at least 10 points (``gain``, ``gain_low``, ``gain_high``,
    fractions); the gain without undecided appearances is reported beside it."""
    what = f"accuracy gain {100 * gain['gain']:.1f} points, as a fraction"
    test = interval_test(gain["gain_low"], gain["gain_high"], 0.10, what)
    decided = gain["gain_decided"]
    measured = (
        f"{100 * gain['acc_low']:.0f} % at low PD vs {100 * gain['acc_high']:.0f} % at high PD; "
        f"without the {100 * gain['undecided']:.1f} % undecided appearances the gain is "
        f"{100 * decided[0]:.0f} points [{100 * decided[1]:.0f}, {100 * decided[2]:.0f}]"
    )
    values = {"gain": [gain["gain"], gain["gain_low"], gain["gain_high"]]}
    return Judgement.of([test], measured, values | {"gain_decided": list(decided)})


def judge_inference_curve(features: dict) -> Judgement:
    """``features``: name -> (present in both curves for how many seeds, number of seeds)."""
    tests = [
        _test(n == total, n == 0, f"{name}: {n} of {total} seeds")
        for name, (n, total) in features.items()
    ]
    measured = ", ".join(f"{name} {n}/{total}" for name, (n, total) in features.items())
    return Judgement.of(tests, measured, {"features": {k: list(v) for k, v in features.items()}})


def judge_zero_hinge(hinge: dict) -> Judgement:
    """Fig. 6 right from :func:`pdlib.analysis.hinge_summary`; each ``(value, low, high)``:
    ``margin_ratio`` CE / 0-Hinge mean margin (>= 1000), ``pd_gap`` 0-Hinge minus CE mean PD over
    points with a depth under both (> 0), ``gain_excess`` 0-Hinge's hidden-probe gain over the
    untrained network minus a quarter of CE's (< 0)."""
    margin_ratio, pd_gap, gain_excess = (
        hinge[key] for key in ("margin_ratio", "pd_gap", "gain_excess")
    )
    tests = [
        interval_test(margin_ratio[1], margin_ratio[2], 1e3, f"margin ratio {margin_ratio[0]:.3g}"),
        interval_test(pd_gap[1], pd_gap[2], 0.0, f"PD gap (decided points) {pd_gap[0]:+.2f}"),
        interval_test(
            gain_excess[1],
            gain_excess[2],
            0.0,
            f"0-Hinge gain minus a quarter of CE's {gain_excess[0]:+.3f}",
            above=False,
        ),
    ]
    every = hinge["pd_gap_all"]
    measured = (
        f"CE / 0-Hinge margin {margin_ratio[0]:.3g}; PD gap {_interval(*pd_gap)} over points "
        f"with a depth under both ({_interval(*every)} with the {100 * hinge['softmax_only']:.1f} "
        f"% undecided 0-Hinge points at the last layer); hidden-probe gain excess "
        f"{_interval(*gain_excess, digits='+.3f')}"
    )
    values = {key: list(hinge[key]) for key in ("margin_ratio", "pd_gap", "pd_gap_all")}
    return Judgement.of(tests, measured, values | {"gain_excess": list(gain_excess)})


def judge_difficulty_types(corners, unless: dict) -> Judgement:
    """The four corners, from :func:`pdlib.difficulty.corner_table` (``corners``, one row per
    corner with ``C*``, ``C* low``, ``C* high``, ``points``, ``consensus ≠ label``) and
    :func:`pdlib.difficulty.paired_comparison` of the middle probe against the softmax probe on
    "ambiguous unless the label is given" (``unless``).

    Tests: easy has the highest C*; most "looks like a different class" points have consensus !=
    label (Wilson interval over points); the middle probe beats the softmax probe on "unless"
    (paired, points resampled); "ambiguous" has a lower C* than easy and "different class".
    """
    from pdlib.intervals import wilson_interval

    cstar = {name: (row["C*"], row["C* low"], row["C* high"]) for name, row in corners.iterrows()}
    easy, different, unless_cstar, ambiguous = (
        cstar[c]
        for c in (
            "easy",
            "looks like a different class",
            "ambiguous unless the label is given",
            "ambiguous",
        )
    )
    others = [different, unless_cstar, ambiguous]
    differs = (
        int(corners.loc["looks like a different class", "consensus ≠ label"]),
        int(corners.loc["looks like a different class", "points"]),
    )
    low, high = wilson_interval(*differs)  # over points: one consensus per point
    gain = unless["gain"]
    tests = [
        _test(
            all(easy[1] > o[2] for o in others),
            any(easy[2] < o[1] for o in others),
            f"C* easy {_interval(*easy)} vs the others",
        ),
        interval_test(
            low, high, 0.5, f"'different class' consensus != label {differs[0]}/{differs[1]}"
        ),
        interval_test(
            gain[1],
            gain[2],
            0.0,
            f"'unless label' middle minus softmax probe accuracy {gain[0]:+.2f}",
        ),
        _test(
            ambiguous[2] < min(easy[1], different[1]),
            ambiguous[1] > max(easy[2], different[2]),
            f"C* ambiguous {_interval(*ambiguous)} below easy and 'different class'",
        ),
    ]
    short = ("easy", "different", "unless", "ambiguous")
    measured = "C*: " + ", ".join(
        f"{name} {value[0]:.2f}" for name, value in zip(short, cstar.values(), strict=False)
    )
    measured += f"; middle minus softmax probe on 'unless' {100 * gain[0]:+.0f} points"
    values = {"cstar": {k: list(v) for k, v in cstar.items()}, "differs": list(differs)}
    return Judgement.of(tests, measured, values | {"middle_gain": list(gain)})


def judge_knn_fix(comparison: dict, pool: dict) -> Judgement:
    """The k-NN fix from :func:`pdlib.difficulty.paired_comparison` of the middle probe against the
    network, on models that did not choose the group: ``comparison`` on the group, ``pool`` on
    every point those models held out. ``error_reduction`` ``(value, low, high)`` is the fraction
    of the network's errors the probe removes (paired on the same appearances, points resampled).

    Tests: the probe removes more of the errors on the group than on the pool (intervals apart: a
    probe that is simply better than an underfit network fixes any group), and at least half the
    paper's :data:`PAPER_KNN_ERROR_REDUCTION` (97 %), a share any baseline accuracy can reach.

    >>> pool = {"error_reduction": (-0.5, -0.6, -0.4)}
    >>> judge_knn_fix({"error_reduction": (0.95, 0.9, 0.98), "baseline_accuracy": 0.9,
    ...                "accuracy": 0.995, "trials": 1000}, pool).verdict
    'reproduced'
    """
    reduction, reference = comparison["error_reduction"], pool["error_reduction"]
    half = PAPER_KNN_ERROR_REDUCTION / 2
    what = f"error reduction {100 * reduction[0]:.0f} %"
    tests = [
        _test(
            reduction[1] > reference[2],
            reduction[2] < reference[1],
            f"{what} {_interval(*reduction)} on the group vs {_interval(*reference)} on every "
            "held-out point",
        ),
        interval_test(reduction[1], reduction[2], half, what),
    ]
    measured = (
        f"network {100 * comparison['baseline_accuracy']:.1f} % vs probe "
        f"{100 * comparison['accuracy']:.1f} % on {comparison['trials']} appearances: "
        f"{100 * reduction[0]:.0f} % of the errors removed [{100 * reduction[1]:.0f}, "
        f"{100 * reduction[2]:.0f}] (paper {100 * PAPER_KNN_ERROR_REDUCTION:.0f} %; every held-out "
        f"point {100 * reference[0]:.0f} %)"
    )
    values = {key: comparison[key] for key in ("baseline_accuracy", "accuracy", "trials")}
    values |= {"error_reduction": list(reduction), "pool_error_reduction": list(reference)}
    return Judgement.of(tests, measured, values)
