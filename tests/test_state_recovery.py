"""A study's keras-tuner files damaged between two runs: rebuilt from the trial directories.

An empty, torn, wrongly shaped or missing oracle.json, a damaged trial.json and a damaged
tuner0.json each get a `warning: ...` line and a rebuild (tfplaybook.study.recovery); the study then
continues its quasi-random sequence exactly where an undamaged one would, ends with exactly
max_trials trials, and leaves every finished trial byte-identical. What cannot be rebuilt is one
`error: ...` line, exit 2, and no file changed. Trial ids keep the width of the study's first
trial whatever max_trials becomes.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
from conftest import REPO, run_cli, snapshot

from tfplaybook.files import trial_dir as td
from tfplaybook.study import tracking

MLP = "experiments/digits_mlp.py"
SHORT = [
    "--override=max_train_steps=40",
    "--override=eval_every_steps=20",
    "--override=checkpoint_every_steps=20",
    "--steps_per_loop=10",
    "--quiet",
]


def tune(study, max_trials, *extra):
    return run_cli(
        "--mode=tune",
        f"--experiment={MLP}",
        f"--workdir={study}",
        f"--override=study.max_trials={max_trials}",
        *SHORT,
        *extra,
    )


def values(directory):
    return td.read_json(os.path.join(directory, td.HPARAMS))["values"]


def warnings_of(out):
    return [line for line in out.stderr.splitlines() if line.startswith("warning: ")]


def errors_of(out):
    return [line for line in out.stderr.splitlines() if line.startswith("error: ")]


@pytest.fixture(scope="module")
def studies(tmp_path_factory):
    """(a finished 3-trial study, the same study extended undamaged to 5 trials)."""
    root = tmp_path_factory.mktemp("studies")
    finished = root / "finished"
    out = tune(finished, 3)
    assert out.returncode == 0, out.stderr[-2000:]
    reference = root / "reference"
    shutil.copytree(finished, reference)
    out = tune(reference, 5)
    assert out.returncode == 0, out.stderr[-2000:]
    return finished, reference


def _damage(path, how):
    text = path.read_text() if path.exists() else ""
    if how == "empty":
        path.write_text("")
    elif how == "truncated":
        path.write_text(text[: len(text) // 2])
    elif how == "missing":
        path.unlink()
    elif how == "not_an_object":
        path.write_text("[]\n")
    elif how == "no_trial_lists":
        state = json.loads(text)
        del state["end_order"], state["start_order"]
        path.write_text(json.dumps(state))
    else:
        raise ValueError(how)


# ----------------------------------------------------------------------------- end to end


# End to end for a torn file; the in-process test below covers the other kinds of damage.
@pytest.mark.parametrize("how", ["truncated"])
def test_a_damaged_oracle_json_is_rebuilt_and_the_study_continues_its_sequence(
    studies, tmp_path, how
):
    finished, reference = studies
    study = tmp_path / "s"
    shutil.copytree(finished, study)
    _damage(study / "oracle.json", how)
    before = {t: snapshot(study / t) for t in ("trial_0", "trial_1", "trial_2")}
    out = tune(study, 5)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "Traceback" not in out.stderr
    (warning,) = [w for w in warnings_of(out) if "oracle.json" in w]
    assert "rebuilt the oracle's state from 3 trial directories" in warning, warning
    trials = tracking.trial_dirs(study)
    assert [os.path.basename(d) for d in trials] == [f"trial_{i}" for i in range(5)]
    assert all(td.read_status(d)["status"] in td.FINISHED for d in trials)
    # Exactly the trials an undamaged study runs: the sequence continued, nothing repeated.
    for name in ("trial_3", "trial_4"):
        assert values(study / name) == values(reference / name), name
    for name, tree in before.items():
        assert snapshot(study / name) == tree, name
    oracle = json.loads((study / "oracle.json").read_text())
    assert oracle["ongoing_trials"] == {}  # The final state lists no trial as running.
    assert oracle["end_order"] == ["0", "1", "2", "3", "4"]
    assert oracle["tfplaybook"]["next_index"] == 5


def test_damaged_trial_and_tuner_files_are_rebuilt_with_a_warning_each(studies, tmp_path):
    finished, reference = studies
    study = tmp_path / "s"
    shutil.copytree(finished, study)
    original = (study / "trial_1" / "trial.json").read_bytes()
    (study / "trial_1" / "trial.json").write_bytes(original[:40])
    (study / "tuner0.json").write_text('{"a":')
    untouched = {t: snapshot(study / t) for t in ("trial_0", "trial_2")}
    out = tune(study, 4)
    assert out.returncode == 0, out.stderr[-2000:]
    found = warnings_of(out)
    assert any("trial_1/trial.json" in w and "rebuilt" in w for w in found), found
    assert any("tuner0.json" in w and "rewrote" in w for w in found), found
    assert len(found) == 2, found
    # Rebuilt from hparams.json and status.json: the very file keras-tuner had written.
    assert (study / "trial_1" / "trial.json").read_bytes() == original
    assert json.loads((study / "tuner0.json").read_text()) == {}
    for name, tree in untouched.items():
        assert snapshot(study / name) == tree, name
    assert values(study / "trial_3") == values(reference / "trial_3")


def test_lost_hyperparameters_are_refused_in_one_line_and_nothing_changes(studies, tmp_path):
    finished, _ = studies
    study = tmp_path / "s"
    shutil.copytree(finished, study)
    (study / "trial_1" / "trial.json").write_text("")
    (study / "trial_1" / td.HPARAMS).write_text("{")
    before = snapshot(study)
    out = tune(study, 4)
    assert out.returncode == 2, out.stderr[-2000:]
    (error,) = errors_of(out)
    assert "trial 1's hyperparameters are lost" in error and "hparams.json" in error, error
    assert "Traceback" not in out.stderr
    assert snapshot(study) == before


def test_killed_mid_trial_then_oracle_json_torn_resumes_that_trial(tmp_path):
    study = tmp_path / "s"
    args = [
        sys.executable,
        "-m",
        "tfplaybook.run",
        "--mode=tune",
        f"--experiment={MLP}",
        f"--workdir={study}",
        "--override=study.max_trials=3",
        "--override=max_train_steps=300",
        "--override=eval_every_steps=50",
        "--override=checkpoint_every_steps=50",
        "--steps_per_loop=10",
        "--quiet",
    ]
    env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.Popen(
        args, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 240
    try:
        while True:
            assert time.time() < deadline and proc.poll() is None, "no trial to interrupt"
            statuses = {}
            for d in tracking.trial_dirs(study):
                try:
                    statuses[d] = td.read_status(d)
                except td.DamagedFileError:
                    pass
            done = [d for d, s in statuses.items() if s["status"] in td.FINISHED]
            running = [
                d for d, s in statuses.items() if s["status"] == td.RUNNING and s["step"] >= 50
            ]
            if done and running:
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    (interrupted,) = running
    finished = {d: snapshot(d) for d in done}
    _damage(study / "oracle.json", "truncated")
    out = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert any("oracle.json" in w for w in warnings_of(out)), out.stderr[-2000:]
    trials = tracking.trial_dirs(study)
    assert len(trials) == 3 and all(td.read_status(d)["status"] in td.FINISHED for d in trials)
    assert len({json.dumps(values(d), sort_keys=True) for d in trials}) == 3
    for d, tree in finished.items():
        # Untouched by the resume; the study's end adds the best trial's export/ only.
        after = {k: v for k, v in snapshot(d).items() if k.split("/")[0] != "export"}
        assert after == tree, d
    status = td.read_status(interrupted)
    assert status["resumed_from"] is not None and status["resumed_from"] >= 50, status
    steps, _ = td.series(td.read_measurements(interrupted), "train", "loss")
    assert steps == list(range(1, 301))


# ----------------------------------------------------------------------------- in process


def _oracle(max_trials, project):
    """The study oracle the CLI makes for digits_mlp, on the project directory `project`."""
    from tfplaybook import api
    from tfplaybook.search import space as space_lib
    from tfplaybook.study import tuner

    config, _, _ = api.make_config(
        experiment=os.path.join(REPO, MLP), overrides=[f"study.max_trials={max_trials}"]
    )
    oracle = tuner.make_oracle(config, space_lib.SearchSpace.from_config(config))
    oracle._set_project_dir(os.path.dirname(project), os.path.basename(project))
    return oracle


def _essentials(state):
    ours = state["tfplaybook"]
    return {
        "start_order": state["start_order"],
        "end_order": state["end_order"],
        "tried_so_far": sorted(state["tried_so_far"]),
        "id_to_hash": state["id_to_hash"],
        "hyperparameters": state["hyperparameters"]["space"],
        "tfplaybook": {k: ours[k] for k in ("next_index", "design", "space", "seed", "roles")},
    }


@pytest.mark.parametrize(
    "how", ["empty", "truncated", "missing", "not_an_object", "no_trial_lists"]
)
def test_the_rebuilt_oracle_state_is_the_saved_one(studies, tmp_path, capsys, how):
    finished, _ = studies
    study = tmp_path / "s"
    shutil.copytree(finished, study)
    saved = json.loads((study / "oracle.json").read_text())
    _damage(study / "oracle.json", how)
    oracle = _oracle(3, study)
    oracle.reload()
    assert "rebuilt the oracle's state from 3 trial directories" in capsys.readouterr().err
    rebuilt = json.loads((study / "oracle.json").read_text())
    assert _essentials(rebuilt) == _essentials(saved)
    assert set(oracle.trials) == {"0", "1", "2"} and not oracle._retry_queue


def test_a_running_trial_of_a_rebuilt_state_is_resumed_not_repeated(studies, tmp_path):
    finished, _ = studies
    study = tmp_path / "s"
    shutil.copytree(finished, study)
    # As a kill leaves trial 2 mid-run: RUNNING in trial.json, no final status.
    record = json.loads((study / "trial_2" / "trial.json").read_text())
    record.update(status="RUNNING", score=None, metrics={"metrics": {}})
    (study / "trial_2" / "trial.json").write_text(json.dumps(record))
    td.write_status(str(study / "trial_2"), td.RUNNING, step=20)
    (study / "oracle.json").write_text("")
    oracle = _oracle(4, study)
    oracle.reload()
    assert oracle._retry_queue == ["2"] and oracle.end_order == ["0", "1"]
    again = oracle.create_trial("tuner0")
    assert again.trial_id == "2"  # Resumed (from its checkpoint, by the tuner).
    new = oracle.create_trial("tuner1")
    assert new.trial_id == "3" and oracle._next_index == 4


def test_a_trial_whose_trial_and_status_files_are_both_torn_is_run_again(studies, tmp_path, capsys):
    finished, _ = studies
    study = tmp_path / "s"
    shutil.copytree(finished, study)
    for name in ("trial.json", td.STATUS):
        text = (study / "trial_1" / name).read_text()
        (study / "trial_1" / name).write_text(text[:30])
    oracle = _oracle(3, study)
    oracle.reload()  # oracle.json is intact and says trial 1 ended.
    assert oracle.trials["1"].status == "RUNNING" and oracle._retry_queue == ["1"]
    assert oracle.end_order == ["0", "2"]  # train() rebuilds its status when it is rerun.
    assert "trial 1 is unfinished but not queued by the oracle" in capsys.readouterr().err


def test_trials_off_the_sequence_cannot_be_placed_in_it_and_are_refused(studies, tmp_path):
    from tfplaybook.config import ConfigError

    finished, _ = studies
    study = tmp_path / "s"
    shutil.copytree(finished, study)
    record = json.loads((study / "trial_1" / "trial.json").read_text())
    record["hyperparameters"]["values"]["optimizer.learning_rate"] = 0.0123
    (study / "trial_1" / "trial.json").write_text(json.dumps(record))
    (study / "oracle.json").write_text("")
    before = snapshot(study)
    with pytest.raises(ConfigError, match="trial 1's values are not a point of this study"):
        _oracle(3, study).reload()
    assert snapshot(study) == before


def _run_trials(oracle, count):
    for _ in range(count):
        trial = oracle.create_trial("tuner0")
        oracle.update_trial(trial.trial_id, {"accuracy": 0.5, "infeasible": 0.0})
        trial.status = "COMPLETED"
        oracle.end_trial(trial)


def test_trial_ids_keep_the_width_of_the_first_trial_when_a_study_grows(tmp_path):
    study = tmp_path / "s"
    _run_trials(_oracle(8, study), 8)
    grown = _oracle(10, study)  # keras-tuner would name the new trials 08 and 09.
    grown.reload()
    _run_trials(grown, 2)
    assert sorted(grown.trials, key=int) == [str(i) for i in range(10)]
    assert sorted(os.listdir(study)) == ["oracle.json"] + sorted(f"trial_{i}" for i in range(10))
    assert grown.create_trial("tuner0").status == "STOPPED"
    # A study that began with 10 trials keeps its two digits at 100 (keras-tuner: 010, 011).
    padded = tmp_path / "p"
    _run_trials(_oracle(10, padded), 10)
    more = _oracle(100, padded)
    more.reload()
    _run_trials(more, 2)
    assert sorted(more.trials) == [f"{i:02d}" for i in range(12)]


def test_a_study_named_by_older_releases_stays_readable_and_grows_consistently(tmp_path):
    study = tmp_path / "s"
    _run_trials(_oracle(8, study), 8)
    old = _oracle(10, study)
    old.reload()
    old.trial_id_width = lambda: 2  # keras-tuner's own naming, as before this rule: 08, 09.
    _run_trials(old, 2)
    assert {"08", "09"} <= set(os.listdir(study)) | {n[6:] for n in os.listdir(study)}
    grown = _oracle(11, study)
    grown.reload()
    assert set(grown.trials) == {*map(str, range(8)), "08", "09"}
    assert grown.create_trial("tuner0").trial_id == "10"
    assert len(tracking.trial_dirs(study)) == 0  # No status.json here: the oracle alone.


def test_a_bayesian_study_rebuilt_keeps_its_sequence_position_and_repeats_nothing(tmp_path):
    from tfplaybook import api
    from tfplaybook.search import space as space_lib
    from tfplaybook.study import tuner

    def bayesian():
        config, _, _ = api.make_config(
            experiment=os.path.join(REPO, MLP),
            overrides=["study.max_trials=8", "study.oracle=bayesian"],
        )
        oracle = tuner.make_oracle(config, space_lib.SearchSpace.from_config(config))
        oracle._set_project_dir(str(tmp_path), "s")
        return oracle

    oracle = bayesian()
    for _ in range(6):  # 4 quasi-random (2 dimensions: the minimum of 4), then the GP's.
        trial = oracle.create_trial("tuner0")
        rate = trial.hyperparameters.values["optimizer.learning_rate"]
        oracle.update_trial(trial.trial_id, {"accuracy": 1.0 / (1.0 + abs(rate - 3e-3) * 100)})
        trial.status = "COMPLETED"
        oracle.end_trial(trial)
    saved = json.loads((tmp_path / "s" / "oracle.json").read_text())
    (tmp_path / "s" / "oracle.json").write_text("{")
    rebuilt = bayesian()
    rebuilt.reload()
    state = json.loads((tmp_path / "s" / "oracle.json").read_text())
    assert _essentials(state) == _essentials(saved)
    assert state["tfplaybook"]["num_initial_points"] == saved["tfplaybook"]["num_initial_points"]
    seen = {json.dumps(t.hyperparameters.values, sort_keys=True) for t in rebuilt.trials.values()}
    new = rebuilt.create_trial("tuner0")
    assert (
        new.trial_id == "6" and json.dumps(new.hyperparameters.values, sort_keys=True) not in seen
    )
