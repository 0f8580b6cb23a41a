"""Kill-and-resume chaos run: SIGKILL a study at random moments, resume it, check what survived.

Starts a study (`python -m tfplaybook.run --mode=tune`, the default experiment unless overridden),
kills it with SIGKILL after a uniformly random delay, restarts it with the same command, and does
so `--kills` times; then lets it finish and checks, printing each check as true/false:

- exactly `max_trials` trials, all finished (trial directories and keras-tuner's trial records);
- no configuration (hparams.json values) ran twice;
- every trial seen finished after a kill has byte-identical config.json, status.json,
  measurements.jsonl and best checkpoints (index and weight files) at the end;
- every trial interrupted mid-training continued from its latest checkpoint: its training-loss
  rows are steps 1..final step exactly once each, status.json's `resumed_from` is set and at
  least the last step checkpointed before the kill, and the work lost at each kill was at most
  one checkpoint interval.

Exit status 0 when every check holds, 1 otherwise.

  python bench/chaos.py --kills=10 --seed=0
"""

import argparse
import glob
import hashlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from tfplaybook.files import trial_dir as td  # noqa: E402  (pure Python, no TensorFlow)

# Longer trials than the default study's 300 steps, so that most kills land mid-training.
DEFAULT_OVERRIDES = [
    "study.max_trials=8",
    "max_train_steps=1500",
    "eval_every_steps=100",
    "checkpoint_every_steps=250",
]


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kills", type=int, default=10, help="SIGKILLs before the final run")
    parser.add_argument("--workdir", default="", help="study directory (default: a new temp dir)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random kill delays")
    parser.add_argument("--experiment", default="", help="experiment file (default: the default)")
    parser.add_argument(
        "--override", action="append", default=None, help="KEY=VALUE (default: %(default)s)"
    )
    parser.add_argument("--min_delay", type=float, default=5.0, help="seconds, uniform low end")
    parser.add_argument("--max_delay", type=float, default=25.0, help="seconds, uniform high end")
    parser.add_argument(
        "--from_training",
        action="store_true",
        help="count each delay from the run's first new measurement instead of its start",
    )
    parser.add_argument("--steps_per_loop", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds for the final run")
    return parser.parse_args(argv)


def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def trial_dirs(study):
    return sorted(d for d in glob.glob(os.path.join(study, "trial_*")) if os.path.isdir(d))


def read_status(directory):
    try:
        return td.read_status(directory)
    except (td.DamagedFileError, OSError):
        return None


def finished_files(directory):
    """Hashes of the files a finished trial must never change."""
    names = [td.CONFIG, td.STATUS, td.MEASUREMENTS]
    names += [
        os.path.relpath(p, directory)
        for p in glob.glob(os.path.join(directory, td.CHECKPOINTS, "best", "*"))
    ]
    return {n: sha(os.path.join(directory, n)) for n in sorted(names)}


def checkpointed_step(directory):
    """The step of the latest resumable checkpoint (from TensorFlow's state file), or 0."""
    state = os.path.join(directory, td.CHECKPOINTS, "latest", "checkpoint")
    try:
        text = open(state).read()
    except OSError:
        return 0
    match = re.search(r'^model_checkpoint_path: ".*?-(\d+)"', text, re.M)
    return int(match.group(1)) if match else 0


def trained_step(directory):
    steps, _ = td.series(td.read_measurements(directory), td.TRAIN, "loss")
    return max(steps) if steps else 0


def measurement_sizes(study):
    sizes = {}
    for path in glob.glob(os.path.join(study, "*", td.MEASUREMENTS)):
        try:
            sizes[path] = os.path.getsize(path)
        except OSError:
            continue
    return sizes


class Observer:
    """What the checks need, recorded after every kill."""

    def __init__(self, study):
        self.study = study
        self.finished = {}  # trial dir -> hashes when first seen finished
        self.interrupted = {}  # trial dir -> [(checkpointed step, trained step)] per kill

    def after_kill(self):
        where = "start-up or between trials"
        for directory in trial_dirs(self.study):
            status = read_status(directory)
            if status is None:
                continue
            if status["status"] in td.FINISHED:
                self.finished.setdefault(directory, finished_files(directory))
            elif status["status"] == td.RUNNING:
                ckpt, trained = checkpointed_step(directory), trained_step(directory)
                self.interrupted.setdefault(directory, []).append((ckpt, trained))
                where = f"{os.path.basename(directory)} at step {trained}, checkpoint {ckpt}"
        return where


def run_command(args):
    command = [sys.executable, "-m", "tfplaybook.run", "--mode=tune", f"--workdir={args.workdir}"]
    if args.experiment:
        command.append(f"--experiment={args.experiment}")
    command += [f"--override={o}" for o in args.override]
    command += [f"--steps_per_loop={args.steps_per_loop}", "--quiet"]
    return command


def kill_once(command, env, delay, from_training, study):
    started = time.time()
    proc = subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    origin, sizes = started, measurement_sizes(study)
    while proc.poll() is None:
        if from_training and origin == started:
            # Training has started once a measurements file grows (a resume first rewrites it
            # shorter, which does not count).
            now = measurement_sizes(study)
            if any(size > sizes.get(path, 0) for path, size in now.items()):
                origin = time.time()
            sizes = now
        if (not from_training or origin != started) and time.time() - origin >= delay:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return time.time() - started
        time.sleep(0.01)
    return None  # The study ended before the kill.


def check(observer, study, max_trials, interval):
    dirs = [d for d in trial_dirs(study) if os.path.exists(os.path.join(d, td.STATUS))]
    statuses = {d: read_status(d) for d in dirs}
    records = glob.glob(os.path.join(study, "trial_*", "trial.json"))
    checks = {}
    checks[f"exactly max_trials={max_trials} trials, all finished"] = (
        len(dirs) == max_trials
        and len(records) == max_trials
        and all(s and s["status"] in td.FINISHED for s in statuses.values())
    )
    values = [
        json.dumps(td.read_json(os.path.join(d, td.HPARAMS))["values"], sort_keys=True)
        for d in dirs
    ]
    checks["no configuration ran twice"] = len(values) == len(set(values))
    checks[f"{len(observer.finished)} finished trials unchanged by later resumes"] = all(
        finished_files(d) == hashes for d, hashes in observer.finished.items()
    )
    continued = []
    for directory, kills in observer.interrupted.items():
        status = statuses.get(directory) or {}
        steps, _ = td.series(td.read_measurements(directory), td.TRAIN, "loss")
        last_ckpt = max(c for c, _ in kills)
        ok = steps == list(range(1, status.get("step", -1) + 1))
        ok = ok and all(trained - ckpt <= interval for ckpt, trained in kills)
        if last_ckpt > 0:
            ok = ok and (status.get("resumed_from") or 0) >= last_ckpt
        continued.append(ok)
        print(
            f"  {os.path.basename(directory)}: killed at (checkpoint, trained) steps {kills}; "
            f"final {status.get('status')} at step {status.get('step')}, resumed_from "
            f"{status.get('resumed_from')}, train-loss steps 1..{max(steps) if steps else 0} "
            f"({len(steps)} rows)"
        )
    checks[f"{len(continued)} interrupted trials continued from their latest checkpoint"] = all(
        continued
    )
    return checks


def main(argv=None):
    args = parse_args(argv)
    args.override = args.override or list(DEFAULT_OVERRIDES)
    args.workdir = args.workdir or os.path.join(tempfile.mkdtemp(prefix="chaos-"), "study")
    env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="3")
    rng = random.Random(args.seed)
    command = run_command(args)
    print("command:", " ".join(command[1:]))
    observer = Observer(args.workdir)
    kills = 0
    started = time.time()
    while kills < args.kills:
        delay = rng.uniform(args.min_delay, args.max_delay)
        seconds = kill_once(command, env, delay, args.from_training, args.workdir)
        if seconds is None:
            print(
                f"the study finished before kill {kills + 1}; use longer trials or shorter delays"
            )
            break
        kills += 1
        print(f"kill {kills}: SIGKILL after {seconds:.1f} s, during {observer.after_kill()}")
    final = subprocess.run(
        command, cwd=REPO, env=env, capture_output=True, text=True, timeout=args.timeout
    )
    print(f"final run: exit {final.returncode}; total {time.time() - started:.0f} s")
    if final.returncode != 0:
        print(final.stderr[-3000:])
    warnings = [line for line in final.stderr.splitlines() if line.startswith("warning:")]
    for line in warnings:
        print(" ", line)
    config = json.load(open(os.path.join(trial_dirs(args.workdir)[0], td.CONFIG)))
    interval = config.get("checkpoint_every_steps") or config["eval_every_steps"]
    checks = {
        f"{args.kills} kills done": kills >= args.kills,
        "final run exit 0": final.returncode == 0,
    }
    checks.update(check(observer, args.workdir, config["study"]["max_trials"], interval))
    for name, ok in checks.items():
        print(f"{'true' if ok else 'false'}: {name}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
