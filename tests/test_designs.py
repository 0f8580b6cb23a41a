"""Study designs: one study per scientific value (checklist 35), pure."""

import pytest

from tfplaybook.config import ConfigError
from tfplaybook.search import designs
from tfplaybook.search import space as space_lib

pytestmark = pytest.mark.pure

SPACE = [
    {
        "name": "optimizer.name",
        "role": "scientific",
        "scale": "categorical",
        "values": ["nesterov", "adam"],
    },
    {
        "name": "optimizer.learning_rate",
        "parent": "optimizer.name",
        "parent_value": "nesterov",
        "role": "nuisance",
        "scale": "log",
        "min": 0.01,
        "max": 1.0,
    },
    {
        "name": "optimizer.learning_rate",
        "parent": "optimizer.name",
        "parent_value": "adam",
        "role": "nuisance",
        "scale": "log",
        "min": 1e-4,
        "max": 1e-2,
    },
    {"name": "model.width", "role": "scientific", "scale": "discrete", "values": [16, 32]},
    {
        "name": "optimizer.weight_decay",
        "role": "nuisance",
        "scale": "log",
        "min": 1e-5,
        "max": 1e-3,
    },
]


def test_one_study_per_combination_with_its_own_branch():
    studies = designs.per_value_studies(SPACE)
    assert [label for label, _, _ in studies] == [
        "optimizer.name=nesterov,model.width=16",
        "optimizer.name=nesterov,model.width=32",
        "optimizer.name=adam,model.width=16",
        "optimizer.name=adam,model.width=32",
    ]
    label, chosen, entries = studies[2]
    space = space_lib.parse(entries)
    lr = space.dimension("optimizer.learning_rate")
    assert (lr.min, lr.max) == (1e-4, 1e-2)  # The adam branch's own range, now unconditional.
    assert space.fixed == {"optimizer.name": "adam", "model.width": 16}
    assert sorted(space.ids) == ["optimizer.learning_rate", "optimizer.weight_decay"]


def test_continuous_scientific_hyperparameters_cannot_be_enumerated():
    bad = [
        {"name": "model.dropout", "role": "scientific", "scale": "linear", "min": 0.0, "max": 0.5}
    ]
    with pytest.raises(ConfigError, match="'model.dropout' has scale 'linear'"):
        designs.per_value_studies(bad)
    with pytest.raises(ConfigError, match="at least one scientific"):
        designs.per_value_studies(SPACE[4:])
