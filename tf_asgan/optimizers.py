"""The two optimizers of a GAN: the paper's defaults, learning-rate schedules, loss scaling
for float16, built early.

AS-GAN (section 4 of the paper) trains both networks with Adam, learning rate 2e-4,
``beta_1 = 0.5``, ``beta_2 = 0.999``, the DCGAN settings (Radford et al. 2016).

Learning-rate schedules (:data:`LR_SCHEDULES`), of the *train step* ``t``: the model's
count of completed train steps (:attr:`tf_asgan.gan.GAN.step_counter`, one G update and
``d_steps`` D updates each), read when an update is applied, so every update of step
``t`` (``t = 0, 1, ...``) uses ``lr(t)``. Not the optimizer's ``iterations``: D's counts
``d_steps`` (and AS-GAN's second update) per step, and a loss scaler's skipped updates are
not counted by it. This is Mimicry's global step (``torch_mimicry/training/trainer.py``:
one G step and ``n_dis`` D steps, then ``global_step += 1`` and the scheduler sets the
rate of the next step from it).

- ``constant``: ``lr`` at every step (the paper's).
- ``linear``: ``lr(t) = lr * max(0, 1 - t / T)``, ``T = decay_steps``: ``lr`` at step 0,
  ``lr / T`` at the last step ``T - 1``, 0 from step ``T`` on. Mimicry's ``LRScheduler``
  ``"linear"`` (``torch_mimicry/training/scheduler.py``: ``linear_decay`` from
  ``(lr, 0)`` over ``(start_step=0, num_steps)``, after Chainer's ``LinearShift`` of the
  SN-GAN code), and WGAN-GP's ``gan_cifar_resnet.py`` (``LR * max(0, 1 - iteration /
  ITERS)`` for ``iteration`` in ``0 .. ITERS - 1``) are this formula, for both networks.
"""

import keras
import tensorflow as tf

from tf_asgan import errors

LR_SCHEDULES = ("constant", "linear")


def linear_decay(initial, step, decay_steps):
    """``initial * max(0, 1 - step / decay_steps)`` (module docstring), as a float32
    scalar tensor (computed in float64, then rounded once).

    Args:
      initial: the learning rate at step 0 (> 0).
      step: the train step ``t`` (an int or integer tensor or variable, >= 0).
      decay_steps: ``T`` (an int >= 1): the rate reaches 0 at step ``T``.
    """
    t = tf.cast(tf.convert_to_tensor(step), tf.float64)
    fraction = tf.maximum(tf.constant(0.0, tf.float64), 1.0 - t / float(decay_steps))
    return tf.cast(float(initial) * fraction, tf.float32)


class StepLinearDecay(keras.optimizers.schedules.LearningRateSchedule):
    """:func:`linear_decay` of a model's train-step variable ``step`` (e.g.
    ``gan.step_counter``): a Keras learning-rate schedule that ignores the optimizer's
    ``iterations`` it is called with (module docstring: why)."""

    def __init__(self, initial, decay_steps, step):
        self.initial = float(initial)
        self.decay_steps = int(decay_steps)
        self.step = step

    def __call__(self, iterations):
        del iterations  # the optimizer's count: not the train step
        return linear_decay(self.initial, self.step, self.decay_steps)

    def get_config(self):
        return {"initial": self.initial, "decay_steps": self.decay_steps}


def adam(learning_rate, beta_1, beta_2, *, schedule="constant", decay_steps=0, step=None):
    """An ``Adam`` whose learning rate follows ``schedule`` (:data:`LR_SCHEDULES`).

    Args:
      learning_rate: the rate (``constant``) or the rate at step 0 (``linear``), > 0.
      beta_1, beta_2: Adam's betas.
      schedule: ``"constant"`` or ``"linear"`` (module docstring).
      decay_steps: ``linear``: the step ``T`` at which the rate reaches 0 (>= 1).
      step: ``linear``: the model's train-step variable (``gan.step_counter``).

    Raises:
      tf_asgan.errors.InputError: an unknown schedule, or ``linear`` without
        ``decay_steps >= 1`` or ``step``.
    """
    if schedule == "constant":
        rate = float(learning_rate)
    elif schedule == "linear":
        if int(decay_steps) < 1 or step is None:
            raise errors.InputError(
                f"The linear learning-rate schedule needs decay_steps >= 1 (got {decay_steps}) "
                "and the model's step variable (step=gan.step_counter); train.py resolves "
                "--lr_decay_steps=0 to the run's total steps.")
        rate = StepLinearDecay(learning_rate, decay_steps, step)
    else:
        raise errors.InputError(f"Unknown learning-rate schedule {schedule!r}; choose one of "
                                f"{list(LR_SCHEDULES)}.")
    return keras.optimizers.Adam(rate, beta_1=beta_1, beta_2=beta_2)


def paper_adam():
    """A fresh ``Adam(2e-4, beta_1=0.5, beta_2=0.999)``, the paper's optimizer."""
    return keras.optimizers.Adam(2e-4, beta_1=0.5, beta_2=0.999)


def uses_float16(*models):
    """Whether any layer of ``models`` computes in float16 (``mixed_float16`` policy)."""
    return any(layer.compute_dtype == "float16" for model in models for layer in model.layers)


def loss_scaled(optimizer):
    """``optimizer`` wrapped in a ``keras.optimizers.LossScaleOptimizer`` (float16
    gradients underflow without loss scaling), unless it already is one."""
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        return optimizer
    return keras.optimizers.LossScaleOptimizer(optimizer)


def prepare(d_optimizer, g_optimizer, discriminator, generator, *, double_backprop=False,
            d_variables=None):
    """The ``(d_optimizer, g_optimizer)`` a GAN trains with, built for its variables.

    Args:
      d_optimizer, g_optimizer: Keras optimizers, or ``None`` for :func:`paper_adam`.
        Each is wrapped by :func:`loss_scaled` when either network computes in float16.
      discriminator, generator: the built networks (their trainable variables are the
        optimizers' variables; building them here, in the caller's strategy scope,
        keeps their slots out of the train step).
      double_backprop: the G update differentiates D's weight gradient (AdvAs).
      d_variables: the variables D's optimizer trains (default: D's trainable
        variables; with SSGAN's rotation head, D's and the head's).

    Raises:
      ValueError: one optimizer object for both networks, or double back-propagation
        with float16 networks (not supported: use float32 or mixed_bfloat16).
    """
    d_optimizer = d_optimizer or paper_adam()
    g_optimizer = g_optimizer or paper_adam()
    float16 = uses_float16(generator, discriminator)
    if float16:
        d_optimizer, g_optimizer = loss_scaled(d_optimizer), loss_scaled(g_optimizer)
    if double_backprop and float16:
        raise errors.InputError("AdvAs (double back-propagation) is not supported with float16 "
                                "networks; use float32 or mixed_bfloat16.")
    if d_optimizer is g_optimizer:
        raise errors.InputError("d_optimizer and g_optimizer must be distinct optimizer objects.")
    d_optimizer.build(discriminator.trainable_variables if d_variables is None
                      else list(d_variables))
    g_optimizer.build(generator.trainable_variables)
    return d_optimizer, g_optimizer
