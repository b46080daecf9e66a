"""WGAN-GP's CIFAR-10 ResNet (registered as ``"wgangp_resnet"``, 32 px).

Source: Gulrajani et al. 2017, "Improved Training of Wasserstein GANs", the authors' code
``igul222/improved_wgan_training``, ``gan_cifar_resnet.py`` with ``DIM_G = DIM_D = 128``,
``NORMALIZATION_G = True``, ``NORMALIZATION_D = False`` (lines 39-42), unconditional:
``CONDITIONAL = False``, so no label input and no ACGAN output (the file as committed has
``CONDITIONAL = ACGAN = True``, line 49, the paper's supervised row; its unsupervised
CIFAR-10 ResNet is the file with ``CONDITIONAL = False``):

- G (``Generator``, line 151): ``Linear(128 -> 4*4*128)``, 3 residual up-blocks of 128
  (``ResidualBlock(resample='up')``), ``BN-ReLU``, ``Conv3x3 -> 3``, ``tanh``.
- D (``Discriminator``, line 165): ``OptimizedResBlockDisc1`` (128, down), ``ResidualBlock`` 128
  (down), 128, 128, ``ReLU``, global **mean** pooling (``reduce_mean`` over H, W),
  ``Linear -> 1``.

Blocks, initialisation and biases: :mod:`tf_asgan.networks.resblocks` (the same structure
as Mimicry's SNGAN-32 at G width 128; upsampling nearest neighbour, as ``UpsampleConv``'s
``depth_to_space`` of four copies). The source's noise is ``[N, 128]``; the latent size is
the caller's (flagfiles: ``--latent_dim=128``).

Choices of ours: the source's batch norm (``tflib.ops.batchnorm``, ``is_training=None``)
always normalises with the batch's statistics, in sampling too, and never reads its moving
averages; Keras's uses moving averages (``momentum=0.9``) in inference mode. The critic has
no batch norm (the WGAN-GP paper, Sec. 4: the penalty is per sample), and
``networks.build_discriminator`` refuses it; ``spectral_norm=True`` spectrally normalises
every D layer (not in the source).
"""

from tf_asgan.networks import resblocks

WIDTH = 128  # DIM_G and DIM_D
LAYOUT = {32: (4, (WIDTH,) * 4, (WIDTH,) * 4, (True, True, False, False))}
RESOLUTIONS = tuple(sorted(LAYOUT))
WIDTHS = {res: (g, d) for res, (_, g, d, _) in LAYOUT.items()}
BATCH_NORM = ("generator",)


def generator(resolution, latent_dim=128, batch_norm=True, image_channels=3, widths=None):
    """``gan_cifar_resnet.py``'s ``Generator`` (unconditional).

    Args:
      resolution: 32.
      latent_dim: size of ``z``.
      batch_norm: the blocks' and the output's batch norm (``False``: none).
      image_channels: channels of the image.
      widths: override of ``WIDTHS[32][0]``.

    Returns:
      A functional ``keras.Model``: ``[N, latent_dim]`` -> ``[N, 32, 32, image_channels]``
      in ``[-1, 1]``.
    """
    bottom, default, _, _ = LAYOUT[resolution]
    return resblocks.generator(latent_dim, bottom, widths or default, batch_norm=batch_norm,
                               image_channels=image_channels, interpolation="nearest",
                               name=f"wgangp_resnet_generator_{resolution}")


def discriminator(resolution, image_channels=3, widths=None, spectral_norm=False):
    """``gan_cifar_resnet.py``'s ``Discriminator`` (unconditional: the WGAN output only).

    Returns:
      A functional ``keras.Model``: ``[N, 32, 32, image_channels]`` -> critic values
      ``[N, 1]``; the layer ``"d_features"`` is the mean-pooled feature ``[N, 128]``.
    """
    _, _, default, downsample = LAYOUT[resolution]
    return resblocks.discriminator(resolution, widths or default, downsample,
                                   image_channels=image_channels,
                                   spectral_norm=spectral_norm, pooling="mean",
                                   name=f"wgangp_resnet_discriminator_{resolution}")
