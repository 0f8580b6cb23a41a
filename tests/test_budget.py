"""How many trials (checklist 103): bootstrapped best-of-k, the verdict, and the report section."""

import numpy as np
import pytest
from fixtures_analysis import LR_DIM, base_config, make_study, realistic_study

from tfplaybook.analysis import budget, study_data
from tfplaybook.trial_dir import COMPLETED, DIVERGED


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
