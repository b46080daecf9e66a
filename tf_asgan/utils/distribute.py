"""Scale and speed settings: the ``tf.distribute`` strategy, mixed precision and XLA.

Rules (``"auto"``):

- **strategy**: ``multi_worker`` (``MultiWorkerMirroredStrategy``) when ``TF_CONFIG``
  describes a cluster of more than one task; else ``mirrored`` (``MirroredStrategy``)
  when more than one GPU is visible; else ``one_device`` (TensorFlow's default
  strategy: the GPU if there is one, else the CPU).
- **precision**: ``mixed_float16`` when every visible GPU has compute capability 7.0 or
  more (tensor cores; the optimizers then use loss scaling); else ``float32``. On a CPU
  float16 has no fast kernels (0.14x the float32 step of DCGAN-32 on an AMD EPYC), and
  bfloat16 (1.23x the float32 step of DCGAN-32 and 1.7x of ResNet-32 on the same CPU,
  which has AVX-512-BF16 and no AMX) changes AS-GAN's attack: D(x_hat) - D(x) differs
  from float32's by 29% on average per sample at epsilon 1/255 on a trained demo D (6.6%
  with D's first and last layers in float32, still above the project's 5% bound), and
  71% of the perturbations at 0.2/255 round away at D's input
  (``scripts/precision_agreement.py``, docs/results.md). ``mixed_bfloat16`` is available
  explicitly (TPUs, recent CPUs and GPUs). The networks keep the discriminator's logits
  and the generator's images in float32 and the losses are computed in float32.
- **XLA** (``jit_compile``): on with one replica on a GPU; off on a CPU (measured by
  ``scripts/benchmark.py`` on the 2-core CPU machines here: the DCGAN-32 step ran at
  0.76-0.82x the speed of the plain graph with XLA) and with several replicas (XLA
  under ``MirroredStrategy`` fails on logical CPU devices, docs/dependencies.md; Keras
  makes the same choice).

The global batch (``--batch_size``) is split evenly across replicas: with 2 replicas
and a batch of 64, each replica computes 32 samples per step.
"""

import contextlib
import json
import logging
import os

import keras
import tensorflow as tf

from tf_asgan import errors

log = logging.getLogger(__name__)

STRATEGIES = ("auto", "one_device", "mirrored", "multi_worker")
PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")
SWITCHES = ("auto", "on", "off")


def _cluster_size():
    try:
        cluster = json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster", {})
    except ValueError as err:
        raise errors.InputError(f"TF_CONFIG is not valid JSON: {err}") from err
    return sum(len(tasks) for tasks in cluster.values())


def resolve_strategy_name(name="auto"):
    if name not in STRATEGIES:
        raise errors.InputError(f"Unknown strategy {name!r}; choose one of {list(STRATEGIES)}.")
    if name != "auto":
        return name
    if _cluster_size() > 1:
        return "multi_worker"
    if len(tf.config.list_physical_devices("GPU")) > 1:
        return "mirrored"
    return "one_device"


def make_strategy(name="auto"):
    """The strategy named ``name`` (see the module docstring for ``"auto"``).

    ``multi_worker`` reads the cluster from ``TF_CONFIG`` and must be created before
    any other TensorFlow operation of the process.
    """
    name = resolve_strategy_name(name)
    if name == "one_device":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if _cluster_size() < 1:
        raise errors.InputError("--strategy=multi_worker needs TF_CONFIG, e.g. "
                                '{"cluster": {"worker": ["host1:port", "host2:port"]}, '
                                '"task": {"type": "worker", "index": 0}}, set on every worker.')
    return tf.distribute.MultiWorkerMirroredStrategy()


def describe(strategy):
    """A readable name of ``strategy``."""
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return "MultiWorkerMirroredStrategy"
    if isinstance(strategy, tf.distribute.MirroredStrategy):
        return "MirroredStrategy"
    if strategy is tf.distribute.get_strategy() and not tf.distribute.has_strategy():
        return "one device"
    return type(strategy).__name__


def is_multi_worker(strategy):
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and \
        task(strategy)[0] is not None


def task(strategy):
    """``(task_type, task_id)`` of this process (``(None, 0)`` on one machine)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return None, 0
    return resolver.task_type, int(resolver.task_id or 0)


def is_chief(strategy):
    """Whether this process writes the run's files (checkpoints, logs, export).

    The chief is the ``chief`` task, or worker 0 in a cluster without one.
    """
    task_type, task_id = task(strategy)
    if task_type is None or task_type == "chief":
        return True
    resolver = strategy.cluster_resolver
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return task_type == "worker" and task_id == 0 and not has_chief


def _auto_precision():
    """``(policy, reason)`` of ``--precision=auto`` on this machine (the rules of the
    module docstring): the Keras dtype policy name, and what the start of a run says of
    it."""
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return "float32", ("float32 (--precision=auto on a CPU: bfloat16 does not keep "
                           "AS-GAN's perturbation, docs/results.md, and float16 has no fast "
                           "CPU kernels)")
    if all(tuple(tf.config.experimental.get_device_details(gpu).get(
            "compute_capability", (0, 0))) >= (7, 0) for gpu in gpus):
        return "mixed_float16", "mixed_float16 (--precision=auto: every GPU has tensor cores)"
    return "float32", "float32 (--precision=auto: a GPU without tensor cores)"


def resolve_precision(name="auto"):
    """The Keras dtype policy name for ``name`` (see the module docstring).

    Raises:
      tf_asgan.errors.InputError: ``name`` not in :data:`PRECISIONS`.
    """
    if name not in PRECISIONS:
        raise errors.InputError(f"Unknown precision {name!r}; choose one of {list(PRECISIONS)}.")
    if name != "auto":
        return name
    return _auto_precision()[0]


def precision_reason(name, resolved):
    """What the start of a run says of its precision ``resolved`` (a policy name) asked
    for as ``name``: ``resolved`` itself for an explicit name; for ``name == "auto"``,
    why this machine picks it (the rules of the module docstring), or, when ``resolved``
    is not what auto picks here (a resumed run keeps the precision it started in),
    ``"<resolved> (the precision this run started in)"``."""
    if name != "auto":
        return resolved
    policy, reason = _auto_precision()
    if resolved != policy:
        return f"{resolved} (the precision this run started in)"
    return reason


def resolve_jit(value, strategy):
    """``True``/``False`` for ``value`` in ``auto``/``on``/``off`` under ``strategy``."""
    if isinstance(value, bool):
        return value
    if value not in SWITCHES:
        raise errors.InputError(f"jit_compile must be one of {list(SWITCHES)}, got {value!r}.")
    if value == "auto":
        return strategy.num_replicas_in_sync == 1 and bool(
            tf.config.list_logical_devices("GPU"))
    return value == "on"


@contextlib.contextmanager
def precision_policy(name):
    """Sets the Keras global dtype policy inside a ``with`` block, then restores it."""
    previous = keras.mixed_precision.global_policy().name
    keras.mixed_precision.set_global_policy(name)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def num_replicas():
    """Replicas of the current strategy (1 outside any). Keras 3 optimizers *sum* the
    replicas' gradients, so a replica's loss is divided by this (docs/dependencies.md)."""
    return tf.distribute.get_strategy().num_replicas_in_sync


def cross_replica_sum():
    """``v -> the sum of v over the replicas`` in a replica context of several replicas,
    else ``None`` (one replica: nothing to sum)."""
    if num_replicas() == 1:
        return None
    context = tf.distribute.get_replica_context()
    return lambda v: context.all_reduce(tf.distribute.ReduceOp.SUM, v)
