"""Bad input is refused before TensorFlow loads: the CLI runs with a `tensorflow` (and Keras)
that raise on import, so a mode that imported either before checking its input fails here."""

import pytest
from conftest import run_cli, snapshot, without_tensorflow

pytestmark = pytest.mark.pure

MODES = ["tune", "train", "batch_sweep", "critical_batch", "lr_sweep", "warmup_sweep", "probe"]
MODES += ["bn_check"]


@pytest.fixture(scope="module")
def poisoned(tmp_path_factory):
    return without_tensorflow(str(tmp_path_factory.mktemp("poison")))


@pytest.mark.parametrize("mode", MODES)
def test_a_missing_experiment_file_is_refused_without_tensorflow(poisoned, mode, tmp_path):
    before = snapshot(tmp_path)
    out = run_cli(
        f"--mode={mode}",
        f"--experiment={tmp_path}/no_such_experiment.py",
        f"--workdir={tmp_path}/work",
        env=poisoned,
    )
    assert out.returncode == 2, out.stderr[-600:]
    errors = [line for line in out.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "no_such_experiment.py" in errors[0], out.stderr[-600:]
    assert "imported before" not in out.stderr
    assert snapshot(tmp_path) == before


def test_the_poison_is_real(poisoned, tmp_path):
    # A mode that needs TensorFlow does fail under the poison, so the test above can fail.
    out = run_cli(
        "--mode=train",
        "--experiment=experiments/digits_mlp.py",
        f"--workdir={tmp_path}/work",
        env=poisoned,
    )
    assert out.returncode != 0 and "imported before the input was checked" in out.stderr
