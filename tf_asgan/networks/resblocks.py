"""The residual networks of SN-GAN and WGAN-GP: their blocks and the G and D built from them.

One structure, two sources that agree on it (not the AS-GAN paper's ResNet, which is
:mod:`tf_asgan.networks.resnet`):

- WGAN-GP's CIFAR-10 ResNet (Gulrajani et al. 2017, ``igul222/improved_wgan_training``,
  ``gan_cifar_resnet.py``: ``ResidualBlock``, ``OptimizedResBlockDisc1``, ``Generator``,
  ``Discriminator``);
- Mimicry's SNGAN (``kwotsin/mimicry``, ``torch_mimicry/modules/resblocks.py``: ``GBlock``,
  ``DBlock``, ``DBlockOptimized``), which follows Miyato's chainer code
  (``pfnet-research/sngan_projection``) and SN-GAN's Tables 4-5 (Miyato et al. 2018).

Blocks (channels-last):

- G's up-block (``GBlock(upsample=True)``; WGAN-GP ``resample='up'``): residual
  ``BN-ReLU-Up-Conv3x3(in->out)-BN-ReLU-Conv3x3(out->out)``, shortcut
  ``Up-Conv1x1(in->out)`` (learned, since every G block upsamples).
- D's first block (``DBlockOptimized``; ``OptimizedResBlockDisc1``): residual
  ``Conv3x3(in->out)-ReLU-Conv3x3(out->out)-AvgPool2``, shortcut ``AvgPool2-Conv1x1``; no
  leading ReLU on the raw image.
- D's other blocks (``DBlock``; WGAN-GP ``resample='down'`` / ``None``): residual
  ``ReLU-Conv3x3(in->in)-ReLU-Conv3x3(in->out)[-AvgPool2]``, shortcut
  ``Conv1x1(in->out)[-AvgPool2]`` when the block changes the width or downsamples, else
  the identity. (WGAN-GP's ``resample=None`` block widens in its first convolution,
  Mimicry's in its second; they coincide in every network here but Mimicry's 48 px
  ``block5``, built as Mimicry's.)
- G: ``Linear(z -> b*b*w0)``, reshape to ``[b, b, w0]``, up-blocks, ``BN-ReLU-Conv3x3``
  to the image channels, ``tanh``. D: blocks, ``ReLU``, global pooling (SN-GAN: sum;
  WGAN-GP: mean) as the layer ``"d_features"`` ``[N, w_last]``, ``Linear -> 1``.

Both sources initialise alike: the 3x3 convolutions uniform with variance
``4 / (fan_in + fan_out)`` (Mimicry: ``xavier_uniform_(gain=sqrt(2))``; WGAN-GP:
``he_init=True``), the 1x1 shortcuts, the linear layers and G's output convolution
Glorot-uniform. Every convolution and linear layer has a bias, initialised to 0 (WGAN-GP's
``tflib`` and chainer; PyTorch's default, in Mimicry, is uniform: ours follows the first
two). Batch norm as PyTorch's (Keras ``momentum=0.9``, ``epsilon=1e-5``; WGAN-GP's fused
batch norm has the same epsilon).

Choices of ours: the reshape of G's linear output is channels-last (the sources'
``[C, b, b]`` view is a permutation of the same units); ``spectral_norm`` makes every D
convolution (shortcuts included) and D's linear layer a spectral layer
(:mod:`tf_asgan.regularizers.spectral_norm`), as Mimicry's ``SNConv2d`` / ``SNLinear``.
"""

import keras
from keras import layers

from tf_asgan.regularizers import spectral_norm as sn


def _residual_init():
    # variance 4 / (fan_in + fan_out): Glorot's, doubled (module docstring)
    return keras.initializers.VarianceScaling(2.0, mode="fan_avg", distribution="uniform")


def _glorot():
    return keras.initializers.GlorotUniform()


def _bn(name):
    return layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=name)


@keras.saving.register_keras_serializable(package="tf_asgan")
class GlobalSumPooling2D(layers.Layer):
    """``[N, H, W, C]`` -> ``[N, C]``, the sum over ``H`` and ``W`` (SN-GAN's "global sum
    pooling", Miyato et al. 2018, Tables 4-5; Mimicry's ``torch.sum(h, dim=(2, 3))``)."""

    def call(self, inputs):
        return keras.ops.sum(inputs, axis=(1, 2))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1])


def up_block(h, width, name, *, batch_norm=True, interpolation="bilinear"):
    """G's residual up-block (module docstring): ``[N, s, s, in]`` -> ``[N, 2s, 2s, width]``.

    ``interpolation``: the 2x upsampling, ``"bilinear"`` (Mimicry: ``F.interpolate``,
    ``align_corners=False``, which Keras's half-pixel resize matches) or ``"nearest"``
    (WGAN-GP's ``UpsampleConv``: four copies through ``depth_to_space``).
    """
    skip = layers.UpSampling2D(2, interpolation=interpolation, name=f"{name}_skip_up")(h)
    skip = layers.Conv2D(width, 1, kernel_initializer=_glorot(), name=f"{name}_skip_conv")(skip)
    if batch_norm:
        h = _bn(f"{name}_bn1")(h)
    h = layers.ReLU(name=f"{name}_relu1")(h)
    h = layers.UpSampling2D(2, interpolation=interpolation, name=f"{name}_up")(h)
    h = layers.Conv2D(width, 3, padding="same", kernel_initializer=_residual_init(),
                      name=f"{name}_conv1")(h)
    if batch_norm:
        h = _bn(f"{name}_bn2")(h)
    h = layers.ReLU(name=f"{name}_relu2")(h)
    h = layers.Conv2D(width, 3, padding="same", kernel_initializer=_residual_init(),
                      name=f"{name}_conv2")(h)
    return layers.Add(name=name)([h, skip])


def first_down_block(x, width, name, *, spectral_norm=False):
    """D's first block (module docstring): ``[N, s, s, C]`` -> ``[N, s/2, s/2, width]``."""
    conv = sn.SpectralConv2D if spectral_norm else layers.Conv2D
    skip = layers.AveragePooling2D(2, name=f"{name}_skip_pool")(x)
    skip = conv(width, 1, kernel_initializer=_glorot(), name=f"{name}_skip_conv")(skip)
    h = conv(width, 3, padding="same", kernel_initializer=_residual_init(),
             name=f"{name}_conv1")(x)
    h = layers.ReLU(name=f"{name}_relu1")(h)
    h = conv(width, 3, padding="same", kernel_initializer=_residual_init(),
             name=f"{name}_conv2")(h)
    h = layers.AveragePooling2D(2, name=f"{name}_pool")(h)
    return layers.Add(name=name)([h, skip])


def down_block(h, width, name, *, downsample, spectral_norm=False):
    """D's residual block (module docstring): ``[N, s, s, in]`` -> ``[N, s', s', width]``,
    ``s' = s / 2`` when ``downsample``; hidden width ``in``."""
    conv = sn.SpectralConv2D if spectral_norm else layers.Conv2D
    width_in = h.shape[-1]
    skip = h
    if downsample or width_in != width:
        skip = conv(width, 1, kernel_initializer=_glorot(), name=f"{name}_skip_conv")(skip)
        if downsample:
            skip = layers.AveragePooling2D(2, name=f"{name}_skip_pool")(skip)
    h = layers.ReLU(name=f"{name}_relu1")(h)
    h = conv(width_in, 3, padding="same", kernel_initializer=_residual_init(),
             name=f"{name}_conv1")(h)
    h = layers.ReLU(name=f"{name}_relu2")(h)
    h = conv(width, 3, padding="same", kernel_initializer=_residual_init(),
             name=f"{name}_conv2")(h)
    if downsample:
        h = layers.AveragePooling2D(2, name=f"{name}_pool")(h)
    return layers.Add(name=name)([h, skip])


def generator(latent_dim, bottom, widths, *, batch_norm=True, image_channels=3,
              interpolation="bilinear", name="generator"):
    """The residual G (module docstring).

    Args:
      latent_dim: size of ``z``.
      bottom: side of the first feature map (4: 32 px, 6: 48 px).
      widths: ``(w0, w1, ...)``: the linear layer's channels, then each up-block's.
      batch_norm: batch norm in every block and before the output convolution.
      image_channels: channels of the image.
      interpolation: the upsampling (:func:`up_block`).

    Returns:
      A functional ``keras.Model``: ``[N, latent_dim]`` ->
      ``[N, bottom * 2^k, bottom * 2^k, image_channels]`` in ``[-1, 1]``, ``k`` up-blocks.
    """
    z = keras.Input((latent_dim,), name="z")
    h = layers.Dense(bottom * bottom * widths[0], kernel_initializer=_glorot(),
                     name="g_linear")(z)
    h = layers.Reshape((bottom, bottom, widths[0]), name="g_block0")(h)
    for i, width in enumerate(widths[1:], start=1):
        h = up_block(h, width, f"g_block{i}", batch_norm=batch_norm,
                     interpolation=interpolation)
    if batch_norm:
        h = _bn("g_bn_out")(h)
    h = layers.ReLU(name="g_relu_out")(h)
    h = layers.Conv2D(image_channels, 3, padding="same", kernel_initializer=_glorot(),
                      name="g_conv_out")(h)
    images = layers.Activation("tanh", dtype="float32", name="g_out")(h)
    return keras.Model(z, images, name=name)


def discriminator(resolution, widths, downsample, *, image_channels=3, spectral_norm=False,
                  pooling="sum", name="discriminator"):
    """The residual D (module docstring).

    Args:
      resolution: image side in pixels.
      widths: each block's output channels (the first is :func:`first_down_block`).
      downsample: per block, whether it halves the side (the first block always does).
      image_channels: channels of the image.
      spectral_norm: every convolution and the linear layer spectrally normalised.
      pooling: ``"sum"`` (SN-GAN) or ``"mean"`` (WGAN-GP) over the last feature map.

    Returns:
      A functional ``keras.Model``: ``[N, R, R, image_channels]`` -> logits ``[N, 1]``,
      with the layer ``"d_features"`` (``[N, widths[-1]]``, what the linear layer reads).
    """
    x = keras.Input((resolution, resolution, image_channels), name="image")
    h = first_down_block(x, widths[0], "d_block1", spectral_norm=spectral_norm)
    for i, (width, down) in enumerate(zip(widths[1:], downsample[1:]), start=2):
        h = down_block(h, width, f"d_block{i}", downsample=down, spectral_norm=spectral_norm)
    h = layers.ReLU(name="d_relu_out")(h)
    pool = GlobalSumPooling2D if pooling == "sum" else layers.GlobalAveragePooling2D
    features = pool(name="d_features")(h)
    dense = sn.SpectralDense if spectral_norm else layers.Dense
    logits = dense(1, kernel_initializer=_glorot(), dtype="float32", name="d_out")(features)
    return keras.Model(x, logits, name=name)
