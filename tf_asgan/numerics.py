"""Checks for NaN and infinite numbers in weights and logged quantities, and the error
that reports them.

Training stops with the first step whose loss or logged quantity is non-finite named
(kept in the graph by :class:`tf_asgan.tracking.NonFiniteMonitor` and read every
``log_every_steps`` steps and before anything is saved; :func:`nonfinite_logs` formats
its values), and weights are checked before every checkpoint, evaluation and export
(:func:`nonfinite_variables`, :func:`check_weights`).
"""

import math

import numpy as np
import tensorflow as tf


class NonFiniteError(FloatingPointError):
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
