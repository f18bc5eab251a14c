"""pdlib.intervals: Wilson against its formula, and the two-level bootstrap against
pseudo-replication."""

import math
from statistics import NormalDist

import numpy as np
import pytest

from pdlib.intervals import bootstrap_interval, two_level_interval, wilson_interval


def wilson_formula(k, n, confidence=0.95):
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


@pytest.mark.parametrize("k, n", [(8, 10), (1, 3), (50, 100), (999, 1000), (3, 40)])
def test_wilson_interval_matches_the_formula(k, n):
    assert wilson_interval(k, n) == pytest.approx(wilson_formula(k, n), abs=1e-12)


def test_wilson_interval_at_the_bounds_and_without_trials():
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == 1.0
    assert all(math.isnan(v) for v in wilson_interval(0, 0))
    with pytest.raises(ValueError, match="successes must be in"):
        wilson_interval(11, 10)


def test_two_level_interval_is_not_fooled_by_repeated_appearances():
    # 40 points, each seen by 50 networks with the same value: 2,000 appearances carry the
    # information of 40 points. An interval that treats appearances as independent is ~7x too
    # narrow; resampling points keeps them together.
    rng = np.random.default_rng(0)
    per_point = rng.normal(0, 1, 40)
    values = np.tile(per_point, (50, 1))
    two_level = two_level_interval(lambda v: float(v.mean()), values, n_boot=400)
    naive = bootstrap_interval(np.mean, values.ravel(), n_boot=400)
    by_point = bootstrap_interval(np.mean, per_point, n_boot=400)
    assert (two_level[1] - two_level[0]) > 4 * (naive[1] - naive[0])
    assert (two_level[1] - two_level[0]) == pytest.approx(by_point[1] - by_point[0], rel=0.3)


def test_two_level_interval_also_resamples_networks():
    # every point the same, networks differ by an offset: only resampling networks sees it
    rng = np.random.default_rng(1)
    values = rng.normal(0, 1, (8, 1)) + np.zeros((8, 300))
    low, high = two_level_interval(lambda v: float(v.mean()), values, n_boot=400)
    assert high - low > 0.5


def test_two_level_interval_checks_its_input_and_reproduces():
    x = np.random.default_rng(2).normal(size=(5, 30))
    assert two_level_interval(lambda v: float(v.mean()), x, seed=3) == two_level_interval(
        lambda v: float(v.mean()), x, seed=3
    )
    with pytest.raises(ValueError, match=r"\(r, n\) arrays"):
        two_level_interval(np.mean, np.zeros(5))
    with pytest.raises(ValueError, match="every matrix must have shape"):
        two_level_interval(np.mean, np.zeros((2, 3)), np.zeros((3, 2)))
    assert all(math.isnan(v) for v in two_level_interval(lambda v: np.nan, x, n_boot=10))
