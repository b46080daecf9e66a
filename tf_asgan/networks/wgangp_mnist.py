"""WGAN-GP's MNIST networks (registered as ``"wgangp_mnist"``, 28x28, one channel).

Source: Gulrajani et al. 2017, the authors' code ``igul222/improved_wgan_training``,
``gan_mnist.py`` with ``MODE = 'wgan-gp'`` and ``DIM = 64`` (no batch norm anywhere: the
source's batch norm belongs to ``MODE = 'wgan'``, weight clipping):

- G (``Generator``): ``Linear(128 -> 4*4*4*DIM)``, ReLU, reshape to ``[4, 4, 4*DIM]``;
  ``Deconv5x5/2 -> 2*DIM`` (8x8), ReLU, crop to the top-left 7x7; ``Deconv5x5/2 -> DIM``
  (14x14), ReLU; ``Deconv5x5/2 -> 1`` (28x28); the source ends in ``sigmoid`` into
  ``[0, 1]``.
- D (``Discriminator``): ``Conv5x5/2 -> DIM`` (14x14), ``Conv5x5/2 -> 2*DIM`` (7x7),
  ``Conv5x5/2 -> 4*DIM`` (4x4, ``SAME`` padding), each followed by LeakyReLU(0.2);
  flatten (``4*4*4*DIM`` features, the layer ``"d_features"``), ``Linear -> 1``.

Every layer has a bias, initialised to 0; kernels are uniform with the source's standard
deviations (``tflib.ops``): ``sqrt(4 / (fan_in + fan_out))`` for the convolutions
(``he_init=True``), with ``tflib``'s fans (``Conv2D``: ``fan_in = in * k^2``,
``fan_out = out * k^2 / stride^2``; ``Deconv2D``: ``fan_in = in * k^2 / stride^2``,
``fan_out = out * k^2``), and Glorot-uniform for the linear layers.

Choices of ours:

- G ends in ``tanh`` into ``[-1, 1]``, the package's image range, instead of the source's
  ``sigmoid`` into ``[0, 1]`` (``tanh(a) = 2 sigmoid(2a) - 1``: the same family of
  generators, the output mapped to ``[-1, 1]``; D then reads ``[-1, 1]`` images).
- Channels-last: the reshape of G's linear output and the flatten of D's last feature map
  order their units ``(h, w, c)`` instead of the source's ``(c, h, w)``, a permutation of
  the linear layers' rows and columns.
- ``spectral_norm=True`` spectrally normalises every D layer (not in the source); batch
  norm is refused in both networks by ``networks.build_generator`` /
  ``build_discriminator``, since WGAN-GP's networks have none.

The source's noise is ``[N, 128]``; the latent size is the caller's (flagfiles:
``--latent_dim=128``).
"""

import math

import keras
from keras import layers

from tf_asgan.regularizers import spectral_norm as sn

DIM = 64
KERNEL = 5
RESOLUTIONS = (28,)
# resolution: (generator widths 4*DIM, 2*DIM, DIM; discriminator widths DIM, 2*DIM, 4*DIM)
WIDTHS = {28: ((4 * DIM, 2 * DIM, DIM), (DIM, 2 * DIM, 4 * DIM))}
BATCH_NORM = ()


def tflib_uniform(fan_in, fan_out):
    """``tflib``'s ``he_init`` draw: uniform with standard deviation
    ``sqrt(4 / (fan_in + fan_out))``, i.e. on ``+-sqrt(3) * std``."""
    bound = math.sqrt(3.0) * math.sqrt(4.0 / (fan_in + fan_out))
    return keras.initializers.RandomUniform(-bound, bound)


def _deconv(width, width_in, name):
    init = tflib_uniform(width_in * KERNEL**2 / 4, width * KERNEL**2)
    return layers.Conv2DTranspose(width, KERNEL, strides=2, padding="same",
                                  kernel_initializer=init, name=name)


def generator(resolution, latent_dim=128, image_channels=1, widths=None):
    """``gan_mnist.py``'s ``Generator`` (``MODE = 'wgan-gp'``), ending in ``tanh``.

    Args:
      resolution: 28.
      latent_dim: size of ``z``.
      image_channels: channels of the image (1: MNIST).
      widths: override of ``WIDTHS[28][0]`` (``4*DIM, 2*DIM, DIM``).

    Returns:
      A functional ``keras.Model``: ``[N, latent_dim]`` -> ``[N, 28, 28, image_channels]``
      in ``[-1, 1]``.
    """
    w0, w1, w2 = widths or WIDTHS[resolution][0]
    z = keras.Input((latent_dim,), name="z")
    h = layers.Dense(4 * 4 * w0, kernel_initializer=keras.initializers.GlorotUniform(),
                     name="g_linear")(z)
    h = layers.ReLU(name="g_relu0")(h)
    h = layers.Reshape((4, 4, w0), name="g_block0")(h)
    h = _deconv(w1, w0, "g_deconv1")(h)
    h = layers.ReLU(name="g_relu1")(h)
    h = layers.Cropping2D(((0, 1), (0, 1)), name="g_block1")(h)  # 8x8 -> 7x7
    h = _deconv(w2, w1, "g_deconv2")(h)
    h = layers.ReLU(name="g_block2")(h)
    h = _deconv(image_channels, w2, "g_conv_out")(h)
    images = layers.Activation("tanh", dtype="float32", name="g_out")(h)
    return keras.Model(z, images, name=f"wgangp_mnist_generator_{resolution}")


def discriminator(resolution, image_channels=1, widths=None, spectral_norm=False):
    """``gan_mnist.py``'s ``Discriminator`` (``MODE = 'wgan-gp'``).

    Returns:
      A functional ``keras.Model``: ``[N, 28, 28, image_channels]`` -> critic values
      ``[N, 1]``; the layer ``"d_features"`` is the flattened ``[N, 4*4*4*DIM]``.
    """
    conv = sn.SpectralConv2D if spectral_norm else layers.Conv2D
    dense = sn.SpectralDense if spectral_norm else layers.Dense
    x = keras.Input((resolution, resolution, image_channels), name="image")
    h, width_in = x, image_channels
    for i, width in enumerate(widths or WIDTHS[resolution][1], start=1):
        init = tflib_uniform(width_in * KERNEL**2, width * KERNEL**2 / 4)
        h = conv(width, KERNEL, strides=2, padding="same", kernel_initializer=init,
                 name=f"d_conv{i}")(h)
        h = layers.LeakyReLU(0.2, name=f"d_block{i}")(h)
        width_in = width
    features = layers.Flatten(name="d_features")(h)
    logits = dense(1, kernel_initializer=keras.initializers.GlorotUniform(), dtype="float32",
                   name="d_out")(features)
    return keras.Model(x, logits, name=f"wgangp_mnist_discriminator_{resolution}")
