"""Critical batch size: rules on recorded steps-to-target numbers (pure Python), and the mode end
to end on the embedded digits at a tiny budget (TF tier, through the command line)."""

import copy
import json
import math
import os
from concurrent.futures import ThreadPoolExecutor

import pytest
from conftest import REPO, run_cli, snapshot

from tfplaybook import config as config_lib
from tfplaybook.files import trial_dir
from tfplaybook.procedures import WARN, critical_batch, output

STEPS = list(range(10, 1001, 10))


def reaching(step, start=0.2, top=0.9):
    """A validation accuracy curve that climbs to `top` exactly at `step` (None: never reaches
    0.8, the target used below) and stays there."""
    if step is None:
        return [min(0.7, start + s / 2000) for s in STEPS]
    return [top if s >= step else start + (0.75 - start) * s / step for s in STEPS]


def trial(batch, name, lr, step=None, status="completed", values=None):
    return {
        "batch_size": batch,
        "trial": name,
        "learning_rate": lr,
        "status": status,
        "steps": list(STEPS),
        "values": values if values is not None else reaching(step),
    }


def study(steps_by_batch, lrs=(0.01, 0.03, 0.1)):
    """Three trials per batch size; the middle learning rate reaches 0.8 at the given step, the
    others later (1.5x) or never."""
    out = []
    for batch, step in steps_by_batch.items():
        out.append(trial(batch, "trial_0", lrs[0], None if step is None else int(step * 1.5)))
        out.append(trial(batch, "trial_1", lrs[1], step))
        out.append(trial(batch, "trial_2", lrs[2], None))
    return out


# Shallue et al.'s shape: perfect scaling up to 64, then diminishing returns.
SHALLUE = {16: 800, 32: 400, 64: 210, 128: 150, 256: 140}


def items(res, number):
    return [c for c in res["checklist"] if c["item"] == number]


def test_batch_sizes_and_study_directories():
    assert critical_batch.batch_sizes(16, 100) == [16, 32, 64]
    assert critical_batch.study_dir_name(32) == "batch_0032"
    with pytest.raises(ValueError, match="exceeds"):
        critical_batch.batch_sizes(64, 16)


def test_learning_rate_range_scales_with_the_batch_size():
    base = (1e-3, 1e-1)
    assert critical_batch.lr_range(base, 256, 64, "none") == (1e-3, 1e-1)
    assert critical_batch.lr_range(base, 256, 64, "sqrt") == (2e-3, 2e-1)
    assert critical_batch.lr_range(base, 256, 64, "linear") == (4e-3, 4e-1)
    assert critical_batch.lr_range(base, 16, 64, "linear") == (2.5e-4, 2.5e-2)
    with pytest.raises(ValueError, match="cubic"):
        critical_batch.lr_range(base, 16, 64, "cubic")
    with pytest.raises(ValueError, match="0 < min < max"):
        critical_batch.lr_range((0.1, 0.01), 16, 64)


def test_base_range_is_the_studys_learning_rate_range_else_a_decade_each_way():
    config = config_lib.load_experiment(os.path.join(REPO, "experiments", "digits_mlp.py"))
    assert critical_batch.base_lr_range(config) == (1e-4, 3e-2)
    del config["study"]
    config["optimizer"]["learning_rate"] = 0.01
    assert critical_batch.base_lr_range(config) == pytest.approx((1e-3, 1e-1))


def test_study_config_searches_only_the_learning_rate_at_the_batch_size():
    config = config_lib.load_experiment(os.path.join(REPO, "experiments", "digits_mlp.py"))
    before = copy.deepcopy(config)
    c = critical_batch.study_config(config, 32, (1e-3, 1e-2), 3)
    assert config == before
    assert c["batch_size"] == 32 and c["study"]["max_trials"] == 3
    assert c["study"]["oracle"] == "quasi_random"
    assert c["study"]["search_space"] == [
        {
            "name": "optimizer.learning_rate",
            "role": "nuisance",
            "scale": "log",
            "min": 1e-3,
            "max": 1e-2,
        }
    ]
    assert c["study"]["name"] == "digits_mlp_batch_0032"
    assert c["seed"] == config["seed"]  # The same quasi-random points at every batch size.


def test_first_step_reaching_by_goal_and_never_on_nan():
    steps = [10, 20, 30, 40]
    assert critical_batch.first_step_reaching(steps, [0.5, 0.8, 0.7, 0.9], 0.8) == 20
    assert critical_batch.first_step_reaching(steps, [0.5, 0.6, 0.7, 0.7], 0.8) is None
    assert critical_batch.first_step_reaching(steps, [2.0, 1.0, 0.4, 0.3], 0.5, "min") == 30
    assert critical_batch.first_step_reaching(steps, [0.5, math.nan, 0.9, 1.0], 0.8) == 30
    with pytest.raises(ValueError, match="goal"):
        critical_batch.first_step_reaching(steps, [0.5] * 4, 0.8, "up")


def test_default_target_is_a_fraction_of_the_best_every_batch_size_reached():
    records = [
        trial(16, "t0", 0.01, values=[0.5, 0.80]),
        trial(16, "t1", 0.03, values=[0.6, 0.85]),
        trial(32, "t0", 0.01, values=[0.7, 0.90]),
        trial(32, "t1", 0.03, values=[0.99, 0.99], status="diverged"),  # Ignored.
    ]
    for r in records:
        r["steps"] = [10, 20]
    target, common = critical_batch.default_target(records)
    assert common == 0.85  # The worst of the per-batch bests (0.85 at 16, 0.90 at 32).
    assert target == pytest.approx(0.95 * 0.85)
    losses = [dict(r, values=[2 - v for v in r["values"]]) for r in records]
    target, common = critical_batch.default_target(losses, goal="min", fraction=0.9)
    assert common == pytest.approx(1.15)
    assert target == pytest.approx(1.15 * 1.1)


def test_shallue_curve_names_64_and_the_break_at_128():
    res = critical_batch.analyze(study(SHALLUE), target_value=0.8)
    n = res["numbers"]
    assert n["batch_sizes"] == [16, 32, 64, 128, 256]
    assert n["steps_to_target"] == [800, 400, 210, 150, 140]
    assert n["perfect_scaling_steps"] == [800, 400, 200, 100, 50]
    assert n["ratio_to_perfect"] == pytest.approx([1.0, 1.0, 1.05, 1.5, 2.8])
    assert n["best_learning_rates"] == [0.03] * 5
    assert n["reference_batch_size"] == 16
    assert n["critical_batch_size"] == 64
    assert n["scaling_breaks_at"] == 128
    assert n["target_rule"].startswith("given")
    assert "1.25 * steps(b0) * b0 / b'" in n["rule"]
    assert res["recommendation"].startswith("Critical batch size: 64.")
    assert "At 128, 150 steps are 1.50x the 100 of perfect scaling" in res["recommendation"]
    assert items(res, 12)[0]["verdict"] == "info"
    assert [r["near_perfect"] for r in res["table"]] == [True, True, True, False, False]
    assert "target_fraction" not in res["thresholds"]
    assert "choice" in res["thresholds"]["scaling_tolerance"]["source"]


def test_tolerance_is_configurable_and_the_chain_stops_at_the_first_break():
    strict = critical_batch.analyze(study(SHALLUE), target_value=0.8, scaling_tolerance=1.01)
    assert strict["numbers"]["critical_batch_size"] == 32
    assert strict["numbers"]["scaling_breaks_at"] == 64
    loose = critical_batch.analyze(study(SHALLUE), target_value=0.8, scaling_tolerance=3.0)
    assert loose["numbers"]["critical_batch_size"] == 256
    assert loose["numbers"]["scaling_breaks_at"] is None
    assert items(loose, 12)[0]["verdict"] == "ok"
    assert "may be larger" in loose["recommendation"]
    # A batch size back under the line after a break does not extend the critical batch size.
    dip = critical_batch.analyze(study({16: 800, 32: 600, 64: 200}), target_value=0.8)
    assert dip["numbers"]["critical_batch_size"] == 16
    assert dip["numbers"]["scaling_breaks_at"] == 32
    assert dip["recommendation"].startswith("Critical batch size: 16, the smallest")


def test_a_batch_size_that_never_reaches_the_target_breaks_the_chain():
    res = critical_batch.analyze(study({16: 800, 32: 400, 64: None}), target_value=0.8)
    n = res["numbers"]
    assert n["steps_to_target"] == [800, 400, None]
    assert n["critical_batch_size"] == 32 and n["scaling_breaks_at"] == 64
    assert n["not_reached_batch_sizes"] == [64]
    assert res["table"][2]["near_perfect"] is False
    assert "no completed trial reached the target" in res["recommendation"]
    assert any("[64]" in c["message"] for c in warnings_of(res, 12))


def test_reference_is_the_smallest_batch_size_that_reached_the_target():
    res = critical_batch.analyze(study({16: None, 32: 400, 64: 200}), target_value=0.8)
    n = res["numbers"]
    assert n["reference_batch_size"] == 32
    assert n["perfect_scaling_steps"] == [None, 400, 200]
    assert n["critical_batch_size"] == 64


def test_nothing_reached_the_target():
    res = critical_batch.analyze(study({16: None, 32: None}), target_value=0.8)
    n = res["numbers"]
    assert n["critical_batch_size"] is None and n["reference_batch_size"] is None
    assert items(res, 12)[0]["verdict"] == WARN
    assert res["recommendation"].startswith("No completed trial reached validation accuracy")


def test_every_trial_diverged():
    records = [trial(16, "t0", 0.1, values=[math.nan] * len(STEPS), status="diverged")]
    res = critical_batch.analyze(records)
    assert res["numbers"]["target_value"] is None
    assert res["numbers"]["critical_batch_size"] is None
    assert res["recommendation"].startswith("Every trial diverged")


def warnings_of(res, number):
    return [c for c in items(res, number) if c["verdict"] == WARN]


def test_diverged_trials_never_count_and_ties_go_to_the_smaller_learning_rate():
    records = [
        trial(16, "t0", 0.01, 400),
        trial(16, "t1", 0.003, 400),
        trial(16, "t2", 0.3, 100, status="diverged"),  # Reached first, then diverged.
        trial(16, "t3", 1.0, 100, status="failed"),
    ]
    res = critical_batch.analyze(records, target_value=0.8)
    row = res["table"][0]
    assert row["steps_to_target"] == 400
    assert row["best_learning_rate"] == 0.003 and row["best_trial"] == "t1"
    assert row["trials"] == 4 and row["trials_completed"] == 2 and row["trials_reached"] == 2
    assert items(res, 12)[0]["verdict"] == WARN  # One batch size: no doubling measured.


def test_warns_when_the_fastest_learning_rate_is_at_the_edge_of_those_sampled():
    inside = critical_batch.analyze(study(SHALLUE), target_value=0.8)
    assert not items(inside, 42)
    edge = critical_batch.analyze(
        study({16: 800, 32: 400}) + [trial(32, "trial_3", 0.5, 300)], target_value=0.8
    )
    assert edge["table"][1]["lr_edge"] == "high"
    assert "32 (high)" in warnings_of(edge, 42)[0]["message"]


def test_warns_when_the_target_is_reached_at_the_first_evaluation():
    res = critical_batch.analyze(study({16: 20, 32: 10}), target_value=0.8)
    assert res["numbers"]["steps_to_target"] == [20, 10]
    assert any("first evaluation" in c["message"] for c in warnings_of(res, 12))
    assert not [
        c
        for c in critical_batch.analyze(study(SHALLUE), target_value=0.8)["checklist"]
        if "first evaluation" in c["message"]
    ]


def test_minimised_objective():
    records = [
        dict(r, values=[2.0 - v for v in r["values"]]) for r in study({16: 600, 32: 300, 64: 250})
    ]
    res = critical_batch.analyze(records, metric="loss", goal="min", target_value=1.2)
    n = res["numbers"]
    assert n["steps_to_target"] == [600, 300, 250]
    assert n["critical_batch_size"] == 32 and n["scaling_breaks_at"] == 64
    assert "validation loss <= 1.2" in res["recommendation"]


def test_derived_target_is_reached_by_every_batch_size():
    res = critical_batch.analyze(study(SHALLUE))
    n = res["numbers"]
    assert n["common_best_value"] == 0.9 and n["target_value"] == pytest.approx(0.855)
    assert n["not_reached_batch_sizes"] == []
    assert n["target_rule"].startswith("derived")
    assert res["thresholds"]["target_fraction"]["value"] == 0.95


def test_planned_but_unmeasured_batch_sizes_are_listed():
    res = critical_batch.analyze(
        study({16: 800, 32: 400}), target_value=0.8, planned_batch_sizes=[16, 32, 64]
    )
    assert res["numbers"]["not_measured_batch_sizes"] == [64]


@pytest.mark.parametrize(
    "records, kwargs, message",
    [
        ([], {}, "empty"),
        (study({16: 100}), {"goal": "up"}, "goal"),
        (study({16: 100}), {"scaling_tolerance": 0.9}, "scaling_tolerance"),
        (study({16: 100}), {"target_fraction": 0.0}, "target_fraction"),
        (study({16: 100}), {"target_value": math.nan}, "target_value"),
        ([trial(0, "t", 0.1, 100)], {}, "batch_size=0"),
        ([trial(16, "t", -0.1, 100)], {}, "learning_rate=-0.1"),
        ([trial(16, "t", 0.1, 100, status="done")], {}, "status='done'"),
        ([trial(16, "t", 0.1, 100)] * 2, {}, "twice"),
        ([dict(trial(16, "t", 0.1, 100), steps=[1])], {}, "differ in length"),
    ],
)
def test_rejects_bad_input(records, kwargs, message):
    with pytest.raises(ValueError, match=message):
        critical_batch.analyze(records, **kwargs)


def test_measurement_rows_round_trip_to_the_same_result():
    records = study(SHALLUE)
    rows = critical_batch.measurement_rows(records)
    assert len(rows) == len(records) * len(STEPS)
    assert set(rows[0]) == {"batch_size", "trial", "learning_rate", "status", "step", "value"}
    again = critical_batch.records_from_measurements(rows)
    first = critical_batch.analyze(records, target_value=0.8)["numbers"]
    assert critical_batch.analyze(again, target_value=0.8)["numbers"] == first


def test_records_from_study_reads_each_trial_directory(tmp_path):
    config = config_lib.load_experiment(os.path.join(REPO, "experiments", "digits_mlp.py"))
    for name, lr, status in (("trial_0", 0.01, "completed"), ("trial_1", 0.3, "diverged")):
        d = tmp_path / name
        d.mkdir()
        c = copy.deepcopy(config)
        c["optimizer"]["learning_rate"] = lr
        trial_dir.write_config(str(d), c)
        trial_dir.write_status(str(d), status)
        rows = [(s, "validation", "accuracy", s / 100) for s in (20, 10)]
        rows += [(s, "train", "accuracy", 1.0) for s in (10, 20)]  # Ignored: training split.
        trial_dir.append_measurements(str(d), rows)
    (tmp_path / "not_a_trial").mkdir()
    records = critical_batch.records_from_study(str(tmp_path), 32, "accuracy")
    assert records == [
        {
            "batch_size": 32,
            "trial": "trial_0",
            "learning_rate": 0.01,
            "status": "completed",
            "steps": [10, 20],
            "values": [0.1, 0.2],
        },
        {
            "batch_size": 32,
            "trial": "trial_1",
            "learning_rate": 0.3,
            "status": "diverged",
            "steps": [10, 20],
            "values": [0.1, 0.2],
        },
    ]


def test_plot_draws_the_measured_and_the_perfect_scaling_lines():
    res = critical_batch.analyze(
        study({16: 800, 32: 400, 64: None}), target_value=0.8, max_train_steps=1000
    )
    fig = critical_batch.plot(res)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    labels = [line.get_label() for line in ax.get_lines()]
    assert "perfect scaling" in labels and "target not reached" in labels
    perfect = next(line for line in ax.get_lines() if line.get_label() == "perfect scaling")
    assert list(perfect.get_ydata()) == [800, 400, 200]


def test_flag_defaults_are_the_rules_defaults():
    from tfplaybook import flags

    assert flags.TARGET_FRACTION.default == critical_batch.DEFAULT_TARGET_FRACTION
    assert flags.SCALING_TOLERANCE.default == critical_batch.DEFAULT_SCALING_TOLERANCE
    assert flags.CRITICAL_LR_SCALING.default == critical_batch.DEFAULT_LR_SCALING
    assert flags.CRITICAL_TRIALS.default == critical_batch.DEFAULT_TRIALS
    assert "critical_batch" in flags.MODES


# --------------------------------------------------------------------------------- end to end

MLP = "--experiment=experiments/digits_mlp.py"
TINY = (
    MLP,
    "--sweep_start_batch_size=16",
    "--sweep_max_batch_size=64",
    "--critical_trials=2",
    "--override=max_train_steps=40",
    "--override=eval_every_steps=5",
    "--steps_per_loop=5",
    "--quiet",
)


def _ok(result):
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def _summary(directory):
    with open(os.path.join(directory, output.SUMMARY)) as f:
        return json.load(f)


def test_critical_batch_on_digits_is_consistent_with_its_measurements(tmp_path):
    workdir = tmp_path / "cb"
    out = _ok(run_cli("--mode=critical_batch", f"--workdir={workdir}", *TINY))
    res = _summary(workdir)
    n = res["numbers"]
    assert res["procedure"] == "critical_batch" and res["cut_short"] is False
    assert n["batch_sizes"] == [16, 32, 64]
    assert os.path.getsize(workdir / output.PLOT) > 0
    assert f"Critical batch size: {n['critical_batch_size']}" in out
    # One study per batch size, two trials each, at that batch size and inside its LR range.
    for size, (low, high) in zip(n["batch_sizes"], n["learning_rate_ranges"]):
        study_dir = workdir / critical_batch.study_dir_name(size)
        trials = sorted(p for p in study_dir.iterdir() if (p / trial_dir.STATUS).exists())
        assert len(trials) == 2
        for t in trials:
            config = trial_dir.read_config(t)
            assert config["batch_size"] == size and config["max_train_steps"] == 40
            assert low <= config["optimizer"]["learning_rate"] <= high
        assert (study_dir / "report.html").exists()
    assert n["learning_rate_ranges"][2] == pytest.approx([1e-4, 3e-2])  # Batch 64: the config's.
    assert n["learning_rate_ranges"][0] == pytest.approx([5e-5, 1.5e-2])  # sqrt(16 / 64).

    # The summary's numbers follow from measurements.json by the stated rules.
    rows = json.loads((workdir / output.MEASUREMENTS_JSON).read_text())
    assert {r["batch_size"] for r in rows} == {16, 32, 64}
    assert {r["step"] for r in rows} == set(range(5, 41, 5))
    completed = [r for r in rows if r["status"] == "completed"]
    best = {b: max(r["value"] for r in completed if r["batch_size"] == b) for b in (16, 32, 64)}
    assert n["common_best_value"] == pytest.approx(min(best.values()))
    assert n["target_value"] == pytest.approx(0.95 * min(best.values()))
    steps, lrs = [], []
    for b in n["batch_sizes"]:
        first = {}
        for r in sorted(completed, key=lambda r: r["step"]):
            if r["batch_size"] == b and r["value"] >= n["target_value"]:
                first.setdefault((r["trial"], r["learning_rate"]), r["step"])
        step, lr = min((s, lr) for (_, lr), s in first.items())
        steps.append(step)
        lrs.append(lr)
    assert n["steps_to_target"] == steps
    assert n["best_learning_rates"] == pytest.approx(lrs)
    assert n["reference_batch_size"] == 16
    perfect = [steps[0] * 16 / b for b in (16, 32, 64)]
    assert n["perfect_scaling_steps"] == pytest.approx(perfect)
    critical = 16
    for b, s, p in zip((16, 32, 64), steps, perfect):
        if s > 1.25 * p:
            break
        critical = b
    assert n["critical_batch_size"] == critical
    assert [r["steps_to_target"] for r in res["table"]] == steps

    # A rerun with another learning-rate range is refused before anything changes.
    before = snapshot(workdir)
    again = run_cli(
        "--mode=critical_batch", f"--workdir={workdir}", *TINY, "--critical_lr_range=1e-3,1e-2"
    )
    assert again.returncode == 2, again.stderr[-1000:]
    assert again.stderr.strip().splitlines()[-1].startswith("error: ")
    assert "different config" in again.stderr
    assert snapshot(workdir) == before


def test_max_minutes_cuts_the_sweep_short_after_the_first_trial(tmp_path):
    workdir = tmp_path / "cut"
    _ok(run_cli("--mode=critical_batch", f"--workdir={workdir}", *TINY, "--max_minutes=0.0001"))
    res = _summary(workdir)
    assert res["cut_short"] is True
    assert res["recommendation"].startswith("Cut short by --max_minutes=0.0001 after 1 of 6 trials")
    assert res["numbers"]["batch_sizes"] == [16]
    assert res["numbers"]["not_measured_batch_sizes"] == [32, 64]
    assert not (workdir / "batch_0032").exists()


BAD = [
    (["--critical_lr_range=abc"], "critical_lr_range"),
    (["--critical_lr_range=0.1,0.01"], "0 < MIN < MAX"),
    (["--scaling_tolerance=0.5"], "scaling_tolerance"),
    (["--target_fraction=1.5"], "target_fraction"),
    (["--target_value=nan"], "target_value"),
    (["--sweep_start_batch_size=64", "--sweep_max_batch_size=8"], "exceeds"),
    (["--critical_lr_scaling=cubic"], "cubic"),
    (["--critical_trials=0"], "critical_trials"),
]


def test_bad_values_are_one_line_exit_2_and_write_nothing(tmp_path):
    def attempt(case):
        index, (args, fragment) = case
        workdir = tmp_path / f"w{index}"
        return (
            args,
            fragment,
            workdir,
            run_cli("--mode=critical_batch", MLP, f"--workdir={workdir}", *args, timeout=120),
        )

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(attempt, enumerate(BAD)))
    for args, fragment, workdir, out in results:
        errors = [line for line in out.stderr.splitlines() if line.startswith("error: ")]
        assert out.returncode == 2, (args, out.stderr[-1500:])
        assert len(errors) == 1 and fragment in errors[0], (args, out.stderr[-1500:])
        assert "Traceback" not in out.stderr, args
        assert not workdir.exists(), args
