"""Epsilon schedules: the perturbation radius as a function of the training step.

The paper advises ``eps = 0`` early in training (section 3.4), so the schedule is
part of the method. A schedule maps the number of completed generator updates
(an integer tensor) to a float32 epsilon, in the units it was given in; the model
converts to model-input units (see :func:`to_input_units`).
"""

from fractions import Fraction

import tensorflow as tf

from tf_asgan import errors

UNITS = ("input", "pixel")


def parse_epsilon(value):
    """An epsilon as written in a flag or config: ``0.5``, ``"0.5"``, ``"1/255"`` or
    ``"0.5/255"`` -> float (fractions are evaluated exactly, then rounded once).

    Raises:
      ValueError: not a number or a fraction of two numbers, or a zero denominator.
    """
    try:
        if isinstance(value, str) and "/" in value:
            numerator, denominator = value.split("/", 1)
            return (float(Fraction(numerator.strip()))
                    / float(Fraction(denominator.strip())))
        return float(value)
    except (ValueError, ZeroDivisionError):
        raise errors.InputError(f"An epsilon must be a number or a fraction like 1/255, got "
                                f"{value!r}.") from None


def to_input_units(epsilon, unit):
    """Converts an epsilon to model-input units (images in ``[-1, 1]``).

    ``unit="input"``: already in ``[-1, 1]`` units (the paper's ``1/255`` is half a
    grey level of an 8-bit image). ``unit="pixel"``: a fraction of the ``[0, 1]``
    pixel range (``k/255`` is ``k`` grey levels), i.e. twice as large in input units.
    """
    if unit not in UNITS:
        raise errors.InputError(f"Unknown epsilon unit {unit!r}; choose one of {list(UNITS)}.")
    return epsilon * (2.0 if unit == "pixel" else 1.0)


def _check_epsilon(epsilon):
    epsilon = float(epsilon)
    if not epsilon >= 0.0:  # also rejects NaN
        raise errors.InputError(f"epsilon must be >= 0, got {epsilon}.")
    return epsilon


def _check_steps(name, value):
    if int(value) != value or value < 0:
        raise errors.InputError(f"{name} must be a non-negative integer, got {value!r}.")
    return int(value)


class EpsilonSchedule:
    """Base class: ``schedule(step) -> epsilon`` (float32 scalar tensor)."""

    def __init__(self, epsilon):
        self.epsilon = _check_epsilon(epsilon)

    @property
    def max_epsilon(self):
        """The largest value the schedule takes."""
        return self.epsilon

    def __call__(self, step):
        raise NotImplementedError

    def get_config(self):
        return {"epsilon": self.epsilon}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class Constant(EpsilonSchedule):
    """``eps`` at every step."""

    def __call__(self, step):
        del step
        return tf.constant(self.epsilon, tf.float32)


class Delayed(EpsilonSchedule):
    """Zero for the first ``start_step`` steps, then ``eps`` (the paper's advice)."""

    def __init__(self, epsilon, start_step):
        super().__init__(epsilon)
        self.start_step = _check_steps("start_step", start_step)

    def __call__(self, step):
        on = tf.cast(tf.cast(step, tf.int64) >= self.start_step, tf.float32)
        return on * self.epsilon

    def get_config(self):
        return {"epsilon": self.epsilon, "start_step": self.start_step}


class LinearRamp(EpsilonSchedule):
    """Zero until ``start_step``, then linear up to ``eps`` over ``ramp_steps`` steps."""

    def __init__(self, epsilon, start_step=0, ramp_steps=1):
        super().__init__(epsilon)
        self.start_step = _check_steps("start_step", start_step)
        self.ramp_steps = _check_steps("ramp_steps", ramp_steps)
        if self.ramp_steps == 0:
            raise errors.InputError("ramp_steps must be >= 1 (use 'delayed' for a step change).")

    def __call__(self, step):
        progress = (tf.cast(step, tf.float32) - self.start_step) / self.ramp_steps
        return tf.clip_by_value(progress, 0.0, 1.0) * self.epsilon

    def get_config(self):
        return {"epsilon": self.epsilon, "start_step": self.start_step,
                "ramp_steps": self.ramp_steps}


SCHEDULES = {"constant": Constant, "delayed": Delayed, "linear": LinearRamp}


def get(name, epsilon, **kwargs):
    """Builds the schedule registered under ``name`` with peak ``epsilon``."""
    if name not in SCHEDULES:
        raise errors.InputError(
            f"Unknown epsilon schedule {name!r}; choose one of {sorted(SCHEDULES)}.")
    return SCHEDULES[name](epsilon, **kwargs)


# The one epsilon ceiling, in input units (images in [-1, 1]): the width of the whole
# range. An L-infinity radius of 2.0 already lets a perturbation turn any image into any
# other, so a larger one cannot change anything (x_hat is clipped back into [-1, 1]); the
# models (ASGAN's epsilon, DAT's) accept epsilons up to it. Stricter bounds elsewhere are
# derived from it, each with its reason: the configuration's sanity cap on flag values
# (tf_asgan.config.sections.MAX_CONFIG_EPSILON) and the analysis's attack radii
# (tf_asgan.analysis.attacks.MAX_ATTACK_EPSILON).
MAX_EPSILON = 2.0


def as_schedule(epsilon, unit="input"):
    """``(schedule, factor)`` for a model's ``epsilon`` argument.

    Args:
      epsilon: a float (a :class:`Constant` schedule) or an :class:`EpsilonSchedule`.
      unit: the unit ``epsilon`` is given in (see :func:`to_input_units`).

    Returns:
      The schedule and the factor from its unit to model-input units.

    Raises:
      ValueError: an unknown unit, or a peak beyond :data:`MAX_EPSILON` in input units.
    """
    if not isinstance(epsilon, EpsilonSchedule):
        epsilon = Constant(epsilon)
    factor = to_input_units(1.0, unit)
    peak = epsilon.max_epsilon * factor
    if peak > MAX_EPSILON:
        raise errors.InputError(
            f"epsilon {epsilon.max_epsilon} ({unit} units) is {peak:g} in input units, "
            f"beyond the whole [-1, 1] image range: it must lie in [0, {MAX_EPSILON:g}] in "
            "input units. The paper uses 1/255 (in input units, as this project reads it: "
            "epsilon_unit='input').")
    return epsilon, factor
