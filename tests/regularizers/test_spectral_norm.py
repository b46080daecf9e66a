"""Spectral normalization (tf_asgan.regularizers.spectral_norm) against NumPy: sigma and the
normalised kernel against an SVD, the gradient against Miyato et al.'s Eq. (12), autodiff
and finite differences, u's updates, checkpoints, two replicas, mixed precision, and the
wiring into the networks, the configuration and a fit step."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_asgan
from helpers import LATENT, changed, images, snapshot
from tf_asgan import errors, networks
from tf_asgan.config.sections import ModelConfig
from tf_asgan.config.train_config import TrainConfig
from tf_asgan.networks import dcgan
from tf_asgan.regularizers import SpectralConv2D, SpectralDense
from tf_asgan.training import builder


def dense(units=5, inputs=7, **kwargs):
    layer = SpectralDense(units, **kwargs)
    layer.build((None, inputs))
    return layer


def conv(filters=8, channels=4, **kwargs):
    layer = SpectralConv2D(filters, 3, padding="same", **kwargs)
    layer.build((None, 6, 6, channels))
    return layer


def unit(x):
    return x / np.linalg.norm(x)


def matrix(layer):
    """The kernel as NumPy's ``[K, out]`` matrix, in float64."""
    kernel = layer.kernel.numpy().astype(np.float64)
    return kernel.reshape(-1, kernel.shape[-1])


def sn_layers(model):
    return [layer for layer in model.layers if isinstance(layer, (SpectralConv2D, SpectralDense))]


def tiny_sn_pair(res=8):
    """A DCGAN pair at ``res`` px with a few channels, D spectrally normalised, no BN."""
    blocks = {8: (4,), 32: (4, 8, 8)}[res]
    g = dcgan.generator(res, latent_dim=LATENT, channels=(8,) * len(blocks))
    d = dcgan.discriminator(res, batch_norm=False, channels=blocks, spectral_norm=True)
    return g, d


# ---- the math ---------------------------------------------------------------------------

@pytest.mark.parametrize("make", [dense, conv])
def test_sigma_converges_to_numpys_largest_singular_value(make):
    layer = make(power_iterations=300)
    kernel = layer.kernel.numpy()
    top = np.linalg.svd(matrix(layer), compute_uv=False)[0]
    # PyTorch's layout [out, in, (kh, kw)] flattened to [out, -1]: the same singular values.
    torch_matrix = np.moveaxis(kernel, -1, 0)
    if kernel.ndim == 4:  # Keras [kh, kw, in, out] -> PyTorch [out, in, kh, kw]
        torch_matrix = np.transpose(kernel, (3, 2, 0, 1))
    torch_matrix = torch_matrix.reshape(kernel.shape[-1], -1)
    assert np.linalg.svd(torch_matrix, compute_uv=False)[0] == pytest.approx(top, rel=1e-6)
    assert abs(float(layer.sigma()) - top) > 1e-2 * top  # the random initial u, v
    layer.normalized_kernel(training=True)
    assert float(layer.sigma()) == pytest.approx(top, rel=1e-5)
    normalized = layer.normalized_kernel(training=False).numpy().reshape(-1, kernel.shape[-1])
    assert np.linalg.svd(normalized, compute_uv=False)[0] == pytest.approx(1.0, rel=1e-5)
    _, _, vt = np.linalg.svd(matrix(layer))  # u: W = M^T's first left singular vector
    assert abs(np.dot(layer.sn_u.numpy(), vt[0])) == pytest.approx(1.0, rel=1e-5)


def test_gradient_flows_through_sigma_as_in_eq_12(rng):
    layer = dense(units=5, inputs=7)
    x = rng.standard_normal((4, 7))
    c = rng.standard_normal((4, 5))
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(c * tf.cast(layer(x.astype("float32"), training=True), tf.float64))
    grad = tape.gradient(loss, layer.kernel).numpy()
    # u, v: the vectors this training call computed and used, constants for the gradient.
    u, v = layer.sn_u.numpy().astype(np.float64), layer.sn_v.numpy().astype(np.float64)
    m = matrix(layer)
    sigma = v @ m @ u
    g = x.T @ c  # d loss / d W_SN
    closed = (g - np.sum(g * m / sigma) * np.outer(v, u)) / sigma  # Eq. (12), Keras layout
    np.testing.assert_allclose(grad, closed, rtol=1e-4, atol=1e-6)

    def explicit(mm):  # loss(M) = sum(c * (x @ M / (v^T M u))) with u, v fixed
        return np.sum(c * (x @ (mm / (v @ mm @ u))))

    variable = tf.Variable(m)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(c * (x @ (variable / tf.tensordot(v, tf.linalg.matvec(variable, u),
                                                               1))))
    np.testing.assert_allclose(tape.gradient(loss, variable), closed, rtol=1e-10)
    finite = np.zeros_like(m)
    for index in np.ndindex(*m.shape):
        step = np.zeros_like(m)
        step[index] = 1e-6
        finite[index] = (explicit(m + step) - explicit(m - step)) / 2e-6
    np.testing.assert_allclose(finite, closed, rtol=1e-5, atol=1e-8)
    # Not the gradient that ignores sigma's dependence on W (Keras's SpectralNormalization).
    assert np.abs(grad - g / sigma).max() > 1e-2 * np.abs(g / sigma).max()


def test_u_and_v_change_on_training_calls_only(rng):
    layer = conv()
    x = rng.uniform(-1, 1, (2, 6, 6, 4)).astype("float32")
    kernel, bias = layer.kernel.numpy(), layer.bias.numpy()
    m = matrix(layer)

    def by_hand(u, v):
        return tf.nn.conv2d(x, kernel / np.float32(v @ m @ u), 1, "SAME") + bias

    u0, v0 = layer.sn_u.numpy(), layer.sn_v.numpy()
    inference = layer(x, training=False)
    layer(x)  # training unspecified: inference
    np.testing.assert_array_equal(layer.sn_u.numpy(), u0)
    np.testing.assert_array_equal(layer.sn_v.numpy(), v0)
    np.testing.assert_allclose(inference, by_hand(u0, v0), rtol=1e-5, atol=1e-6)
    training = layer(x, training=True)
    u1, v1 = layer.sn_u.numpy(), layer.sn_v.numpy()
    v_np = unit(m @ u0)  # one power iteration from the stored u
    np.testing.assert_allclose(v1, v_np, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(u1, unit(m.T @ v_np), rtol=1e-5, atol=1e-7)
    assert not np.allclose(u1, u0)
    np.testing.assert_allclose(training, by_hand(u1, v1), rtol=1e-5, atol=1e-6)
    # An inference call after it divides by that call's sigma (the same W).
    np.testing.assert_allclose(layer(x, training=False), training, rtol=1e-6, atol=1e-7)


def test_sigma_is_computed_in_float32_under_mixed_precision(rng):
    layer = dense(units=6, inputs=9, dtype="mixed_float16")
    u0 = layer.sn_u.numpy()
    y = layer(rng.standard_normal((3, 9)).astype("float32"), training=True)
    assert y.dtype == tf.float16
    assert layer.kernel.dtype == "float32" and layer.sn_u.dtype == "float32"
    m = matrix(layer)
    v = unit(m @ u0)
    # from a float16 copy of the kernel these would be off by about 1e-3
    np.testing.assert_allclose(layer.sn_u.numpy(), unit(m.T @ v), rtol=1e-5, atol=1e-7)


def test_bad_options_are_refused():
    with pytest.raises(errors.InputError, match="power_iterations"):
        SpectralDense(3, power_iterations=0)
    with pytest.raises(errors.InputError, match="epsilon"):
        SpectralConv2D(3, 3, epsilon=0.0)


# ---- state: checkpoints and replicas ----------------------------------------------------

def test_u_and_v_are_saved_and_restored_by_a_checkpoint(tmp_path):
    _, d = tiny_sn_pair(32)
    x = images(2)
    for _ in range(3):
        d(x, training=True)
    path = tf.train.Checkpoint(discriminator=d).save(str(tmp_path / "ckpt"))
    names = [name for name, _ in tf.train.list_variables(path)]
    assert sum("sn_u" in n for n in names) == sum("sn_v" in n for n in names) == 4
    _, fresh = tiny_sn_pair(32)
    assert not np.array_equal(sn_layers(fresh)[0].sn_u.numpy(), sn_layers(d)[0].sn_u.numpy())
    tf.train.Checkpoint(discriminator=fresh).restore(path).assert_consumed()
    for a, b in zip(sn_layers(d), sn_layers(fresh)):
        np.testing.assert_array_equal(a.sn_u.numpy(), b.sn_u.numpy())
        np.testing.assert_array_equal(a.sn_v.numpy(), b.sn_v.numpy())
    np.testing.assert_allclose(fresh(x, training=False), d(x, training=False), rtol=1e-6)


def assert_replicas_agree(strategy, d, before):
    for layer, v0 in zip(sn_layers(d), before):
        for variable in (layer.sn_u, layer.sn_v):
            copies = [c.numpy() for c in strategy.experimental_local_results(variable.value)]
            assert len(copies) == 2
            np.testing.assert_array_equal(copies[0], copies[1])
        assert not np.array_equal(layer.sn_v.numpy(), v0)


def test_u_stays_identical_on_every_replica(mirrored):
    # Each replica updates its own copy from its own batch's D calls; W is mirrored.
    with mirrored.scope():
        _, d = tiny_sn_pair()
        optimizer = keras.optimizers.SGD(0.1)
        optimizer.build(d.trainable_variables)
    before = [layer.sn_v.numpy() for layer in sn_layers(d)]

    @tf.function
    def step(x):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(d(x, training=True) ** 2) / mirrored.num_replicas_in_sync
        grads = tape.gradient(loss, d.trainable_variables)
        optimizer.apply_gradients(zip(grads, d.trainable_variables))
        return d(x, training=True)

    batches = mirrored.experimental_distribute_dataset(
        tf.data.Dataset.from_tensor_slices(images(8, res=8)).batch(4))
    for x in batches:  # replicas see different images
        mirrored.run(step, args=(x,))
    assert_replicas_agree(mirrored, d, before)


@pytest.mark.slow
def test_u_stays_identical_on_every_replica_through_fit(mirrored):
    with mirrored.scope():
        g, d = tiny_sn_pair()
        gan = tf_asgan.ASGAN(g, d, latent_dim=LATENT, epsilon=0.05)
        gan.compile()
    before = [layer.sn_v.numpy() for layer in sn_layers(d)]
    gan.fit(images(8, res=8), batch_size=8, epochs=1, verbose=0)
    assert_replicas_agree(mirrored, d, before)


# ---- in the model -----------------------------------------------------------------------

@pytest.mark.parametrize("kwargs,calls", [
    (dict(adversarial=False), 3),  # step 1: D(x), D(G(z)); step 4: D(G(z))
    (dict(adversarial=False, d_steps=2), 5),  # 2 per D iteration, 1 for G
    (dict(), 5),  # AS-GAN with FGSM: step 3 adds D(x_hat), D(G(z))
    (dict(second_update="real_only"), 4)])
def test_each_training_mode_d_call_of_a_step_runs_one_power_iteration(monkeypatch, kwargs,
                                                                       calls):
    g, d = tiny_sn_pair()
    gan = tf_asgan.ASGAN(g, d, latent_dim=LATENT, epsilon=0.05, **kwargs)
    gan.compile()
    counted = []
    inner = SpectralConv2D.normalized_kernel

    def counting(layer, training=False):
        counted.append((layer.name, bool(training)))
        return inner(layer, training)

    monkeypatch.setattr(SpectralConv2D, "normalized_kernel", counting)
    gan.train_step(tf.constant(images(4 * gan.d_steps, res=8)))  # eagerly: one trace
    assert counted.count(("d_conv1", True)) == calls
    assert ("d_conv1", False) not in counted


def test_a_fit_step_changes_ds_kernels_and_u():
    g, d = tiny_sn_pair()
    gan = tf_asgan.ASGAN(g, d, latent_dim=LATENT, epsilon=0.05)
    gan.compile()
    kernels = [layer.kernel.numpy() for layer in sn_layers(d)]
    vectors = [(layer.sn_u.numpy(), layer.sn_v.numpy()) for layer in sn_layers(d)]
    g0 = snapshot(g)
    history = gan.fit(images(4, res=8), batch_size=4, epochs=1, verbose=0)
    assert np.isfinite(history.history["d_loss"]).all()
    for layer, kernel, (u, v) in zip(sn_layers(d), kernels, vectors):
        assert not np.array_equal(layer.kernel.numpy(), kernel)
        assert not np.array_equal(layer.sn_v.numpy(), v)
        # u of the one-logit layer is [1] or [-1]: a unit vector of one number
        assert layer.filters == 1 or not np.array_equal(layer.sn_u.numpy(), u)
    assert changed(g0, g)
    assert all(not v.trainable for layer in sn_layers(d) for v in (layer.sn_u, layer.sn_v))


@pytest.mark.parametrize("architecture,width", [("dcgan", 1 / 16), ("resnet", 1 / 32)])
def test_networks_normalize_every_d_layer_with_the_same_trainable_parameters(architecture,
                                                                              width):
    plain = networks.build_discriminator(architecture, 32, batch_norm=False, width=width)
    d = networks.build_discriminator(architecture, 32, batch_norm=False, width=width,
                                     spectral_norm=True)
    weighted = [layer for layer in d.layers if layer.weights]
    assert weighted and all(isinstance(layer, (SpectralConv2D, SpectralDense))
                            for layer in weighted)
    trainable = sum(int(np.prod(v.shape)) for v in d.trainable_variables)
    assert trainable == plain.count_params()
    extra = sum(int(np.prod(layer.sn_u.shape)) + int(np.prod(layer.sn_v.shape))
                for layer in weighted)
    assert d.count_params() == plain.count_params() + extra  # u, v: non-trainable
    clone = networks.build_discriminator(architecture, 32, batch_norm=False, width=width,
                                         spectral_norm=True, sync_bn=True)
    assert [type(x).__name__ for x in clone.layers] == [type(x).__name__ for x in d.layers]
    assert not any(isinstance(layer, SpectralConv2D) for layer in
                   networks.build_generator(architecture, 32, width=width).layers)


def test_the_option_builds_an_sn_discriminator_and_refuses_batch_norm():
    with pytest.raises(errors.InputError, match="--nobn_d"):
        ModelConfig(spectral_norm=True).validate()
    with pytest.raises(errors.InputError, match="batch_norm=False"):
        networks.build_discriminator("dcgan", 32, spectral_norm=True)
    recorded = TrainConfig().to_dict()
    del recorded["spectral_norm"]  # a run recorded before the option
    assert TrainConfig.from_dict(recorded).model.spectral_norm is False
    config = TrainConfig(spectral_norm=True, bn_d=False, width=1 / 16, latent_dim=LATENT)
    config.validate()
    gan = builder.model_of(config)
    assert len(sn_layers(gan.discriminator)) == 4
    assert not any(isinstance(layer, keras.layers.BatchNormalization)
                   for layer in gan.discriminator.layers)
