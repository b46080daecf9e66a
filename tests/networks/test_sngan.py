"""SN-GAN's networks against their sources: parameter counts, shapes, SN, refusals.

Expected counts are written out here from the sources' layer shapes, independently of the
code under test:

- ``sngan_cnn``: Miyato et al. 2018 (arXiv 1802.05957), Appendix B.4, Table 3; the dense
  layer's batch norm from ``pfnet-research/chainer-gan-lib`` ``common/net.py``
  (``DCGANGenerator``, lines 55-105: ``bn0 = L.BatchNormalization(bottom_width *
  bottom_width * ch)``, line 76, applied as ``relu(bn0(l0(z)))``, line 100);
- ``sngan_resnet``: Mimicry ``torch_mimicry/nets/sngan/sngan_32.py`` (G lines 22-36, D
  68-79) and ``sngan_48.py`` (G 22-36, D 68-77), blocks ``torch_mimicry/modules/
  resblocks.py`` (``GBlock`` line 14, hidden = out (40), learned shortcut when upsampling
  (41); ``DBlock`` 164, hidden = in (184), learned shortcut when the width changes or it
  downsamples (186); ``DBlockOptimized`` 246). Every PyTorch / chainer layer has a bias.

"Trainable" is what the sources count as parameters (PyTorch's ``parameters()``, chainer's
params); Keras's ``count_params`` adds batch norm's moving mean and variance (and spectral
layers' ``u``, ``v``). No source or reference (Mimicry's README, StudioGAN) states a count
for these networks; the numbers in ``docs/methods.md`` are these.
"""

import keras
import numpy as np
import pytest
from keras import layers

from tf_asgan import errors, networks
from tf_asgan.networks import resblocks
from tf_asgan.regularizers import SpectralConv2D, SpectralDense

Z = 128  # z in R^128 in every source


def conv(k, cin, cout):
    return k * k * cin * cout + cout  # kernel + bias


def dense(cin, cout):
    return cin * cout + cout


def trainable(model):
    return sum(int(np.prod(v.shape)) for v in model.trainable_weights)


# ---- SN-GAN standard CNN, Table 3 ----------------------------------------------------
def sngan_cnn_g(res):
    mg = res // 8
    units = mg * mg * 512
    params = dense(Z, units) + 2 * units  # dense, then chainer-gan-lib's bn0 (gamma, beta)
    for cin, cout in [(512, 256), (256, 128), (128, 64)]:
        params += conv(4, cin, cout) + 2 * cout  # 4x4 stride-2 deconv + BN
    params += conv(3, 64, 3)  # 3x3 conv to RGB
    moving = 2 * units + 2 * (256 + 128 + 64)
    return params, moving


def sngan_cnn_d(res):
    table = [(3, 3, 64), (4, 64, 64), (3, 64, 128), (4, 128, 128), (3, 128, 256),
             (4, 256, 256), (3, 256, 512)]
    return sum(conv(k, cin, cout) for k, cin, cout in table) + dense((res // 8) ** 2 * 512, 1)


@pytest.mark.parametrize("res", [32, 48])
def test_sngan_cnn_counts_and_shapes(res):
    g = networks.build_generator("sngan_cnn", res, latent_dim=Z)
    d = networks.build_discriminator("sngan_cnn", res, batch_norm=False)
    params, moving = sngan_cnn_g(res)
    assert trainable(g) == params
    assert g.count_params() == params + moving
    assert trainable(d) == d.count_params() == sngan_cnn_d(res)
    mg = res // 8
    for i, (side, width) in enumerate([(mg, 512), (2 * mg, 256), (4 * mg, 128), (8 * mg, 64)]):
        assert tuple(g.get_layer(f"g_block{i}").output.shape) == (None, side, side, width)
    assert tuple(g.output.shape) == (None, res, res, 3)
    sides = [res, res // 2, res // 2, res // 4, res // 4, res // 8, res // 8]
    widths = [64, 64, 128, 128, 256, 256, 512]
    for i, (side, width) in enumerate(zip(sides, widths), start=1):
        assert tuple(d.get_layer(f"d_block{i}").output.shape) == (None, side, side, width)
        assert d.get_layer(f"d_block{i}").negative_slope == pytest.approx(0.1)
    assert tuple(d.get_layer("d_features").output.shape) == (None, mg * mg * 512)
    assert tuple(d.output.shape) == (None, 1)


def test_sngan_cnn_source_details():
    g = networks.build_generator("sngan_cnn", 32, latent_dim=Z)
    kernel = g.get_layer("g_deconv1").kernel.numpy()  # 4*4*256*512 draws from N(0, 0.02)
    assert abs(kernel.mean()) < 1e-3 and abs(kernel.std() - 0.02) < 1e-3
    assert not g.get_layer("g_deconv1").bias.numpy().any()
    assert g.get_layer("g_bn0").epsilon == pytest.approx(2e-5)  # chainer's default
    out = g(np.random.default_rng(0).normal(size=(4, Z)).astype("float32")).numpy()
    assert out.min() >= -1 and out.max() <= 1 and out.std() > 0


# ---- SN-GAN ResNet, Mimicry --------------------------------------------------------------
def g_block(cin, cout):
    """GBlock(cin, cout, upsample=True): c1 3x3 cin->cout, c2 3x3 cout->cout, b1 BN(cin),
    b2 BN(cout), c_sc 1x1 cin->cout. Returns (trainable, BN moving statistics)."""
    return conv(3, cin, cout) + conv(3, cout, cout) + conv(1, cin, cout) + 2 * (cin + cout), \
        2 * (cin + cout)


def d_block(cin, cout, downsample):
    """DBlock: c1 3x3 cin->cin, c2 3x3 cin->cout, c_sc 1x1 if cin != cout or downsample."""
    shortcut = conv(1, cin, cout) if (cin != cout or downsample) else 0
    return conv(3, cin, cin) + conv(3, cin, cout) + shortcut


def d_block_optimized(cin, cout):
    return conv(3, cin, cout) + conv(3, cout, cout) + conv(1, cin, cout)


MIMICRY = {
    # res: (bottom, ngf chain of the G blocks, D blocks after the optimized one)
    32: (4, [(256, 256)] * 3, 128, [(128, 128, True), (128, 128, False), (128, 128, False)]),
    48: (6, [(512, 256), (256, 128), (128, 64)], 64,
         [(64, 128, True), (128, 256, True), (256, 512, True), (512, 1024, False)]),
}


def sngan_resnet_g(res):
    bottom, blocks, _, _ = MIMICRY[res]
    ngf = blocks[0][0]
    params, moving = dense(Z, bottom * bottom * ngf), 0  # l1
    for cin, cout in blocks:
        p, m = g_block(cin, cout)
        params, moving = params + p, moving + m
    last = blocks[-1][1]
    return params + 2 * last + conv(3, last, 3), moving + 2 * last  # b5, c5


def sngan_resnet_d(res):
    _, _, first, blocks = MIMICRY[res]
    return (d_block_optimized(3, first) + sum(d_block(*b) for b in blocks)
            + dense(blocks[-1][1], 1))  # l5


@pytest.mark.parametrize("res", [32, 48])
def test_sngan_resnet_counts_and_shapes(res):
    g = networks.build_generator("sngan_resnet", res, latent_dim=Z)
    d = networks.build_discriminator("sngan_resnet", res, batch_norm=False, spectral_norm=True)
    params, moving = sngan_resnet_g(res)
    assert trainable(g) == params
    assert g.count_params() == params + moving
    assert trainable(d) == sngan_resnet_d(res)
    bottom, blocks, first, dblocks = MIMICRY[res]
    side = bottom
    assert tuple(g.get_layer("g_block0").output.shape) == (None, side, side, blocks[0][0])
    for i, (_, cout) in enumerate(blocks, start=1):
        side *= 2
        assert tuple(g.get_layer(f"g_block{i}").output.shape) == (None, side, side, cout)
    assert side == res and tuple(g.output.shape) == (None, res, res, 3)
    side = res // 2
    assert tuple(d.get_layer("d_block1").output.shape) == (None, side, side, first)
    for i, (_, cout, down) in enumerate(dblocks, start=2):
        side //= 2 if down else 1
        assert tuple(d.get_layer(f"d_block{i}").output.shape) == (None, side, side, cout)
    assert tuple(d.get_layer("d_features").output.shape) == (None, dblocks[-1][1])
    assert isinstance(d.get_layer("d_features"), resblocks.GlobalSumPooling2D)
    assert tuple(d.output.shape) == (None, 1)


def test_sngan_resnet_48_known_totals():
    # the formulas above at Mimicry's defaults, as in docs/methods.md
    assert sngan_resnet_g(32)[0] == 4_276_739 and sngan_resnet_d(32) == 1_053_825
    assert sngan_resnet_g(48)[0] == 4_878_083 and sngan_resnet_d(48) == 10_141_441


def test_sngan_resnet_d_sums_and_g_upsamples_bilinear():
    d = networks.build_discriminator("sngan_resnet", 32, batch_norm=False, width=1 / 32)
    x = np.random.default_rng(1).uniform(-1, 1, size=(2, 32, 32, 3)).astype("float32")
    relu = d.get_layer("d_relu_out").output
    probe = keras.Model(d.input, [relu, d.get_layer("d_features").output])
    maps, features = (t.numpy() for t in probe(x))
    np.testing.assert_allclose(features, maps.sum(axis=(1, 2)), rtol=1e-5)
    g = networks.build_generator("sngan_resnet", 32, width=1 / 32)
    assert g.get_layer("g_block1_up").interpolation == "bilinear"
    assert "d_block3_skip_conv" not in [layer.name for layer in d.layers]  # identity skip


@pytest.mark.parametrize("name", ["sngan_cnn", "sngan_resnet"])
def test_spectral_norm_every_d_layer_and_one_channel(name):
    d = networks.build_discriminator(name, 32, batch_norm=False, spectral_norm=True,
                                     width=1 / 16, channels=1)
    weighted = [layer for layer in d.layers if layer.weights]
    assert weighted and all(isinstance(layer, (SpectralConv2D, SpectralDense))
                            for layer in weighted)
    plain = networks.build_discriminator(name, 32, batch_norm=False, width=1 / 16, channels=1)
    assert not any(isinstance(layer, (SpectralConv2D, SpectralDense)) for layer in plain.layers)
    assert trainable(d) == trainable(plain)
    assert tuple(d.input.shape) == (None, 32, 32, 1)
    clone = networks.build_discriminator(name, 32, batch_norm=False, spectral_norm=True,
                                         width=1 / 16, channels=1, sync_bn=True)
    assert [type(x) for x in clone.layers] == [type(x) for x in d.layers]
    synced = networks.build_generator(name, 32, width=1 / 16, sync_bn=True)
    assert all(x.synchronized for x in synced.layers
               if isinstance(x, layers.BatchNormalization))
    g = networks.build_generator(name, 32, width=1 / 16, channels=1, latent_dim=8)
    out = g(np.zeros((2, 8), "float32")).numpy()
    assert out.shape == (2, 32, 32, 1) and np.abs(out).max() <= 1


@pytest.mark.parametrize("name", ["sngan_cnn", "sngan_resnet"])
def test_batch_norm_refused_in_d_and_optional_in_g(name):
    with pytest.raises(errors.InputError, match="no batch normalisation.*batch_norm=False"):
        networks.build_discriminator(name, 32, width=1 / 16)
    with pytest.raises(errors.InputError, match="batch_norm=False"):
        networks.build_discriminator(name, 32, spectral_norm=True, width=1 / 16)
    with pytest.raises(errors.InputError, match="--nobn_d"):
        networks.check_batch_norm(name, "discriminator", True)
    networks.check_batch_norm(name, "generator", True)
    g = networks.build_generator(name, 32, batch_norm=False, width=1 / 16)
    assert not any(isinstance(layer, layers.BatchNormalization) for layer in g.layers)
    with pytest.raises(errors.InputError, match=r"\[32, 48\]"):
        networks.build_generator(name, 64)
