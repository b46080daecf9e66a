"""DCGAN generator and discriminator, AS-GAN Appendix G Tables 8-11.

G blocks are ConvTranspose-BN-ReLU, D blocks Conv-BN-LeakyReLU(0.2); kernel 4,
stride 2 (the first G block: stride 1 from a 1x1 latent to 4x4; the last D conv:
4x4 valid to a single logit); convolution weights ``N(0, 0.02)``, no biases.
Channels-last: G maps ``[N, latent_dim]`` to ``[N, R, R, 3]`` in ``[-1, 1]`` (tanh);
D maps ``[N, R, R, 3]`` to logits ``[N, 1]`` (the tables' sigmoid is in the loss).

Choices of ours: BatchNorm as in PyTorch, which the paper used (momentum 0.1 there,
i.e. Keras ``momentum=0.9``; ``epsilon=1e-5``), scale initialised ``N(1, 0.02)`` as in
the DCGAN reference code; with BN switched off (Table 2) convolutions still have no
bias, as the paper states for all of them. 128 px, which the paper shows (Fig. 11)
without a table, adds one block at each end: G 1024-512-256-128-64, D 64-128-256-512-1024.
With ``spectral_norm=True`` every D convolution is spectrally normalised
(:mod:`tf_asgan.regularizers.spectral_norm`), as in SN-GAN (Miyato et al. 2018).
"""

import keras
from keras import layers

from tf_asgan.regularizers import spectral_norm as sn

CHANNELS = {
    # resolution: (generator channels from 4x4 upwards, discriminator channels downwards)
    32: ((512, 256, 128), (128, 256, 512)),
    64: ((1024, 512, 256, 128), (128, 256, 512, 1024)),
    128: ((1024, 512, 256, 128, 64), (64, 128, 256, 512, 1024)),
}
RESOLUTIONS = tuple(sorted(CHANNELS))
# which networks have batch norm in the paper (Table 2 switches each off)
BATCH_NORM = ("generator", "discriminator")


def _conv_init():
    return keras.initializers.RandomNormal(0.0, 0.02)


def _batch_norm(name):
    return layers.BatchNormalization(
        momentum=0.9, epsilon=1e-5,
        gamma_initializer=keras.initializers.RandomNormal(1.0, 0.02), name=name)


def generator(resolution, latent_dim=100, batch_norm=True, channels=None, image_channels=3):
    """DCGAN generator (Table 8: 32 px, Table 10: 64 px).

    Args:
      resolution: output size, one of 32, 64, 128.
      latent_dim: size of ``z``.
      batch_norm: BN in every block (``False``: Table 2's "no BN in G").
      channels: override of the block widths (tests and small experiments).
      image_channels: channels of the image (3: the paper's).

    Returns:
      A functional ``keras.Model``: ``[N, latent_dim]`` -> ``[N, R, R, image_channels]``
      in ``[-1, 1]``.
    """
    channels = channels or CHANNELS[resolution][0]
    z = keras.Input((latent_dim,), name="z")
    h = layers.Reshape((1, 1, latent_dim))(z)
    for i, width in enumerate(channels, start=1):
        h = layers.Conv2DTranspose(
            width, 4, strides=1 if i == 1 else 2, padding="valid" if i == 1 else "same",
            use_bias=False, kernel_initializer=_conv_init(), name=f"g_conv{i}")(h)
        if batch_norm:
            h = _batch_norm(f"g_bn{i}")(h)
        h = layers.ReLU(name=f"g_block{i}")(h)
    h = layers.Conv2DTranspose(image_channels, 4, strides=2, padding="same", use_bias=False,
                               kernel_initializer=_conv_init(), name="g_conv_out")(h)
    images = layers.Activation("tanh", dtype="float32", name="g_out")(h)
    return keras.Model(z, images, name=f"dcgan_generator_{resolution}")


def discriminator(resolution, batch_norm=True, channels=None, spectral_norm=False,
                  image_channels=3):
    """DCGAN discriminator (Table 9: 32 px, Table 11: 64 px); the first block has no BN.

    Args:
      resolution: input size, one of 32, 64, 128.
      batch_norm: BN in blocks 2.. (``False``: Table 2's "no BN in D").
      channels: override of the block widths.
      spectral_norm: every convolution a :class:`~tf_asgan.regularizers.SpectralConv2D`.
      image_channels: channels of the image (3: the paper's).

    Returns:
      A functional ``keras.Model``: ``[N, R, R, image_channels]`` in ``[-1, 1]`` ->
      logits ``[N, 1]``. It has no ``"d_features"`` layer: the last convolution reads
      the 4x4 map, and a flatten before it would shift the layer positions that
      checkpoints of earlier runs are keyed by.
    """
    channels = channels or CHANNELS[resolution][1]
    conv = sn.SpectralConv2D if spectral_norm else layers.Conv2D
    x = keras.Input((resolution, resolution, image_channels), name="image")
    h = x
    for i, width in enumerate(channels, start=1):
        h = conv(width, 4, strides=2, padding="same", use_bias=False,
                 kernel_initializer=_conv_init(), name=f"d_conv{i}")(h)
        if batch_norm and i > 1:
            h = _batch_norm(f"d_bn{i}")(h)
        h = layers.LeakyReLU(0.2, name=f"d_block{i}")(h)
    h = conv(1, 4, strides=1, padding="valid", use_bias=False,
             kernel_initializer=_conv_init(), name="d_conv_out")(h)
    logits = layers.Flatten(dtype="float32", name="d_out")(h)
    return keras.Model(x, logits, name=f"dcgan_discriminator_{resolution}")
