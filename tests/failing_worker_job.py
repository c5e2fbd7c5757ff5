"""One worker of a two-worker `tfvae.training.train` run, for tests/test_multi_worker.py (not a test module).

    python tests/run_with_data.py tests/failing_worker_job.py OUT [--fail-at-epoch E --linger S]

TF_CONFIG comes from the environment. With --fail-at-epoch, this worker raises
a RuntimeError from a callback at the fourth step of that epoch (0-based),
prints `failed at <time>`, and then keeps its process alive for --linger
seconds, as a notebook or a script that goes on would: the other worker must
stop without waiting for this process to end. Every worker prints
`stopped at <time>: <error>` when `train` raises.
"""

import argparse
import sys
import time

import keras

from tfvae import training


class FailAt(keras.callbacks.Callback):
    def __init__(self, epoch):
        super().__init__()
        self.epoch, self.current_epoch = epoch, None

    def on_epoch_begin(self, epoch, logs=None):
        self.current_epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.current_epoch == self.epoch and batch >= 3:
            print(f"failed at {time.time():.3f}", flush=True)
            raise RuntimeError("a bug in worker 1's callback")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--fail-at-epoch", type=int, default=None)
    parser.add_argument("--linger", type=float, default=0.0)
    args = parser.parse_args()
    strategy = training.make_strategy("multi_worker")
    config = training.TrainingConfig(dataset="mnist", binarize="dynamic", arch="mlp", latent_dim=2, batch_size=20,
                                     max_examples=400, epochs=2, checkpoint_every=3, steps_per_execution=1)
    callbacks = [] if args.fail_at_epoch is None else [FailAt(args.fail_at_epoch)]
    try:
        training.train(config, args.out, data_dir=args.data_dir, callbacks=callbacks, strategy=strategy, verbose=0)
    except Exception as error:
        print(f"stopped at {time.time():.3f}: {type(error).__name__}: {error}", flush=True)
        time.sleep(args.linger)
        sys.exit(1)


if __name__ == "__main__":
    main()
