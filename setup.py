"""tfplaybook: Google's Deep Learning Tuning Playbook as software."""

from setuptools import find_packages, setup

setup(
    name="tfplaybook",
    version="0.1.0",
    description="Run tuning studies the Deep Learning Tuning Playbook way, on TPUs, GPUs or CPU.",
    long_description=open("README.md").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["tfplaybook", "tfplaybook.*"]),
    install_requires=[
        "tensorflow>=2.16",
        # Tested ranges (tfplaybook.compat refuses others: a few private internals are used).
        "keras>=3.15,<3.16",
        "keras-tuner>=1.4.8,<1.5",
        "tensorflow-datasets>=4.9",
        # TFDS imports it at run time but does not declare it.
        "importlib_resources",
        "absl-py",
        "numpy",
        "scipy",
        "scikit-learn",
        # The Bayesian oracle pins BLAS to one thread (faster on small GPs); ships with sklearn.
        "threadpoolctl",
        "matplotlib",
        "tensorboard",
    ],
    extras_require={
        # gs:// study directories (tfplaybook.files.storage); imported only when a gs:// path is used.
        "gcs": ["google-cloud-storage>=3.17.1"],
        # The storage tests run against a GCS API on loopback (gcp-storage-emulator).
        "test": [
            "pytest",
            "pytest-xdist",
            "pandas",
            "google-cloud-storage>=3.17.1",
            "gcp-storage-emulator>=2026.7.19",
        ],
        "dev": ["pytest", "pytest-xdist", "pandas", "black", "isort", "ruff"],
    },
)
