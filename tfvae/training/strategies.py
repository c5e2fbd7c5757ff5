"""`tf.distribute` strategies by name, and the data and errors that go with them."""

import itertools

import tensorflow as tf

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
