"""Networks against the paper's Tables 4-11: block output shapes and parameter counts.

Expected counts are written out from the tables' layer shapes (kernel 4 for DCGAN,
3x3 convs + 1x1 skips and 256 channels for ResNet), independently of the code.
"""

import numpy as np
import pytest
from keras import layers

from tf_asgan import networks

# ---- DCGAN, Tables 8-11 (and our 128 px extension) ------------------------------------
DCGAN_G = {32: [512, 256, 128], 64: [1024, 512, 256, 128], 128: [1024, 512, 256, 128, 64]}
DCGAN_D = {32: [128, 256, 512], 64: [128, 256, 512, 1024], 128: [64, 128, 256, 512, 1024]}


def dcgan_g_params(widths, latent=100):
    conv = 0
    cin = latent
    for w in widths:
        conv += cin * w * 16  # 4x4 transposed conv, no bias
        cin = w
    conv += cin * 3 * 16
    bn = sum(4 * w for w in widths)  # gamma, beta, moving mean, moving variance
    return conv + bn


def dcgan_d_params(widths):
    cin, total = 3, 0
    for w in widths:
        total += cin * w * 16
        cin = w
    total += cin * 1 * 16  # final 4x4 valid conv to one logit
    total += sum(4 * w for w in widths[1:])  # no BN after the first conv
    return total


@pytest.mark.parametrize("res", [32, 64, 128])
def test_dcgan_shapes_and_counts(res):
    g = networks.build_generator("dcgan", res)
    d = networks.build_discriminator("dcgan", res)
    assert g.count_params() == dcgan_g_params(DCGAN_G[res])
    assert d.count_params() == dcgan_d_params(DCGAN_D[res])
    for i, w in enumerate(DCGAN_G[res], start=1):
        size = 4 * 2 ** (i - 1)
        assert tuple(g.get_layer(f"g_block{i}").output.shape) == (None, size, size, w)
    assert tuple(g.output.shape) == (None, res, res, 3)
    for i, w in enumerate(DCGAN_D[res], start=1):
        size = res // 2 ** i
        assert tuple(d.get_layer(f"d_block{i}").output.shape) == (None, size, size, w)
    assert tuple(d.output.shape) == (None, 1)


def test_dcgan_paper_details():
    g = networks.build_generator("dcgan", 32)
    d = networks.build_discriminator("dcgan", 32)
    convs = [layer for m in (g, d) for layer in m.layers if isinstance(layer, layers.Conv2D)]
    assert convs and all(not c.use_bias for c in convs)
    kernel = g.get_layer("g_conv2").kernel.numpy()
    assert abs(kernel.mean()) < 1e-3 and abs(kernel.std() - 0.02) < 1e-3
    assert not any(isinstance(layer, layers.BatchNormalization) and layer.name == "d_bn1"
                   for layer in d.layers)
    assert isinstance(d.get_layer("d_block2"), layers.LeakyReLU)
    out = g(np.random.normal(size=(3, 100)).astype("float32")).numpy()
    assert out.min() >= -1 and out.max() <= 1


# ---- ResNet, Tables 4-7 ------------------------------------------------------------
W = 256


def res_block_params(cin, preact=True):
    skip = cin * W + W  # 1x1 conv with bias
    conv1 = cin * 9 * W + W
    conv2 = W * 9 * W + W
    bn = (4 * cin if preact else 0) + 4 * W
    return skip + conv1 + conv2 + bn


def resnet_g_params(blocks, latent=100):
    linear = latent * 16 * W + 16 * W
    return linear + blocks * res_block_params(W) + 4 * W + (9 * W * 3 + 3)


def resnet_d_params(blocks):
    return res_block_params(3, preact=False) + (blocks - 1) * res_block_params(W) + W + 1


@pytest.mark.parametrize("res,up,down", [(32, 3, 4), (64, 4, 5)])
def test_resnet_shapes_and_counts(res, up, down):
    g = networks.build_generator("resnet", res)
    d = networks.build_discriminator("resnet", res)
    assert g.count_params() == resnet_g_params(up)
    assert d.count_params() == resnet_d_params(down)
    assert tuple(g.get_layer("g_block0").output.shape) == (None, 4, 4, W)
    for i in range(1, up + 1):
        size = 4 * 2 ** i
        assert tuple(g.get_layer(f"g_block{i}").output.shape) == (None, size, size, W)
    assert tuple(g.output.shape) == (None, res, res, 3)
    for i in range(1, down + 1):
        size = res // 2 ** i
        assert tuple(d.get_layer(f"d_block{i}").output.shape) == (None, size, size, W)
    assert size == 2
    assert tuple(d.get_layer("d_features").output.shape) == (None, W)  # what d_out reads
    assert tuple(d.output.shape) == (None, 1)
    assert isinstance(g.get_layer("g_block1_resample"), layers.UpSampling2D)
    assert g.get_layer("g_block1_resample").interpolation == "bilinear"
    assert isinstance(d.get_layer("d_block1_resample"), layers.AveragePooling2D)


@pytest.mark.parametrize("name", ["dcgan", "resnet"])
def test_batch_norm_switches(name):
    def n_bn(model):
        return sum(isinstance(layer, layers.BatchNormalization) for layer in model.layers)

    assert n_bn(networks.build_generator(name, 32)) > 0
    assert n_bn(networks.build_discriminator(name, 32)) > 0
    assert n_bn(networks.build_generator(name, 32, batch_norm=False)) == 0
    assert n_bn(networks.build_discriminator(name, 32, batch_norm=False)) == 0


def test_latent_dim():
    g = networks.build_generator("dcgan", 32, latent_dim=64)
    assert tuple(g.input.shape) == (None, 64)


def test_bad_names_and_resolutions():
    with pytest.raises(ValueError, match="dcgan"):
        networks.build_generator("stylegan", 32)
    with pytest.raises(ValueError, match=r"\[32, 64\]"):
        networks.build_discriminator("resnet", 128)
    assert networks.supported_resolutions("dcgan") == (32, 64, 128)


# ---- every architecture: image channels, reduced width --------------------------------
@pytest.mark.parametrize("name", ["dcgan", "resnet"])
def test_channels_change_only_the_image_layers(name):
    def shapes(model):
        return [tuple(w.shape) for w in model.weights]

    g3, g1 = (networks.build_generator(name, 32, width=1 / 16, channels=c) for c in (3, 1))
    d3, d1 = (networks.build_discriminator(name, 32, width=1 / 16, channels=c) for c in (3, 1))
    assert tuple(g1.output.shape) == (None, 32, 32, 1)
    assert tuple(d1.input.shape) == (None, 32, 32, 1)
    assert [type(x) for x in g1.layers + d1.layers] == [type(x) for x in g3.layers + d3.layers]
    changed = [(a, b) for a, b in zip(shapes(g3) + shapes(d3), shapes(g1) + shapes(d1))
               if a != b]
    assert changed and all(3 in a and 1 in b for a, b in changed)  # the image's channel axis
    with pytest.raises(ValueError, match="channels must be an integer >= 1"):
        networks.build_generator(name, 32, channels=0)


WIDE = {"dcgan": (32, 512, 128), "resnet": (32, 256, 256), "sngan_cnn": (48, 512, 64),
        "sngan_resnet": (48, 512, 64), "wgangp_resnet": (32, 128, 128),
        "wgangp_mnist": (28, 256, 64)}  # resolution, G's first width, D's first width


@pytest.mark.parametrize("name", sorted(WIDE))
def test_reduced_width_scales_every_architecture(name):
    res, g_first, d_first = WIDE[name]
    bn = name in ("dcgan", "resnet")
    g = networks.build_generator(name, res, width=1 / 8, latent_dim=8,
                                 batch_norm=name != "wgangp_mnist")
    d = networks.build_discriminator(name, res, width=1 / 8, batch_norm=bn)
    first = g.get_layer("g_block0" if name != "dcgan" else "g_block1").output.shape[-1]
    assert first == g_first // 8
    d_conv = [w for w in d.trainable_weights if len(w.shape) == 4][0]
    assert d_conv.shape[-1] == d_first // 8
    out = g(np.zeros((2, 8), "float32"))
    assert tuple(out.shape) == (2, res, res, 3) and tuple(d(out).shape) == (2, 1)
    assert name == "dcgan" or "d_features" in [layer.name for layer in d.layers]

