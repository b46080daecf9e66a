"""WGAN-GP's networks against the authors' code (``igul222/improved_wgan_training``):
parameter counts, shapes, initialisation, refusals.

Expected counts are written out from the source's layer shapes, independently of the code
under test (every ``tflib`` layer has a bias; batch norm has ``offset`` and ``scale``,
and non-trainable ``moving_mean``, ``moving_variance``):

- ``wgangp_resnet``: ``gan_cifar_resnet.py``, ``DIM_G = DIM_D = 128`` (lines 39-40),
  unconditional; ``ResidualBlock`` (lines 105-137: the shortcut is a 1x1 convolution
  unless ``input_dim == output_dim`` and ``resample is None``), ``OptimizedResBlockDisc1``
  (139-149), ``Generator`` (151-163), ``Discriminator`` (165-179, the WGAN output only).
- ``wgangp_mnist``: ``gan_mnist.py``, ``MODE = 'wgan-gp'``, ``DIM = 64`` (lines 22-23),
  ``Generator`` (55-80), ``Discriminator`` (82-101); ``tflib/ops/conv2d.py`` and
  ``deconv2d.py`` for the initialisation's fans.

No count is stated by the source or by a well-known reference for these networks.
"""

import math

import keras
import numpy as np
import pytest
from keras import layers

from tf_asgan import errors, networks

NOISE = 128  # tf.random_normal([n_samples, 128]) in both files


def conv(k, cin, cout):
    return k * k * cin * cout + cout


def linear(cin, cout):
    return cin * cout + cout


def trainable(model):
    return sum(int(np.prod(v.shape)) for v in model.trainable_weights)


# ---- CIFAR-10 ResNet -----------------------------------------------------------------------
DIM = 128


def resnet_g():
    block = conv(3, DIM, DIM) * 2 + conv(1, DIM, DIM) + 2 * (2 * DIM)  # up: 2 convs, skip, 2 BN
    params = linear(NOISE, 4 * 4 * DIM) + 3 * block + 2 * DIM + conv(3, DIM, 3)
    moving = 3 * 2 * (2 * DIM) + 2 * DIM
    return params, moving


def resnet_d():
    first = conv(3, 3, DIM) + conv(3, DIM, DIM) + conv(1, 3, DIM)
    down = conv(3, DIM, DIM) * 2 + conv(1, DIM, DIM)
    plain = conv(3, DIM, DIM) * 2  # resample=None, equal widths: identity shortcut
    return first + down + 2 * plain + linear(DIM, 1)


def test_wgangp_resnet_counts_and_shapes():
    g = networks.build_generator("wgangp_resnet", 32, latent_dim=NOISE)
    d = networks.build_discriminator("wgangp_resnet", 32, batch_norm=False)
    params, moving = resnet_g()
    assert (params, resnet_d()) == (1_204_483, 1_053_825)  # the figures in docs/methods.md
    assert trainable(g) == params and g.count_params() == params + moving
    assert trainable(d) == d.count_params() == resnet_d()
    for i, side in enumerate([4, 8, 16, 32]):
        assert tuple(g.get_layer(f"g_block{i}").output.shape) == (None, side, side, DIM)
    assert tuple(g.output.shape) == (None, 32, 32, 3)
    for i, side in enumerate([16, 8, 8, 8], start=1):
        assert tuple(d.get_layer(f"d_block{i}").output.shape) == (None, side, side, DIM)
    assert isinstance(d.get_layer("d_features"), layers.GlobalAveragePooling2D)
    assert tuple(d.get_layer("d_features").output.shape) == (None, DIM)
    assert g.get_layer("g_block1_up").interpolation == "nearest"  # UpsampleConv
    # he_init: uniform with std sqrt(4 / (fan_in + fan_out)), fans in * 9 and out * 9
    kernel = g.get_layer("g_block2_conv2").kernel.numpy()
    assert kernel.std() == pytest.approx(math.sqrt(4 / (18 * DIM)), rel=0.02)
    assert np.abs(kernel).max() <= math.sqrt(3 * 4 / (18 * DIM))


# ---- MNIST -------------------------------------------------------------------------------
MD = 64


def mnist_g():
    return (linear(NOISE, 4 * 4 * 4 * MD) + conv(5, 4 * MD, 2 * MD) + conv(5, 2 * MD, MD)
            + conv(5, MD, 1))


def mnist_d():
    return (conv(5, 1, MD) + conv(5, MD, 2 * MD) + conv(5, 2 * MD, 4 * MD)
            + linear(4 * 4 * 4 * MD, 1))


def test_wgangp_mnist_counts_and_shapes():
    g = networks.build_generator("wgangp_mnist", 28, latent_dim=NOISE, batch_norm=False,
                                 channels=1)
    d = networks.build_discriminator("wgangp_mnist", 28, batch_norm=False, channels=1)
    assert (mnist_g(), mnist_d()) == (1_554_177, 1_030_145)  # the figures in docs/methods.md
    assert trainable(g) == g.count_params() == mnist_g()
    assert trainable(d) == d.count_params() == mnist_d()
    shapes = {"g_block0": (4, 4, 256), "g_relu1": (8, 8, 128), "g_block1": (7, 7, 128),
              "g_block2": (14, 14, 64), "g_out": (28, 28, 1)}
    for name, shape in shapes.items():
        assert tuple(g.get_layer(name).output.shape) == (None, *shape), name
    for i, shape in enumerate([(14, 14, 64), (7, 7, 128), (4, 4, 256)], start=1):
        assert tuple(d.get_layer(f"d_block{i}").output.shape) == (None, *shape)
        assert d.get_layer(f"d_block{i}").negative_slope == pytest.approx(0.2)
    assert tuple(d.get_layer("d_features").output.shape) == (None, 4096)
    # tflib's fans: Deconv2D in * k^2 / 4 and out * k^2; Conv2D in * k^2, out * k^2 / 4
    deconv = g.get_layer("g_deconv1").kernel.numpy()
    assert deconv.std() == pytest.approx(math.sqrt(4 / (256 * 25 / 4 + 128 * 25)), rel=0.02)
    kernel = d.get_layer("d_conv3").kernel.numpy()
    assert kernel.std() == pytest.approx(math.sqrt(4 / (128 * 25 + 256 * 25 / 4)), rel=0.02)
    out = g(np.random.default_rng(0).normal(size=(3, NOISE)).astype("float32")).numpy()
    assert out.min() >= -1 and out.max() <= 1 and out.min() < 0  # tanh, not the source's sigmoid


def test_wgangp_mnist_crop_keeps_the_top_left():
    g = networks.build_generator("wgangp_mnist", 28, latent_dim=4, batch_norm=False,
                                 width=1 / 16, channels=1)
    probe = keras.Model(g.input, [g.get_layer("g_relu1").output, g.get_layer("g_block1").output])
    full, cropped = (t.numpy() for t in probe(np.ones((1, 4), "float32")))
    np.testing.assert_array_equal(cropped, full[:, :7, :7])  # output[:, :, :7, :7]


@pytest.mark.parametrize("which", ["generator", "discriminator"])
def test_wgangp_mnist_refuses_batch_norm(which):
    build = getattr(networks, f"build_{which}")
    with pytest.raises(errors.InputError, match=f"The {which} of 'wgangp_mnist'.*batch_norm"):
        build("wgangp_mnist", 28, channels=1)
    with pytest.raises(errors.InputError, match=r"\[28\]"):
        build("wgangp_mnist", 32, batch_norm=False)


def test_wgangp_resnet_refuses_d_batch_norm_and_takes_spectral_norm():
    with pytest.raises(errors.InputError, match="batch_norm=False"):
        networks.build_discriminator("wgangp_resnet", 32, width=1 / 16)
    d = networks.build_discriminator("wgangp_resnet", 32, batch_norm=False, width=1 / 16,
                                     spectral_norm=True)
    assert d.get_layer("d_out").__class__.__name__ == "SpectralDense"
