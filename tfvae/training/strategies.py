"""`tf.distribute` strategies by name, and the data and errors that go with them."""

import itertools
import logging

import tensorflow as tf
from tensorflow.python.eager import context as eager_context

logger = logging.getLogger(__name__)

STRATEGIES = ("default", "mirrored", "multi_worker", "tpu")
_MIRRORED_KEY_BASES = itertools.count(start=100_000, step=100_000)


class WorkerLostError(RuntimeError):
    """Another worker of a multi-worker run stopped; this one cannot go on."""


def make_strategy(name="default", devices=None):
    """The `tf.distribute.Strategy` called `name`.

    "default": the current (single-device) strategy; "mirrored": all local
    GPUs, or the given `devices`; "multi_worker": `MultiWorkerMirroredStrategy`,
    which reads the cluster from `TF_CONFIG`; "tpu": `TPUStrategy` on the TPU
    cluster that `TPUClusterResolver` finds (named by `TPU_NAME`, "local" on
    a Cloud TPU VM).
    """
    if name not in STRATEGIES:
        raise ValueError(f"Unknown `strategy` {name!r}; known: {list(STRATEGIES)}.")
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return _mirrored_strategy(devices)
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
    except ValueError as error:
        raise ValueError(f"Found no TPU for `strategy` 'tpu' ({error}). Set TPU_NAME to the TPU's name, "
                         "or to 'local' on a Cloud TPU VM.") from error
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)


def _mirrored_strategy(devices):
    """A `MirroredStrategy` whose collective ops cannot collide with another's.

    Every `MirroredStrategy` numbers its collective all-reduces from the same
    group and instance keys, and TensorFlow caches a key's tensor shape for the
    life of the process. A second strategy in one process (a notebook's second
    run, a second model) whose gradients have other shapes then fails with
    "Shape mismatch in the collective instance 100" (tensorflow/tensorflow#62790).
    TensorFlow's own tests avoid it by giving each strategy its own key base,
    the private class attribute `MirroredStrategy._collective_key_base`, read
    once at construction; so do we, here only
    (tests/test_training_strategies.py checks that it still exists).
    """
    strategy_class = tf.distribute.MirroredStrategy
    default_base = strategy_class._collective_key_base
    strategy_class._collective_key_base = next(_MIRRORED_KEY_BASES)
    try:
        return strategy_class(devices)
    finally:
        strategy_class._collective_key_base = default_base


def images_for_fit(dataset, has_labels):
    """`dataset`'s images alone, each worker keeping its own share of them.

    Labels are dropped because the VAE does not use them, and because under
    `MultiWorkerMirroredStrategy` Keras 3 averages the first batch across
    workers with `strategy.reduce`, which takes one tensor, not an
    `(images, labels)` pair. Each worker reads every file and keeps every
    N-th batch (`AutoShardPolicy.DATA`).
    """
    if has_labels:
        dataset = dataset.map(lambda images, labels: images, num_parallel_calls=tf.data.AUTOTUNE)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def collective_failure_reason(error):
    """The cause in a failed collective's message, without the op's stack."""
    message = error.message
    start = message.find("aborted by:")
    reason = message[start + len("aborted by:"):] if start >= 0 else message.strip().splitlines()[-1]
    reason = reason.split("The error could be from a previous operation")[0]
    return " ".join(reason.split())


def report_failure_to_cluster(strategy, error):
    """Tells the other workers of a multi-worker run that this one failed with `error`.

    A worker that raises leaves the others waiting in their next collective
    for as long as its process lives (they notice a dead process only by its
    missing heartbeats): measured on loopback, a worker whose process lingered
    100 s after its exception held the other for 114 s. TensorFlow's
    coordination service can broadcast an error instead, which aborts every
    other worker's pending and future collectives at once; they then stop with
    `WorkerLostError` naming this worker and its error. Through the private
    `context.report_error_to_cluster` (TensorFlow has no public call for it;
    tests/test_multi_worker.py checks that it still works). Failing to report
    is logged, never raised: the original error matters more.
    """
    resolver = strategy.cluster_resolver
    message = f"{resolver.task_type} {resolver.task_id} failed: {type(error).__name__}: {_first_line(error)}"
    try:
        eager_context.context().report_error_to_cluster(tf.errors.ABORTED, message)
    except Exception as report_error:  # noqa: BLE001  (reporting must not hide `error`)
        logger.warning("Could not tell the other workers that this one failed (%s).", report_error)


def _first_line(error):
    lines = str(error).strip().splitlines()
    return lines[0][:300] if lines else "(no message)"
