"""`fit` end to end: every architecture, loss and perturbation; XLA; mixed precision;
MirroredStrategy over two logical CPU devices against one device."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_asgan
from helpers import LATENT, changed, deterministic_pair, images, snapshot, tiny_dcgan


def dataset(n, res=32, batch=2, labels=False):
    x = images(n, res)
    data = (x, np.zeros(n, "int64")) if labels else x
    return tf.data.Dataset.from_tensor_slices(data).batch(batch, drop_remainder=True)


def assert_finite(history):
    for key, values in history.history.items():
        assert np.all(np.isfinite(values)), key


# Every network of tf_asgan.networks, each with AS-GAN and one regulariser, so that every
# network and every regulariser (spectral norm, WGAN-GP, R1, SSGAN's rotation loss, EMA)
# trains in `fit` at least once, in its sources' pairings where there is one (SN-GAN: SN and
# hinge; WGAN-GP: the penalty and the Wasserstein loss; SSGAN: the rotation loss on the
# SN ResNet). Width 1/8: the parameter counts check the full widths (tests/networks). All
# network x regulariser pairs would be 66 fits (about 7 s each): one pairing per network
# keeps the suite in its time budget.
NETWORK_FITS = {
    ("dcgan", 32): {"ema_decay": 0.9},
    ("dcgan", 64): {"bn_d": False, "spectral_norm": True},
    ("dcgan", 128): {},
    ("resnet", 32): {"bn_d": False, "gradient_penalty": "r1"},
    ("resnet", 64): {"rotation": "quarter"},
    ("sngan_cnn", 32): {"bn_d": False, "spectral_norm": True, "loss": "hinge"},
    ("sngan_cnn", 48): {"bn_d": False, "gradient_penalty": "wgan_gp", "loss": "wasserstein"},
    ("sngan_resnet", 32): {"bn_d": False, "spectral_norm": True, "loss": "hinge",
                           "rotation": "quarter"},
    ("sngan_resnet", 48): {"bn_d": False, "spectral_norm": True, "loss": "hinge",
                           "rotation": "all"},
    ("wgangp_resnet", 32): {"bn_d": False, "gradient_penalty": "wgan_gp",
                            "loss": "wasserstein"},
    ("wgangp_mnist", 28): {"bn_g": False, "bn_d": False, "gradient_penalty": "wgan_gp",
                           "loss": "wasserstein", "ema_decay": 0.9, "channels": 1},
}


def test_the_network_fits_cover_every_network_and_regulariser():
    every = {(a, r) for a in tf_asgan.networks.ARCHITECTURES
             for r in tf_asgan.networks.supported_resolutions(a)}
    assert set(NETWORK_FITS) == every
    used = {k for options in NETWORK_FITS.values() for k in options}
    assert {"spectral_norm", "gradient_penalty", "rotation", "ema_decay"} <= used
    penalties = {o.get("gradient_penalty") for o in NETWORK_FITS.values()}
    rotations = {o.get("rotation") for o in NETWORK_FITS.values()}
    assert {"wgan_gp", "r1"} <= penalties and {"quarter", "all"} <= rotations


@pytest.mark.slow
@pytest.mark.parametrize("arch,res", sorted(NETWORK_FITS))
def test_fit_two_steps_each_network_with_asgan_and_a_regulariser(arch, res):
    options = dict(NETWORK_FITS[(arch, res)])
    bn_g, bn_d = options.pop("bn_g", True), options.pop("bn_d", True)
    channels = options.pop("channels", 3)
    sn = options.pop("spectral_norm", False)
    g = tf_asgan.networks.build_generator(arch, res, latent_dim=LATENT, batch_norm=bn_g,
                                          width=0.125, channels=channels)
    d = tf_asgan.networks.build_discriminator(arch, res, batch_norm=bn_d, width=0.125,
                                              spectral_norm=sn, channels=channels)
    gan = tf_asgan.ASGAN(g, d, latent_dim=LATENT, **options)
    gan.compile()
    g0, d0 = snapshot(g), snapshot(d)
    x = np.random.default_rng(0).uniform(-1, 1, (4, res, res, channels)).astype("float32")
    history = gan.fit(tf.data.Dataset.from_tensor_slices(x).batch(2), epochs=1, verbose=0)
    assert_finite(history)
    assert int(gan.g_optimizer.iterations) == 2 and int(gan.d_optimizer.iterations) == 4
    assert changed(g0, g) and changed(d0, d)
    if "rotation" in options:
        assert {"rotation_d", "rotation_g"} <= set(history.history)
    if "gradient_penalty" in options:
        assert "gp" in history.history


@pytest.mark.slow
@pytest.mark.parametrize("loss,perturbation", [
    *[(loss, "fgsm") for loss in sorted(tf_asgan.losses.LOSSES)],
    *[("non_saturating", p) for p in sorted(tf_asgan.perturbations.PERTURBATIONS)
      if p != "fgsm"],
    ("wasserstein", "pgd")])
def test_fit_every_loss_and_perturbation(loss, perturbation):
    g, d = tiny_dcgan()
    gan = tf_asgan.ASGAN(g, d, latent_dim=LATENT, loss=loss, perturbation=perturbation,
                         perturbation_kwargs={"steps": 2} if perturbation == "pgd" else None)
    gan.compile()
    history = gan.fit(dataset(4, labels=True), epochs=1, verbose=0)
    assert_finite(history)
    assert {"d_loss", "d_loss_adv", "g_loss", "D_real", "D_adv", "D_fake", "epsilon",
            "grad_l1"} <= set(history.history)


def _train_deterministic(jit_compile=False, strategy=None, steps=2, adversarial=True):
    """Trains the z-independent pair from fixed initial weights; returns final weights."""
    tf.keras.utils.set_random_seed(7)
    g_ref, d_ref = deterministic_pair()
    scope = strategy.scope() if strategy else tf.distribute.get_strategy().scope()
    with scope:
        g, d = deterministic_pair()
        g.set_weights(g_ref.get_weights())
        d.set_weights(d_ref.get_weights())
        gan = tf_asgan.ASGAN(g, d, latent_dim=LATENT, epsilon=0.05, adversarial=adversarial)
        gan.compile(jit_compile=jit_compile)
    history = gan.fit(dataset(8 * steps, res=8, batch=8), epochs=1, verbose=0)
    return g.get_weights() + d.get_weights(), history.history


@pytest.mark.slow
@pytest.mark.parametrize("adversarial", [True, False])
def test_mirrored_strategy_matches_one_device(adversarial, mirrored):
    single, logs1 = _train_deterministic(adversarial=adversarial)
    strategy = mirrored
    assert strategy.num_replicas_in_sync == 2
    mirrored, logs2 = _train_deterministic(strategy=strategy, adversarial=adversarial)
    for a, b in zip(single, mirrored):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    for key in ("d_loss", "g_loss", "grad_l1") + (("D_adv",) if adversarial else ()):
        np.testing.assert_allclose(logs1[key], logs2[key], rtol=1e-5, err_msg=key)


@pytest.mark.slow
def test_xla_matches_graph_mode():
    graph, _ = _train_deterministic()
    xla, _ = _train_deterministic(jit_compile=True)
    for a, b in zip(graph, xla):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


@pytest.mark.slow
def test_xla_fit_with_batch_norm():
    g, d = tiny_dcgan()
    gan = tf_asgan.ASGAN(g, d, latent_dim=LATENT)
    gan.compile(jit_compile=True)
    assert_finite(gan.fit(dataset(4), epochs=1, verbose=0))


def test_loss_scaling_does_not_change_the_input_gradient():
    g, d = deterministic_pair()
    x = tf.constant(images(4, res=8))
    fake = g(tf.zeros((4, LATENT)))
    grads = []
    for wrap in (False, True):
        d_copy = keras.models.clone_model(d)
        d_copy.set_weights(d.get_weights())
        gan = tf_asgan.ASGAN(g, d_copy, latent_dim=LATENT)
        opt = keras.optimizers.Adam(2e-4)
        if wrap:
            opt = keras.optimizers.LossScaleOptimizer(opt, initial_scale=1024.0)
        gan.compile(d_optimizer=opt)
        grads.append(gan.discriminator_update(x, fake)[0].numpy())
    np.testing.assert_allclose(grads[1], grads[0], rtol=1e-5)


@pytest.fixture
def mixed_policy():
    keras.mixed_precision.set_global_policy("mixed_float16")
    yield
    keras.mixed_precision.set_global_policy("float32")


@pytest.mark.slow
def test_mixed_float16(mixed_policy):
    g, d = tiny_dcgan()
    assert d.get_layer("d_conv2").compute_dtype == "float16"
    gan = tf_asgan.ASGAN(g, d, latent_dim=LATENT)
    gan.compile()
    assert isinstance(gan.d_optimizer, keras.optimizers.LossScaleOptimizer)
    assert isinstance(gan.g_optimizer, keras.optimizers.LossScaleOptimizer)
    d0 = snapshot(d)
    assert_finite(gan.fit(dataset(4), epochs=1, verbose=0))
    assert changed(d0, d)
    assert d(images(2)).dtype == "float32" and g(np.zeros((2, LATENT))).dtype == "float32"
