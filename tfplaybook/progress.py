"""Plans, progress and time estimates for long work (studies, sweeps, trainings).

Pure Python. A mode that trains first prints its plan (`plan`: what it will run, how many steps,
where it writes), then a `Progress` over its units of work (trials, batch sizes, learning rates,
steps) prints how far it is and an estimate of the remaining time once the first unit has
finished: the mean seconds per unit so far times the units left. On a terminal the line is
redrawn in place as a bar; otherwise (a log file, CI) each update is one plain line.

`Deadline` bounds a sweep by wall time (`--max_minutes`): the sweep asks it after each finished
measurement and stops cleanly, keeping what it measured.
"""

import sys
import time


def format_seconds(seconds):
    """3 s, 4 min 05 s, 1 h 02 min: short, human units."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def plan(title, items, stream=None):
    """Prints the plan of a mode: a title line, then one indented line per item."""
    stream = stream or sys.stdout
    print(f"plan: {title}", file=stream)
    for item in items:
        print(f"  {item}", file=stream)
    stream.flush()


class Progress:
    """Counts finished units of work and prints progress with an estimate of the time left.

    Args:
      total: units planned.
      unit: what one unit is, e.g. "trial", "batch size".
      done: units already finished before this process started (a resumed study): they count
        towards progress but not towards the time estimate.
      stream: where to print (default stdout); a terminal gets a redrawn bar.
      clock: a function returning seconds (tests pass a fake clock).
    """

    def __init__(self, total, unit, done=0, stream=None, clock=time.monotonic, enabled=True):
        self.total, self.unit = int(total), unit
        self.done = self.start_done = int(done)
        self.stream = stream or sys.stdout
        self.clock = clock
        self.started = clock()
        self.enabled = enabled
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def remaining_seconds(self):
        """The estimate of the time left, or None before the first unit finished here."""
        finished_here = self.done - self.start_done
        if finished_here <= 0:
            return None
        per_unit = (self.clock() - self.started) / finished_here
        return per_unit * max(0, self.total - self.done)

    def line(self, detail=""):
        elapsed = format_seconds(self.clock() - self.started)
        left = self.remaining_seconds()
        eta = "estimating time left" if left is None else f"about {format_seconds(left)} left"
        text = f"{self.done}/{self.total} {self.unit}s | {elapsed} elapsed | {eta}"
        return f"{text} | {detail}" if detail else text

    def update(self, done=None, detail=""):
        """Records `done` finished units (default one more) and prints the progress line."""
        self.done = self.done + 1 if done is None else int(done)
        if not self.enabled:
            return
        if self.tty:
            width = 20
            filled = int(width * self.done / self.total) if self.total else width
            bar = "#" * filled + "." * (width - filled)
            end = "\n" if self.done >= self.total else ""
            self.stream.write(f"\r[{bar}] {self.line(detail)}\033[K{end}")
        else:
            self.stream.write(f"progress: {self.line(detail)}\n")
        self.stream.flush()


class Deadline:
    """A wall-time bound: `expired()` once `minutes` have passed (None or 0: never)."""

    def __init__(self, minutes, clock=time.monotonic):
        if minutes is not None and not minutes >= 0:
            raise ValueError(f"max_minutes={minutes!r} must be a number >= 0")
        self.seconds = minutes * 60.0 if minutes else None
        self.clock = clock
        self.started = clock()

    def expired(self):
        return self.seconds is not None and self.clock() - self.started >= self.seconds
