"""How to run (not what to train): the execution settings of a run, from flags or the API.

Pure Python, so a run that trains nothing (a finished study, a bad config) never imports
TensorFlow to read them.
"""

import dataclasses


@dataclasses.dataclass
class Runtime:
    """How to run (not what to train): hardware and execution settings from the flags."""

    strategy: str = "auto"
    tpu: str = "local"
    num_cpu_replicas: int = 1
    jit_compile: bool = False
    precision: str = "float32"
    steps_per_loop: int = 50
    download: bool = False
    verbose: bool = True
