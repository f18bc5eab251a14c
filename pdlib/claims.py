"""The paper's claims, a tested verdict function for each, and the records the discussion reads.

Each claim is judged by a few tests (pass, fail, or undecided when the 95 % interval straddles
the criterion, the paper's own number fixed in advance); :func:`verdict` combines them into one of
:data:`VERDICTS`. Chapters call their ``judge_*`` function and :func:`record`; the discussion reads
the records with :func:`claims_table`.
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pdlib.cache import cache_root, write_atomically

__all__ = [
    "Claim",
    "CLAIMS",
    "VERDICTS",
    "Test",
    "verdict",
    "correlation_test",
    "interval_test",
    "judge_ordering",
    "judge_seed_consistency",
    "judge_correlations",
    "judge_consensus_bound",
    "judge_accuracy_vs_depth",
    "judge_inference_curve",
    "judge_zero_hinge",
    "judge_difficulty_types",
    "judge_knn_fix",
    "record",
    "load",
    "claims_table",
    "show_table",
]

VERDICTS = ("reproduced", "partly reproduced", "not reproduced", "inconclusive", "not tested")
PASS, FAIL, UNDECIDED = "pass", "fail", "undecided"


@dataclass(frozen=True)
class Claim:
    """One claim of the paper, its criterion and the chapter that measures it."""

    key: str
    statement: str  # the paper's claim, in one sentence
    paper: str  # the paper's number(s)
    criterion: str  # how the verdict is decided, fixed before the data
    chapter: str  # the chapter (file name) that measures it


CLAIMS = (
    Claim(
        "depth_ordering",
        "Mean PD orders the datasets: Fashion-MNIST < SVHN < CIFAR10 < CIFAR100",
        "ResNet18, training split (Fig. 1 right)",
        "each adjacent pair in the paper's order, separated by 95 % bootstrap intervals; not "
        "tested unless all four datasets ran",
        "section2_prediction_depth",
    ),
    Claim(
        "seed_consistency",
        "PD agrees across seeds, and more between ResNet18 and VGG16 than with the MLP",
        "qualitative (Fig. 2 left)",
        "every architecture's seed-to-seed r >= 0.5, and r(ResNet18, VGG16) above both r with the "
        "MLP (95 % intervals)",
        "section2_prediction_depth",
    ),
    Claim(
        "consensus_bound",
        "PD gives a falling linear lower bound on consensus-consistency",
        "qualitative (Fig. 4 left, middle)",
        "the slope of the 2 % lower envelope of C* against rescaled PD is at most -0.1, in the "
        "ensemble and across networks (95 % bootstrap intervals)",
        "section3_consistency",
    ),
    Claim(
        "accuracy_vs_depth",
        "Predictions made at low PD are more accurate",
        "qualitative (Fig. 4 right)",
        "held-out accuracy in the first third of the PD range exceeds the last third by >= 10 "
        "points (95 % bootstrap interval over points)",
        "section3_consistency",
    ),
    Claim(
        "iteration_learned",
        "PD correlates with the iteration a point is learned",
        "Pearson r (VGG16): FMNIST 0.79, CIFAR10 0.70, CIFAR100 0.83, SVHN 0.77",
        "r over validation appearances reaches within 0.1 of the paper's value for the dataset "
        "(95 % interval)",
        "section3_learning_margins",
    ),
    Claim(
        "inference_curve",
        "The inference learning curve repeats the training curve under label noise",
        "qualitative (Fig. 5 middle, right)",
        "three features (original label first, a crossing, a test-accuracy maximum before the end) "
        "in both curves for every seed",
        "section3_learning_margins",
    ),
    Claim(
        "margins",
        "PD correlates negatively with output and input margins",
        "r = -0.70 (output), -0.69 (input); CIFAR10, VGG16",
        "each r reaches within 0.1 of the paper's value (95 % interval)",
        "section3_learning_margins",
    ),
    Claim(
        "zero_hinge",
        "Without a reward for margin (0-Hinge) margins vanish and data separate only late",
        "output margin 2.0e-4 ± 2.0e-4 vs 16 ± 5 (CE)",
        "CE margin >= 1000x the 0-Hinge margin; 0-Hinge mean PD above CE's; 0-Hinge's hidden-probe "
        "gain over the untrained network below a quarter of CE's (95 % bootstrap intervals)",
        "section3_learning_margins",
    ),
    Claim(
        "difficulty_types",
        "PD_val and PD_train together separate four types of difficulty",
        "qualitative (Fig. 7, 8)",
        "easy has the highest C*; most of 'looks like a different class' have consensus != label; "
        "'ambiguous unless the label is given' is more accurate at the middle probe than at the "
        "softmax; 'ambiguous' has a lower C* than the two low-PD_val corners (95 % intervals)",
        "section4_difficulty_types",
    ),
    Claim(
        "knn_fix",
        "A mid-layer k-NN probe fixes 'ambiguous unless the label is given' points",
        "25 % (network) vs 98 % (layer-4 probe); CIFAR10, ResNet18",
        "the middle probe, fixed before the data, beats the network on models that did not choose "
        "the group (Wilson intervals apart), by at least half the paper's gain (36.5 points)",
        "section4_difficulty_types",
    ),
)
_KEYS = {claim.key: claim for claim in CLAIMS}


@dataclass(frozen=True)
class Test:
    """One criterion's outcome: ``status`` is "pass", "fail" or "undecided"; ``text`` says why in
    numbers."""

    status: str
    text: str


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


def _reason(tests) -> str:
    return "; ".join(f"{test.text} ({test.status})" for test in tests)


def interval_test(
    low: float, high: float, threshold: float, what: str, *, above: bool = True
) -> Test:
    """Pass when the whole interval is beyond ``threshold`` (above or below), fail when it is all
    short of it.

    >>> interval_test(0.2, 0.4, 0.1, "gain").status, interval_test(0.0, 0.4, 0.1, "gain").status
    ('pass', 'undecided')
    """
    beyond, short = (
        (low > threshold, high < threshold) if above else (high < threshold, low > threshold)
    )
    side = ">" if above else "<"
    # Round-off of a bootstrap quantile (-4.9e-17) reads as zero.
    low, high = (0.0 if abs(x) < 1e-12 else x for x in (low, high))
    text = f"{what} 95 % CI [{low:.3g}, {high:.3g}] vs {side} {threshold:.3g}"
    return _test(beyond, short, text)


def correlation_test(r: float, low: float, high: float, paper: float, what: str) -> list[Test]:
    """A sign test (interval excludes 0 on the paper's side) and a size test (reaches ``|paper| -
    0.1``).

    >>> [t.status for t in correlation_test(-0.65, -0.7, -0.6, -0.70, "r")]
    ['pass', 'pass']
    >>> [t.status for t in correlation_test(-0.3, -0.4, -0.2, -0.70, "r")]
    ['pass', 'fail']
    """
    if math.isnan(r):
        return [Test(UNDECIDED, f"{what}: no correlation could be computed")]
    text = f"{what} r = {r:.2f} [{low:.2f}, {high:.2f}]"
    sign = 1.0 if paper > 0 else -1.0
    weak, strong = sorted((sign * low, sign * high))  # on the paper's side larger is stronger
    target = abs(paper) - 0.1
    return [
        _test(weak > 0, strong < 0, f"{text}, sign of the paper's"),
        Test(PASS if strong >= target else FAIL, f"{text}, within 0.1 of the paper's {paper:.2f}"),
    ]


def judge_ordering(means: dict, intervals: dict, expected: tuple) -> tuple[str, str]:
    """Mean PD per dataset in the ``expected`` order, each adjacent pair apart; not tested if one is
    missing."""
    missing = [name for name in expected if name not in means]
    if missing:
        return (
            "not tested",
            f"not run here: {', '.join(missing)} (not on disk; python -m pdlib download fetches "
            "them)",
        )
    tests = []
    for easier, harder in itertools.pairwise(expected):
        (lo_a, hi_a), (lo_b, hi_b) = intervals[easier], intervals[harder]
        text = (
            f"{easier} {means[easier]:.2f} [{lo_a:.2f}, {hi_a:.2f}] < "
            f"{harder} {means[harder]:.2f} [{lo_b:.2f}, {hi_b:.2f}]"
        )
        tests.append(_test(hi_a < lo_b, hi_b < lo_a, text))
    return verdict(tests), _reason(tests)


def judge_seed_consistency(agreement_by_task: dict) -> tuple[str, str]:
    """Fig. 2 left from :func:`pdlib.analysis.seed_agreement` per task: seed r >= 0.5, conv pair
    above the MLP's.

    Intervals are Fisher-z over the points; not tested without all three architectures, two seeds
    each.
    """
    from pdlib.metrics import pearson_interval

    tests = []
    for task, agreement in agreement_by_task.items():
        names, matrix, n = agreement["names"], agreement["train"], agreement["n_train"]
        if sorted(names) != ["mlp", "resnet18", "vgg16"] or np.isnan(np.diag(matrix)).any():
            return (
                "not tested",
                f"{task}: needs mlp, vgg16 and resnet18 with two seeds each, got "
                f"{', '.join(names)}",
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
    return verdict(tests), _reason(tests)


def judge_correlations(tests) -> tuple[str, str]:
    """Verdict of correlation claims (seed consistency, iteration learned, margins) from their
    tests."""
    tests = list(tests)
    if not tests:
        return "not tested", "no setting of the paper was run"
    return verdict(tests), _reason(tests)


def judge_consensus_bound(ensemble_slope: tuple, cross_slope: tuple) -> tuple[str, str]:
    """Each argument is ``(slope, low, high)`` of the lower envelope against PD rescaled to [0,
    1]."""
    tests = [
        interval_test(low, high, -0.1, f"{name} slope {slope:+.2f}", above=False)
        for name, (slope, low, high) in (
            ("ensemble", ensemble_slope),
            ("across networks", cross_slope),
        )
    ]
    return verdict(tests), _reason(tests)


def judge_accuracy_vs_depth(gain: float, low: float, high: float) -> tuple[str, str]:
    """``gain``: held-out accuracy at low PD minus at high PD (fractions), with its 95 %
    interval."""
    test = interval_test(low, high, 0.10, f"accuracy gain {100 * gain:.1f} points, as a fraction")
    return verdict([test]), _reason([test])


def judge_inference_curve(features: dict) -> tuple[str, str]:
    """``features``: name -> (present in both curves for how many seeds, number of seeds)."""
    tests = [
        _test(n == total, n == 0, f"{name}: {n} of {total} seeds")
        for name, (n, total) in features.items()
    ]
    return verdict(tests), _reason(tests)


def judge_zero_hinge(margin_ratio: tuple, pd_gap: tuple, gain_excess: tuple) -> tuple[str, str]:
    """Each ``(value, low, high)``: CE / 0-Hinge mean margin, 0-Hinge minus CE mean PD, and
    0-Hinge's
    hidden-probe gain over the untrained network minus a quarter of CE's.
    """
    tests = [
        interval_test(margin_ratio[1], margin_ratio[2], 1e3, f"margin ratio {margin_ratio[0]:.3g}"),
        interval_test(pd_gap[1], pd_gap[2], 0.0, f"PD gap {pd_gap[0]:+.2f}"),
        interval_test(
            gain_excess[1],
            gain_excess[2],
            0.0,
            f"0-Hinge gain minus a quarter of CE's {gain_excess[0]:+.3f}",
            above=False,
        ),
    ]
    return verdict(tests), _reason(tests)


def judge_difficulty_types(
    cstar: dict, differs: tuple, unless_middle: tuple, unless_softmax: tuple
) -> tuple[str, str]:
    """The four corners: ``cstar`` corner -> (mean C*, low, high); ``differs`` (hits, trials) of
    consensus
    != label in "looks like a different class"; ``unless_middle``/``unless_softmax`` (hits, trials)
    at the middle and softmax probes for "ambiguous unless the label is given".
    """
    from pdlib.metrics import wilson_interval

    easy, different, unless, ambiguous = (
        cstar[c]
        for c in (
            "easy",
            "looks like a different class",
            "ambiguous unless the label is given",
            "ambiguous",
        )
    )
    others = [different, unless, ambiguous]
    tests = [
        _test(
            all(easy[1] > o[2] for o in others),
            any(easy[2] < o[1] for o in others),
            f"C* easy {easy[0]:.2f} [{easy[1]:.2f}, {easy[2]:.2f}] vs the others",
        )
    ]
    low, high = wilson_interval(*differs)
    tests.append(
        interval_test(
            low, high, 0.5, f"'different class' consensus != label {differs[0]}/{differs[1]}"
        )
    )
    (m_lo, m_hi), (s_lo, s_hi) = wilson_interval(*unless_middle), wilson_interval(*unless_softmax)
    tests.append(
        _test(
            m_lo > s_hi,
            m_hi < s_lo,
            f"'unless label' accuracy at the middle probe {unless_middle[0]}/{unless_middle[1]} vs "
            f"softmax {unless_softmax[0]}/{unless_softmax[1]}",
        )
    )
    tests.append(
        _test(
            ambiguous[2] < min(easy[1], different[1]),
            ambiguous[1] > max(easy[2], different[2]),
            f"C* ambiguous {ambiguous[0]:.2f} [{ambiguous[1]:.2f}, {ambiguous[2]:.2f}] below easy "
            "and 'different class'",
        )
    )
    return verdict(tests), _reason(tests)


def judge_knn_fix(network: tuple, probe: tuple) -> tuple[str, str]:
    """``network`` and ``probe``: (hits, trials) on the decoupled evaluation (models that did not
    choose the group)."""
    from pdlib.metrics import wilson_interval

    (n_lo, n_hi), (p_lo, p_hi) = wilson_interval(*network), wilson_interval(*probe)
    n_acc, p_acc = network[0] / max(network[1], 1), probe[0] / max(probe[1], 1)
    text = (
        f"network {100 * n_acc:.1f} % [{100 * n_lo:.1f}, {100 * n_hi:.1f}] vs probe "
        f"{100 * p_acc:.1f} % [{100 * p_lo:.1f}, {100 * p_hi:.1f}]"
    )
    better = _test(p_lo > n_hi, p_hi < n_lo, text)
    gain_low, gain_high = p_lo - n_hi, p_hi - n_lo  # conservative interval of the gain
    size = interval_test(
        gain_low, gain_high, 0.365, f"gain {100 * (p_acc - n_acc):.1f} points, as a fraction"
    )
    return verdict([better, size]), _reason([better, size])


# --- records ------------------------------------------------------------------------------------


def _folder(profile: str) -> Path:
    return cache_root() / "claims" / profile


def record(
    key: str,
    *,
    profile: str,
    measured: str,
    verdict: str,
    reason: str,
    setting: str,
    values: dict | None = None,
) -> dict:
    """Store a chapter's measurement of claim ``key`` for the discussion table (atomically)."""
    if key not in _KEYS:
        raise ValueError(f"unknown claim {key!r}; known: {', '.join(_KEYS)}")
    if verdict not in VERDICTS:
        raise ValueError(f"verdict must be one of {', '.join(VERDICTS)}; got {verdict!r}")
    entry = {
        "key": key,
        "profile": profile,
        "measured": measured,
        "verdict": verdict,
        "reason": reason,
        "setting": setting,
        "values": values or {},
    }
    text = json.dumps(entry, indent=2, default=float)
    write_atomically(_folder(profile) / f"{key}.json", lambda tmp: tmp.write_text(text))
    return entry


def load(profile: str) -> dict:
    """Every recorded claim of ``profile``: key to the dict given to :func:`record`."""
    folder = _folder(profile)
    return (
        {path.stem: json.loads(path.read_text()) for path in sorted(folder.glob("*.json"))}
        if folder.exists()
        else {}
    )


def claims_table(profile: str):
    """The discussion table (a DataFrame, one row per claim); an unrecorded claim is "not
    tested"."""
    import pandas as pd

    recorded = load(profile)
    rows = []
    for claim in CLAIMS:
        entry = recorded.get(claim.key) or {
            "measured": "—",
            "verdict": "not tested",
            "setting": "—",
            "reason": f"chapter {claim.chapter} has not run in the {profile} profile; run: "
            f"python book/build.py --profile {profile} --only {claim.chapter}",
        }
        rows.append(
            {
                "claim": claim.statement,
                "paper": claim.paper,
                "criterion": claim.criterion,
                "ours": entry["measured"],
                "setting": entry["setting"],
                "verdict": entry["verdict"],
                "why": entry["reason"],
            }
        )
    return pd.DataFrame(rows)


def show_table(table, caption: str):
    """The claims table as the book shows it: a caption, no index, text aligned left and on top."""
    return (
        table.style.hide(axis="index")
        .set_caption(caption)
        .set_properties(**{"text-align": "left", "vertical-align": "top"})
    )
