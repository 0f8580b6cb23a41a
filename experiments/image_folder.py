"""Images in class folders on disk (DIR/<class>/*.png): a user's own data with a shipped model.

What it is for: the task contract with a `make_dataset` of the user's own and a registry model
(`model.name=cnn`). Images are read with Keras' `keras.utils.image_dataset_from_directory`
(one sub-folder per class, a seeded 80/20 split into "train" and "eval", resized to
`data.image_size`, scaled to [0, 1]).

Run one training on your folder:
  python -m tfplaybook.run --mode=train --experiment=experiments/image_folder.py \
      --override=data.directory=/path/to/images --workdir=/tmp/images
Run the study (does a wider CNN help?):
  python -m tfplaybook.run --experiment=experiments/image_folder.py \
      --override=data.directory=/path/to/images

Expect: depends on your images. The test writes 240 16x16 PNGs of two classes (horizontal or
vertical stripes) and measures above 90% validation accuracy after 150 steps.
"""


def get_config():
    return {
        "seed": 0,
        "batch_size": 32,
        "max_train_steps": 150,
        "eval_every_steps": 50,
        "data": {
            "dataset": "image_folder",
            "directory": "",  # Required: DIR/<class name>/<image files>.
            "image_size": [16, 16],
            "color_mode": "grayscale",
            "validation_split": 0.2,
            "shuffle_buffer": 1024,
        },
        "model": {"name": "cnn", "width": 8, "depth": 2, "dense_width": 32},
        "optimizer": {"name": "nesterov", "learning_rate": 0.05, "momentum": 0.9},
        "schedule": {"name": "cosine"},
        "study": {
            "name": "image_folder",
            "max_trials": 6,
            "oracle": "quasi_random",
            "search_space": [
                {
                    "name": "model.width",
                    "role": "scientific",
                    "scale": "discrete",
                    "values": [4, 8],
                },
                {
                    "name": "optimizer.learning_rate",
                    "role": "nuisance",
                    "scale": "log",
                    "min": 3e-3,
                    "max": 0.3,
                },
            ],
        },
    }


def make_dataset(split, config):
    import os

    import keras

    from tfplaybook import ConfigError

    data = config["data"]
    if not data["directory"] or not os.path.isdir(data["directory"]):
        raise ConfigError(
            f"data.directory={data['directory']!r} is not a folder of class sub-folders; "
            "pass --override=data.directory=DIR"
        )
    ds = keras.utils.image_dataset_from_directory(
        data["directory"],
        labels="inferred",
        label_mode="int",
        color_mode=data["color_mode"],
        image_size=tuple(data["image_size"]),
        batch_size=None,  # Unbatched examples: tfplaybook batches.
        shuffle=True,  # Shuffles the file list once, with the seed, before the split.
        seed=config["seed"],
        validation_split=data["validation_split"],
        subset="training" if split == "train" else "validation",
        verbose=False,
    )
    return ds.map(lambda image, label: (image / 255.0, label))
