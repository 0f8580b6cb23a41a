"""Retrospective checkpoint selection (checklist 43, 91), pure."""

import math

import pytest

from tfplaybook.training import selection

pytestmark = pytest.mark.pure


def test_best_of_picks_best_not_last_and_skips_nan():
    points = [(1, 0.5), (2, 0.9), (3, float("nan")), (4, 0.7)]
    assert selection.best_of(points, "max") == (2, 0.9)
    assert selection.best_of(points, "min") == (1, 0.5)
    assert selection.best_of([], "max") is None


def test_update_kept_keeps_n_best_and_evicts_the_worst():
    kept = []
    saved, evicted_all = [], []
    for step, value in [(10, 0.5), (20, 0.7), (30, 0.6), (40, 0.8), (50, 0.1)]:
        kept, evicted, save = selection.update_kept(kept, step, value, 2, "max")
        saved += [step] if save else []
        evicted_all += evicted
    assert [k["step"] for k in kept] == [40, 20]
    assert saved == [10, 20, 30, 40]
    assert sorted(evicted_all) == [10, 30]


def test_update_kept_for_min_goal_and_nan():
    kept, _, _ = selection.update_kept([], 1, 2.0, 3, "min")
    kept, _, save = selection.update_kept(kept, 2, math.nan, 3, "min")
    assert not save and len(kept) == 1
    kept, _, _ = selection.update_kept(kept, 3, 1.0, 3, "min")
    assert [k["step"] for k in kept] == [3, 1]
