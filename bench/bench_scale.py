"""A 1,000-trial study of a tiny model on the digits: does per-trial bookkeeping stay flat?

Runs `python -m tfplaybook.run --mode=tune` on experiments/digits_mlp.py shrunk to one hidden
layer of 8 units trained 20 steps a trial, then `--mode=analyze` on the finished study, and
reports what could grow with the trial count:

- the gap between one trial's training loop ending and the next one's starting (oracle, trial
  scans, index, heartbeat, status files, model building), per block of 100 trials;
- the study process's resident memory, sampled as trials finish;
- the size of oracle.json;
- the report's render time (`--mode=analyze`, its own process).

Usage: python bench/bench_scale.py [--trials 1000] [--keep DIR] [--plot FILE.png]
"""

import argparse
import json
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

OVERRIDES = (
    "model.depth=1",
    "model.width=8",
    "max_train_steps=20",
    "eval_every_steps=20",
    "checkpoint_every_steps=20",
    "keep_best_checkpoints=1",
)


def _rss_mib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _finished(study):
    return sum(
        1
        for name in os.listdir(study)
        if name.startswith("trial_") and os.path.exists(os.path.join(study, name, "status.json"))
    )


def _gaps(study):
    """(trial number, seconds from the previous trial's end to this trial's loop start)."""
    spans = []
    for directory in tracking.trial_dirs(study):
        status = td.read_status(directory)
        end = os.path.getmtime(os.path.join(directory, td.STATUS))
        spans.append((end - status.get("wall_seconds", 0.0), end))
    spans.sort()
    return [(i + 1, spans[i + 1][0] - spans[i][1]) for i in range(len(spans) - 1)]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--keep", help="study directory (default: a temporary one)")
    parser.add_argument("--plot", help="write a PNG of gap and memory against the trial count")
    args = parser.parse_args()
    root = tempfile.mkdtemp(prefix="tfplaybook-scale-")
    study = args.keep or os.path.join(root, "study")
    command = [
        sys.executable,
        "-m",
        "tfplaybook.run",
        "--mode=tune",
        "--experiment=experiments/digits_mlp.py",
        f"--workdir={study}",
        f"--runs_root={os.path.join(root, 'runs')}",
        "--quiet",
        f"--override=study.max_trials={args.trials}",
    ] + [f"--override={o}" for o in OVERRIDES]
    env = dict(os.environ, PYTHONPATH=REPO)
    start = time.time()
    process = subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    memory = []  # (trials finished, RSS MiB)
    while process.poll() is None:
        time.sleep(2.0)
        rss = _rss_mib(process.pid)
        if rss is not None and os.path.isdir(study):
            memory.append((_finished(study), rss))
    wall = time.time() - start
    if process.returncode != 0:
        sys.exit(f"study failed ({process.returncode}): {process.stderr.read().decode()[-2000:]}")
    start = time.time()
    subprocess.run(
        command[:3] + ["--mode=analyze", f"--workdir={study}"],
        cwd=REPO,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    analyze = time.time() - start

    gaps = _gaps(study)
    print(f"{args.trials}-trial study: {wall:.0f} s wall ({wall / args.trials:.2f} s a trial)")
    print("gap between trials (median / max s) per block of 100 trials:")
    for first in range(0, len(gaps), 100):
        block = [g for _, g in gaps[first : first + 100]]
        print(
            f"  trials {first + 1:4d}-{first + len(block):4d}: "
            f"{statistics.median(block):.3f} / {max(block):.3f}"
        )
    print("resident memory (MiB) by trials finished:")
    for step in range(0, args.trials + 1, max(1, args.trials // 10)):
        near = [m for n, m in memory if n >= step]
        if near:
            print(f"  {step:4d}: {near[0]:.0f}")
    oracle = os.path.join(study, "oracle.json")
    print(f"oracle.json: {os.path.getsize(oracle) / 1024:.0f} KiB")
    print(f"--mode=analyze (report of {args.trials} trials): {analyze:.1f} s wall")
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        figure, (left, right) = plt.subplots(1, 2, figsize=(10, 3.5))
        left.plot([n for n, _ in gaps], [g for _, g in gaps], ".", markersize=2)
        left.set(xlabel="trial", ylabel="seconds between trials", title="per-trial bookkeeping")
        right.plot([n for n, _ in memory], [m for _, m in memory])
        right.set(xlabel="trials finished", ylabel="RSS (MiB)", title="study process memory")
        figure.tight_layout()
        figure.savefig(args.plot, dpi=100)
    json.dump(
        {"wall": wall, "analyze": analyze, "gaps": gaps, "memory": memory},
        open(os.path.join(root, "scale.json"), "w"),
    )
    print(f"raw numbers: {os.path.join(root, 'scale.json')}")


if __name__ == "__main__":
    main()
