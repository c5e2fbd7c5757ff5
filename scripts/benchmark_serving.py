"""Serving latency: the exported SavedModel against the in-process Keras model.

    python scripts/benchmark_serving.py [--model saved_models/pretrained_mnist_mlp]

For `encode` and `decode` and each batch size, times single calls on the same
batches through three paths, in one process:

- keras (eager):       `vae.encode(x).mean()` etc., the baseline;
- keras (tf.function): the same computation traced once;
- saved model:         the loaded SavedModel's signature, as TF Serving runs it.

Prints p50 and p99 latency in milliseconds and each path's p50 speed-up over
the baseline (baseline p50 / path p50; above 1 is faster).
"""

import argparse
import pathlib
import time

import numpy as np
import tensorflow as tf

from tfvae import export, training

ROOT = pathlib.Path(__file__).resolve().parents[1]


def latencies_ms(call, batches, warmup):
    """Milliseconds per call over `batches`, after `warmup` untimed calls."""
    for batch in batches[:warmup]:
        _materialise(call(batch))
    times = []
    for batch in batches:
        start = time.perf_counter()
        _materialise(call(batch))
        times.append((time.perf_counter() - start) * 1e3)
    return np.array(times)


def _materialise(outputs):
    for value in outputs.values():
        value.numpy()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(ROOT / "saved_models" / "pretrained_mnist_mlp"), help="run directory")
    parser.add_argument("--saved-model", default=None, help="default: MODEL/serving/1, exported if missing")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 32, 256])
    parser.add_argument("--calls", type=int, default=200, help="timed calls per path and batch size")
    parser.add_argument("--warmup", type=int, default=20)
    args = parser.parse_args()

    vae, _ = training.load_run(args.model)
    saved_model_path = pathlib.Path(args.saved_model or pathlib.Path(args.model) / "serving" / "1")
    if not saved_model_path.exists():
        export.export(vae, saved_model_path)
    saved_model = export.load(saved_model_path)
    functions = export.serving_functions(vae)
    image_shape = tuple(vae.encoder.inputs[0].shape[1:])
    rng = np.random.default_rng(0)

    print(f"device: {tf.config.list_logical_devices()[0].name}; {args.calls} timed calls per cell")
    print(f"{'signature':<10} {'batch':>5}  {'path':<20} {'p50 ms':>8} {'p99 ms':>8} {'speed-up':>9}")
    for name in ("encode", "decode"):
        function, input_signature = functions[name]
        traced = tf.function(function, input_signature=input_signature)
        argument = input_signature[0].name
        for batch_size in args.batch_sizes:
            shape = (batch_size, *image_shape) if name == "encode" else (batch_size, vae.latent_dim)
            batches = [tf.constant(rng.uniform(size=shape).astype(np.float32)) for _ in range(args.calls)]
            paths = {
                "keras (eager)": function,
                "keras (tf.function)": traced,
                "saved model": lambda x: saved_model.signatures[name](**{argument: x}),
            }
            baseline = None
            for path_name, call in paths.items():
                times = latencies_ms(call, batches, args.warmup)
                p50, p99 = np.percentile(times, [50, 99])
                baseline = baseline or p50
                print(f"{name:<10} {batch_size:>5}  {path_name:<20} {p50:>8.3f} {p99:>8.3f} {baseline / p50:>8.2f}x")


if __name__ == "__main__":
    main()
