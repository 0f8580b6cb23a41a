"""Search spaces: parsing, validation, unit-cube maps, conditional dimensions, apply (pure)."""

import math
import os

import pytest

from tfplaybook import config as config_lib
from tfplaybook.config import ConfigError
from tfplaybook.search.space import SearchSpace, parse

pytestmark = pytest.mark.pure


def _config():
    return config_lib.load_experiment(os.path.join(config_lib.experiments_dir(), "digits_cnn.py"))


def _dim(**entry):
    return parse([dict({"name": "x", "role": "nuisance"}, **entry)]).dimensions[0]


def test_shipped_experiment_space_parses_with_roles_and_scales():
    space = SearchSpace.from_config(_config())
    assert space.ids == ["model.width", "optimizer.learning_rate", "optimizer.momentum"]
    assert [d.scale for d in space.dimensions] == ["discrete", "log", "reverse_log"]
    assert [d.role for d in space.dimensions] == ["scientific", "nuisance", "nuisance"]


def test_log_scale_maps_ends_and_middle_geometrically():
    dim = _dim(scale="log", min=1e-3, max=1.0)
    assert dim.from_unit(0.0) == 1e-3
    assert dim.from_unit(0.5) == pytest.approx(math.sqrt(1e-3))
    assert dim.from_unit(1.0) < 1.0  # [0, 1) maps to [min, max)
    assert dim.to_unit(0.01) == pytest.approx(1 / 3)


def test_reverse_log_is_dense_near_max():
    low, high = 0.5, 0.99
    dim = _dim(scale="reverse_log", min=low, max=high)
    for u in (0.0, 0.3, 0.9):
        expected = (low + high) - math.exp(math.log(high) - u * (math.log(high) - math.log(low)))
        assert dim.from_unit(u) == pytest.approx(expected)
        assert dim.to_unit(dim.from_unit(u)) == pytest.approx(u)
    assert dim.from_unit(0.0) == pytest.approx(low)
    # Equal steps in u shrink toward max: resolution where momentum-like values matter.
    assert dim.from_unit(1.0 - 1e-9) - dim.from_unit(0.9) < dim.from_unit(0.1) - dim.from_unit(0.0)


def test_linear_scale_round_trips():
    dim = _dim(scale="linear", min=-2.0, max=6.0)
    assert dim.from_unit(0.25) == 0.0
    assert dim.to_unit(4.0) == pytest.approx(0.75)


@pytest.mark.parametrize("scale", ["linear", "log"])
def test_int_dimensions_reach_every_integer_and_round_trip(scale):
    dim = _dim(scale=scale, min=1, max=12, type="int")
    seen = {dim.from_unit(i / 5000) for i in range(5000)}
    assert seen == set(range(1, 13))
    assert all(isinstance(v, int) for v in seen)
    for value in range(1, 13):
        assert dim.from_unit(dim.to_unit(value)) == value


def test_linear_int_bins_are_equal_width():
    dim = _dim(scale="linear", min=0, max=3, type="int")
    counts = [0] * 4
    for i in range(4000):
        counts[dim.from_unit((i + 0.5) / 4000)] += 1
    assert counts == [1000] * 4


def test_choices_use_equal_width_bins_and_bin_centres():
    dim = _dim(scale="categorical", values=["a", "b", "c"])
    assert [dim.from_unit(u) for u in (0.0, 0.33, 0.34, 0.99)] == ["a", "a", "b", "c"]
    assert dim.to_unit("b") == pytest.approx(0.5)
    discrete = _dim(scale="discrete", values=[16, 32, 64, 128])
    assert discrete.from_unit(0.6) == 64
    with pytest.raises(ValueError, match="not one of"):
        discrete.to_unit(48)


def _optimizer_space():
    config = _config()
    entries = [
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
            "min": 1e-2,
            "max": 1.0,
        },
        {
            "name": "optimizer.learning_rate",
            "parent": "optimizer.name",
            "parent_value": "adam",
            "role": "nuisance",
            "scale": "log",
            "min": 1e-5,
            "max": 1e-2,
        },
        {
            "name": "optimizer.beta1",
            "parent": "optimizer.name",
            "parent_value": "adam",
            "role": "nuisance",
            "scale": "reverse_log",
            "min": 0.8,
            "max": 0.999,
        },
        {"name": "model.dropout", "role": "fixed", "value": 0.25},
    ]
    return config, parse(entries, config=config, objective=config["objective"])


def test_conditional_dimensions_are_namespaced_per_branch():
    _, space = _optimizer_space()
    assert space.ids == [
        "optimizer.name",
        "nesterov/optimizer.learning_rate",
        "adam/optimizer.learning_rate",
        "adam/optimizer.beta1",
    ]
    nesterov = space.dimension("nesterov/optimizer.learning_rate")
    adam = space.dimension("adam/optimizer.learning_rate")
    assert (nesterov.min, adam.max) == (1e-2, 1e-2)
    values = space.from_unit([0.9, 0.5, 0.5, 0.5])  # 0.9 picks "adam"
    assert set(values) == {"optimizer.name", "adam/optimizer.learning_rate", "adam/optimizer.beta1"}
    assert values["adam/optimizer.learning_rate"] == pytest.approx(1e-5 * 1000**0.5)
    values = space.from_unit([0.1, 0.5, 0.5, 0.5])
    assert set(values) == {"optimizer.name", "nesterov/optimizer.learning_rate"}


def test_apply_writes_active_branch_and_fixed_values_to_dotted_keys():
    config, space = _optimizer_space()
    values = {
        "optimizer.name": "adam",
        "adam/optimizer.learning_rate": 3e-4,
        "adam/optimizer.beta1": 0.95,
        "nesterov/optimizer.learning_rate": 0.5,  # inactive branch: ignored
    }
    applied = space.apply(config, values)
    assert applied["optimizer"]["name"] == "adam"
    assert applied["optimizer"]["learning_rate"] == 3e-4
    assert applied["optimizer"]["beta1"] == 0.95
    assert applied["model"]["dropout"] == 0.25
    assert config["optimizer"]["learning_rate"] == 0.05  # the input is not modified
    with pytest.raises(ConfigError, match="adam/optimizer.beta1"):
        space.apply(config, {"optimizer.name": "adam", "adam/optimizer.learning_rate": 1e-3})
    with pytest.raises(ConfigError, match="unknown dimensions"):
        space.apply(config, {"optimizer.name": "nesterov", "optimizer.learning_rate": 0.1})


def test_hparams_report_values_roles_and_scales_of_active_dims_and_fixed():
    _, space = _optimizer_space()
    values = {"optimizer.name": "nesterov", "nesterov/optimizer.learning_rate": 0.1}
    report = space.hparams(values)
    assert report["values"] == dict(values, **{"model.dropout": 0.25})
    assert report["roles"] == {
        "optimizer.name": "scientific",
        "nesterov/optimizer.learning_rate": "nuisance",
        "model.dropout": "fixed",
    }
    assert report["scales"]["nesterov/optimizer.learning_rate"] == "log"
    assert [row["id"] for row in space.describe()][-1] == "model.dropout"


def test_to_unit_fills_inactive_dims_and_round_trips():
    _, space = _optimizer_space()
    values = space.from_unit([0.2, 0.7, 0.1, 0.3])
    point = space.to_unit(values)
    assert point[2:] == [0.5, 0.5]
    assert space.from_unit(point) == pytest.approx(values)


def test_spec_round_trips_through_parse():
    _, space = _optimizer_space()
    assert parse(space.to_spec()).fingerprint() == space.fingerprint()


@pytest.mark.parametrize(
    "entry, message",
    [
        ({"scale": "log", "min": 1.0, "max": 1.0}, "min < max"),
        ({"scale": "linear", "min": 2.0, "max": 1.0}, "min < max"),
        ({"scale": "log", "min": 0.0, "max": 1.0}, "must be positive"),
        ({"scale": "log", "min": -1.0, "max": 1.0}, "must be positive"),
        ({"scale": "reverse_log", "min": 0.0, "max": 0.9}, "must be positive"),
        ({"scale": "categorical", "values": []}, "non-empty"),
        ({"scale": "discrete", "values": [4, 2]}, "increasing"),
        ({"scale": "categorical", "values": ["a", 1]}, "must all be str"),
        ({"scale": "categorical", "values": ["a", "a"]}, "repeat"),
        ({"scale": "cubic", "min": 0, "max": 1}, "allowed: linear, log"),
        ({"scale": "log", "min": 1, "max": 10, "scaling": "log"}, "unknown keys"),
        ({"scale": "linear", "min": 0.5, "max": 3, "type": "int"}, "integer min and max"),
        (
            {
                "scale": "log",
                "min": 1e-3,
                "max": 1.0,
                "parent": "optimizer.nam",
                "parent_value": "adam",
            },
            "unknown parent",
        ),
    ],
)
def test_invalid_entries_are_errors_naming_the_hyperparameter(entry, message):
    with pytest.raises(ConfigError, match=message) as error:
        parse([dict({"name": "optimizer.learning_rate", "role": "nuisance"}, **entry)])
    assert "optimizer.learning_rate" in str(error.value)


def test_roles_are_required_and_checked():
    with pytest.raises(ConfigError, match="allowed: scientific, nuisance, fixed"):
        parse([{"name": "x", "scale": "linear", "min": 0, "max": 1}])
    with pytest.raises(ConfigError, match="needs a 'value'"):
        parse([{"name": "x", "role": "fixed"}])


def test_conditional_parent_must_be_a_categorical_with_that_value():
    base = {"name": "p", "role": "scientific", "scale": "categorical", "values": ["a", "b"]}
    child = {"name": "x", "role": "nuisance", "scale": "linear", "min": 0, "max": 1, "parent": "p"}
    with pytest.raises(ConfigError, match="parent_value='c' is not one of"):
        parse([base, dict(child, parent_value="c")])
    numeric = {"name": "p", "role": "nuisance", "scale": "linear", "min": 0, "max": 1}
    with pytest.raises(ConfigError, match="unconditional categorical"):
        parse([numeric, dict(child, parent_value="a")])
    with pytest.raises(ConfigError, match="declared twice"):
        parse([base, dict(child, parent_value="a"), dict(child, parent_value="a")])
    plain = {"name": "x", "role": "nuisance", "scale": "linear", "min": 0, "max": 1}
    with pytest.raises(ConfigError, match="declared twice"):
        parse([base, plain, dict(child, parent_value="a")])


def test_names_are_checked_against_the_config():
    config = _config()
    entry = {
        "name": "optimizer.learning_rat",
        "role": "nuisance",
        "scale": "log",
        "min": 1e-3,
        "max": 1.0,
    }
    with pytest.raises(ConfigError, match="no key 'optimizer.learning_rat'"):
        parse([entry], config=config)
    varied = dict(entry, name="model.width", min=8, max=64)
    fixed = {"name": "model.width", "role": "fixed", "value": 8}
    for entries in ([varied, fixed], [fixed, varied]):
        with pytest.raises(ConfigError, match="'model.width' is both fixed and varied"):
            parse(entries, config=config)


def test_max_train_steps_cannot_be_tuned():
    # Checklist 68.
    entry = {
        "name": "max_train_steps",
        "role": "nuisance",
        "scale": "log",
        "type": "int",
        "min": 100,
        "max": 1000,
    }
    with pytest.raises(ConfigError, match="one step budget for all trials"):
        parse([entry], config=_config())
    fixed = parse([{"name": "max_train_steps", "role": "fixed", "value": 500}], config=_config())
    assert fixed.fixed == {"max_train_steps": 500}


def test_batch_size_is_refused_for_a_validation_objective():
    # Checklist 5: batch size sets training time; it is not tuned for validation performance.
    config = _config()
    entry = {
        "name": "batch_size",
        "role": "scientific",
        "scale": "discrete",
        "values": [32, 64, 128],
    }
    with pytest.raises(ConfigError, match="not a hyperparameter to tune") as error:
        parse([entry], config=config, objective=config["objective"])
    assert "re-tuning" in str(error.value)
    train_objective = {"metric": "loss", "goal": "min", "split": "train"}
    assert parse([entry], config=config, objective=train_objective).ids == ["batch_size"]
