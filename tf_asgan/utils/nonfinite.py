"""Checks for NaN and infinite numbers in weights and logged quantities, and the error
that reports them.

Training stops with the first step whose loss or logged quantity is non-finite named
(kept in the graph by :class:`tf_asgan.utils.nonfinite.NonFiniteMonitor` and read every
``log_every_steps`` steps and before anything is saved; :func:`nonfinite_logs` formats
its values), and weights are checked before every checkpoint, evaluation and export
(:func:`nonfinite_variables`, :func:`check_weights`).
"""

import math

import keras
import numpy as np
import tensorflow as tf

from tf_asgan import errors
from tf_asgan.utils import distribute, nonfinite


class NonFiniteError(errors.TfAsganError, FloatingPointError):
    """Training produced a NaN or infinite loss, logged quantity or weight.

    Attributes: ``step`` (the training step that produced it, or ``None``),
    ``quantities`` (their names), ``where`` (what was checked, e.g. ``"losses"``).
    """

    def __init__(self, step, quantities, where="losses", detail=""):
        self.step = None if step is None else int(step)
        self.quantities = list(quantities)
        self.where = where
        at = "" if self.step is None else f" at training step {self.step}"
        super().__init__(f"Non-finite {where}{at}: {', '.join(self.quantities)}."
                         + (f" {detail}" if detail else ""))


def nonfinite_variables(variables):
    """Names (Keras paths, else TF names) of the variables, of any shape and float dtype,
    that hold a NaN or an infinity; ``[]`` when all are finite. One fused device check."""
    variables = list(variables)
    if not variables:
        return []
    flags = tf.stack([tf.reduce_all(tf.math.is_finite(tf.cast(tf.convert_to_tensor(v),
                                                              tf.float32)))
                      for v in variables]).numpy()
    return [getattr(v, "path", v.name) for v, ok in zip(variables, flags) if not ok]


def nonfinite_logs(values):
    """The logged quantities that are NaN or infinite, as ``["name=value", ...]``.

    Args:
      values: ``{name: scalar}``; a tensor or array counts by its first element.
    """
    numbers = {name: float(np.asarray(value).reshape(-1)[0]) for name, value in values.items()}
    return [f"{name}={x}" for name, x in numbers.items() if not math.isfinite(x)]


def check_weights(gan, step, what="weights"):
    """Checks both networks of ``gan`` (its ``generator`` and ``discriminator``).

    Raises:
      NonFiniteError: a weight is not finite; it names up to five of them and ``step``.
    """
    bad = nonfinite_variables(list(gan.generator.variables) + list(gan.discriminator.variables))
    if bad:
        raise NonFiniteError(step, bad[:5] + ([f"... ({len(bad)} in all)"] if len(bad) > 5
                                              else []), where=what)


class NonFiniteMonitor:
    """Remembers, inside the train step, the first step whose logged values are not all
    finite, and the values of that step; the host reads it only when it has to
    (:meth:`check`: every ``log_every_steps`` steps, at epoch ends, and before a
    checkpoint, an evaluation or an export; :mod:`tf_asgan.training.callbacks`).

    Under several replicas the values are summed over the replicas first, so a NaN on
    any replica counts (a sum is non-finite when a term is).

    Args:
      names: the logged quantities, in order (:func:`metric_names`).
    """

    def __init__(self, names):
        self.names = list(names)
        flags = dict(trainable=False, aggregation="only_first_replica")
        # 0: none yet; else the 1-based number of the first non-finite step.
        self.first_step = keras.Variable(0, dtype="int64", name="first_nonfinite_step",
                                         **flags)
        self.values = keras.Variable(tf.zeros([len(self.names)]), dtype="float32",
                                     name="first_nonfinite_values", **flags)

    def update(self, step, values):
        """In the train step: records step ``step`` (0-based) if it is the first whose
        ``values`` (``{name: scalar}``) are not all finite."""
        v = tf.stack([tf.cast(values[name], tf.float32) for name in self.names])
        total = distribute.cross_replica_sum()
        if total is not None:
            v = total(v)
        first = tf.logical_and(tf.logical_not(tf.reduce_all(tf.math.is_finite(v))),
                               tf.equal(self.first_step, 0))
        self.first_step.assign(tf.where(first, tf.cast(step, tf.int64) + 1, self.first_step))
        self.values.assign(tf.where(first, v, self.values))

    def check(self):
        """Raises :class:`~tf_asgan.utils.nonfinite.NonFiniteError` naming the first non-finite
        step and its non-finite quantities, if there was one (and forgets it, so a
        rolled-back run starts clean). One small device read."""
        step = int(self.first_step.numpy())
        if step:
            values = dict(zip(self.names, self.values.numpy()))
            self.reset()
            raise nonfinite.NonFiniteError(step, nonfinite.nonfinite_logs(values))

    def reset(self):
        self.first_step.assign(0)
        self.values.assign(tf.zeros_like(self.values))


def check_numbers(model, step, what="weights"):
    """Before anything of step ``step`` is saved: the model's step values since the last
    check (:meth:`tf_asgan.GAN.check_finite`, when it has one) and its weights.

    Raises:
      tf_asgan.utils.nonfinite.NonFiniteError: a NaN or infinity.
    """
    if hasattr(model, "check_finite"):
        model.check_finite()
    nonfinite.check_weights(model, step, what=what)
