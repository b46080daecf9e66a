"""DAT and AdvAs: their equations on linear models computed by hand, the wiring in the
train step, rejected combinations, and one fit step per method and loss."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import layers

from helpers import LATENT, changed, deterministic_pair, images, snapshot, tiny_dcgan
from tf_asgan import ASGAN, methods


def linear_d(w, b=0.0, res=2):
    """``d(x) = sum(w * x) + b`` for images ``[N, res, res, 1]``."""
    x = keras.Input((res, res, 1))
    dense = layers.Dense(1)
    model = keras.Model(x, dense(layers.Flatten()(x)))
    dense.set_weights([np.asarray(w, np.float32).reshape(-1, 1), np.array([b], np.float32)])
    return model


def linear_g(weights, res=2):
    """``G(z) = reshape(z @ W)`` (no bias, no activation): latent 3 -> ``[res, res, 1]``."""
    z = keras.Input((3,))
    dense = layers.Dense(res * res, use_bias=False)
    model = keras.Model(z, layers.Reshape((res, res, 1))(dense(z)))
    dense.set_weights([np.asarray(weights, np.float32)])
    return model


W = np.array([0.5, -1.0, 2.0, 0.25])
X = np.array([[0.1, 0.2, -0.3, 0.4], [0.0, -0.5, 0.5, 0.9]])  # two 2x2 "images"
FAKE = np.array([[-0.2, 0.3, 0.1, -0.7], [0.6, 0.0, -0.4, 0.2]])


def as_images(a):
    return tf.constant(np.asarray(a, np.float32).reshape(-1, 2, 2, 1))


def logits_of(model):
    return lambda x: tf.reshape(model(x), [-1])


# -- DAT, the authors' variant -------------------------------------------------------------


def test_towards_logit_is_one_clipped_gradient_step_by_hand():
    d = linear_d(W, b=0.1)
    target = 0.3
    out = methods.towards_logit(as_images(X), logits_of(d), target, step_size=0.05).numpy()
    logit = X @ W + 0.1
    # grad_x sum_i (d(x_i) - t)^2 = 2 (d(x_i) - t) w, per sample.
    expected = np.clip(X - np.clip(0.05 * 2 * (logit - target)[:, None] * W, -1, 1), -1, 1)
    np.testing.assert_allclose(out.reshape(2, 4), expected, rtol=1e-5, atol=1e-6)
    # Each sample's logit moves towards the target.
    moved = out.reshape(2, 4) @ W + 0.1
    assert np.all(np.abs(moved - target) < np.abs(logit - target))


def test_towards_logit_clips_the_step_and_the_image():
    d = linear_d(np.array([50.0, -50.0, 0.001, 0.0]))
    out = methods.towards_logit(as_images(X), logits_of(d), 5.0).numpy().reshape(2, 4)
    logit = X @ np.array([50.0, -50.0, 0.001, 0.0])
    raw = 2 * (logit - 5.0)[:, None] * np.array([50.0, -50.0, 0.001, 0.0])
    assert np.abs(raw[:, :2]).min() > 1  # these elements' steps are clipped to +-1
    expected = np.clip(X - np.clip(raw, -1, 1), -1, 1)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
    assert np.abs(out - X).max() <= 1 + 1e-6 and out.min() >= -1 and out.max() <= 1
    np.testing.assert_allclose(out[:, 3], X[:, 3])  # zero weight: untouched


def _dat_gan(dat, w=W, loss="non_saturating", adversarial=False, advas=None):
    g = linear_g(np.ones((3, 4)) * 0.1)
    d = linear_d(w, b=0.1)
    gan = ASGAN(g, d, latent_dim=3, loss=loss, adversarial=adversarial, dat=dat,
                advas=advas, perturbation="fgsm", epsilon=0.05)
    gan.compile(d_optimizer=keras.optimizers.SGD(0.1), g_optimizer=keras.optimizers.SGD(0.1))
    return gan


def _ns_d_loss(real_logits, fake_logits):
    softplus = lambda t: np.log1p(np.exp(t))  # noqa: E731
    return softplus(-real_logits).mean() + softplus(fake_logits).mean()


def test_dat_authors_trains_d_on_both_batches_pushed_to_the_other_mean():
    gan = _dat_gan(methods.DAT(variant="authors", step_size=0.5))
    x, fake = as_images(X), as_images(FAKE)
    grad, d_fake = gan.discriminator_update(x, fake)
    real_logit, fake_logit = X @ W + 0.1, FAKE @ W + 0.1
    step = lambda a, logit, t: np.clip(  # noqa: E731
        a - np.clip(0.5 * 2 * (logit - t)[:, None] * W, -1, 1), -1, 1)
    x_dat = step(X, real_logit, fake_logit.mean())
    fake_dat = step(FAKE, fake_logit, real_logit.mean())
    logs = gan.step_logs()
    # "replace": the D loss is L_D on the attacked batches only.
    assert float(logs["d_loss"]) == pytest.approx(
        _ns_d_loss(x_dat @ W + 0.1, fake_dat @ W + 0.1), rel=1e-5)
    np.testing.assert_allclose(d_fake.numpy().reshape(2, 4), fake_dat, rtol=1e-5, atol=1e-6)
    sigmoid = lambda t: 1 / (1 + np.exp(-t))  # noqa: E731
    assert float(logs["D_dat_real"]) == pytest.approx(sigmoid(x_dat @ W + 0.1).mean(), rel=1e-5)
    assert float(logs["D_real"]) == pytest.approx(sigmoid(real_logit).mean(), rel=1e-5)
    assert float(logs["dat_linf_fake"]) == pytest.approx(
        np.abs(fake_dat - FAKE).max(axis=1).mean(), rel=1e-5)
    assert grad is None  # the clean reals are not in the loss


def test_dat_add_keeps_the_clean_loss():
    gan = _dat_gan(methods.DAT(variant="authors", step_size=0.5, loss="add"))
    gan.discriminator_update(as_images(X), as_images(FAKE))
    real_logit, fake_logit = X @ W + 0.1, FAKE @ W + 0.1
    clean = _ns_d_loss(real_logit, fake_logit)
    replace = _dat_gan(methods.DAT(variant="authors", step_size=0.5))
    replace.discriminator_update(as_images(X), as_images(FAKE))
    assert float(gan.step_logs()["d_loss"]) == pytest.approx(
        clean + float(replace.step_logs()["d_loss"]), rel=1e-5)


# -- DAT, the L-infinity variant ---------------------------------------------------------------


def test_dat_pgd_moves_each_side_by_epsilon_against_d():
    eps = 0.05
    gan = _dat_gan(methods.DAT(variant="pgd", epsilon=eps, steps=3))
    x_near_edge = X.copy()
    x_near_edge[0, 1] = 0.98  # its move would leave [-1, 1]: clipped
    x, fake = as_images(x_near_edge), as_images(FAKE)
    x_dat, fake_dat, _, _ = gan.dat_examples(x, fake)
    # NS loss, linear D: the real term falls along +w, so the attack moves reals by
    # -eps * sign(w); the fake term rises along +w, fakes move by +eps * sign(w).
    np.testing.assert_allclose(x_dat.numpy().reshape(2, 4),
                               np.clip(x_near_edge - eps * np.sign(W), -1, 1), atol=1e-6)
    np.testing.assert_allclose(fake_dat.numpy().reshape(2, 4),
                               np.clip(FAKE + eps * np.sign(W), -1, 1), atol=1e-6)
    hinge = _dat_gan(methods.DAT(variant="pgd", epsilon=eps, steps=2, side="fake"),
                     loss="wasserstein")
    x_same, fake_w, _, _ = hinge.dat_examples(x, fake)
    assert x_same is x
    np.testing.assert_allclose(fake_w.numpy().reshape(2, 4), FAKE + eps * np.sign(W), atol=1e-6)


# -- AdvAs --------------------------------------------------------------------------------------


def _objective(phi, z, x, w, b, lam):
    """L_G + lam * ||grad_(w, b) L_D||^2 for linear G and D, NS losses, in float64."""
    sig = lambda t: 1 / (1 + np.exp(-t))  # noqa: E731
    fake = z @ phi.reshape(3, 4)
    fl, rl = fake @ w + b, x @ w + b
    l_g = np.log1p(np.exp(-fl)).mean()
    # L_D = mean softplus(-rl) + mean softplus(fl): its gradient in w and in b.
    gw = (-sig(-rl)[:, None] * x).mean(0) + (sig(fl)[:, None] * fake).mean(0)
    gb = -sig(-rl).mean() + sig(fl).mean()
    return l_g, np.sum(gw ** 2) + gb ** 2


def _numeric_grad(f, phi, h=1e-6):
    grad = np.zeros_like(phi)
    for i in range(phi.size):
        e = np.zeros_like(phi)
        e.flat[i] = h
        grad.flat[i] = (f(phi + e) - f(phi - e)) / (2 * h)
    return grad


@pytest.mark.parametrize("scale", ["fixed", "relative"])
def test_advas_penalty_and_its_generator_gradient_match_finite_differences(scale):
    rng = np.random.default_rng(0)
    phi0 = rng.normal(size=(3, 4)) * 0.3
    z = rng.normal(size=(5, 3))
    x = rng.uniform(-1, 1, (5, 4))
    w, b, lam = np.array([0.7, -0.4, 0.9, 0.3]), 0.1, 0.8
    g = linear_g(phi0)
    d = linear_d(w, b)
    gan = ASGAN(g, d, latent_dim=3, adversarial=False,
                advas=methods.AdvAs(lam=lam, scale=scale))
    gan.compile(d_optimizer=keras.optimizers.SGD(1.0), g_optimizer=keras.optimizers.SGD(1.0))
    d_before = snapshot(d)
    tape = tf.GradientTape(watch_accessed_variables=False, persistent=scale == "relative")
    with tape:
        tape.watch([v.value for v in g.trainable_variables])
        fake = g(tf.constant(z, tf.float32), training=True)
    gan.generator_update(tape, fake, as_images(x))
    # SGD with lr 1: the applied gradient is the change of the weights.
    applied = phi0 - g.get_weights()[0]
    l_g, penalty = _objective(phi0.ravel(), z, x, w, b, lam)
    logs = gan.step_logs()
    assert float(logs["advas_penalty"]) == pytest.approx(penalty, rel=1e-4)
    grad_lg = _numeric_grad(lambda p: _objective(p, z, x, w, b, lam)[0], phi0.ravel())
    grad_p = _numeric_grad(lambda p: _objective(p, z, x, w, b, lam)[1], phi0.ravel())
    assert np.linalg.norm(grad_p) > 0.05 * np.linalg.norm(grad_lg)  # the penalty matters
    if scale == "fixed":
        effective = lam
    else:
        effective = lam * np.linalg.norm(grad_lg) / np.linalg.norm(grad_p)
    assert float(logs["advas_lambda"]) == pytest.approx(effective, rel=1e-3)
    np.testing.assert_allclose(applied.ravel(), grad_lg + effective * grad_p, rtol=2e-3,
                               atol=1e-6)
    assert not changed(d_before, d)  # the G update leaves D alone
    assert float(logs["g_loss"]) == pytest.approx(l_g, rel=1e-5)


# -- wiring, combinations ------------------------------------------------------------------


def test_dat_and_advas_change_only_their_network_in_each_sub_step():
    g, d = deterministic_pair()
    gan = ASGAN(g, d, latent_dim=LATENT, adversarial=True, dat=methods.DAT(side="fake"),
                advas=methods.AdvAs(lam=0.5))
    gan.compile()
    x = tf.constant(images(4, res=8))
    tape = tf.GradientTape(watch_accessed_variables=False)
    with tape:
        tape.watch([v.value for v in g.trainable_variables])
        fake = gan.generate(4, training=True)
    g0, d0 = snapshot(g), snapshot(d)
    grad, d_fake = gan.discriminator_update(x, fake)  # step 1 with DAT on the fakes
    assert changed(d0, d) and not changed(g0, g)
    assert grad is not None  # the clean reals are in the loss: AS-GAN's FGSM can use it
    assert not np.allclose(d_fake.numpy(), fake.numpy())
    g1, d1 = snapshot(g), snapshot(d)
    gan.adversarial_update(gan.perturb(x, grad, 0.1), d_fake)  # steps 2-3
    assert changed(d1, d) and not changed(g1, g)
    d2 = snapshot(d)
    gan.generator_update(tape, fake, x)  # step 4 with AdvAs
    assert changed(g1, g) and not changed(d2, d)


@pytest.mark.parametrize("kwargs,message", [
    (dict(adversarial=True, dat=methods.DAT(side="both")), "side='fake'"),
    (dict(adversarial=True, dat=methods.DAT(side="real")), "already does"),
    (dict(dat=methods.DAT(variant="fgsm")), "Unknown DAT variant"),
    (dict(dat={"side": "middle"}), "Unknown DAT side"),
    (dict(dat=methods.DAT(variant="pgd", epsilon=0)), "epsilon"),
    (dict(advas=methods.AdvAs(lam=0)), "lambda must be > 0"),
    (dict(advas={"scale": "auto"}), "Unknown AdvAs scale"),
    (dict(dat="authors"), "Expected a tf_asgan.methods.DAT"),
])
def test_rejected_combinations_and_values(kwargs, message):
    g, d = deterministic_pair()
    kwargs = dict({"adversarial": False}, **kwargs)
    with pytest.raises(ValueError, match=message):
        ASGAN(g, d, latent_dim=LATENT, **kwargs)


def test_advas_with_float16_networks_is_rejected():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        g, d = tiny_dcgan()
    finally:
        keras.mixed_precision.set_global_policy("float32")
    gan = ASGAN(g, d, latent_dim=LATENT, advas=methods.AdvAs())
    with pytest.raises(ValueError, match="float16"):
        gan.compile()


# -- one fit step per method and loss -------------------------------------------------------------

METHODS = {
    "dat_authors": dict(adversarial=False, dat=methods.DAT()),
    "dat_pgd_add": dict(adversarial=False, dat=methods.DAT(variant="pgd", loss="add", steps=2)),
    "advas_fixed": dict(adversarial=False, advas=methods.AdvAs(lam=0.1)),
    "advas_relative": dict(adversarial=False, advas=methods.AdvAs(scale="relative")),
    "as_advas": dict(adversarial=True, advas=methods.AdvAs(lam=0.1)),
    "as_dat_fake": dict(adversarial=True, dat=methods.DAT(side="fake")),
}


@pytest.mark.parametrize("loss", ["non_saturating", "hinge", "wasserstein"])
@pytest.mark.parametrize("method", sorted(METHODS))
def test_one_fit_step(method, loss):
    g, d = deterministic_pair()
    gan = ASGAN(g, d, latent_dim=LATENT, loss=loss, **METHODS[method])
    gan.compile()
    g0, d0 = snapshot(g), snapshot(d)
    history = gan.fit(tf.data.Dataset.from_tensors(images(8, res=8)), epochs=1, verbose=0)
    logs = {k: v[-1] for k, v in history.history.items()}
    assert changed(g0, g) and changed(d0, d)
    assert all(np.isfinite(v) for v in logs.values()), logs
    if "dat" in method:
        assert "D_dat_fake" in logs and logs["dat_linf_fake"] >= 0
    if "advas" in method:
        assert logs["advas_penalty"] > 0 and logs["advas_lambda"] > 0
    if method.startswith("as_"):
        assert "D_adv" in logs


def test_fit_with_batch_norm_networks():
    g, d = tiny_dcgan()
    gan = ASGAN(g, d, latent_dim=LATENT, adversarial=True, dat=methods.DAT(side="fake"),
                advas=methods.AdvAs(lam=0.1, scale="relative"))
    gan.compile()
    history = gan.fit(tf.data.Dataset.from_tensors(images(8)).repeat(2), epochs=1, verbose=0)
    assert all(np.isfinite(v[-1]) for v in history.history.values())


@pytest.mark.parametrize("loss,moves", [("hinge", False), ("non_saturating", True)])
def test_dat_pgd_fake_term_follows_the_loss(loss, moves):
    # The fake-side attack differentiates D's fake term only. With the hinge loss and
    # fake logits far below -1 that term, relu(1 + d), is flat: the fakes stay put; the
    # non-saturating term softplus(d) is not flat, so they move by epsilon.
    gan = _dat_gan(methods.DAT(variant="pgd", side="fake", epsilon=0.1), loss=loss)
    gan.discriminator.layers[-1].set_weights([W.reshape(4, 1).astype(np.float32),
                                              np.array([-50.0], np.float32)])
    x, fake = as_images(X), as_images(FAKE)
    _, fake_dat, _, _ = gan.dat_examples(x, fake)
    moved = np.abs(fake_dat.numpy() - fake.numpy()).max()
    assert moved == pytest.approx(0.1 if moves else 0.0, abs=1e-6)
