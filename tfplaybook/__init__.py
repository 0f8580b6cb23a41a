"""tfplaybook: Google's Deep Learning Tuning Playbook as software, for TensorFlow 2 and Keras 3.

The Python API (tfplaybook.api) and the registries, importable without TensorFlow:

    tfplaybook.tune(...), tfplaybook.train(...), tfplaybook.analyze(workdir)
    tfplaybook.register_model(name, build, defaults), tfplaybook.register_dataset(name, make, ...)

TensorFlow loads when a study or training starts. The command line is `python -m tfplaybook.run`.
"""

from tfplaybook.api import StudyResult, TrialResult, analyze, train, tune
from tfplaybook.config import ConfigError
from tfplaybook.training.datasets import register_dataset
from tfplaybook.training.models import register_model

__all__ = [
    "ConfigError",
    "StudyResult",
    "TrialResult",
    "analyze",
    "register_dataset",
    "register_model",
    "train",
    "tune",
]
