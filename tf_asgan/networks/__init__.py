"""The paper's networks, built by name and resolution.

>>> g = build_generator("dcgan", 32)        # [N, 100] -> [N, 32, 32, 3] in [-1, 1]
>>> d = build_discriminator("resnet", 64)   # [N, 64, 64, 3] -> logits [N, 1]
"""

import keras

from tf_asgan import errors
from tf_asgan.networks import dcgan, resnet

ARCHITECTURES = {"dcgan": dcgan, "resnet": resnet}


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
    """Keyword arguments scaling the paper's channel counts by ``width`` (1: the paper's)."""
    if width == 1.0:
        return {}
    if width <= 0:
        raise errors.InputError(f"width must be > 0 (1: the paper's networks), got {width}.")
    module = _module(name, resolution)
    if name == "dcgan":
        base = module.CHANNELS[resolution][0 if which == "generator" else 1]
        return {"channels": tuple(max(1, round(c * width)) for c in base)}
    return {"width": max(1, round(module.WIDTH * width))}


def build_generator(name, resolution, *, latent_dim=100, batch_norm=True, sync_bn=False,
                    width=1.0):
    """Builds generator ``name`` ("dcgan" or "resnet") for ``resolution`` pixels.

    ``sync_bn``: batch statistics over the global batch under a ``tf.distribute``
    strategy (``BatchNormalization(synchronized=True)``) instead of per replica.
    ``width``: multiplier of every layer's channel count (1: the paper's; smaller for
    CPU studies).
    """
    model = _module(name, resolution).generator(
        resolution, latent_dim=latent_dim, batch_norm=batch_norm,
        **_width_kwargs(name, resolution, width, "generator"))
    return synchronize_batch_norm(model) if sync_bn else model


def build_discriminator(name, resolution, *, batch_norm=True, sync_bn=False, width=1.0,
                        spectral_norm=False):
    """Builds discriminator ``name`` ("dcgan" or "resnet") for ``resolution`` pixels
    (``width`` as in :func:`build_generator`).

    ``spectral_norm``: every convolution and linear layer spectrally normalised
    (:mod:`tf_asgan.regularizers.spectral_norm`), as in SN-GAN; needs
    ``batch_norm=False`` (see :func:`check_spectral_norm`).
    """
    check_spectral_norm(spectral_norm, batch_norm, "spectral_norm=True", "batch_norm=False")
    model = _module(name, resolution).discriminator(
        resolution, batch_norm=batch_norm, spectral_norm=spectral_norm,
        **_width_kwargs(name, resolution, width, "discriminator"))
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
