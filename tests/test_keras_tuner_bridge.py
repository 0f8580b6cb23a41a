"""The keras-tuner bridge: tfplaybook's oracles under stock keras-tuner code, and its reports.

Pure tests (the space mapping, reading a handwritten project directory) import neither TensorFlow
nor keras-tuner; the others import keras-tuner inside the test or fixture, and the ones that train
use a one-layer model on 128 NumPy rows for one epoch.
"""

import json
import math
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from tfplaybook.analysis import report, study_data
from tfplaybook.config import ConfigError
from tfplaybook.files import trial_dir as td
from tfplaybook.search.halton import make_sampler
from tfplaybook.search.space import SearchSpace, parse

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC = os.path.join(REPO, "docs", "keras_tuner.md")
LATE_WARNING = "appeared after the first trial"


def _hp(kind, name, conditions=(), **config):
    """One hyperparameter as keras-tuner's HyperParameters.get_config() stores it."""
    conditions = [
        {"class_name": "Parent", "config": {"name": n, "values": v}} for n, v in conditions
    ]
    return {"class_name": kind, "config": dict(name=name, conditions=conditions, **config)}


STORED_SPACE = {
    "space": [
        _hp("Float", "lr", min_value=1e-4, max_value=0.1, step=None, sampling="log", default=1e-4),
        _hp("Float", "drop", min_value=0.0, max_value=1.0, step=0.25, sampling="linear"),
        _hp("Int", "units", min_value=4, max_value=64, step=None, sampling="log", default=None),
        _hp("Int", "layers", min_value=1, max_value=3, step=1, sampling="linear", default=None),
        _hp("Int", "batch", min_value=2, max_value=32, step=2, sampling="log", default=None),
        _hp("Choice", "act", values=["relu", "tanh"], ordered=False, default="relu"),
        _hp("Choice", "width", values=[64, 16, 32], ordered=True, default=64),
        _hp("Boolean", "bn", default=False),
        _hp("Fixed", "depth", value=3),
        _hp("Choice", "opt", values=["sgd", "adam"], ordered=False, default="sgd"),
        _hp(
            "Float",
            "beta1",
            [("opt", ["adam"])],
            min_value=0.8,
            max_value=0.999,
            step=None,
            sampling="reverse_log",
            default=0.8,
        ),
    ],
    "values": {},
}


# Pure: the space mapping.


def test_from_hyperparameters_maps_every_keras_tuner_class():
    space = SearchSpace.from_hyperparameters(STORED_SPACE, roles={"width": "scientific"})
    dims = {d.id: d for d in space.dimensions}
    assert list(dims) == ["lr", "drop", "units", "layers", "batch", "act", "width", "bn"] + [
        "opt",
        "beta1",
    ]
    assert (dims["lr"].scale, dims["lr"].min, dims["lr"].max) == ("log", 1e-4, 0.1)
    assert (dims["units"].scale, dims["units"].is_int) == ("log", True)
    assert (dims["layers"].scale, dims["layers"].is_int) == ("linear", True)  # step 1: a range
    assert dims["drop"].values == (0.0, 0.25, 0.5, 0.75, 1.0)  # keras-tuner's own grid
    assert dims["batch"].values == (2, 4, 8, 16, 32)
    assert (dims["width"].scale, dims["width"].values) == ("discrete", (16, 32, 64))
    assert (dims["act"].scale, dims["bn"].values) == ("categorical", (False, True))
    assert dims["width"].role == "scientific" and dims["lr"].role == "nuisance"
    assert space.fixed == {"depth": 3}
    beta1 = dims["beta1"]
    assert (beta1.parent, beta1.parent_value, beta1.scale) == ("opt", "adam", "reverse_log")
    assert space.from_unit([0.5] * len(space))["opt"] == "adam"
    assert "beta1" in space.from_unit([0.9] * len(space))
    assert "beta1" not in space.from_unit([0.1] * len(space))
    # The canonical spec keeps the keras-tuner name as the id: parse rebuilds the same space.
    assert parse(space.to_spec()).fingerprint() == space.fingerprint()
    assert {"id": "beta1", "parent": "opt"}.items() <= parse(space.to_spec()).dimension(
        "beta1"
    ).spec().items()


def test_from_hyperparameters_refuses_what_a_search_space_cannot_express():
    multi = {"space": STORED_SPACE["space"][-2:-1] + [_hp("Boolean", "x", [("opt", ["sgd", "a"])])]}
    with pytest.raises(ConfigError, match="not one a SearchSpace can express"):
        SearchSpace.from_hyperparameters(multi)
    lenient = SearchSpace.from_hyperparameters(multi, unsupported_conditions="ignore")
    assert lenient.dimension("x").parent is None
    reverse_int = [_hp("Int", "n", min_value=1, max_value=9, step=None, sampling="reverse_log")]
    with pytest.raises(ConfigError, match="needs a step"):
        SearchSpace.from_hyperparameters(reverse_int)
    with pytest.raises(ConfigError, match="unknown hyperparameters"):
        SearchSpace.from_hyperparameters(STORED_SPACE, roles={"nope": "scientific"})
    with pytest.raises(ConfigError, match="declared twice"):
        SearchSpace.from_hyperparameters(STORED_SPACE["space"][:1] * 2)


# Pure: reading a stock keras-tuner project directory.


def _write_project(directory, with_roles):
    """A keras-tuner project as RandomSearch writes it (plus tfplaybook's section if asked)."""
    space = {"space": STORED_SPACE["space"][:1] + STORED_SPACE["space"][5:6], "values": {}}
    oracle = {"hyperparameters": space, "seed": 1}
    if with_roles:
        oracle["tfplaybook"] = {
            "oracle": "QuasiRandomOracle",
            "num_samples": 6,
            "objective": {"name": "val_loss", "direction": "min"},
            "roles": {"lr": "nuisance", "act": "scientific"},
        }
    td.atomic_write_json(os.path.join(directory, "oracle.json"), oracle)
    rows = [  # lr, act, val_loss, status
        (1e-3, "relu", 0.40, "COMPLETED"),
        (1e-2, "tanh", 0.30, "COMPLETED"),
        (3e-2, "relu", 0.20, "COMPLETED"),
        (5e-2, "tanh", 0.35, "COMPLETED"),
        (9e-2, "relu", None, "FAILED"),
        (2e-3, "tanh", 0.50, "COMPLETED"),
    ]
    for i, (lr, act, val_loss, status) in enumerate(rows):
        metrics = {}
        if val_loss is not None:
            metrics = {
                "loss": {
                    "direction": "min",
                    "observations": [{"value": [0.9 * val_loss], "step": 1}],
                },
                "val_loss": {
                    "direction": "min",
                    "observations": [{"value": [val_loss], "step": 1}],
                },
            }
        state = {
            "trial_id": str(i),
            "hyperparameters": {"space": space["space"], "values": {"lr": lr, "act": act}},
            "metrics": {"metrics": metrics},
            "score": val_loss,
            "best_step": 1 if val_loss is not None else None,
            "status": status,
            "message": None if val_loss is not None else "Traceback ...\nValueError: NaN loss",
        }
        os.makedirs(os.path.join(directory, f"trial_{i}"))
        td.atomic_write_json(os.path.join(directory, f"trial_{i}", "trial.json"), state)


def test_load_study_reads_a_stock_keras_tuner_project(tmp_path):
    _write_project(str(tmp_path), with_roles=False)
    study = study_data.load_study(str(tmp_path))
    # No tfplaybook section: the objective is the metric that is every trial's score.
    assert (study.metric, study.goal) == ("loss", "min")
    assert [t.status for t in study.trials].count(td.FAILED) == 1
    failed = next(t for t in study.trials if not t.feasible)
    assert failed.reason == "ValueError: NaN loss" and failed.objective is None
    best = study.best(1)[0]
    assert (best.values, best.objective, best.best_step) == ({"lr": 3e-2, "act": "relu"}, 0.2, 1)
    assert best.curve(td.VALIDATION, "loss")[1].tolist() == [0.2]
    assert best.curve(td.TRAIN, "loss")[1].tolist() == pytest.approx([0.18])
    assert study.dimension("lr").scale == "log" and study.dimension("lr").bounds() == (1e-4, 0.1)
    assert {d.role for d in study.dimensions} == {"nuisance"}
    assert any("no roles stored" in w for w in study.warnings)
    assert any("0-based epoch" in w for w in study.warnings)


def test_report_of_a_project_is_pure_python_and_isolates_the_scientific_one(tmp_path):
    _write_project(str(tmp_path), with_roles=True)
    # A fresh interpreter: the report of a keras-tuner project needs neither TF nor keras-tuner.
    code = (
        "import sys; from tfplaybook.analysis import report; "
        f"report.write_report({str(tmp_path)!r}); "
        "print(sorted(m for m in ('tensorflow', 'keras', 'keras_tuner') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
    study = study_data.load_study(str(tmp_path))
    assert study.oracle == "QuasiRandomOracle" and study.max_trials == 6
    assert [d.id for d in study.scientific_dimensions()] == ["act"]
    _assert_isolation_plot(str(tmp_path), "act")


def _assert_isolation_plot(project_dir, dim_id):
    png = os.path.join(project_dir, report.FILES_DIR, f"isolation_{dim_id}.png")
    assert os.path.getsize(png) > 1000
    with open(os.path.join(project_dir, "report.html")) as f:
        page = f.read()
    section = re.search(r'<section id="isolation-plots">(.*?)</section>', page, re.S).group(1)
    assert f"isolation_{dim_id}.png" in section and "data:image/png;base64," in section
    assert "keras-tuner&#x27;s steps" in page  # The summary says what a step is.


# keras-tuner without training: a BaseTuner whose trial is a closed-form function.


def _declare(hp):
    """A build_model without the model: the space as keras-tuner code declares it."""
    hp.Float("model.dropout", 0.0, 0.5)
    hp.Int("model.units", 4, 16)
    hp.Choice("model.activation", ["relu", "tanh"])
    hp.Boolean("model.use_bias")
    hp.Fixed("model.depth", 1)
    hp.Choice("optimizer.name", ["sgd", "adam"])
    hp.Float("optimizer.learning_rate", 1e-3, 0.3, sampling="log")
    with hp.conditional_scope("optimizer.name", ["sgd"]):
        hp.Float("optimizer.momentum", 0.5, 0.99, sampling="reverse_log")


def _declare_layers(hp):
    """keras-tuner's classic loop: units_1 and units_2 appear only when a trial has more layers."""
    hp.Float("optimizer.learning_rate", 1e-3, 0.3, sampling="log")
    for i in range(hp.Int("model.layers", 1, 3)):
        hp.Int(f"model.units_{i}", 4, 64, sampling="log", default=8)


class Killed(BaseException):
    """Stands for SIGKILL: BaseTuner only catches Exception, so this ends the search mid-trial."""


def _cheap_search(oracle, directory, declare=_declare, kill_at=None):
    import keras_tuner

    class CheapTuner(keras_tuner.engine.base_tuner.BaseTuner):
        def run_trial(self, trial, **kwargs):
            if kill_at is not None and len(self.oracle.trials) == kill_at + 1:
                raise Killed()
            self.hypermodel.build(trial.hyperparameters)  # As Tuner does: may declare new ones.
            lr = trial.hyperparameters.values["optimizer.learning_rate"]
            return {"loss": math.log10(lr / 0.03) ** 2}

    tuner = CheapTuner(
        oracle=oracle, hypermodel=declare, directory=str(directory), project_name="p"
    )
    try:
        tuner.search(verbose=0)
    except Killed:
        pass
    return tuner


def _values(oracle):
    return [oracle.trials[k].hyperparameters.values for k in sorted(oracle.trials)]


def _design(seed, n):
    """The expected values, independently: the SearchSpace of _declare at Halton points 0..n-1."""
    import keras_tuner

    hp = keras_tuner.HyperParameters()
    _declare(hp)
    space = SearchSpace.from_hyperparameters(hp)
    sampler = make_sampler("halton", len(space), seed)
    return space, [dict(space.from_unit(sampler.point(i)), **space.fixed) for i in range(n)]


def test_resume_after_a_kill_reproduces_the_sequence(tmp_path):
    from tfplaybook.search import oracles

    def make(**kwargs):
        kwargs = dict(dict(objective=("loss", "min"), max_trials=6, seed=5), **kwargs)
        return oracles.QuasiRandomOracle(scientific=["model.activation"], **kwargs)

    whole = _cheap_search(make(), tmp_path / "whole").oracle
    _cheap_search(make(), tmp_path / "killed", kill_at=3)
    resumed = _cheap_search(make(), tmp_path / "killed").oracle  # A new oracle reloads the dir.
    assert _values(resumed) == _values(whole) == _design(5, 6)[1]
    assert resumed.roles() == whole.roles()
    assert resumed.roles()["model.depth"] == "fixed"
    assert resumed.roles()["model.activation"] == "scientific"
    with pytest.raises(ConfigError, match="started with scientific"):
        _cheap_search(
            oracles.QuasiRandomOracle(objective=("loss", "min"), max_trials=6, seed=5),
            tmp_path / "killed",
        )
    with pytest.raises(ConfigError, match="started with seed=5"):
        _cheap_search(make(seed=6), tmp_path / "killed")


def test_build_model_hyperparameters_beside_a_search_space_come_from_the_sequence(tmp_path):
    from tfplaybook.search import oracles

    lr = {"name": "optimizer.learning_rate", "role": "nuisance", "scale": "log"}
    space = parse([dict(lr, min=1e-3, max=0.3)])

    def declare(hp):
        hp.Float("model.dropout", 0.0, 0.5)  # Not in the space: keras-tuner would random_sample.

    def run(name):
        oracle = oracles.QuasiRandomOracle(space, ("loss", "min"), 5, seed=1)
        return _cheap_search(oracle, tmp_path / name, declare=declare).oracle

    first, second = run("a"), run("b")
    assert first.space.ids == ["optimizer.learning_rate", "model.dropout"]
    sampler = make_sampler("halton", 2, seed=1)
    expected = [first.space.from_unit(sampler.point(i)) for i in range(5)]
    assert _values(first) == _values(second) == expected


def test_a_late_hyperparameter_keeps_its_default_with_a_warning(tmp_path):
    from tfplaybook.search import oracles

    def make():
        return oracles.QuasiRandomOracle(objective=("loss", "min"), max_trials=8, seed=2)

    with pytest.warns(UserWarning, match=LATE_WARNING) as caught:
        oracle = _cheap_search(make(), tmp_path, declare=_declare_layers).oracle
    late = sorted(str(w.message).split("'")[1] for w in caught if LATE_WARNING in str(w.message))
    assert late == ["model.units_1", "model.units_2"]  # Once each.
    assert oracle.space.ids == ["optimizer.learning_rate", "model.layers", "model.units_0"]
    assert oracle._sampler.num_dims == 3  # The dimension count fixed at the first trial.
    values = _values(oracle)
    layers = [v["model.layers"] for v in values]
    assert set(layers) == {1, 2, 3}
    # units_i is registered, at its default, by the first trial with more than i layers. From then
    # on keras-tuner's unseeded random_sample() would vary it: it keeps the default instead.
    for i in (1, 2):
        first = next(k for k, n in enumerate(layers) if n > i)
        assert first < len(values) - 1  # Later trials draw it.
        expected = [None] * first + [8] * (len(values) - first)
        assert [v.get(f"model.units_{i}") for v in values] == expected
    assert len({json.dumps(v, sort_keys=True) for v in values}) == len(values)
    with open(tmp_path / "p" / "oracle.json") as f:
        ours = json.load(f)["tfplaybook"]
    assert ours["pinned"] == {"model.units_1": 8, "model.units_2": 8}
    assert ours["roles"]["model.units_1"] == "fixed"
    assert study_data.load_study(str(tmp_path / "p")).dimension("model.units_2").role == "fixed"


def test_oracle_arguments_for_the_keras_tuner_way(tmp_path):
    import keras_tuner

    from tfplaybook.search import oracles

    assert oracles.QuasiRandomOracle(objective="loss", max_trials=2).seed == oracles.DEFAULT_SEED
    with pytest.raises(ConfigError, match="not a tfplaybook SearchSpace.*by keyword"):
        oracles.QuasiRandomOracle("val_loss", 10)
    with pytest.raises(ConfigError, match="non-negative integer"):
        oracles.BayesianOracle(objective="loss", max_trials=2, seed=None)
    with pytest.raises(ConfigError, match="list of hyperparameter names"):
        oracles.QuasiRandomOracle(objective="loss", max_trials=2, scientific="model.units")
    space = SearchSpace.from_hyperparameters(STORED_SPACE)
    with pytest.raises(ConfigError, match="not both"):
        oracles.QuasiRandomOracle(space, "loss", 2, hyperparameters=keras_tuner.HyperParameters())
    typo = oracles.QuasiRandomOracle(objective="loss", max_trials=2, scientific=["model.unit"])
    with pytest.raises(ConfigError, match=r"names \['model.unit'\], which are not tuned"):
        _cheap_search(typo, tmp_path)


def test_search_space_round_trips_through_keras_tuner():
    import keras_tuner

    log = {"role": "nuisance", "scale": "log"}
    spec = [
        {"name": "opt", "role": "scientific", "scale": "categorical", "values": ["sgd", "adam"]},
        dict(log, name="lr", parent="opt", parent_value="sgd", min=1e-3, max=1.0),
        dict(log, name="lr", parent="opt", parent_value="adam", min=1e-5, max=0.1),
        {"name": "width", "role": "nuisance", "scale": "discrete", "values": [16, 32, 64]},
        dict(log, name="units", type="int", min=4, max=64),
        {"name": "bn", "role": "nuisance", "scale": "categorical", "values": [False, True]},
        {"name": "depth", "role": "fixed", "value": 2},
    ]
    space = parse(spec)
    hp = space.to_hyperparameters()
    roles = {d.id: d.role for d in space.dimensions}
    back = SearchSpace.from_hyperparameters(hp, roles)
    # Equal but for the order: keras-tuner registers parents before conditional dimensions.
    assert sorted(map(json.dumps, back.to_spec())) == sorted(map(json.dumps, space.to_spec()))
    classes = {p.name: type(p).__name__ for p in hp.space}
    assert classes == {
        "opt": "Choice",
        "sgd/lr": "Float",
        "adam/lr": "Float",
        "width": "Choice",
        "units": "Int",
        "bn": "Boolean",
        "depth": "Fixed",
    }
    # And the other way: stock keras-tuner hyperparameters keep names, kinds and conditions.
    stock = keras_tuner.HyperParameters()
    stock.Float("lr", 1e-4, 0.1, sampling="log")
    stock.Int("layers", 1, 3)
    stock.Float("drop", 0.0, 0.5, step=0.1)
    stock.Boolean("bn")
    stock.Fixed("depth", 3)
    stock.Choice("opt", ["sgd", "adam"])
    with stock.conditional_scope("opt", ["adam"]):
        stock.Float("beta1", 0.8, 0.999, sampling="reverse_log")
    back = SearchSpace.from_hyperparameters(stock).to_hyperparameters()
    assert [(p.name, type(p).__name__) for p in back.space] == [
        ("lr", "Float"),
        ("layers", "Int"),
        ("drop", "Choice"),  # A stepped Float is its grid.
        ("bn", "Boolean"),
        ("opt", "Choice"),
        ("beta1", "Float"),
        ("depth", "Fixed"),
    ]
    by_name = {p.name: p for p in back.space}
    original = {p.name: p for p in stock.space}
    assert list(by_name["drop"].values) == list(original["drop"].values)
    assert by_name["beta1"].conditions == original["beta1"].conditions
    assert by_name["beta1"].sampling == "reverse_log"


# Stock keras_tuner.Tuner with a Keras model: tiny, one epoch per trial.

TRIALS = 4


def _data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(160, 8)).astype("float32")
    y = (x[:, 0] + x[:, 1] > 0).astype("float32")
    return (x[:128], y[:128]), (x[128:], y[128:])


def build_model(hp):
    import keras

    _declare(hp)
    optimizer = hp.get("optimizer.name")
    learning_rate = hp.get("optimizer.learning_rate")
    layers = [
        keras.Input((8,)),
        keras.layers.Dense(
            hp.get("model.units"),
            activation=hp.get("model.activation"),
            use_bias=hp.get("model.use_bias"),
        ),
        keras.layers.Dropout(hp.get("model.dropout")),
        keras.layers.Dense(1, activation="sigmoid"),
    ]
    if optimizer == "sgd":
        opt = keras.optimizers.SGD(learning_rate, momentum=hp.get("optimizer.momentum"))
    else:
        opt = keras.optimizers.Adam(learning_rate)
    model = keras.Sequential(layers)
    # Eager: for 4 batches of a one-layer model, 3x faster than tracing a graph.
    model.compile(opt, "binary_crossentropy", metrics=["accuracy"], run_eagerly=True)
    return model


def _stock_search(oracle, directory):
    import keras_tuner

    tuner = keras_tuner.Tuner(
        oracle=oracle, hypermodel=build_model, directory=str(directory), project_name="p"
    )
    (x, y), validation = _data()
    tuner.search(x, y, validation_data=validation, epochs=1, batch_size=32, verbose=0)
    return tuner


@pytest.fixture(scope="module")
def stock_studies(tmp_path_factory):
    import keras_tuner

    from tfplaybook.search import oracles

    objective = keras_tuner.Objective("val_loss", "min")
    root = tmp_path_factory.mktemp("stock")
    studies = {}
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        oracle = oracles.QuasiRandomOracle(
            objective=objective, max_trials=TRIALS, seed=seed, scientific=["model.activation"]
        )
        studies[name] = _stock_search(oracle, root / name)
    bayes = oracles.BayesianOracle(objective=objective, max_trials=5, seed=1, num_initial_points=3)
    studies["bayes"] = _stock_search(bayes, root / "bayes")
    return studies


def test_stock_tuner_is_reproducible_for_a_seed_and_differs_across_seeds(stock_studies):
    a, b, c = (_values(stock_studies[k].oracle) for k in "abc")
    assert a == b
    assert all(x != y for x, y in zip(a, c))
    assert all(t.status == "COMPLETED" for t in stock_studies["a"].oracle.trials.values())


def test_stock_tuner_values_are_the_seeded_quasi_random_points(stock_studies):
    values = _values(stock_studies["a"].oracle)
    space, expected = _design(3, TRIALS)
    assert values == expected  # Every value, none from keras-tuner's random_sample().
    assert len({json.dumps(v, sort_keys=True) for v in values}) == TRIALS  # No repeats.
    # Low discrepancy: the first coordinate (base 2) puts one trial in each quarter of its range.
    dropout = space.dimension("model.dropout")
    quarters = sorted(math.floor(4 * dropout.to_unit(v["model.dropout"])) for v in values)
    assert quarters == [0, 1, 2, 3]
    for dim in space.dimensions:
        for v in values:
            if dim.id in v:
                assert 0.0 <= dim.to_unit(v[dim.id]) < 1.0


def test_bayesian_oracle_through_the_stock_tuner_models_every_dimension(stock_studies):
    oracle = stock_studies["bayes"].oracle
    assert len(oracle.trials) == 5 and oracle.last_acquisition is not None  # The GP proposed.
    encoder = oracle._suggester.encoder
    names = [p.name for p in oracle.get_space().space if type(p).__name__ != "Fixed"]
    assert [d.id for d in encoder.dims] == names
    # One-hot for the three two-valued categorical ones: 4 + 3 * 2 features, + 2 GP parameters.
    assert encoder.num_features == 10 and len(oracle._suggester.theta) == 12
    assert oracle.space.dimension("optimizer.momentum").parent == "optimizer.name"
    values = _values(oracle)
    quasi_random = _design(1, 5)[1]
    assert values[:3] == quasi_random[:3]
    assert values[3] != quasi_random[3]  # Trial 3 came from the GP, not the sequence.
    assert len({json.dumps(v, sort_keys=True) for v in values}) == 5


def test_report_of_a_stock_tuner_project_has_the_isolation_plot(stock_studies):
    project = stock_studies["a"].project_dir
    path = report.write_report(project)
    assert path == os.path.join(project, "report.html")
    _assert_isolation_plot(project, "model.activation")
    study = study_data.load_study(project)
    assert (study.metric, study.goal, len(study.trials)) == ("loss", "min", TRIALS)
    assert {d.id: d.role for d in study.dimensions}["model.depth"] == "fixed"
    best = study.best(1)[0]
    assert best.objective == pytest.approx(stock_studies["a"].oracle.get_best_trials(1)[0].score)


def test_the_docs_example_runs(tmp_path):
    with open(DOC) as f:
        blocks = re.findall(r"```python\n(.*?)```", f.read(), re.S)
    assert len(blocks) == 1, "docs/keras_tuner.md must hold exactly one python example"
    code = blocks[0]
    assert 'DIRECTORY = "kt_studies"' in code
    code = code.replace('DIRECTORY = "kt_studies"', f"DIRECTORY = {str(tmp_path)!r}")
    exec(compile(code, DOC, "exec"), {"__name__": "__main__"})
    project = os.path.join(str(tmp_path), "sum_sign")
    assert len(study_data.load_study(project).trials) == 6
    _assert_isolation_plot(project, "model.activation")


def test_the_readme_shows_the_executed_keras_tuner_example():
    """The README's keras-tuner example is the docs example this file executes, verbatim."""
    with open(DOC) as f:
        (doc_block,) = re.findall(r"```python\n(.*?)```", f.read(), flags=re.S)
    with open(os.path.join(REPO, "README.md")) as f:
        assert doc_block in f.read()
