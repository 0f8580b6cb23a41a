"""keras-tuner's and Keras' private internals: used in tfplaybook.internals only, replaced only
while a study runs, and refused on an untested library version."""

import ast
import json
import os
import pathlib
import re
import subprocess
import sys

import pytest
from conftest import REPO, run_cli

from tfplaybook import config as config_lib
from tfplaybook import internals

PACKAGE = pathlib.Path(internals.__file__).parent


def _own_private_names():
    """Every `_name` tfplaybook itself defines: functions, methods, classes, attributes it sets."""
    names = set()
    for path in PACKAGE.rglob("*.py"):
        if path.name == "internals.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)):
                names.add(node.name)
            elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    for sub in ast.walk(target):
                        if isinstance(sub, ast.Attribute):
                            names.add(sub.attr)
                        elif isinstance(sub, ast.Name):
                            names.add(sub.id)
    return {n for n in names if n.startswith("_")}


def test_no_module_but_internals_reaches_into_a_library_private_name():
    own = _own_private_names()
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "internals.py":
            continue
        text = path.read_text()
        for match in re.finditer(r"\b(keras_tuner|keras)\.src\b", text):
            found.append(f"{path.name}: {match.group(0)}")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[:2] in (
                ["keras_tuner", "src"],
                ["keras", "src"],
            ):
                found.append(f"{path.name}: from {node.module} import")
            if isinstance(node, ast.Attribute) and node.attr.startswith("_"):
                if not node.attr.startswith("__") and node.attr not in own:
                    found.append(f"{path.name}:{node.lineno}: .{node.attr}")
    assert found == []


def test_the_scan_sees_a_private_access_when_there_is_one(tmp_path):
    # The scan above would pass on an empty package: show what it flags.
    tree = ast.parse("oracle._retry_queue.pop()\nself._mine = 1\nself._mine += 1\n")
    private = [n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)]
    assert "_retry_queue" in private and "_retry_queue" not in _own_private_names()
    assert "_asked" in _own_private_names()  # tuner.py's own attribute is allowed.


def test_untested_library_versions_are_refused_in_one_line():
    internals.check({"keras_tuner": "1.4.8", "keras": "3.15.1"})
    with pytest.raises(config_lib.ConfigError, match=r"keras-tuner 1.5.0 is not a version .*1.4.8"):
        internals.check({"keras_tuner": "1.5.0", "keras": "3.15.1"})
    with pytest.raises(config_lib.ConfigError, match=r"pip install 'keras>=3.15,<3.16'"):
        internals.check({"keras_tuner": "1.4.8", "keras": "3.16.0rc1"})
    internals.check()  # The installed versions are the tested ones.


def test_setup_py_pins_the_tested_ranges():
    setup = (PACKAGE.parent / "setup.py").read_text()
    for distribution, _, low, high in internals.TESTED:
        pin = f"{distribution}>={'.'.join(map(str, low))},<{'.'.join(map(str, high))}"
        assert pin in setup


def test_keras_tuner_internals_are_replaced_only_while_a_study_runs():
    from keras_tuner.src import utils
    from keras_tuner.src.distribute import oracle_chief

    stock_save, stock_exit = utils.save_json, oracle_chief.exit_chief
    internals.install_chief_exit_check()  # Outside a study: nothing is replaced.
    assert oracle_chief.exit_chief is stock_exit and not internals.is_installed()
    with internals.installed():
        assert utils.save_json is internals._atomic_save_json
        internals.install_chief_exit_check()
        internals.install_chief_exit_check()  # Twice: wrapped once.
        assert oracle_chief.exit_chief.forgets_silent_tuners
        assert oracle_chief.exit_chief.__closure__[0].cell_contents is stock_exit
    assert utils.save_json is stock_save and oracle_chief.exit_chief is stock_exit
    with pytest.raises(RuntimeError):
        with internals.installed():
            raise RuntimeError("a study that fails still restores keras-tuner")
    assert utils.save_json is stock_save and not internals.is_installed()


def test_the_chief_exit_check_forgets_silent_tuners_first():
    from keras_tuner.src.distribute import oracle_chief

    class Oracle:
        forgotten = 0
        ongoing_trials, tuner_ids = {}, set()

        def forget_silent_tuners(self):
            self.forgotten += 1

    oracle = Oracle()
    with internals.installed():
        internals.install_chief_exit_check()
        assert oracle_chief.exit_chief(oracle)
    assert oracle.forgotten == 1


def test_atomic_save_json_writes_what_keras_tuner_reads(tmp_path):
    from keras_tuner.src import utils

    path = tmp_path / "oracle.json"
    with internals.installed():
        utils.save_json(str(path), {"a": [1, 2]})
    assert utils.load_json(str(path)) == {"a": [1, 2]}
    assert [p.name for p in tmp_path.iterdir()] == ["oracle.json"]  # No temporary left.


OPTIONAL_PROBE = """
import json, os, sys


def get_config():
    return {
        "batch_size": 8,
        "max_train_steps": 2,
        "eval_every_steps": 2,
        "checkpoint_every_steps": 2,
        "model": {"name": "mlp", "width": 4, "depth": 1},
    }


def make_dataset(split, config):
    import keras
    import pandas
    import tensorflow as tf

    seen = {name: name in sys.modules for name in ("sklearn", "matplotlib")}
    # The user's own pandas imports and works; Keras' reference to it stays empty.
    frame = pandas.DataFrame({"x": [0.0, 1.0] * 8, "y": [0, 1] * 8})
    seen["keras_pandas"] = keras.src.trainers.data_adapters.array_slicing.pandas is not None
    with open(os.environ["PROBE_OUT"], "w") as f:
        json.dump(seen, f)
    x = frame[["x"]].to_numpy("float32")
    return tf.data.Dataset.from_tensor_slices((x, frame["y"].to_numpy("int32")))
"""


def test_the_command_line_runs_keras_without_its_optional_imports_and_the_user_has_them(tmp_path):
    experiment = tmp_path / "probe.py"
    experiment.write_text(OPTIONAL_PROBE)
    out = tmp_path / "seen.json"
    env = dict(os.environ, PROBE_OUT=str(out))
    done = run_cli(
        "--mode=train", f"--experiment={experiment}", f"--workdir={tmp_path / 'run'}", env=env
    )
    assert done.returncode == 0, done.stderr[-2000:]
    # Without the command line's finder, Keras imports all three at start-up.
    assert json.loads(out.read_text()) == {
        "sklearn": False,
        "matplotlib": False,
        "keras_pandas": False,
    }


IMPORTED_FIRST = """
import sys
from tfplaybook import internals

internals.skip_keras_optional_imports()
as_keras = {"__name__": "keras.src.example"}  # Code run as one of Keras' own modules.
try:
    exec("import pandas", as_keras)
except ModuleNotFoundError:
    pass
else:
    raise AssertionError("Keras imported pandas")
exec("import pandas", {"__name__": "my_experiment"})  # The user's import works.
import sklearn  # The experiment file's top level, before Keras.

exec("import sklearn.cluster", as_keras)  # Keras may now use it, submodules too.
exec("import pandas.plotting", as_keras)
"""


def test_a_library_the_user_imported_is_keras_to_use_in_a_command_line_run():
    done = subprocess.run(
        [sys.executable, "-c", IMPORTED_FIRST],
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONPATH=REPO),
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
