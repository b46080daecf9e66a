"""Wall-clock timing of TensorFlow calls, and the best rate a matmul reaches.

:func:`time_calls` gives the median milliseconds per call of a function over a few
timed runs, after untimed warm-up calls (the first traces a ``tf.function``); each run
ends by reading its last outputs back to the host, so the time includes the work the
runtime queued. :func:`matmul_gflops` times a square ``tf.matmul`` with it: the rate a
kernel of that dtype can reach at best on this machine. :func:`check_counts` refuses a
count that cannot be timed (zero warm-up calls leave nothing to synchronise on; zero
calls or repeats, nothing to divide by or take the median of).

This module is light on purpose (no networks, no models): the step benchmark
(:mod:`tf_asgan.experiments.benchmark`), the precision profile
(:mod:`tf_asgan.experiments.precision_profile`) and the evaluation network's speed
report (:mod:`tf_asgan.experiments.eval_speed`) share it.
"""

import statistics
import time

import numpy as np
import tensorflow as tf

from tf_asgan import errors


def check_counts(**counts):
    """Raises :class:`tf_asgan.errors.InputError` naming the first of ``counts``
    (``name=value``) that is not an integer ``>= 1``: a Python or NumPy integer, not a
    float (``3.0``, which ``range`` and TensorFlow's shapes refuse) and not
    ``True``/``False`` (a flag is not a count)."""
    for name, value in counts.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise errors.InputError(f"{name} must be an integer >= 1, got {value!r}.")


def time_calls(fn, warmup=3, repeats=5, calls=5):
    """``(median, all)`` milliseconds per call of ``fn()``.

    ``warmup`` untimed calls (the first traces), then ``repeats`` runs of ``calls``
    calls, each run ended by reading the last outputs into NumPy so that it includes
    the work; ``all`` is the ``repeats`` runs' milliseconds per call, ``median`` their
    median (:func:`statistics.median`).

    Args:
      fn: no arguments; returns a tensor or a nest of tensors (read back to wait).
      warmup, repeats, calls: integers >= 1.

    Raises:
      tf_asgan.errors.InputError: a count below 1 or not an integer
        (:func:`check_counts`), before any call.
    """
    check_counts(warmup=warmup, repeats=repeats, calls=calls)
    for _ in range(warmup):
        out = fn()
    sync(out)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            out = fn()
        sync(out)
        times.append(1000 * (time.perf_counter() - start) / calls)
    return statistics.median(times), times


def matmul_gflops(dtype="float32", size=2048, warmup=2, repeats=5, calls=3):
    """GFLOP/s of a ``size`` x ``size`` ``tf.matmul`` in ``dtype`` (e.g. ``"bfloat16"``):
    ``2 * size**3`` operations a product (a multiply and an add per term of each of the
    ``size**2`` dot products of length ``size``) over the median seconds per product of
    :func:`time_calls`. The inputs are seeded standard normals cast to ``dtype``.

    Raises:
      tf_asgan.errors.InputError: a bad count (:func:`check_counts`).
    """
    check_counts(size=size)
    a, b = (tf.cast(tf.random.stateless_normal((size, size), (0, i)), dtype) for i in (1, 2))
    product = tf.function(lambda: tf.matmul(a, b)[0, 0])
    ms, _ = time_calls(product, warmup, repeats, calls)
    return 2 * size ** 3 / (ms / 1000) / 1e9


def sync(out):
    """Waits for the device by reading every tensor of ``out`` back to the host."""
    for value in tf.nest.flatten(out):
        value.numpy()  # np.asarray fails on a bfloat16 scalar
