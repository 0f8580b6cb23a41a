"""Plans, progress lines with time estimates, and time bounds (pure Python, a fake clock)."""

import io

import pytest

from tfplaybook import progress

pytestmark = pytest.mark.pure


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_the_estimate_is_the_mean_time_per_unit_times_the_units_left():
    clock, out = Clock(), io.StringIO()
    bar = progress.Progress(5, "trial", stream=out, clock=clock)
    assert bar.remaining_seconds() is None
    bar.update(detail="first")  # Finished instantly: no estimate is possible yet at 0 s each.
    clock.now += 30
    bar.update(detail="second")
    assert bar.remaining_seconds() == pytest.approx(45.0)  # 15 s a trial, 3 left.
    lines = out.getvalue().splitlines()
    assert lines[-1] == "progress: 2/5 trials | 30 s elapsed | about 45 s left | second"


def test_a_resumed_run_counts_only_its_own_units_towards_the_estimate():
    clock = Clock()
    bar = progress.Progress(10, "trial", done=6, stream=io.StringIO(), clock=clock)
    clock.now += 20
    bar.update(8)
    assert bar.remaining_seconds() == pytest.approx(20.0)  # 10 s each for the 2 left.


def test_a_terminal_gets_a_redrawn_bar():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    out = Tty()
    bar = progress.Progress(2, "batch size", stream=out, clock=Clock())
    bar.update()
    bar.update()
    text = out.getvalue()
    assert text.startswith("\r[##########..........] 1/2 batch sizes")
    assert "\r[####################] 2/2" in text and text.endswith("\n")


def test_plan_and_time_formats():
    out = io.StringIO()
    progress.plan("study runs/x: 8 trials", ["each trial: 300 steps"], stream=out)
    assert out.getvalue() == "plan: study runs/x: 8 trials\n  each trial: 300 steps\n"
    assert progress.format_seconds(59.4) == "59 s"
    assert progress.format_seconds(245) == "4 min 05 s"
    assert progress.format_seconds(3720) == "1 h 02 min"


def test_deadline():
    clock = Clock()
    assert not progress.Deadline(None, clock).expired()
    bound = progress.Deadline(0.5, clock)
    clock.now += 29
    assert not bound.expired()
    clock.now += 1
    assert bound.expired()
    with pytest.raises(ValueError, match="max_minutes=-1"):
        progress.Deadline(-1)
