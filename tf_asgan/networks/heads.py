"""Extra heads on a discriminator's features: SSGAN's rotation classifier.

Source: Chen et al. 2019, "Self-Supervised GANs via Auxiliary Rotation Loss" (CVPR),
sec. 3: D gains a classifier ``Q_D`` of the rotation (0, 90, 180, 270 degrees) of its
input, sharing D's trunk. The reference codes put one linear layer on the feature vector
D's own output layer reads: Mimicry (``kwotsin/mimicry``,
``torch_mimicry/nets/ssgan/ssgan_32.py``, ``SSGANDiscriminator32``: ``l_y = SNLinear(ndf,
num_classes)`` on the summed feature, beside ``l5``) and compare_gan
(``compare_gan/gans/ssgan.py``, ``SSGAN.discriminator``: ``linear(final, NUM_ROTATIONS,
use_sn=...)`` on the features ``final`` D's output layer reads, spectrally normalised
when D's architecture is).

Every discriminator of :mod:`tf_asgan.networks` but the paper's DCGAN names that feature
vector ``"d_features"`` ``[N, F]`` (see ``networks.dcgan.discriminator`` for why DCGAN has
none). The loss that trains the head is :mod:`tf_asgan.regularizers.rotation`.
"""

import keras

from tf_asgan import errors
from tf_asgan.regularizers import spectral_norm as sn

FEATURES = "d_features"
NUM_ROTATIONS = 4
HEAD = "d_rotation"


def _is_spectral(model):
    return any(isinstance(layer, (sn.SpectralConv2D, sn.SpectralDense))
               for layer in model.layers)


def features_layer(discriminator):
    """The layer ``"d_features"`` of ``discriminator``, checked to give ``[N, F]``.

    Raises:
      InputError: ``discriminator`` is not a built functional ``keras.Model``, has no
        layer ``"d_features"``, or that layer's output is not ``[N, F]``.
    """
    if not isinstance(discriminator, keras.Model) or not discriminator.built:
        raise errors.InputError("The discriminator must be a built keras.Model (e.g. from "
                                "tf_asgan.networks.build_discriminator).")
    names = [layer.name for layer in discriminator.layers]
    if FEATURES not in names:
        raise errors.InputError(
            f"Discriminator {discriminator.name!r} has no layer named {FEATURES!r} (the "
            "[N, F] feature vector its final linear layer reads), so no rotation head can "
            "be put on it. Build D with an architecture that has one (resnet, sngan_cnn, "
            "sngan_resnet, wgangp_resnet, wgangp_mnist; not dcgan), or name that layer "
            f"{FEATURES!r} in your own D.")
    layer = discriminator.get_layer(FEATURES)
    shape = tuple(layer.output.shape)
    if len(shape) != 2 or shape[-1] is None:
        raise errors.InputError(f"Layer {FEATURES!r} of {discriminator.name!r} gives shape "
                                f"{shape}; the rotation head needs a feature vector [N, F] "
                                "(flatten or pool the feature map first).")
    return layer


def rotation_classifier(discriminator, spectral_norm=None):
    """SSGAN's rotation head on ``discriminator``: a new linear layer of 4 outputs on its
    ``"d_features"``, sharing every trunk layer (and weight) with ``discriminator``.

    Build it once per D and keep it: each call adds a new head. Training either model
    trains the shared trunk; spectral layers refine their ``u`` on each training-mode call
    of either.

    Args:
      discriminator: a functional ``keras.Model`` ``[N, H, W, C] -> [N, 1]`` with a layer
        ``"d_features"`` ``[N, F]`` (every D of :func:`tf_asgan.networks.build_discriminator`
        but DCGAN's).
      spectral_norm: whether the head is a
        :class:`~tf_asgan.regularizers.SpectralDense` (Mimicry's ``SNLinear``); ``None``:
        when D has spectral layers.

    Returns:
      A functional ``keras.Model`` (``f"{discriminator.name}_rotation"``) mapping D's input
      ``[N, H, W, C]`` (``[-1, 1]``) to rotation logits ``[N, 4]`` (float32), class ``k``
      being ``k`` quarter turns; its only new weights are those of the layer
      ``"d_rotation"`` (kernel ``[F, 4]``, bias ``[4]``, and ``u``, ``v`` when spectral).
      Glorot-uniform kernel, zero bias (Keras's defaults; Mimicry: Xavier-uniform).

    Raises:
      InputError: see :func:`features_layer`.
    """
    features = features_layer(discriminator).output
    if spectral_norm is None:
        spectral_norm = _is_spectral(discriminator)
    dense = sn.SpectralDense if spectral_norm else keras.layers.Dense
    logits = dense(NUM_ROTATIONS, dtype="float32", name=HEAD)(features)
    inputs = discriminator.inputs
    inputs = inputs[0] if len(inputs) == 1 else inputs
    return keras.Model(inputs, logits, name=f"{discriminator.name}_rotation")
