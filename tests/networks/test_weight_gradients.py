"""The convolution weight gradient by patches (tf_asgan.networks.weight_gradients): its
value against TensorFlow's kernel and by hand, bfloat16 within rounding of an exact sum,
second-order gradients (R1), which layers a model routes, and the wiring from
``--conv_weight_gradient`` to a train step that updates the weights as the kernel does."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from helpers import images, small_config, tiny_dcgan
from tf_asgan import errors, export, networks
from tf_asgan.config.train_config import TrainConfig
from tf_asgan.experiments import benchmark, presets
from tf_asgan.networks import dcgan
from tf_asgan.networks import weight_gradients as wg
from tf_asgan.regularizers import penalties
from tf_asgan.training import builder, loop
from tf_asgan.utils import distribute


@pytest.mark.parametrize("kernel,strides,padding,dilations", [
    (4, 2, "same", 1), (3, 1, "same", 1), (3, 2, "valid", 1), (3, 1, "same", 2),
    (1, 1, "valid", 1)])
def test_patch_weight_gradient_equals_tensorflows(kernel, strides, padding, dilations):
    rng = np.random.default_rng(kernel + strides)
    x = tf.constant(rng.standard_normal((3, 9, 8, 5)), tf.float32)
    shape = (kernel, kernel, 5, 6)
    conv = dict(strides=[1, strides, strides, 1], padding=padding.upper(),
                dilations=[1, dilations, dilations, 1])
    out = tf.raw_ops.Conv2D(input=x, filter=tf.zeros(shape), **conv)
    dy = tf.constant(rng.standard_normal(out.shape), tf.float32)
    want = tf.raw_ops.Conv2DBackpropFilter(input=x, filter_sizes=shape, out_backprop=dy,
                                           **conv).numpy()
    got = wg.patch_weight_gradient(x, dy, shape, (strides,) * 2, padding, (dilations,) * 2)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-5, atol=1e-5)
    # and by hand at one weight: sum over positions of input * output gradient
    x_pad = np.asarray(x)
    if padding == "same":  # TensorFlow pads (total // 2) before, the rest after
        total = [max((-(-d // strides) - 1) * strides + (kernel - 1) * dilations + 1 - d, 0)
                 for d in x.shape[1:3]]
        x_pad = np.pad(x_pad, [(0, 0), *[(t // 2, t - t // 2) for t in total], (0, 0)])
    i, j, c, o = kernel - 1, 0, 2, 4
    h_out, w_out = dy.shape[1:3]
    by_hand = sum(x_pad[n, h * strides + i * dilations, w * strides + j * dilations, c]
                  * dy[n, h, w, o] for n in range(3) for h in range(h_out)
                  for w in range(w_out))
    assert float(got[i, j, c, o]) == pytest.approx(float(by_hand), rel=1e-5, abs=1e-5)


def test_patch_weight_gradient_refuses_a_gradient_of_another_shape():
    x = tf.zeros((2, 8, 8, 3))
    with pytest.raises(errors.InputError, match=r"dy is \(2, 8, 8, 4\); pass the gradient"):
        wg.patch_weight_gradient(x, tf.zeros((2, 8, 8, 4)), (3, 3, 3, 4), (2, 2), "same")
    with pytest.raises(errors.InputError, match="kernel"):
        wg.patch_weight_gradient(x, tf.zeros((2, 4, 4, 4)), (3, 3, 5, 4), (2, 2), "same")


def _conv_and_gradients(fn, x, kernel, dy):
    with tf.GradientTape() as tape:
        tape.watch([x, kernel])
        y = fn(x, kernel)
        loss = tf.reduce_sum(tf.cast(y, tf.float32) * tf.cast(dy, tf.float32))
    return (y, *tape.gradient(loss, [x, kernel]))


@pytest.mark.parametrize("strides,padding", [((2, 2), "same"), ((1, 1), "valid")])
def test_the_forward_pass_and_input_gradient_are_tensorflows_and_the_weight_gradient_equal(
        strides, padding):
    rng = np.random.default_rng(1)
    x = tf.constant(rng.standard_normal((4, 8, 8, 3)), tf.float32)
    kernel = tf.constant(rng.standard_normal((4, 4, 3, 5)), tf.float32)
    def plain(x, k):
        return tf.nn.conv2d(x, k, [1, *strides, 1], padding.upper())

    def patched(x, k):
        return wg.patch_gradient_conv2d(x, k, strides, padding)

    dy = tf.constant(rng.standard_normal(plain(x, kernel).shape), tf.float32)
    y0, dx0, dw0 = _conv_and_gradients(plain, x, kernel, dy)
    y1, dx1, dw1 = _conv_and_gradients(patched, x, kernel, dy)
    np.testing.assert_array_equal(y1.numpy(), y0.numpy())  # the same kernels
    np.testing.assert_array_equal(dx1.numpy(), dx0.numpy())
    np.testing.assert_allclose(dw1.numpy(), dw0.numpy(), rtol=1e-5, atol=1e-5)
    assert np.abs(dw0.numpy()).max() > 1  # a gradient worth comparing


def test_in_bfloat16_the_weight_gradient_is_within_one_rounding_of_the_exact_sum():
    rng = np.random.default_rng(2)
    x = tf.cast(tf.constant(rng.standard_normal((8, 8, 8, 16)), tf.float32), tf.bfloat16)
    kernel = tf.cast(tf.constant(rng.standard_normal((4, 4, 16, 8)), tf.float32), tf.bfloat16)
    dy = tf.cast(tf.constant(rng.standard_normal((8, 4, 4, 8)), tf.float32), tf.bfloat16)
    def conv(x, k):
        return tf.nn.conv2d(x, k, [1, 2, 2, 1], "SAME")

    def patched(x, k):
        return wg.patch_gradient_conv2d(x, k, (2, 2), "same")

    # the exact sum of the bfloat16 values: float64 NumPy over the same patches
    patches = tf.image.extract_patches(tf.cast(x, tf.float32), [1, 4, 4, 1], [1, 2, 2, 1],
                                       [1, 1, 1, 1], "SAME").numpy().astype(np.float64)
    exact = (patches.reshape(-1, 256).T @ tf.cast(dy, tf.float64).numpy().reshape(-1, 8))
    exact = exact.reshape(4, 4, 16, 8)
    for fn in (conv, patched):
        _, _, dw = _conv_and_gradients(fn, x, kernel, dy)
        assert dw.dtype == tf.bfloat16
        err = np.abs(tf.cast(dw, tf.float64).numpy() - exact)
        # one rounding to bfloat16's 8 significant bits: |error| <= 2^-8 |value|
        assert (err <= 2.0 ** -8 * np.abs(exact) + 1e-6).all(), fn


def _d_weight_gradients(d, x):
    """D's weight gradients of a logistic loss, in a ``tf.function`` (graph mode)."""
    @tf.function
    def grads():
        with tf.GradientTape() as tape:
            logits = tf.cast(d(x, training=True), tf.float32)
            loss = tf.reduce_mean(tf.math.softplus(-logits))
        return tape.gradient(loss, d.trainable_variables)

    return [g.numpy() for g in grads()]


@pytest.mark.parametrize("precision,rtol", [("float32", 1e-5), ("mixed_bfloat16", 2 ** -7)])
def test_a_keras_ds_weight_gradients_in_graph_mode_equal_the_kernels(precision, rtol):
    with distribute.precision_policy(precision):
        _, d = tiny_dcgan()
        x = tf.constant(images(8))
        want = _d_weight_gradients(d, x)
        assert networks.route_weight_gradients(d, "patches")
        got = _d_weight_gradients(d, x)
    assert all(v.dtype == "float32" for v in d.trainable_variables)  # reached the variables
    for a, b in zip(want, got):
        np.testing.assert_allclose(b, a, rtol=rtol, atol=rtol * np.abs(a).max())
        assert np.abs(a).max() > 0


def test_second_order_through_the_patch_product_equals_the_kernels():
    # d/dx of the squared norm of D's weight gradients (AdvAs's term differentiates them
    # with respect to the input): the only path through the product's own gradient
    _, d = tiny_dcgan(batch_norm=False)
    x = tf.constant(images(4))

    def grad_norm_input_gradient():
        with tf.GradientTape() as outer:
            outer.watch(x)
            with tf.GradientTape() as inner:
                loss = tf.reduce_sum(tf.square(d(x, training=True)))
            norm = tf.add_n([tf.reduce_sum(tf.square(g))
                             for g in inner.gradient(loss, d.trainable_variables)])
        return outer.gradient(norm, x).numpy()

    want = grad_norm_input_gradient()
    networks.route_weight_gradients(d, "patches")
    got = grad_norm_input_gradient()
    assert np.abs(want).max() > 0
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * np.abs(want).max())


def test_second_order_gradients_r1_through_patches_equal_the_kernels():
    _, d = tiny_dcgan(batch_norm=False)
    reals = tf.constant(images(4))

    def r1_weight_gradients():
        with tf.GradientTape() as tape:
            value = tf.reduce_mean(penalties.r1(lambda x: tf.reshape(d(x, training=True), [-1]),
                                                reals))
        return tape.gradient(value, d.trainable_variables)

    want = r1_weight_gradients()
    assert networks.route_weight_gradients(d, "patches")
    got = r1_weight_gradients()
    for a, b in zip(want, got):
        assert a is not None and b is not None
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-4,
                                   atol=1e-6 * np.abs(a.numpy()).max())


def test_route_weight_gradients_routes_the_conv2d_layers_and_back():
    g, d = tiny_dcgan()
    config = [layer.get_config() for layer in d.layers]
    assert networks.route_weight_gradients(d, "patches") == [
        "d_conv1", "d_conv2", "d_conv3", "d_conv_out"]
    assert networks.route_weight_gradients(g, "patches") == []  # transposed convolutions
    assert [layer.get_config() for layer in d.layers] == config  # nothing else changes
    assert type(d.get_layer("d_conv1")) is keras.layers.Conv2D
    assert "convolution_op" in vars(d.get_layer("d_conv2"))
    assert networks.route_weight_gradients(d, "kernel") == []
    assert not any("convolution_op" in vars(layer) for layer in d.layers)
    with pytest.raises(errors.InputError, match=r"choose from \['kernel', 'patches'\]"):
        networks.route_weight_gradients(d, "im2col")


class _Block(keras.layers.Layer):
    """A layer (not a model) holding a convolution."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.conv = keras.layers.Conv2D(4, 3, name="inner_conv")

    def call(self, x):
        return self.conv(x)


def test_nested_layers_are_routed_and_grouped_or_channels_first_ones_are_not():
    sn_d = dcgan.discriminator(32, batch_norm=False, channels=(4, 8, 8), spectral_norm=True)
    x = keras.Input((8, 8, 4))
    grouped = keras.layers.Conv2D(4, 3, groups=2, name="grouped")(x)
    first = keras.layers.Conv2D(4, 3, data_format="channels_first", name="first")
    first.build((None, 4, 8, 8))
    assert networks.route_weight_gradients(sn_d, "patches")[0] == "d_conv1"
    assert networks.route_weight_gradients(keras.Model(x, grouped), "patches") == []
    assert networks.route_weight_gradients(keras.Sequential([first]), "patches") == []
    assert len(networks.route_weight_gradients(keras.Sequential([sn_d]), "patches")) == 4
    block = keras.Sequential([keras.Input((8, 8, 4)), _Block()])
    assert networks.route_weight_gradients(block, "patches") == ["inner_conv"]


def _one_step(route):
    config = small_config(conv_weight_gradient=route, adversarial=True)
    keras.utils.set_random_seed(0)
    gan = builder.model_of(config, jit_compile=False)
    gan.train_step(tf.constant(images(8)))
    return gan, [w.numpy() for w in gan.discriminator.weights + gan.generator.weights]


def test_a_train_step_by_patches_updates_the_weights_as_the_kernel_route():
    gan, want = _one_step("kernel")
    assert not any("convolution_op" in vars(layer) for layer in gan.discriminator.layers)
    gan, got = _one_step("patches")
    assert "convolution_op" in vars(gan.discriminator.get_layer("d_conv2"))
    for a, b in zip(want, got):  # Adam's first step moves every weight by about lr
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=2e-6)


def test_the_option_is_checked_shown_and_benchmarked():
    with pytest.raises(errors.InputError, match="conv_weight_gradient"):
        TrainConfig(conv_weight_gradient="im2col").validate()
    assert "patches" in loop._weight_gradient_note("patches")
    assert loop._weight_gradient_note("kernel") == ""
    assert presets.reference("patch_weight_gradient") == "none"
    with distribute.precision_policy("mixed_bfloat16"):
        gan, _ = benchmark.build("dcgan", 32, "baseline", 2, option="patch_weight_gradient",
                                 width=1 / 16)
    assert "convolution_op" in vars(gan.discriminator.get_layer("d_conv3"))


def test_a_routed_generator_exports_and_loads_with_the_same_outputs(tmp_path):
    g = networks.build_generator("resnet", 32, latent_dim=16, width=1 / 16)
    assert "g_conv_out" in networks.route_weight_gradients(g, "patches")
    export.export_generator(g, str(tmp_path / "g"), latent_dim=16)
    z = tf.constant(np.random.default_rng(0).standard_normal((3, 16)), tf.float32)
    loaded = tf.saved_model.load(str(tmp_path / "g")).signatures["serving_default"]
    np.testing.assert_array_equal(loaded(z)["images"].numpy(), g(z, training=False).numpy())
