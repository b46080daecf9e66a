"""The paper's networks, built by name and resolution.

>>> g = build_generator("dcgan", 32)        # [N, 100] -> [N, 32, 32, 3] in [-1, 1]
>>> d = build_discriminator("resnet", 64)   # [N, 64, 64, 3] -> logits [N, 1]
"""

from tf_asgan.networks import dcgan, resnet

ARCHITECTURES = {"dcgan": dcgan, "resnet": resnet}


def supported_resolutions(name):
    """The resolutions architecture ``name`` is defined for."""
    if name not in ARCHITECTURES:
        raise ValueError(
            f"Unknown architecture {name!r}; choose one of {sorted(ARCHITECTURES)}.")
    return ARCHITECTURES[name].RESOLUTIONS


def _module(name, resolution):
    if resolution not in supported_resolutions(name):
        raise ValueError(
            f"Architecture {name!r} supports resolutions "
            f"{list(supported_resolutions(name))}, not {resolution!r}.")
    return ARCHITECTURES[name]


def build_generator(name, resolution, *, latent_dim=100, batch_norm=True):
    """Builds generator ``name`` ("dcgan" or "resnet") for ``resolution`` pixels."""
    return _module(name, resolution).generator(
        resolution, latent_dim=latent_dim, batch_norm=batch_norm)


def build_discriminator(name, resolution, *, batch_norm=True):
    """Builds discriminator ``name`` ("dcgan" or "resnet") for ``resolution`` pixels."""
    return _module(name, resolution).discriminator(resolution, batch_norm=batch_norm)
