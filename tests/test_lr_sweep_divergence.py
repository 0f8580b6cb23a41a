"""--mode=lr_sweep on real runs: a learning rate that diverges is reported as diverged.

The training loop stops digits_mlp at learning rate 30 at step 2 by the loss-factor rule
(checklist 41): its loss is finite but 20x the first, and the training accuracy the sweep reads
stays finite. The sweep used to read divergence from that series alone and reported
`diverged False` and no diverged learning rate; it now reads each run's own status.json.
"""

import json
import math
import os

from conftest import REPO

from tfplaybook.files import trial_dir as td
from tfplaybook.procedures import lr_drivers, output
from tfplaybook.training import task as task_lib
from tfplaybook.training import trainer as train


def test_a_diverging_learning_rate_is_diverged_in_the_table_and_the_summary(tmp_path, capsys):
    config, task = task_lib.load(os.path.join(REPO, "experiments", "digits_mlp.py"))
    config = task_lib.apply_overrides(config, ["max_train_steps=40", "eval_every_steps=20"], task)
    runtime = train.Runtime(strategy="cpu", steps_per_loop=10, verbose=True)
    res = lr_drivers.run_lr_sweep(config, task, str(tmp_path), runtime, "0.01,30")
    status = td.read_status(str(tmp_path / "lr_30"))
    assert status["status"] == "diverged" and "training loss" in status["reason"], status
    # The series the sweep reads has no non-finite value: only status.json tells.
    _, accuracy = td.series(td.read_measurements(str(tmp_path / "lr_30")), "train", "accuracy")
    assert accuracy and all(math.isfinite(v) for v in accuracy)
    rows = {row["learning_rate"]: row for row in res["table"]}
    assert rows[30.0]["diverged"] is True and rows[30.0]["diverged_step"] == status["step"]
    assert rows[0.01]["diverged"] is False and rows[0.01]["diverged_step"] is None
    summary = json.loads((tmp_path / output.SUMMARY).read_text())
    assert summary["numbers"]["diverged_learning_rates"] == [30.0]
    lines = [line.split() for line in capsys.readouterr().out.splitlines() if line.strip()]
    table = {line[0]: line for line in lines}
    assert "diverged" in table["learning_rate"]
    assert "True" in table["30"] and "False" not in table["30"], table["30"]
    assert "False" in table["0.01"], table["0.01"]
