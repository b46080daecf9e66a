"""SN-GAN's standard CNN at 32 and 48 px (registered as ``"sngan_cnn"``).

Source: Miyato et al. 2018, "Spectral Normalization for Generative Adversarial Networks"
(ICLR; arXiv 1802.05957), Appendix B.4, Table 3 ("Standard CNN models for CIFAR-10 and
STL-10"; ``M = 32`` for CIFAR-10, 48 for STL-10; ``Mg = M / 8``):

- G: ``z in R^128 -> dense -> Mg x Mg x 512``; three ``4x4, stride 2`` deconvolutions to
  256, 128, 64 channels, each ``BN-ReLU``; ``3x3, stride 1`` convolution to 3 channels,
  ``tanh``.
- D: ``3x3/1 conv 64, 4x4/2 conv 64, 3x3/1 conv 128, 4x4/2 conv 128, 3x3/1 conv 256,
  4x4/2 conv 256, 3x3/1 conv 512``, each followed by LeakyReLU with slope 0.1 (the table's
  caption); ``dense -> 1`` on the flattened ``Mg x Mg x 512`` map (the layer
  ``"d_features"``).

Where the table is silent we follow the code of the authors' group,
``pfnet-research/chainer-gan-lib`` (``common/net.py``: ``DCGANGenerator``,
``SNDCGANDiscriminator``), the code google/compare_gan's ``sndcgan.py`` also follows:

- G's dense layer is followed by batch norm over its ``Mg*Mg*512`` units and ReLU
  (``relu(bn0(l0(z)))``; the table lists no normalisation or activation on that row);
- weights drawn from ``N(0, 0.02)`` (``wscale=0.02``), biases on every layer, initialised
  to 0 (chainer's ``Linear``, ``Convolution2D``, ``Deconvolution2D``);
- batch norm as chainer's ``BatchNormalization`` (``decay=0.9``, i.e. Keras
  ``momentum=0.9``; ``eps=2e-5``).

Where that code differs from the table we follow the table: chainer-gan-lib's
``SNDCGANDiscriminator`` widens one layer earlier (``64, 128, 128, 256, 256, 512, 512``)
and uses chainer's default LeakyReLU slope 0.2. The deconvolutions' padding (chainer's
``pad=1`` for ``4x4/2``) is Keras's ``"same"`` (exactly twice the side), and the strided
convolutions' (``pad=1``) likewise halves the side exactly.

Spectral normalization and batch norm: as in :mod:`tf_asgan.networks.sngan_resnet` (the
caller's ``spectral_norm``; Miyato et al.'s Table 2 trains this very network under
WGAN-GP, batch, layer and weight normalisation too; D has no batch norm). The latent size
is the caller's (the table's 128: flagfiles set ``--latent_dim=128``).
"""

import keras
from keras import layers

from tf_asgan.regularizers import spectral_norm as sn

G_WIDTHS = (512, 256, 128, 64)  # the dense layer's channels, then each deconvolution's
D_WIDTHS = (64, 64, 128, 128, 256, 256, 512)
D_KERNELS = ((3, 1), (4, 2), (3, 1), (4, 2), (3, 1), (4, 2), (3, 1))  # (size, stride)
SLOPE = 0.1  # Table 3's caption
RESOLUTIONS = (32, 48)
WIDTHS = {res: (G_WIDTHS, D_WIDTHS) for res in RESOLUTIONS}
BATCH_NORM = ("generator",)


def _init():
    return keras.initializers.RandomNormal(0.0, 0.02)


def _bn(name):
    return layers.BatchNormalization(momentum=0.9, epsilon=2e-5, name=name)


def generator(resolution, latent_dim=128, batch_norm=True, image_channels=3, widths=None):
    """Table 3 (a).

    Args:
      resolution: 32 (``Mg = 4``) or 48 (``Mg = 6``).
      latent_dim: size of ``z``.
      batch_norm: batch norm after the dense layer and each deconvolution (``False``:
        none).
      image_channels: channels of the image.
      widths: override of ``G_WIDTHS`` (reduced width).

    Returns:
      A functional ``keras.Model``: ``[N, latent_dim]`` -> ``[N, R, R, image_channels]``
      in ``[-1, 1]``.
    """
    widths = widths or G_WIDTHS
    bottom = resolution // 8
    z = keras.Input((latent_dim,), name="z")
    h = layers.Dense(bottom * bottom * widths[0], kernel_initializer=_init(),
                     name="g_linear")(z)
    if batch_norm:
        h = _bn("g_bn0")(h)
    h = layers.ReLU(name="g_relu0")(h)
    h = layers.Reshape((bottom, bottom, widths[0]), name="g_block0")(h)
    for i, width in enumerate(widths[1:], start=1):
        h = layers.Conv2DTranspose(width, 4, strides=2, padding="same",
                                   kernel_initializer=_init(), name=f"g_deconv{i}")(h)
        if batch_norm:
            h = _bn(f"g_bn{i}")(h)
        h = layers.ReLU(name=f"g_block{i}")(h)
    h = layers.Conv2D(image_channels, 3, padding="same", kernel_initializer=_init(),
                      name="g_conv_out")(h)
    images = layers.Activation("tanh", dtype="float32", name="g_out")(h)
    return keras.Model(z, images, name=f"sngan_cnn_generator_{resolution}")


def discriminator(resolution, image_channels=3, widths=None, spectral_norm=False):
    """Table 3 (b); SN-GAN's with ``spectral_norm=True``.

    Returns:
      A functional ``keras.Model``: ``[N, R, R, image_channels]`` -> logits ``[N, 1]``;
      the layer ``"d_features"`` is the flattened last map, ``[N, (R/8)^2 * 512]``.
    """
    conv = sn.SpectralConv2D if spectral_norm else layers.Conv2D
    dense = sn.SpectralDense if spectral_norm else layers.Dense
    x = keras.Input((resolution, resolution, image_channels), name="image")
    h = x
    for i, (width, (size, stride)) in enumerate(zip(widths or D_WIDTHS, D_KERNELS), start=1):
        h = conv(width, size, strides=stride, padding="same", kernel_initializer=_init(),
                 name=f"d_conv{i}")(h)
        h = layers.LeakyReLU(SLOPE, name=f"d_block{i}")(h)
    features = layers.Flatten(name="d_features")(h)
    logits = dense(1, kernel_initializer=_init(), dtype="float32", name="d_out")(features)
    return keras.Model(x, logits, name=f"sngan_cnn_discriminator_{resolution}")
