"""The networks, built by name and resolution.

>>> g = build_generator("dcgan", 32)        # [N, 100] -> [N, 32, 32, 3] in [-1, 1]
>>> d = build_discriminator("resnet", 64)   # [N, 64, 64, 3] -> logits [N, 1]
>>> d = build_discriminator("sngan_resnet", 48, batch_norm=False, spectral_norm=True)
>>> q = rotation_classifier(d)              # [N, 48, 48, 3] -> rotation logits [N, 4]
>>> route_weight_gradients(d, "patches")     # Conv2D weight gradients as a patch matmul

``ARCHITECTURES`` (name: module, resolutions; parameter counts in ``docs/methods.md``):

- ``dcgan`` (32, 64, 128), ``resnet`` (32, 64): the AS-GAN paper's (Appendix G);
- ``sngan_cnn`` (32, 48): SN-GAN's standard CNN (Miyato et al. 2018, Table 3);
- ``sngan_resnet`` (32, 48): SN-GAN's ResNet as Mimicry's SNGAN;
- ``wgangp_resnet`` (32): WGAN-GP's CIFAR-10 ResNet (Gulrajani et al. 2017);
- ``wgangp_mnist`` (28): WGAN-GP's MNIST networks.

Latent sizes of the sources: 100 for the AS-GAN paper's, 128 for the others (SN-GAN's
Tables 3-5, Mimicry's ``nz``, WGAN-GP's noise); the latent size is the caller's
``latent_dim``. Image channels are the caller's ``channels`` (3; 1 for MNIST).
"""

import numbers

import keras

from tf_asgan import errors
from tf_asgan.networks import (
    dcgan,
    heads,
    resnet,
    sngan,
    sngan_resnet,
    wgangp,
    wgangp_mnist,
)
from tf_asgan.networks.heads import rotation_classifier
from tf_asgan.networks.weight_gradients import WEIGHT_GRADIENTS, route_weight_gradients

ARCHITECTURES = {"dcgan": dcgan, "resnet": resnet, "sngan_cnn": sngan,
                 "sngan_resnet": sngan_resnet, "wgangp_resnet": wgangp,
                 "wgangp_mnist": wgangp_mnist}

__all__ = ["ARCHITECTURES", "build_discriminator", "build_generator", "check_batch_norm",
           "check_pair", "check_spectral_norm", "heads", "rotation_classifier",
           "WEIGHT_GRADIENTS", "route_weight_gradients",
           "supported_resolutions", "synchronize_batch_norm"]


def supported_resolutions(name):
    """The resolutions architecture ``name`` is defined for."""
    if name not in ARCHITECTURES:
        raise errors.InputError(
            f"Unknown architecture {name!r}; choose one of {sorted(ARCHITECTURES)}.")
    return ARCHITECTURES[name].RESOLUTIONS


def _module(name, resolution):
    if resolution not in supported_resolutions(name):
        raise errors.InputError(
            f"Architecture {name!r} supports resolutions "
            f"{list(supported_resolutions(name))}, not {resolution!r}.")
    return ARCHITECTURES[name]


def _width_kwargs(name, resolution, width, which):
    """Keyword arguments scaling the source's channel counts by ``width`` (1: the source's;
    each count rounded, at least 1)."""
    if width == 1.0:
        return {}
    if not width > 0:
        raise errors.InputError(f"width must be > 0 (1: the source's networks), got {width}.")
    module = _module(name, resolution)
    if name == "resnet":
        return {"width": max(1, round(module.WIDTH * width))}
    table, key = (module.CHANNELS, "channels") if name == "dcgan" else (module.WIDTHS, "widths")
    base = table[resolution][0 if which == "generator" else 1]
    return {key: tuple(max(1, round(c * width)) for c in base)}


def _check_channels(channels):
    if isinstance(channels, bool) or not isinstance(channels, numbers.Integral) or channels < 1:
        raise errors.InputError(f"channels must be an integer >= 1 (3: RGB, 1: MNIST), got "
                                f"{channels!r}.")
    return int(channels)


def check_batch_norm(name, which, batch_norm, fix=None):
    """Refuses batch norm in a network whose source has none (ours: refused rather than
    dropped, so that a run's recorded ``bn_g`` / ``bn_d`` say what was built): the
    discriminators of ``sngan_cnn``, ``sngan_resnet`` and ``wgangp_resnet`` (Miyato et al.
    2018, Tables 3-5; Mimicry; WGAN-GP's critic, Gulrajani et al. 2017, Sec. 4) and both
    networks of ``wgangp_mnist`` (``gan_mnist.py``, ``MODE = 'wgan-gp'``).

    Args:
      name: the architecture.
      which: ``"generator"`` or ``"discriminator"``.
      batch_norm: whether batch norm was asked for.
      fix: how to switch it off, for the message (default: ``--nobn_g`` / ``--nobn_d``).

    Raises:
      InputError: ``batch_norm`` for a network without batch norm in its source, or an
        unknown ``name``.
    """
    supported_resolutions(name)
    if batch_norm and which not in ARCHITECTURES[name].BATCH_NORM:
        fix = fix or ("--nobn_g" if which == "generator" else "--nobn_d")
        raise errors.InputError(f"The {which} of {name!r} has no batch normalisation in its "
                                f"source; add {fix}.")


def _build_arguments(name, resolution, which, width, batch_norm, channels):
    """``(module, channels, kwargs)`` for building ``which`` ("generator" or
    "discriminator") of ``name``: the width's channel counts, and ``batch_norm`` where the
    source has it (else refused when asked for, :func:`check_batch_norm`)."""
    module = _module(name, resolution)
    channels = _check_channels(channels)
    kwargs = _width_kwargs(name, resolution, width, which)
    if which in module.BATCH_NORM:
        kwargs["batch_norm"] = batch_norm
    else:
        check_batch_norm(name, which, batch_norm, "batch_norm=False")
    return module, channels, kwargs


def build_generator(name, resolution, *, latent_dim=100, batch_norm=True, sync_bn=False,
                    width=1.0, channels=3):
    """Builds generator ``name`` (a key of ``ARCHITECTURES``) for ``resolution`` pixels.

    Args:
      latent_dim: size of ``z``.
      batch_norm: the source's batch norm (``False``: none; refused with ``True`` where the
        source has none, see :func:`check_batch_norm`).
      sync_bn: batch statistics over the global batch under a ``tf.distribute`` strategy
        (``BatchNormalization(synchronized=True)``) instead of per replica.
      width: multiplier of every layer's channel count (1: the source's; smaller for
        tests and CPU studies).
      channels: image channels (3: RGB; 1: MNIST).

    Returns:
      A functional ``keras.Model``: ``[N, latent_dim]`` ->
      ``[N, resolution, resolution, channels]`` in ``[-1, 1]`` (``tanh``).

    Raises:
      InputError: an unknown name or resolution, ``width <= 0``, ``channels`` not an
        integer >= 1, or batch norm the source does not have.
    """
    module, channels, kwargs = _build_arguments(name, resolution, "generator", width,
                                                batch_norm, channels)
    model = module.generator(resolution, latent_dim=latent_dim, image_channels=channels,
                             **kwargs)
    return synchronize_batch_norm(model) if sync_bn else model


def build_discriminator(name, resolution, *, batch_norm=True, sync_bn=False, width=1.0,
                        spectral_norm=False, channels=3):
    """Builds discriminator ``name`` for ``resolution`` pixels (``sync_bn``, ``width`` and
    ``channels`` as in :func:`build_generator`).

    Args:
      batch_norm: the source's batch norm in D (dcgan, resnet); the other architectures
        have none and need ``batch_norm=False``.
      spectral_norm: every convolution and linear layer spectrally normalised
        (:mod:`tf_asgan.regularizers.spectral_norm`), as in SN-GAN; needs
        ``batch_norm=False`` (see :func:`check_spectral_norm`). For ``sngan_*`` it is what
        makes the network SN-GAN's; without it the same architecture is built unnormalised
        (for WGAN-GP or other comparisons, as in Miyato et al. 2018, Table 2).

    Returns:
      A functional ``keras.Model``: ``[N, resolution, resolution, channels]`` -> logits
      ``[N, 1]``; every architecture but dcgan has a layer ``"d_features"`` ``[N, F]``,
      the features its final linear layer reads (:func:`rotation_classifier`).

    Raises:
      InputError: as :func:`build_generator`, and spectral norm with batch norm.
    """
    check_spectral_norm(spectral_norm, batch_norm, "spectral_norm=True", "batch_norm=False")
    module, channels, kwargs = _build_arguments(name, resolution, "discriminator", width,
                                                batch_norm, channels)
    model = module.discriminator(resolution, spectral_norm=spectral_norm,
                                 image_channels=channels, **kwargs)
    return synchronize_batch_norm(model) if sync_bn else model


def check_spectral_norm(spectral_norm, batch_norm, sn_name="--spectral_norm",
                        fix="--nobn_d"):
    """Refuses a spectrally normalised D with batch norm (ours, from the sources): SN-GAN's
    discriminators have no batch normalisation (Miyato et al. 2018, Appendix B; their code,
    ``pfnet-research/sngan_projection`` ``dis_models/``; Mimicry's SNGAN), and compare_gan
    (Kurach et al. 2019) makes D's normalisation one choice among none, batch norm, layer
    norm and spectral norm. Refused rather than implied, so that a run's recorded
    configuration (``bn_d``) says what was built.

    Raises:
      InputError: both ``spectral_norm`` and ``batch_norm``.
    """
    if spectral_norm and batch_norm:
        raise errors.InputError(
            f"{sn_name} builds SN-GAN's discriminator, which has no batch normalisation "
            f"(Miyato et al. 2018); add {fix}.")


def synchronize_batch_norm(model):
    """A copy of ``model`` (same architecture, fresh weights) whose batch normalisation
    layers average their statistics across replicas."""

    def clone(layer):
        config = layer.get_config()
        if isinstance(layer, keras.layers.BatchNormalization):
            config["synchronized"] = True
        return layer.__class__.from_config(config)

    return keras.models.clone_model(model, clone_function=clone)


def check_pair(generator, discriminator, latent_dim):
    """Checks that ``generator`` ``[N, latent_dim] -> [N, H, W, C]`` and
    ``discriminator`` ``[N, H, W, C] -> logits`` are built Keras models that fit together.

    Raises:
      ValueError: a network that is not a built ``keras.Model``, a generator input size
        other than ``latent_dim``, or image shapes that differ between the two.
    """
    for name, net in (("generator", generator), ("discriminator", discriminator)):
        if not isinstance(net, keras.Model) or not net.built:
            raise errors.InputError(f"{name} must be a built keras.Model (e.g. from "
                                    f"tf_asgan.networks.build_{name}).")
    g_in = generator.inputs[0].shape if generator.inputs else None
    if g_in is not None and g_in[-1] is not None and g_in[-1] != latent_dim:
        raise errors.InputError(f"latent_dim={latent_dim} but the generator takes inputs of size "
                                f"{g_in[-1]}; pass latent_dim={g_in[-1]}.")
    g_out = generator.outputs[0].shape if generator.outputs else None
    d_in = discriminator.inputs[0].shape if discriminator.inputs else None
    if g_out is not None and d_in is not None and tuple(g_out[1:]) != tuple(d_in[1:]):
        raise errors.InputError(f"The generator makes images of shape {tuple(g_out[1:])} but the "
                                f"discriminator takes {tuple(d_in[1:])}; build both for the same "
                                "resolution.")
