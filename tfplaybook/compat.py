"""The library versions tfplaybook is tested with, and a one-line refusal of untested ones.

tfplaybook relies on a few private internals of keras-tuner and Keras (listed in BUILD_NOTES.md:
the optimizer's gradient all-reduce hook, keras-tuner's JSON writer, its chief's exit check, the
oracle's trial creation). A different minor version may change them silently, so a study refuses
to start on one, naming what was found and what to install. `setup.py` pins the same ranges.
"""

from tfplaybook.config import ConfigError

# (distribution, import name, lowest tested, first untested): the ranges setup.py pins.
TESTED = (
    ("keras-tuner", "keras_tuner", (1, 4, 8), (1, 5)),
    ("keras", "keras", (3, 15), (3, 16)),
)


def _version(text):
    parts = []
    for piece in text.split("."):
        digits = "".join(c for c in piece if c.isdigit())
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


def check(installed=None):
    """Raises ConfigError unless every library in TESTED is within its tested range.

    Args:
      installed: {import name: version string} instead of importing (for tests).
    """
    import importlib

    for distribution, module, low, high in TESTED:
        found = (installed or {}).get(module)
        if found is None:
            found = importlib.import_module(module).__version__
        if not low <= _version(found) < high:
            wanted = f">={'.'.join(map(str, low))},<{'.'.join(map(str, high))}"
            raise ConfigError(
                f"{distribution} {found} is not a version tfplaybook is tested with ({wanted}); "
                f"install one: pip install '{distribution}{wanted}'"
            )
