"""The remaining CLI modes: compare (adoption), per-value study design, bn_check."""

import json
import os

from conftest import REPO, run_cli

from tfplaybook import config as config_lib
from tfplaybook.files import trial_dir as td
from tfplaybook.training import trainer as train

QUICK = ["--override=max_train_steps=80", "--override=eval_every_steps=40", "--quiet"]


def make_study(study_dir, learning_rate):
    """A real two-trial study of digits_mlp whose learning rates lie near `learning_rate`."""
    from tfplaybook.study import tracking, tuner

    path = os.path.join(REPO, "experiments", "digits_mlp.py")
    space = [
        {
            "name": "optimizer.learning_rate",
            "role": "nuisance",
            "scale": "log",
            "min": learning_rate,
            "max": 1.5 * learning_rate,
        }
    ]
    config = config_lib.apply_overrides(
        config_lib.load_experiment(path),
        [
            "max_train_steps=80",
            "eval_every_steps=40",
            "study.max_trials=2",
            f"study.search_space={json.dumps(space)}",
        ],
    )
    tuner.tune(config, str(study_dir), train.Runtime(strategy="cpu", verbose=False), path)
    summary = tracking.summarize(str(study_dir), config)
    assert summary["trials"] == 2 and summary["status"] == "completed"
    return summary["best_value"]


def test_compare_adopts_a_clearly_better_candidate_and_keeps_an_equal_one(tmp_path):
    weak = make_study(tmp_path / "weak", 1e-4)
    strong = make_study(tmp_path / "strong", 3e-3)
    assert strong > weak + 0.1
    out = run_cli(
        "--mode=compare",
        f"--baseline={tmp_path / 'weak'}",
        f"--candidate={tmp_path / 'strong'}",
        "--reruns=2",
        f"--workdir={tmp_path / 'cmp'}",
        "--quiet",
    )
    assert out.returncode == 0, out.stderr[-2000:]
    decision = td.read_json(tmp_path / "cmp" / "decision.json")
    assert decision["decision"] == "adopt" and "decision: adopt" in out.stdout
    assert len(decision["baseline"]["values"]) == 2
    seeds = {td.read_config(tmp_path / "cmp" / "candidate" / f"rerun_{k}")["seed"] for k in (1, 2)}
    assert len(seeds) == 2  # New seeds: trial variance, not a copy.
    assert (tmp_path / "cmp" / "report.html").exists()
    same = run_cli(
        "--mode=compare",
        f"--baseline={tmp_path / 'strong'}",
        f"--candidate={tmp_path / 'strong'}",
        "--reruns=2",
        f"--workdir={tmp_path / 'same'}",
        "--quiet",
    )
    assert same.returncode == 0, same.stderr[-2000:]
    assert td.read_json(tmp_path / "same" / "decision.json")["decision"] == "keep baseline"


def test_rerun_vary_separates_initialisation_from_data_order(tmp_path):
    make_study(tmp_path / "a", 3e-3)
    out = run_cli(
        "--mode=compare",
        f"--baseline={tmp_path / 'a'}",
        f"--candidate={tmp_path / 'a'}",
        "--reruns=2",
        "--rerun_vary=sources",
        f"--workdir={tmp_path / 'cmp'}",
        "--quiet",
    )
    assert out.returncode == 0, out.stderr[-2000:]
    decision = td.read_json(tmp_path / "cmp" / "decision.json")
    assert decision["rerun_vary"] == "sources"
    assert set(decision["variance_sources"]["baseline"]) == {"both", "init", "data"}
    assert "baseline rerun standard deviation by source: both " in out.stdout

    def seeds(name):
        status = td.read_status(str(tmp_path / "cmp" / "baseline" / name))
        return status["seeds"]["model_init"], status["seeds"]["data_shuffle_base"]

    original = td.read_config(adoption_best(tmp_path / "a"))["seed"]
    init = [seeds(f"rerun_init_{k}") for k in (1, 2)]
    data = [seeds(f"rerun_data_{k}") for k in (1, 2)]
    both = [seeds(f"rerun_{k}") for k in (1, 2)]
    assert [d for _, d in init] == [original, original]  # Data order kept...
    assert len({i for i, _ in init}) == 2  # ...initialisation changed.
    assert [i for i, _ in data] == [original, original] and len({d for _, d in data}) == 2
    assert all(i == d for i, d in both) and len(set(both)) == 2


def adoption_best(study_dir):
    from tfplaybook.study import adoption

    return adoption.best_trial(str(study_dir))[0]


def test_compare_refuses_a_directory_without_trials(tmp_path):
    (tmp_path / "empty").mkdir()
    make_study(tmp_path / "ok", 3e-3)
    out = run_cli(
        "--mode=compare",
        f"--baseline={tmp_path / 'empty'}",
        f"--candidate={tmp_path / 'ok'}",
        f"--workdir={tmp_path / 'cmp'}",
    )
    assert out.returncode == 2 and "no completed trial" in out.stderr
    assert not (tmp_path / "cmp").exists()


def test_per_value_design_runs_one_study_per_scientific_value(tmp_path):
    space = [
        {
            "name": "optimizer.name",
            "role": "scientific",
            "scale": "categorical",
            "values": ["adam", "nesterov"],
        },
        {
            "name": "optimizer.learning_rate",
            "parent": "optimizer.name",
            "parent_value": "adam",
            "role": "nuisance",
            "scale": "log",
            "min": 1e-3,
            "max": 1e-2,
        },
        {
            "name": "optimizer.learning_rate",
            "parent": "optimizer.name",
            "parent_value": "nesterov",
            "role": "nuisance",
            "scale": "log",
            "min": 0.01,
            "max": 0.1,
        },
    ]
    out = run_cli(
        "--mode=tune",
        "--experiment=experiments/digits_mlp.py",
        f"--workdir={tmp_path / 'study'}",
        "--override=study.design=per_value",
        "--override=study.max_trials=2",
        f"--override=study.search_space={json.dumps(space)}",
        *QUICK,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "best trial of each scientific value" in out.stdout
    for name, low, high in (("adam", 1e-3, 1e-2), ("nesterov", 0.01, 0.1)):
        study = tmp_path / "study" / f"optimizer.name={name}"
        trials = sorted(p for p in os.listdir(study) if p.startswith("trial_"))
        assert len(trials) == 2
        for trial in trials:
            config = td.read_config(study / trial)
            assert config["optimizer"]["name"] == name
            assert low <= config["optimizer"]["learning_rate"] <= high
        assert (study / "report.html").exists()


def test_bn_check_shows_replicas_agreeing_after_the_sync():
    out = run_cli(
        "--mode=bn_check",
        "--num_cpu_replicas=2",
        "--override=model.batch_norm=ghost",
        "--override=model.virtual_batch_size=16",
        "--bn_check_steps=5",
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "2 replicas" in out.stdout and "statistics over 16 examples" in out.stdout
    after = out.stdout.split("after 5 steps")[1]
    assert "moving statistics identical across replicas: yes" in after


def test_study_on_two_cpu_replicas(tmp_path):
    out = run_cli(
        "--mode=tune",
        "--experiment=experiments/digits_mlp.py",
        f"--workdir={tmp_path / 'study'}",
        "--num_cpu_replicas=2",
        "--override=study.max_trials=2",
        *QUICK,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    for trial in ("trial_0", "trial_1"):
        status = td.read_status(tmp_path / "study" / trial)
        assert status["status"] == "completed" and status["replicas"] == 2
