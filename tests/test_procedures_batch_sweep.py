"""Batch-size sweep rules on recorded step times (pure Python, no training)."""

import pytest

from tfplaybook.procedures import WARN, batch_sweep, warnings

pytestmark = pytest.mark.pure


def records(throughput_by_size, oom=(), errors=(), jitter=0.0):
    """Records whose step times give the wanted throughput; `jitter` alternates +-fraction."""
    out = []
    for size, throughput in throughput_by_size.items():
        seconds = size / throughput
        times = [seconds * (1 + jitter * (-1) ** i) for i in range(10)]
        out.append({"batch_size": size, "status": "ok", "step_times_s": times})
    out += [{"batch_size": size, "status": "oom"} for size in oom]
    out += [{"batch_size": size, "status": "error", "reason": "boom"} for size in errors]
    return out


# Perfect scaling up to 256, then only +3% from 256 to 512: scaling stops at 256.
STOPS_AT_256 = {32: 1000.0, 64: 2000.0, 128: 3950.0, 256: 7800.0, 512: 8000.0}


def items(res, number):
    return [c for c in res["checklist"] if c["item"] == number]


def test_batch_sizes_doubles_from_start_to_cap():
    assert batch_sweep.batch_sizes(32, 1024) == [32, 64, 128, 256, 512, 1024]
    assert batch_sweep.batch_sizes(8, 100) == [8, 16, 32, 64]
    assert batch_sweep.batch_sizes(4, 4) == [4]
    with pytest.raises(ValueError, match="start=64 exceeds cap=32"):
        batch_sweep.batch_sizes(64, 32)
    with pytest.raises(ValueError, match="start=0"):
        batch_sweep.batch_sizes(0, 32)


def test_scaling_stops_at_256_recommends_256():
    res = batch_sweep.analyze(records(STOPS_AT_256, oom=[1024]))
    n = res["numbers"]
    assert n["recommended_batch_size"] == 256
    assert n["perfect_scaling_up_to"] == 256
    assert n["perfect_scaling_breaks_at"] == 512
    assert n["largest_feasible_batch_size"] == 512
    assert n["oom_batch_size"] == 1024
    assert items(res, 8)[0]["verdict"] == WARN
    assert "beyond 256" in items(res, 9)[0]["message"]
    assert res["recommendation"].startswith("Use batch_size=256")


def test_perfect_scaling_recommends_largest_feasible():
    res = batch_sweep.analyze(records({64: 500.0, 128: 1000.0, 256: 1990.0}, oom=[512]))
    n = res["numbers"]
    assert n["recommended_batch_size"] == 256
    assert n["perfect_scaling_breaks_at"] is None
    assert items(res, 8)[0]["verdict"] == "ok"
    assert not items(res, 9)


def test_imperfect_but_meaningful_gain_still_recommends_the_larger_batch():
    # 1.4x per doubling: not perfect scaling (< 1.6x), but still worth more than 1.1x.
    res = batch_sweep.analyze(records({64: 1000.0, 128: 1400.0, 256: 1960.0}))
    assert res["numbers"]["recommended_batch_size"] == 256
    assert res["numbers"]["perfect_scaling_breaks_at"] == 128
    # A stricter gain threshold stops at the first batch size.
    strict = batch_sweep.analyze(
        records({64: 1000.0, 128: 1400.0, 256: 1960.0}), min_throughput_gain=1.5
    )
    assert strict["numbers"]["recommended_batch_size"] == 64


def test_scaling_tolerance_is_configurable():
    measured = records({64: 1000.0, 128: 1900.0})  # Efficiency 0.95 per doubling.
    assert batch_sweep.analyze(measured)["numbers"]["perfect_scaling_breaks_at"] is None
    strict = batch_sweep.analyze(measured, min_scaling_efficiency=0.99)
    assert strict["numbers"]["perfect_scaling_breaks_at"] == 128


def test_skipped_batch_size_is_compared_per_doubling():
    # 128 failed; 64 -> 256 is two doublings with 4x throughput: perfect scaling.
    res = batch_sweep.analyze(records({64: 1000.0, 256: 4000.0}, errors=[128]))
    row = next(r for r in res["table"] if r["batch_size"] == 256)
    assert row["scaling_efficiency"] == pytest.approx(1.0)
    assert res["numbers"]["error_batch_sizes"] == [128]
    assert any("failed" in c["message"] for c in items(res, 6) if c["verdict"] == WARN)


def test_input_pipeline_named_when_synthetic_is_much_faster():
    real = records(STOPS_AT_256)
    synthetic = records({32: 1000.0, 64: 2000.0, 128: 4000.0, 256: 10000.0, 512: 16000.0})
    res = batch_sweep.analyze(real, synthetic)
    n = res["numbers"]
    assert n["input_bound_batch_sizes"] == [256, 512]
    assert n["synthetic_over_real"]["512"] == pytest.approx(2.0)
    assert n["recommended_batch_size_synthetic"] == 512
    assert {c["item"] for c in warnings(res)} >= {78, 79, 80}
    assert "input pipeline is the bottleneck at [256, 512]" in res["recommendation"]


def test_input_pipeline_not_named_when_synthetic_is_close():
    real = records(STOPS_AT_256)
    synthetic = records({size: 1.1 * value for size, value in STOPS_AT_256.items()})
    res = batch_sweep.analyze(real, synthetic)
    assert res["numbers"]["input_bound_batch_sizes"] == []
    assert items(res, 78)[0]["verdict"] == "ok"
    assert "input pipeline" not in res["recommendation"]


def test_without_synthetic_sweep_the_pipeline_is_not_ruled_out():
    res = batch_sweep.analyze(records(STOPS_AT_256))
    assert items(res, 78)[0]["verdict"] == "info"


def test_retuning_warning_when_the_batch_size_changes():
    changed = batch_sweep.analyze(records(STOPS_AT_256), current_batch_size=64)
    kept = batch_sweep.analyze(records(STOPS_AT_256), current_batch_size=256)
    assert items(changed, 16)[0]["verdict"] == WARN
    assert items(kept, 16)[0]["verdict"] == "info"
    assert "re-tuned" in changed["recommendation"]


def test_throughput_mean_spread_and_time_per_step():
    res = batch_sweep.analyze(records({100: 1000.0}, jitter=0.2))
    row = res["table"][0]
    assert row["time_per_step_s"] == pytest.approx(0.1)
    assert row["examples_per_s"] == pytest.approx(1000.0)  # 100 examples / 0.1 s.
    assert row["examples_per_s_std"] > 0.1 * row["examples_per_s"]
    assert items(res, 7)[0]["verdict"] == WARN
    steady = batch_sweep.analyze(records({100: 1000.0}, jitter=0.01))
    assert items(steady, 7)[0]["verdict"] == "ok"


def test_nothing_ran():
    res = batch_sweep.analyze(records({}, oom=[32]))
    assert res["numbers"]["recommended_batch_size"] is None
    assert items(res, 6)[0]["verdict"] == WARN


@pytest.mark.parametrize(
    "bad, message",
    [
        ([{"batch_size": 32, "status": "fine"}], "status='fine'"),
        ([{"batch_size": -1, "status": "oom"}], "batch_size=-1"),
        ([{"batch_size": 32, "status": "ok", "step_times_s": []}], "step_times_s"),
        ([{"batch_size": 32, "status": "ok", "step_times_s": [0.1, -1.0]}], "step_times_s"),
        ([{"batch_size": 32, "status": "oom"}, {"batch_size": 32, "status": "oom"}], "twice"),
    ],
)
def test_rejects_bad_records(bad, message):
    with pytest.raises(ValueError, match=message):
        batch_sweep.analyze(bad)


def test_measurement_rows_are_one_per_step():
    rows = batch_sweep.measurement_rows(records({32: 100.0}, oom=[64]), records({32: 200.0}))
    assert len(rows) == 10 + 1 + 10
    assert {r["data"] for r in rows} == {"real", "synthetic"}
    assert next(r for r in rows if r["status"] == "oom")["step_time_s"] is None
