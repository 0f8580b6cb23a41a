"""The report's first section: the study's scientific question answered from its trials (pure)."""

import fixtures_analysis as fx
import pytest

from tfplaybook.analysis import question, study_data

pytestmark = pytest.mark.pure


def _study(tmp_path, trials):
    fx.make_study(str(tmp_path), [fx.LR_DIM, fx.WIDTH_DIM], trials)
    return study_data.load_study(str(tmp_path))


def _trial(lr, width, accuracy, seed=0):
    values = {"optimizer.learning_rate": lr, "model.width": width}
    return {"values": values, "final_accuracy": accuracy, "seed": seed}


def test_winner_gap_and_spread_across_the_top_nuisance_settings(tmp_path):
    study = _study(
        tmp_path,
        [_trial(0.01 * (i + 1), 16, 0.80 + 0.01 * i) for i in range(4)]
        + [_trial(0.01 * (i + 1), 32, 0.90 + 0.01 * i) for i in range(4)],
    )
    result = question.answer(study)
    (entry,) = result["dimensions"]
    best = {g["label"]: g for g in entry["groups"]}
    by_width = {
        w: sorted(
            (t for t in study.ranked() if t.values["model.width"] == w), key=lambda t: -t.objective
        )
        for w in (16, 32)
    }
    assert entry["winner"] == "32"
    assert best["32"]["best"] == pytest.approx(by_width[32][0].objective)
    assert best["16"]["best"] == pytest.approx(by_width[16][0].objective)
    assert entry["gap"] == pytest.approx(by_width[32][0].objective - by_width[16][0].objective)
    top = [t.objective for t in by_width[32][: question.TOP_NUISANCE]]
    assert best["32"]["spread"] == pytest.approx(max(top) - min(top))
    # No repeats and no sibling studies: the study says it cannot tell.
    assert result["noise"] is None
    assert "cannot tell" in result["verdicts"][0] and "--mode=compare" in result["verdicts"][0]


def test_repeated_settings_measure_the_noise_and_judge_the_gap(tmp_path):
    # Each setting twice with another seed: the noise is the pooled spread of those pairs.
    trials = []
    for width, accuracy in ((16, 0.80), (32, 0.95)):
        for seed in (1, 2):
            trials.append(_trial(0.05, width, accuracy + 0.002 * seed, seed=seed))
    study = _study(tmp_path, trials)
    noise, repeats = question.repeat_noise(study)
    assert repeats == 2 and noise > 0
    result = question.answer(study)
    assert result["noise"] == pytest.approx(noise)
    assert result["dimensions"][0]["gap"] > question.NOISE_MULTIPLE * noise
    assert "larger than" in result["verdicts"][0]


def test_a_gap_within_the_noise_is_not_called_a_difference(tmp_path):
    trials = [_trial(0.05, 16, 0.90, seed=1), _trial(0.05, 16, 0.96, seed=2)]
    trials += [_trial(0.05, 32, 0.91, seed=3), _trial(0.05, 32, 0.95, seed=4)]
    result = question.answer(_study(tmp_path, trials))
    assert "not a clear difference" in result["verdicts"][0]


def test_a_study_without_scientific_values_to_compare(tmp_path):
    fx.make_study(str(tmp_path), [fx.LR_DIM], [{"values": {"optimizer.learning_rate": 0.01}}])
    assert question.answer(study_data.load_study(str(tmp_path)))["dimensions"] == []
