"""How fast a bad config is refused: CPU seconds of whole `python -m tfplaybook.run` processes.

The validation pass runs before TensorFlow loads, so a bad config should cost about as much as
starting Python and importing tfplaybook and absl. Target: under 2 s of CPU per refusal.

    python bench/bench_bad_config.py [--repeats 5]

Prints one line per case (median CPU seconds, user + system, of the child processes) and the
exit status, which must be 2.
"""

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CASES = [
    "--override=model.dropout=1.5",
    "--override=model.name=nope",
    "--override=optimizer.learning_rate=-1",
    "--override=study.oracle=bayes",
    '--override=study.search_space=[{"name": "optimizer.momentum", "role": "nuisance", '
    '"scale": "categorical", "values": [0.9, 1.2]}]',
    "--strategy=tpu",
]


def cpu_seconds(args):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    code = subprocess.run(args, capture_output=True, cwd=REPO).returncode
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    used = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return used, code


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    repeats = parser.parse_args().repeats
    workdir = os.path.join(tempfile.mkdtemp(), "never_written")
    worst = 0.0
    for case in CASES:
        args = [sys.executable, "-m", "tfplaybook.run", f"--workdir={workdir}", case]
        runs = [cpu_seconds(args) for _ in range(repeats)]
        median = statistics.median(r[0] for r in runs)
        worst = max(worst, median)
        print(f"{median:6.3f} s CPU  exit {sorted({r[1] for r in runs})}  {case[:70]}")
    print(
        f"worst median: {worst:.3f} s CPU (target < 2 s); "
        f"workdir written: {os.path.exists(workdir)}"
    )


if __name__ == "__main__":
    main()
