"""Default study wall time and the share of it not spent in training steps.

Runs `python -m tfplaybook.run` (the default study) into a fresh directory and splits its wall
time into training steps and everything else (TensorFlow start-up, oracle, model building,
tracing, evaluation, checkpoints, reports). A trial's training-step time is its step count divided
by its median steps/s over loops (so the first loop's tracing counts as overhead).

Usage: python bench/study_overhead.py [--keep DIR]
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from tfplaybook.files import trial_dir as td  # noqa: E402
from tfplaybook.study import tracking  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", help="study directory to use (default: a temporary one)")
    args = parser.parse_args()
    study = args.keep or os.path.join(tempfile.mkdtemp(prefix="tfplaybook-bench-"), "study")
    start = time.time()
    subprocess.run(
        [sys.executable, "-m", "tfplaybook.run", f"--workdir={study}", "--quiet"],
        cwd=REPO,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=dict(os.environ, PYTHONPATH=REPO),
    )
    wall = time.time() - start
    step_seconds, trial_wall, steps = 0.0, 0.0, 0
    for directory in tracking.trial_dirs(study):
        status = td.read_status(directory)
        _, rates = td.series(td.read_measurements(directory), "train", "steps_per_second")
        if rates:
            step_seconds += status["step"] / statistics.median(rates)
        trial_wall += status.get("wall_seconds", 0.0)
        steps += status["step"]
    print(f"default study: {len(tracking.trial_dirs(study))} trials, {steps} training steps")
    print(f"wall time: {wall:.1f} s (target < 180 s)")
    print(
        f"training steps: {step_seconds:.1f} s; inside trial loops (incl. eval, checkpoints, "
        f"tracing): {trial_wall:.1f} s"
    )
    print(
        f"share not spent in training steps: {100 * (1 - step_seconds / wall):.0f}% "
        "(target <= 25%)"
    )


if __name__ == "__main__":
    main()
