"""ResNet generator and discriminator, AS-GAN Appendix G Tables 4-7.

Residual block (paper): BN-ReLU-Resample-Conv3x3-BN-ReLU-Conv3x3 plus a skip
connection; bilinear upsampling, 2x2 average-pool downsampling; BN in G and D;
Xavier (Glorot-uniform) initialisation; 256 channels everywhere. G: Linear
``z -> 4x4x256``, up-blocks to the resolution, Conv3x3 + tanh. D: down-blocks to
2x2, ReLU, global average pool, Linear -> one logit.

Choices of ours where the paper is silent: the skip is ``Resample -> Conv1x1``
(learned, as in SNGAN/WGAN-GP ResNets, since every block resamples); G applies
BN-ReLU before its output convolution (the last block ends in a convolution, as
in every pre-activation ResNet generator); D's first block omits the leading
BN-ReLU, which would otherwise zero half of the raw pixel range; convolutions
and linear layers keep their biases (PyTorch's default); BatchNorm uses
PyTorch's settings (Keras ``momentum=0.9``, ``epsilon=1e-5``). With
``spectral_norm=True`` every D convolution (skips included) and D's linear layer are
spectrally normalised (:mod:`tf_asgan.regularizers.spectral_norm`), as in SN-GAN's
ResNet D (Miyato et al. 2018).
"""

import keras
from keras import layers

from tf_asgan.regularizers import spectral_norm as sn

WIDTH = 256
UP_BLOCKS = {32: 3, 64: 4}
DOWN_BLOCKS = {32: 4, 64: 5}
RESOLUTIONS = tuple(sorted(UP_BLOCKS))
# which networks have batch norm in the paper
BATCH_NORM = ("generator", "discriminator")


def _bn(name):
    return layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=name)


def _resample(direction, name):
    if direction == "up":
        return layers.UpSampling2D(2, interpolation="bilinear", name=name)
    return layers.AveragePooling2D(2, name=name)


def residual_block(h, width, direction, name, batch_norm=True, preactivate=True,
                   spectral_norm=False):
    """``BN-ReLU-Resample-Conv3x3-BN-ReLU-Conv3x3`` + ``Resample-Conv1x1`` skip
    (``spectral_norm``: every convolution a ``SpectralConv2D``)."""
    conv = sn.SpectralConv2D if spectral_norm else layers.Conv2D
    skip = _resample(direction, f"{name}_skip_resample")(h)
    skip = conv(width, 1, name=f"{name}_skip_conv")(skip)
    if preactivate:
        if batch_norm:
            h = _bn(f"{name}_bn1")(h)
        h = layers.ReLU(name=f"{name}_relu1")(h)
    h = _resample(direction, f"{name}_resample")(h)
    h = conv(width, 3, padding="same", name=f"{name}_conv1")(h)
    if batch_norm:
        h = _bn(f"{name}_bn2")(h)
    h = layers.ReLU(name=f"{name}_relu2")(h)
    h = conv(width, 3, padding="same", name=f"{name}_conv2")(h)
    return layers.Add(name=name)([h, skip])


def generator(resolution, latent_dim=100, batch_norm=True, width=WIDTH, image_channels=3):
    """ResNet generator (Table 4: 32 px, 3 up-blocks; Table 6: 64 px, 4 up-blocks).

    Returns:
      A functional ``keras.Model``: ``[N, latent_dim]`` -> ``[N, R, R, image_channels]``
      in ``[-1, 1]`` (``image_channels``: 3, the paper's).
    """
    z = keras.Input((latent_dim,), name="z")
    h = layers.Dense(4 * 4 * width, name="g_linear")(z)
    h = layers.Reshape((4, 4, width), name="g_block0")(h)
    for i in range(1, UP_BLOCKS[resolution] + 1):
        h = residual_block(h, width, "up", f"g_block{i}", batch_norm)
    if batch_norm:
        h = _bn("g_bn_out")(h)
    h = layers.ReLU(name="g_relu_out")(h)
    h = layers.Conv2D(image_channels, 3, padding="same", name="g_conv_out")(h)
    images = layers.Activation("tanh", dtype="float32", name="g_out")(h)
    return keras.Model(z, images, name=f"resnet_generator_{resolution}")


def discriminator(resolution, batch_norm=True, width=WIDTH, spectral_norm=False,
                  image_channels=3):
    """ResNet discriminator (Table 5: 32 px, 4 down-blocks; Table 7: 64 px, 5).

    ``spectral_norm``: every convolution and the linear layer spectrally normalised.

    Returns:
      A functional ``keras.Model``: ``[N, R, R, image_channels]`` -> logits ``[N, 1]``;
      the layer ``"d_features"`` is the pooled ``[N, width]`` that the linear layer reads
      (named ``"d_pool"`` before; names do not enter checkpoints).
    """
    x = keras.Input((resolution, resolution, image_channels), name="image")
    h = x
    for i in range(1, DOWN_BLOCKS[resolution] + 1):
        h = residual_block(h, width, "down", f"d_block{i}", batch_norm, preactivate=i > 1,
                           spectral_norm=spectral_norm)
    h = layers.ReLU(name="d_relu_out")(h)
    h = layers.GlobalAveragePooling2D(name="d_features")(h)
    dense = sn.SpectralDense if spectral_norm else layers.Dense
    logits = dense(1, dtype="float32", name="d_out")(h)
    return keras.Model(x, logits, name=f"resnet_discriminator_{resolution}")
