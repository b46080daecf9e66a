"""The paper's networks, built by name and resolution.

>>> g = build_generator("dcgan", 32)        # [N, 100] -> [N, 32, 32, 3] in [-1, 1]
>>> d = build_discriminator("resnet", 64)   # [N, 64, 64, 3] -> logits [N, 1]
"""

import keras

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


def build_generator(name, resolution, *, latent_dim=100, batch_norm=True, sync_bn=False):
    """Builds generator ``name`` ("dcgan" or "resnet") for ``resolution`` pixels.

    ``sync_bn``: batch statistics over the global batch under a ``tf.distribute``
    strategy (``BatchNormalization(synchronized=True)``) instead of per replica.
    """
    model = _module(name, resolution).generator(
        resolution, latent_dim=latent_dim, batch_norm=batch_norm)
    return synchronize_batch_norm(model) if sync_bn else model


def build_discriminator(name, resolution, *, batch_norm=True, sync_bn=False):
    """Builds discriminator ``name`` ("dcgan" or "resnet") for ``resolution`` pixels."""
    model = _module(name, resolution).discriminator(resolution, batch_norm=batch_norm)
    return synchronize_batch_norm(model) if sync_bn else model


def synchronize_batch_norm(model):
    """A copy of ``model`` (same architecture, fresh weights) whose batch normalisation
    layers average their statistics across replicas."""

    def clone(layer):
        config = layer.get_config()
        if isinstance(layer, keras.layers.BatchNormalization):
            config["synchronized"] = True
        return layer.__class__.from_config(config)

    return keras.models.clone_model(model, clone_function=clone)
