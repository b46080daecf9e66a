"""The two optimizers of a GAN: the paper's defaults, loss scaling for float16, built early.

AS-GAN (section 4 of the paper) trains both networks with Adam, learning rate 2e-4,
``beta_1 = 0.5``, ``beta_2 = 0.999``, the DCGAN settings (Radford et al. 2016).
"""

import keras

from tf_asgan import errors


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


def prepare(d_optimizer, g_optimizer, discriminator, generator, *, double_backprop=False):
    """The ``(d_optimizer, g_optimizer)`` a GAN trains with, built for its variables.

    Args:
      d_optimizer, g_optimizer: Keras optimizers, or ``None`` for :func:`paper_adam`.
        Each is wrapped by :func:`loss_scaled` when either network computes in float16.
      discriminator, generator: the built networks (their trainable variables are the
        optimizers' variables; building them here, in the caller's strategy scope,
        keeps their slots out of the train step).
      double_backprop: the G update differentiates D's weight gradient (AdvAs).

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
    d_optimizer.build(discriminator.trainable_variables)
    g_optimizer.build(generator.trainable_variables)
    return d_optimizer, g_optimizer
