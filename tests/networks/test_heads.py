"""SSGAN's rotation head (``networks.rotation_classifier``): one new linear layer on D's
``"d_features"``, the trunk shared with D (Mimicry ``torch_mimicry/nets/ssgan/ssgan_32.py``,
``l_y = SNLinear(ndf, num_classes)`` beside ``l5``; compare_gan ``gans/ssgan.py``)."""

import keras
import numpy as np
import pytest

from tf_asgan import errors, networks
from tf_asgan.regularizers import SpectralDense

SMALL = [("resnet", 32, 1 / 32, True), ("sngan_cnn", 32, 1 / 16, False),
         ("sngan_resnet", 48, 1 / 32, False), ("wgangp_resnet", 32, 1 / 16, False),
         ("wgangp_mnist", 28, 1 / 16, False)]


def images(d, n=4, seed=0):
    shape = (n, *d.input.shape[1:])
    return np.random.default_rng(seed).uniform(-1, 1, size=shape).astype("float32")


def ids(variables):
    return {id(v) for v in variables}


@pytest.mark.parametrize("name,res,width,bn", SMALL)
def test_the_head_shares_the_trunk_and_adds_only_its_linear_layer(name, res, width, bn):
    d = networks.build_discriminator(name, res, batch_norm=bn, width=width, channels=1)
    q = networks.rotation_classifier(d)
    x = images(d)
    assert q(x).shape == (4, 4) and q(x).dtype == "float32"
    head = q.get_layer("d_rotation")
    features = d.get_layer("d_features").output.shape[-1]
    assert tuple(head.kernel.shape) == (features, 4) and tuple(head.bias.shape) == (4,)
    assert ids(q.weights) - ids(d.weights) == ids(head.weights) == {id(head.kernel),
                                                                    id(head.bias)}
    assert ids(d.weights) - ids(q.weights) == ids(d.get_layer("d_out").weights)  # D's own head
    logits, rotation = d(x).numpy(), q(x).numpy()
    trunk = d.get_layer("d_block1_conv1" if "resnet" in name else "d_conv1")
    trunk.kernel.assign(trunk.kernel + 0.05)
    assert np.abs(d(x).numpy() - logits).max() > 1e-3 * (np.abs(logits).max() + 1e-9)
    assert np.abs(q(x).numpy() - rotation).max() > 1e-3 * (np.abs(rotation).max() + 1e-9)
    before = d(x).numpy()
    head.kernel.assign(head.kernel * 2.0)  # the head is not part of D
    np.testing.assert_array_equal(d(x).numpy(), before)


def test_the_head_is_spectral_when_d_is():
    d = networks.build_discriminator("sngan_resnet", 32, batch_norm=False, width=1 / 32,
                                     spectral_norm=True)
    q = networks.rotation_classifier(d)
    head = q.get_layer("d_rotation")
    assert isinstance(head, SpectralDense)
    new = ids(q.weights) - ids(d.weights)
    assert new == ids(head.weights) and len(head.trainable_weights) == 2  # + u, v
    plain = networks.rotation_classifier(d, spectral_norm=False).get_layer("d_rotation")
    assert not isinstance(plain, SpectralDense)
    q(images(d), training=True)  # a training call refines u, v of the trunk and the head


def test_a_d_without_features_is_refused_with_the_fix():
    with pytest.raises(errors.InputError, match="no layer named 'd_features'.*sngan_resnet"):
        networks.rotation_classifier(networks.build_discriminator("dcgan", 32, width=1 / 16))
    with pytest.raises(errors.InputError, match="built keras.Model"):
        networks.rotation_classifier("D")
    x = keras.Input((8, 8, 3))
    h = keras.layers.Conv2D(2, 3, name="d_features")(x)
    maps = keras.Model(x, keras.layers.Dense(1)(keras.layers.Flatten()(h)))
    with pytest.raises(errors.InputError, match=r"needs a feature vector \[N, F\]"):
        networks.rotation_classifier(maps)
