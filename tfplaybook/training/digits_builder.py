"""An embedded TFDS builder for scikit-learn's bundled digits: the offline default dataset.

scikit-learn ships the 1,797 8x8 digit images inside its package, so this builder prepares TFRecords
without any network access, in under a second, the first time it is used. Defining the class
registers it with TFDS under the name `tfplaybook_digits`.
"""

import numpy as np
import tensorflow_datasets as tfds

NAME = "tfplaybook_digits"
_TEST_FRACTION = 0.2
_SPLIT_SEED = 1234


class TfplaybookDigits(tfds.core.GeneratorBasedBuilder):
    """scikit-learn's digits as 8x8x1 uint8 images (0-255) with 10 classes."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "8x8 digits from scikit-learn, fixed 80/20 train/test split."}

    def _info(self):
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=(8, 8, 1)),
                    "label": tfds.features.ClassLabel(num_classes=10),
                }
            ),
            supervised_keys=("image", "label"),
            description="scikit-learn's bundled handwritten digits (UCI optdigits test set).",
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # Nothing to download: the data ships inside scikit-learn.
        from sklearn.datasets import load_digits

        digits = load_digits()
        images = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
        labels = digits.target.astype(np.int64)
        order = np.random.RandomState(_SPLIT_SEED).permutation(len(labels))
        num_test = int(round(len(labels) * _TEST_FRACTION))
        test, train = order[:num_test], order[num_test:]
        return {
            "train": self._generate_examples(images[train], labels[train], train),
            "test": self._generate_examples(images[test], labels[test], test),
        }

    def _generate_examples(self, images, labels, indices):
        for image, label, index in zip(images, labels, indices):
            yield int(index), {"image": image, "label": int(label)}
