"""Reliability: SIGKILL a study at random moments and resume it (bench/chaos.py, 3 kills).
Killing a worker and the chief of a loopback chief + 2 workers study: test_reliability_chief.py."""

import os
import sys

from conftest import REPO

sys.path.insert(0, os.path.join(REPO, "bench"))

import chaos  # noqa: E402


def test_three_random_kills_lose_and_repeat_nothing(tmp_path, capsys):
    code = chaos.main(
        [
            "--kills=3",
            "--seed=1",
            f"--workdir={tmp_path / 'study'}",
            "--experiment=experiments/digits_mlp.py",
            "--override=study.max_trials=4",
            "--override=max_train_steps=600",
            "--override=eval_every_steps=50",
            "--override=checkpoint_every_steps=50",
            "--steps_per_loop=10",
            "--min_delay=0.3",
            "--max_delay=2",
            "--from_training",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    verdicts = [line for line in out.splitlines() if line.startswith(("true:", "false:"))]
    assert len(verdicts) == 6 and all(v.startswith("true:") for v in verdicts), out
    assert out.count("SIGKILL") == 3
    assert "interrupted trials continued" in out and "true: 0 interrupted" not in out
