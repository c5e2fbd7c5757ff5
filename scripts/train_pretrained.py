"""Trains the pretrained model shipped in saved_models/ (see saved_models/README.md).

    TFDS_DATA_DIR=../shared/data/tensorflow_datasets python scripts/train_pretrained.py

The same as `tfvae train` with the configuration below; the run directory
holds the model, its config, history, figures and test metrics. The model is
then saved again without its optimizer state (a third of the size), since the
shipped file is for sampling and encoding, not for resuming training.
"""

import argparse
import json
import logging
import pathlib

import keras

from tfvae import training

OUT = pathlib.Path(__file__).resolve().parents[1] / "saved_models" / "pretrained_mnist_mlp"

CONFIG = training.TrainingConfig(
    dataset="mnist",
    binarize="dynamic",
    arch="mlp",
    latent_dim=16,
    epochs=30,
    batch_size=100,
    learning_rate=1e-3,
    seed=0,
)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(OUT))
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level="INFO")
    summary = training.train(CONFIG, args.out, overwrite=args.overwrite, verbose=2)
    model_path = pathlib.Path(args.out) / training.MODEL_FILE
    keras.models.load_model(model_path, compile=False).save(model_path)
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
