"""One training process for tests/test_multi_worker.py (not a test module itself).

    python tests/multi_worker_job.py OUT.npz                         # one process
    python tests/multi_worker_job.py OUT.npz --ports P0 P1 --index I  # worker I of two

Trains a tiny VAE for a few SGD steps on fixed data with a fixed seed under
the default strategy or MultiWorkerMirroredStrategy (whose cluster comes from
TF_CONFIG, set here from --ports and --index), then saves the weights.
"""

import argparse
import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

GLOBAL_BATCH, NUM_EXAMPLES, IMAGE_SHAPE = 8, 32, (4, 4, 1)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--ports", type=int, nargs=2)
    parser.add_argument("--index", type=int, default=0)
    args = parser.parse_args()
    if args.ports:
        os.environ["TF_CONFIG"] = json.dumps({
            "cluster": {"worker": [f"127.0.0.1:{port}" for port in args.ports]},
            "task": {"type": "worker", "index": args.index},
        })

    import keras
    import numpy as np
    import tensorflow as tf

    import tfvae
    from tfvae import architectures, training

    # The strategy must exist before any other TensorFlow work.
    strategy = training.make_strategy("multi_worker" if args.ports else "default")
    keras.utils.set_random_seed(0)
    x = (np.random.default_rng(0).uniform(size=(NUM_EXAMPLES, *IMAGE_SHAPE)) > 0.5).astype(np.float32)
    dataset = tf.data.Dataset.from_tensor_slices(x).batch(GLOBAL_BATCH)
    with strategy.scope():
        vae = tfvae.VAE(architectures.mlp_encoder(IMAGE_SHAPE, 2, hidden_units=(8,)),
                        architectures.mlp_decoder(2, IMAGE_SHAPE, hidden_units=(8,)), seed=5)
        vae.compile(optimizer=keras.optimizers.SGD(0.5), jit_compile=False)  # the same noise alone as on workers
    initial = {f"initial{i}": w for i, w in enumerate(vae.get_weights())}
    history = vae.fit(training.images_for_fit(dataset, has_labels=False), epochs=1, verbose=0).history
    np.savez(args.out, loss=history["loss"], **initial, **{f"w{i}": w for i, w in enumerate(vae.get_weights())})


if __name__ == "__main__":
    main()
