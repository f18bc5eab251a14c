"""pdlib.claims: every verdict function on both sides of each threshold, and the records the
discussion reads.

Verdicts (module docstring): every test passes -> reproduced; every test fails -> not reproduced;
some pass and the others fail -> partly reproduced; any test undecided and none failed ->
inconclusive; the setting was not run -> not tested.
"""

import json
import math

import numpy as np
import pytest

from pdlib import claims
from pdlib.claims import (
    CLAIMS,
    VERDICTS,
    correlation_test,
    interval_test,
    judge_accuracy_vs_depth,
    judge_consensus_bound,
    judge_correlations,
    judge_difficulty_types,
    judge_inference_curve,
    judge_knn_fix,
    judge_ordering,
    judge_seed_consistency,
    judge_zero_hinge,
    verdict,
)
from pdlib.claims import Test as Outcome  # "Test*" names would be collected by pytest

PASS, FAIL, UNDECIDED = Outcome("pass", "a"), Outcome("fail", "b"), Outcome("undecided", "c")


# --- combining tests ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "tests, expected",
    [
        ([PASS], "reproduced"),
        ([PASS, PASS, PASS], "reproduced"),
        ([FAIL], "not reproduced"),
        ([FAIL, FAIL], "not reproduced"),
        ([PASS, FAIL], "partly reproduced"),
        ([FAIL, PASS, PASS], "partly reproduced"),
        ([UNDECIDED], "inconclusive"),
        ([PASS, UNDECIDED], "inconclusive"),
        ([UNDECIDED, UNDECIDED, PASS], "inconclusive"),
        ([], "not tested"),
    ],
)
def test_verdict_follows_the_module_docstring(tests, expected):
    assert verdict(tests) == expected
    assert verdict(iter(tests)) == expected  # any iterable


@pytest.mark.parametrize(
    "tests, expected",
    [
        (
            [FAIL, UNDECIDED],
            "not reproduced",
        ),  # nothing passed and a test contradicts the claim outright
        ([PASS, FAIL, UNDECIDED], "partly reproduced"),  # some pass, some fail
    ],
)
def test_verdict_a_failed_test_is_never_inconclusive(tests, expected):
    """'inconclusive' only when no test contradicts the claim outright (module docstring)."""
    assert verdict(tests) == expected


@pytest.mark.parametrize(
    "low, high, threshold, above, status",
    [
        (0.2, 0.4, 0.1, True, "pass"),  # all above
        (0.0, 0.05, 0.1, True, "fail"),  # all short
        (0.0, 0.4, 0.1, True, "undecided"),  # straddles
        (0.1, 0.4, 0.1, True, "undecided"),  # touching is not beyond
        (-0.6, -0.4, -0.1, False, "pass"),  # all below
        (0.0, 0.2, -0.1, False, "fail"),
        (-0.3, 0.2, -0.1, False, "undecided"),
    ],
)
def test_interval_test(low, high, threshold, above, status):
    test = interval_test(low, high, threshold, "gain", above=above)
    assert test.status == status
    assert (
        "gain" in test.text
        and ("<" if not above else ">") in test.text
        and f"{threshold:.3g}" in test.text
    )


@pytest.mark.parametrize(
    "r, low, high, paper, statuses",
    [
        (-0.65, -0.7, -0.6, -0.70, ["pass", "pass"]),  # right sign, reaches 0.6
        (-0.3, -0.4, -0.2, -0.70, ["pass", "fail"]),  # right sign, too weak
        (0.3, 0.2, 0.4, -0.70, ["fail", "fail"]),  # wrong sign
        (0.05, -0.1, 0.2, -0.70, ["undecided", "fail"]),  # sign unknown, too weak
        (-0.5, -0.65, -0.35, -0.70, ["pass", "pass"]),  # the interval reaches |paper| - 0.1
        (0.75, 0.7, 0.8, 0.70, ["pass", "pass"]),  # positive paper value
        (0.95, 0.9, 0.99, 0.70, ["pass", "pass"]),  # stronger than the paper passes too
        (0.4, 0.3, 0.5, 0.83, ["pass", "fail"]),
        (-0.2, -0.3, -0.1, 0.77, ["fail", "fail"]),
    ],
)
def test_correlation_test(r, low, high, paper, statuses):
    tests = correlation_test(r, low, high, paper, "r(PD, margin)")
    assert [t.status for t in tests] == statuses
    assert all("r(PD, margin)" in t.text for t in tests)


def test_correlation_test_without_a_correlation():
    (test,) = correlation_test(math.nan, math.nan, math.nan, -0.7, "r")
    assert test.status == "undecided" and "no correlation" in test.text


def test_judge_correlations():
    assert judge_correlations([])[0] == "not tested"
    assert judge_correlations(iter([]))[0] == "not tested"
    strong = correlation_test(0.75, 0.7, 0.8, 0.7, "fmnist") + correlation_test(
        0.8, 0.75, 0.85, 0.83, "cifar100"
    )
    assert judge_correlations(strong)[0] == "reproduced"
    weak = correlation_test(0.3, 0.2, 0.4, 0.7, "fmnist")
    assert judge_correlations(weak)[0] == "partly reproduced"
    assert judge_correlations(correlation_test(-0.3, -0.4, -0.2, 0.7, "x"))[0] == "not reproduced"
    assert (
        judge_correlations(correlation_test(0.75, 0.6, 0.9, 0.7, "x") + [UNDECIDED])[0]
        == "inconclusive"
    )
    assert "fmnist" in judge_correlations(weak)[1] and "(fail)" in judge_correlations(weak)[1]


# --- Section 2 ---------------------------------------------------------------------------------

ORDER = ("fashion_mnist", "svhn", "cifar10", "cifar100")


def ordering(means, half_width):
    return dict(zip(ORDER, means, strict=True)), {
        name: (m - half_width, m + half_width) for name, m in zip(ORDER, means, strict=True)
    }


def test_judge_ordering():
    assert (
        judge_ordering(*ordering([1, 2, 3, 4], 0.2), ORDER)[0] == "reproduced"
    )  # separated, right order
    assert (
        judge_ordering(*ordering([1, 2, 3, 4], 0.6), ORDER)[0] == "inconclusive"
    )  # overlapping intervals
    assert (
        judge_ordering(*ordering([4, 3, 2, 1], 0.2), ORDER)[0] == "not reproduced"
    )  # reversed, separated
    assert (
        judge_ordering(*ordering([1, 2, 4, 3], 0.2), ORDER)[0] == "partly reproduced"
    )  # one pair swapped
    verdict_, reason = judge_ordering(*ordering([1, 2, 3, 4], 0.2), ORDER)
    assert reason.count("(pass)") == 3 and "fashion_mnist 1.00" in reason


def test_judge_ordering_with_a_missing_dataset_is_not_tested():
    means, intervals = ordering([1, 2, 3, 4], 0.2)
    del means["svhn"]
    result, reason = judge_ordering(means, intervals, ORDER)
    assert result == "not tested" and "svhn" in reason and "python -m pdlib download" in reason


def agreement(seeds=0.9, conv=0.8, with_mlp=0.5, n=5000, names=("mlp", "vgg16", "resnet18")):
    """A seed_agreement result: seed-to-seed r on the diagonal, between-architecture r off it."""
    r = {("resnet18", "vgg16"): conv, ("mlp", "resnet18"): with_mlp, ("mlp", "vgg16"): with_mlp}
    matrix = np.array(
        [[seeds if a == b else r[tuple(sorted((a, b)))] for b in names] for a in names], dtype=float
    )
    return {"names": list(names), "train": matrix, "n_train": n}


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        ({}, "reproduced"),
        (
            {"seeds": 0.2, "conv": 0.3, "with_mlp": 0.6},
            "not reproduced",
        ),  # seeds disagree, MLP closer
        ({"conv": 0.3, "with_mlp": 0.6}, "partly reproduced"),  # seeds agree, but the MLP is closer
        (
            {"seeds": 0.52, "conv": 0.55, "with_mlp": 0.5, "n": 50},
            "inconclusive",
        ),  # too few points to tell
    ],
)
def test_judge_seed_consistency(kwargs, expected):
    assert judge_seed_consistency({"fashion_mnist": agreement(**kwargs)})[0] == expected


def test_judge_seed_consistency_is_not_tested_without_every_architecture_and_two_seeds():
    missing = agreement(names=("vgg16", "resnet18"))
    missing["train"] = missing["train"][:2, :2]
    result, reason = judge_seed_consistency({"digits": missing})
    assert result == "not tested" and "mlp" in reason and "digits" in reason
    one_seed = agreement()
    one_seed["train"][0, 0] = np.nan  # a single MLP: no seed pair
    assert judge_seed_consistency({"digits": one_seed})[0] == "not tested"
    assert judge_seed_consistency({})[0] == "not tested"
    # every task must pass
    assert (
        judge_seed_consistency({"a": agreement(), "b": agreement(seeds=0.2)})[0]
        == "partly reproduced"
    )


# --- Section 3 ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ensemble, cross, expected",
    [
        ((-0.5, -0.6, -0.4), (-0.4, -0.5, -0.3), "reproduced"),
        ((0.1, 0.0, 0.2), (0.0, -0.05, 0.05), "not reproduced"),
        ((-0.5, -0.6, -0.4), (0.0, -0.05, 0.05), "partly reproduced"),
        ((-0.2, -0.4, 0.0), (-0.5, -0.6, -0.4), "inconclusive"),
    ],
)
def test_judge_consensus_bound(ensemble, cross, expected):
    result, reason = judge_consensus_bound(ensemble, cross)
    assert result == expected and "ensemble slope" in reason and "across networks" in reason


@pytest.mark.parametrize(
    "gain, low, high, expected",
    [
        (0.30, 0.20, 0.40, "reproduced"),
        (0.03, 0.00, 0.06, "not reproduced"),
        (0.12, 0.05, 0.20, "inconclusive"),
        (-0.1, -0.2, 0.0, "not reproduced"),
    ],
)
def test_judge_accuracy_vs_depth(gain, low, high, expected):
    result, reason = judge_accuracy_vs_depth(gain, low, high)
    assert result == expected and f"{100 * gain:.1f} points" in reason


@pytest.mark.parametrize(
    "counts, expected",
    [
        ([(3, 3), (3, 3), (2, 2)], "reproduced"),
        ([(0, 3), (0, 3), (0, 3)], "not reproduced"),
        ([(3, 3), (0, 3), (3, 3)], "partly reproduced"),
        ([(3, 3), (1, 3), (3, 3)], "inconclusive"),
    ],
)
def test_judge_inference_curve(counts, expected):
    features = dict(
        zip(("original first", "crossing", "test maximum before the end"), counts, strict=True)
    )
    result, reason = judge_inference_curve(features)
    assert result == expected and "crossing: " in reason


@pytest.mark.parametrize(
    "ratio, gap, excess, expected",
    [
        ((1e5, 2e4, 4e5), (2.0, 1.0, 3.0), (-0.1, -0.2, -0.05), "reproduced"),
        ((10.0, 5.0, 20.0), (-1.0, -2.0, -0.5), (0.2, 0.1, 0.3), "not reproduced"),
        ((1e5, 2e4, 4e5), (-1.0, -2.0, -0.5), (-0.1, -0.2, -0.05), "partly reproduced"),
        (
            (2e3, 5e2, 8e3),
            (2.0, 1.0, 3.0),
            (-0.1, -0.2, -0.05),
            "inconclusive",
        ),  # the ratio straddles 1000
    ],
)
def test_judge_zero_hinge(ratio, gap, excess, expected):
    result, reason = judge_zero_hinge(ratio, gap, excess)
    assert result == expected and "margin ratio" in reason and "PD gap" in reason


# --- Section 4 ---------------------------------------------------------------------------------

CORNERS = (
    "easy",
    "looks like a different class",
    "ambiguous unless the label is given",
    "ambiguous",
)


def corners(easy, different, unless, ambiguous, half=0.02):
    return {
        name: (m, m - half, m + half)
        for name, m in zip(CORNERS, (easy, different, unless, ambiguous), strict=True)
    }


def test_judge_difficulty_types():
    paper_like = corners(0.95, 0.6, 0.7, 0.4)
    assert judge_difficulty_types(paper_like, (90, 100), (95, 100), (25, 100))[0] == "reproduced"
    upside_down = corners(0.3, 0.8, 0.8, 0.9)
    result, reason = judge_difficulty_types(upside_down, (10, 100), (20, 100), (90, 100))
    assert result == "not reproduced" and reason.count("(fail)") == 4
    # the corners' C* as in the paper, but the middle probe is worse than the softmax
    assert (
        judge_difficulty_types(paper_like, (90, 100), (60, 100), (95, 100))[0]
        == "partly reproduced"
    )
    # ... or no better: the intervals overlap
    assert judge_difficulty_types(paper_like, (90, 100), (90, 100), (95, 100))[0] == "inconclusive"
    # a handful of points: no interval separates anything
    wide = corners(0.9, 0.6, 0.7, 0.5, half=0.3)
    assert judge_difficulty_types(wide, (3, 5), (3, 5), (2, 5))[0] == "inconclusive"


def test_judge_knn_fix():
    result, reason = judge_knn_fix((25, 100), (98, 100))  # the paper: 25 % vs 98 %
    assert result == "reproduced" and "network 25.0 %" in reason and "probe 98.0 %" in reason
    # clearly better, but by less than half the paper's 73-point gain
    assert judge_knn_fix((500, 1000), (700, 1000))[0] == "partly reproduced"
    assert judge_knn_fix((900, 1000), (500, 1000))[0] == "not reproduced"  # the probe is worse
    assert judge_knn_fix((2, 5), (4, 5))[0] == "inconclusive"  # five points: intervals overlap
    assert judge_knn_fix((0, 0), (0, 0))[0] == "inconclusive"  # nothing to score


# --- records -----------------------------------------------------------------------------------


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PDLIB_CACHE", str(tmp_path))
    return tmp_path


def test_record_load_and_claims_table_round_trip(cache):
    entry = claims.record(
        "margins",
        profile="smoke",
        measured="r = -0.5",
        verdict="partly reproduced",
        reason="weaker",
        setting="digits; mlp",
        values={"r": np.float64(-0.5)},
    )
    assert json.loads((cache / "claims" / "smoke" / "margins.json").read_text()) == {
        **entry,
        "values": {"r": -0.5},
    }
    assert claims.load("smoke") == {"margins": {**entry, "values": {"r": -0.5}}}
    assert claims.load("laptop") == {}  # another profile's records are separate
    assert not list((cache / "claims" / "smoke").glob("*.tmp"))
    table = claims.claims_table("smoke")
    assert len(table) == len(CLAIMS) and list(table.columns) == [
        "claim",
        "paper",
        "criterion",
        "ours",
        "setting",
        "verdict",
        "why",
    ]
    assert table.map(lambda v: bool(str(v).strip())).all().all()  # no empty cell
    assert set(table["verdict"]) <= set(VERDICTS)
    row = table.set_index("claim").loc[[c.statement for c in CLAIMS if c.key == "margins"][0]]
    assert (
        row["verdict"] == "partly reproduced"
        and row["ours"] == "r = -0.5"
        and row["why"] == "weaker"
    )
    missing = table[table["verdict"] == "not tested"]
    assert len(missing) == len(CLAIMS) - 1 and missing["why"].str.contains("--only").all()
    # a record is replaced, not appended
    claims.record(
        "margins", profile="smoke", measured="r = -0.7", verdict="reproduced", reason="", setting=""
    )
    assert claims.load("smoke")["margins"]["verdict"] == "reproduced"
    assert claims.show_table(table, "Claims").caption == "Claims"


def test_record_rejects_unknown_claims_and_verdicts(cache):
    with pytest.raises(ValueError, match="unknown claim 'flat_earth'"):
        claims.record(
            "flat_earth", profile="smoke", measured="", verdict="reproduced", reason="", setting=""
        )
    with pytest.raises(ValueError, match="verdict must be one of"):
        claims.record(
            "margins", profile="smoke", measured="", verdict="maybe", reason="", setting=""
        )
    assert claims.load("smoke") == {}


def test_every_claim_names_a_chapter_and_a_criterion():
    from pdlib.profiles import CHAPTER_FIGURES

    assert len({c.key for c in CLAIMS}) == len(CLAIMS)
    for claim in CLAIMS:
        assert (
            claim.chapter in CHAPTER_FIGURES and claim.statement and claim.paper and claim.criterion
        )
