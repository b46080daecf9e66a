"""SN-GAN's ResNet at 32 and 48 px, as Mimicry's SNGAN (registered as ``"sngan_resnet"``).

Source: Mimicry (``kwotsin/mimicry``), ``torch_mimicry/nets/sngan/sngan_32.py``
(``SNGANGenerator32``: ``nz=128, ngf=256, bottom_width=4``; ``SNGANDiscriminator32``:
``ndf=128``) and ``sngan_48.py`` (``SNGANGenerator48``: ``ngf=512, bottom_width=6``, blocks
``ngf -> ngf/2 -> ngf/4 -> ngf/8``; ``SNGANDiscriminator48``: ``ndf=1024``, blocks
``ndf/16, ndf/8, ndf/4, ndf/2, ndf``), blocks from ``torch_mimicry/modules/resblocks.py``
(:mod:`tf_asgan.networks.resblocks`). These are Miyato et al. 2018's Tables 4 (CIFAR-10)
and 5 (STL-10) at Mimicry's widths; the DAT authors' code (a Mimicry fork) trains them.

- 32 px: G ``z -> 4x4x256``, 3 up-blocks of 256, ``BN-ReLU-Conv3x3-tanh``; D blocks 128
  (down), 128 (down), 128, 128, ``ReLU``, global **sum** pooling, ``Linear -> 1``.
- 48 px: G ``z -> 6x6x512``, up-blocks 256, 128, 64; D blocks 64, 128, 256, 512 (each
  down), 1024, then as at 32 px.

Upsampling bilinear (Mimicry's; Miyato's chainer code uses nearest neighbour). The latent
size is the caller's (``nz=128`` in Mimicry, Miyato et al. and DAT: the flagfiles set
``--latent_dim=128``).

Spectral normalization: SN-GAN's D is spectrally normalised in every source; here it is
the caller's ``spectral_norm`` (``--spectral_norm``), so the same network also trains
without it (ours: SN-GAN's own comparisons train these networks under other
normalisations and penalties, Miyato et al. 2018, Sec. 4 and Table 2). Batch norm: G's
can be dropped (``batch_norm=False``, as the AS-GAN paper's Table 2 does for its
networks); D has none in the sources, and ``networks.build_discriminator`` refuses it.
"""

from tf_asgan.networks import resblocks

# resolution: (bottom side, generator widths: linear then up-blocks,
#              discriminator widths, discriminator downsampling per block)
LAYOUT = {
    32: (4, (256, 256, 256, 256), (128, 128, 128, 128), (True, True, False, False)),
    48: (6, (512, 256, 128, 64), (64, 128, 256, 512, 1024), (True, True, True, True, False)),
}
RESOLUTIONS = tuple(sorted(LAYOUT))
WIDTHS = {res: (g, d) for res, (_, g, d, _) in LAYOUT.items()}
# which networks have batch norm in the source
BATCH_NORM = ("generator",)


def generator(resolution, latent_dim=128, batch_norm=True, image_channels=3, widths=None):
    """Mimicry's ``SNGANGenerator32`` / ``SNGANGenerator48``.

    Args:
      resolution: 32 or 48.
      latent_dim: size of ``z``.
      batch_norm: the blocks' and the output's batch norm (``False``: none).
      image_channels: channels of the image.
      widths: override of ``WIDTHS[resolution][0]`` (reduced width).

    Returns:
      A functional ``keras.Model``: ``[N, latent_dim]`` -> ``[N, R, R, image_channels]``
      in ``[-1, 1]``.
    """
    bottom, default, _, _ = LAYOUT[resolution]
    return resblocks.generator(latent_dim, bottom, widths or default, batch_norm=batch_norm,
                               image_channels=image_channels, interpolation="bilinear",
                               name=f"sngan_resnet_generator_{resolution}")


def discriminator(resolution, image_channels=3, widths=None, spectral_norm=False):
    """Mimicry's ``SNGANDiscriminator32`` / ``SNGANDiscriminator48`` (SN-GAN's with
    ``spectral_norm=True``).

    Returns:
      A functional ``keras.Model``: ``[N, R, R, image_channels]`` -> logits ``[N, 1]``;
      the layer ``"d_features"`` is the summed feature ``[N, 128]`` (32 px) or
      ``[N, 1024]`` (48 px).
    """
    _, _, default, downsample = LAYOUT[resolution]
    return resblocks.discriminator(resolution, widths or default, downsample,
                                   image_channels=image_channels,
                                   spectral_norm=spectral_norm, pooling="sum",
                                   name=f"sngan_resnet_discriminator_{resolution}")
