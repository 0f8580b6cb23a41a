"""How many trials (checklist 103): bootstrapped best-of-k, the verdict, and the report section."""

import numpy as np
import pytest
from fixtures_analysis import LR_DIM, base_config, make_study, realistic_study

from tfplaybook.analysis import budget, study_data
from tfplaybook.files.trial_dir import COMPLETED, DIVERGED

pytestmark = [pytest.mark.pure, pytest.mark.matplotlib]


def study_with(tmp_path, accuracies, statuses=None):
    statuses = statuses or [COMPLETED] * len(accuracies)
    trials = [
        {
            "values": {"optimizer.learning_rate": 0.01 * (i + 1)},
            "config": base_config(),
            "status": status,
            "final_accuracy": acc,
        }
        for i, (acc, status) in enumerate(zip(accuracies, statuses))
    ]
    make_study(tmp_path, [LR_DIM], trials, max_trials=len(trials))
    return study_data.load_study(str(tmp_path))


def test_best_of_k_rises_to_the_best_trial_and_its_spread_narrows(tmp_path):
    study = study_with(tmp_path, list(np.linspace(0.5, 0.95, 20)))
    result = budget.best_of_k(study)
    best = max(t.objective for t in study.trials)
    assert result["median"][0] == pytest.approx(
        np.median([t.objective for t in study.trials]), abs=0.03
    )
    assert np.all(np.diff(result["median"]) >= -1e-9)  # More trials never hurt the median.
    assert result["median"][-1] <= best + 1e-12
    iqr = result["q75"] - result["q25"]
    assert iqr[-1] < iqr[0]
    assert result["plateau"] is False  # Evenly spread values: doubling still finds better ones.
    assert "would still help" in budget.verdict(result, "accuracy")


def test_a_study_whose_best_value_is_common_has_plateaued(tmp_path):
    study = study_with(tmp_path, [0.95] * 10 + list(np.linspace(0.5, 0.8, 10)))
    result = budget.best_of_k(study)
    assert result["plateau"] is True and result["gain"] == pytest.approx(0.0, abs=1e-3)
    assert "past the point where more trials stop helping" in budget.verdict(result, "accuracy")


def test_infeasible_trials_count_as_draws_without_a_result(tmp_path):
    accuracies = [0.9, 0.8, 0.0, 0.0]
    study = study_with(tmp_path, accuracies, [COMPLETED, COMPLETED, DIVERGED, DIVERGED])
    result = budget.best_of_k(study)
    assert result["n"] == 4 and result["feasible"] == 2
    # One draw of 4 trials hits a feasible one only half the time: the median of the draws
    # that do is one of the two feasible values.
    assert result["median"][0] in (pytest.approx(0.8, abs=0.11), pytest.approx(0.9, abs=0.01))


def test_the_report_has_the_trial_budget_section(tmp_path):
    from tfplaybook.analysis import report

    realistic_study(tmp_path)
    html = open(report.write_report(str(tmp_path))).read()
    assert 'id="trial-budget"' in html and "How many trials (checklist 103" in html
    assert (tmp_path / "report_files" / "trial_budget.png").exists()


def test_too_few_trials_say_so(tmp_path):
    study = study_with(tmp_path, [0.9])
    assert budget.best_of_k(study) is None
    assert "Too few trials" in budget.verdict(None, "accuracy")


def _seeded_study(directory, seed, accuracies, space=(LR_DIM,)):
    """A study whose study.json records the config (with its study seed), as a real one does."""
    from tfplaybook.files import trial_dir as td

    study_with(directory, accuracies)
    config = base_config()
    config["study"].update(seed=seed, search_space=list(space))
    path = directory / "study.json"
    description = td.read_json(path)
    description.update(config=config, search_space=list(space))
    td.atomic_write_json(path, description)
    return study_data.load_study(str(directory))


def test_other_seeds_of_the_same_space_give_the_study_variance(tmp_path):
    rng = np.random.default_rng(0)
    studies = [
        _seeded_study(tmp_path / f"seed{s}", s, list(rng.uniform(0.8, 0.9 + 0.02 * s, 8)))
        for s in range(3)
    ]
    other_space = dict(LR_DIM, max=0.5)
    _seeded_study(tmp_path / "other_space", 7, [0.99] * 8, space=(other_space,))
    _seeded_study(tmp_path / "same_seed", 0, [0.5] * 8)  # Another copy of seed 0: not counted.
    variance = budget.study_variance(studies[0])
    assert [e["seed"] for e in variance["studies"]] == [0, 1, 2]
    bests = [max(t.objective for t in s.trials) for s in studies]
    assert variance["spread"] == pytest.approx(max(bests) - min(bests))
    assert variance["std"] == pytest.approx(np.std(bests, ddof=1))
    assert "3 studies of this space" in budget.variance_sentence(variance, "accuracy")
    assert budget.study_variance(study_with(tmp_path / "alone" / "s", [0.5, 0.6])) is None


def test_the_report_shows_the_study_variance_beside_the_budget(tmp_path):
    from tfplaybook.analysis import report

    for s in range(2):
        _seeded_study(tmp_path / f"seed{s}", s, list(np.linspace(0.8, 0.9 + 0.03 * s, 8)))
    page = open(report.write_report(str(tmp_path / "seed0"))).read()
    assert "Study variance: 2 studies of this space" in page
