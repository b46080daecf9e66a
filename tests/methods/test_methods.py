"""DAT and AdvAs: their equations on linear models computed by hand, the wiring in the
train step, rejected combinations, and one fit step per method and loss."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import layers

import tf_asgan
from helpers import LATENT, changed, deterministic_pair, images, snapshot, tiny_dcgan
from tf_asgan import ASGAN, errors, methods, schedules
from tf_asgan.methods import advas, dat
from tf_asgan.utils import distribute


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


def dat_step_by_hand(a, w, b, target, step_size=1.0):
    """The authors' step on a linear D: ``a - clip(step * sign(mean d - t) * w / N)``."""
    logits = a @ w + b
    grad = np.sign(logits.mean() - target) * np.tile(w, (len(a), 1)) / len(a)
    return np.clip(a - np.clip(step_size * grad, -1, 1), -1, 1)


@pytest.mark.parametrize("step_size", [1.0, 30.0])
def test_batch_mean_step_is_the_closed_form_on_a_linear_d(step_size):
    d = linear_d(W, b=0.1)
    x = as_images(X)
    for target in (-2.0, 2.0):  # the sign of (mean d - t) flips the direction
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(x)
            logits = logits_of(d)(x)
        out = dat.batch_mean_step(x, logits, target, tape, step_size=step_size).numpy()
        expected = dat_step_by_hand(X, W, 0.1, target, step_size)
        np.testing.assert_allclose(out.reshape(2, 4), expected, rtol=1e-5, atol=1e-6)
    if step_size == 1.0:
        # One sign and a 1/N factor: the first sample (away from the image range's
        # ends) moves by exactly |w| / N per element.
        np.testing.assert_allclose(np.abs(out.reshape(2, 4) - X)[0], np.abs(W) / 2,
                                   rtol=1e-5)
    else:  # 30 * 2 / 2 > 1: that element's step is clipped to 1
        assert np.abs(out.reshape(2, 4) - X)[:, 2].max() == pytest.approx(1.0, abs=1e-6) \
            or out.reshape(2, 4)[:, 2].max() == pytest.approx(1.0)


def test_batch_mean_step_is_the_gradient_of_the_absolute_batch_mean_on_a_nonlinear_d():
    _, d = deterministic_pair()
    x = tf.constant(images(5, res=8))
    target = 0.05
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        logits = tf.reshape(d(x), [-1])
        objective = tf.abs(tf.reduce_mean(logits) - target)  # the authors' objective
    expected = np.clip(x.numpy() - np.clip(tape.gradient(objective, x).numpy(), -1, 1), -1, 1)
    out = dat.batch_mean_step(x, logits, target, tape).numpy()
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-7)
    assert np.abs(out - x.numpy()).max() > 0


def test_dat_examples_push_each_batch_towards_the_other_clean_mean():
    d = linear_d(W, b=0.1)
    ex = dat.examples(methods.DAT(), as_images(X), as_images(FAKE), logits_of(d),
                      "non_saturating",
                      real_loss=lambda r: tf_asgan.losses.minimax_discriminator_loss(r, None))
    real_logit, fake_logit = X @ W + 0.1, FAKE @ W + 0.1
    np.testing.assert_allclose(ex.real.numpy().reshape(2, 4),
                               dat_step_by_hand(X, W, 0.1, fake_logit.mean()), atol=1e-6)
    np.testing.assert_allclose(ex.fake.numpy().reshape(2, 4),
                               dat_step_by_hand(FAKE, W, 0.1, real_logit.mean()), atol=1e-6)
    np.testing.assert_allclose(ex.real_logits.numpy(), real_logit, rtol=1e-5)
    np.testing.assert_allclose(ex.fake_logits.numpy(), fake_logit, rtol=1e-5)
    # grad_x of mean softplus(-d(x)): -sigmoid(-d(x_i)) w / N.
    sigmoid = 1 / (1 + np.exp(real_logit))
    np.testing.assert_allclose(ex.real_input_grad.numpy().reshape(2, 4),
                               -sigmoid[:, None] * W / 2, rtol=1e-5)
    fake_only = dat.examples(methods.DAT(side="fake"), as_images(X), as_images(FAKE),
                             logits_of(d), "non_saturating")
    np.testing.assert_array_equal(fake_only.real.numpy(), as_images(X).numpy())
    assert fake_only.real_input_grad is None


def test_dat_examples_under_two_replicas_equal_the_single_device_step(mirrored):
    # Replica 0 holds samples whose mean logit lies below the target, replica 1 far above
    # it: per-replica means (or a per-replica N) would move replica 0 the wrong way.
    reals = np.array([[-0.4, 0.3, -0.2, 0.0], [-0.3, 0.2, -0.1, 0.1],
                      [0.9, -0.8, 0.9, 0.5], [0.8, -0.9, 0.7, 0.6]])
    fakes = np.array([[0.1, 0.0, 0.0, 0.2], [0.0, 0.1, 0.1, 0.0],
                      [0.2, 0.1, 0.0, 0.1], [0.1, 0.2, 0.0, 0.0]])
    with mirrored.scope():
        d = linear_d(W, b=0.1)
    loss = "non_saturating"

    def attack(x, f):
        ex = dat.examples(methods.DAT(), x, f, logits_of(d), loss,
                          cross_replica_sum=distribute.cross_replica_sum())
        return ex.real, ex.fake

    def split(a):
        parts = np.split(np.asarray(a, np.float32).reshape(-1, 2, 2, 1), 2)
        return mirrored.experimental_distribute_values_from_function(
            lambda ctx: tf.constant(parts[ctx.replica_id_in_sync_group]))

    real_parts, fake_parts = mirrored.run(tf.function(attack),
                                          args=(split(reals), split(fakes)))
    got_real = np.concatenate([t.numpy() for t in mirrored.experimental_local_results(
        real_parts)]).reshape(4, 4)
    got_fake = np.concatenate([t.numpy() for t in mirrored.experimental_local_results(
        fake_parts)]).reshape(4, 4)
    real_logit, fake_logit = reals @ W + 0.1, fakes @ W + 0.1
    assert np.sign(real_logit[:2].mean() - fake_logit.mean()) != np.sign(
        real_logit.mean() - fake_logit.mean())
    np.testing.assert_allclose(got_real, dat_step_by_hand(reals, W, 0.1, fake_logit.mean()),
                               atol=1e-6)
    np.testing.assert_allclose(got_fake, dat_step_by_hand(fakes, W, 0.1, real_logit.mean()),
                               atol=1e-6)


def _dat_gan(dat_options, w=W, loss="non_saturating", adversarial=False, advas=None,
             track_input_grad=True):
    g = linear_g(np.ones((3, 4)) * 0.1)
    d = linear_d(w, b=0.1)
    gan = ASGAN(g, d, latent_dim=3, loss=loss, adversarial=adversarial, dat=dat_options,
                advas=advas, perturbation="fgsm", epsilon=0.05,
                track_input_grad=track_input_grad)
    gan.compile(d_optimizer=keras.optimizers.SGD(0.1), g_optimizer=keras.optimizers.SGD(0.1))
    return gan


def dat_examples(gan, x, fake):
    """DAT's batches at ``gan``'s current D, as its step 1 forms them: ``dat.examples``
    with the model's options, D (in training mode, as in the step) and GAN loss."""
    logits = lambda t: tf.reshape(gan.discriminator(t, training=True), [-1])  # noqa: E731
    return dat.examples(gan.dat, x, fake, logits, gan.gan_loss)


def _ns_d_loss(real_logits, fake_logits):
    softplus = lambda t: np.log1p(np.exp(t))  # noqa: E731
    return softplus(-real_logits).mean() + softplus(fake_logits).mean()


def test_dat_authors_trains_d_on_the_attacked_batches_only():
    gan = _dat_gan(methods.DAT())
    x, fake = as_images(X), as_images(FAKE)
    g0 = snapshot(gan.generator)
    grad, d_fake = gan.discriminator_update(x, fake)
    real_logit, fake_logit = X @ W + 0.1, FAKE @ W + 0.1
    x_dat = dat_step_by_hand(X, W, 0.1, fake_logit.mean())
    fake_dat = dat_step_by_hand(FAKE, W, 0.1, real_logit.mean())
    logs = gan.step_logs()
    # "replace": the D loss is L_D on the attacked batches only...
    assert float(logs["d_loss"]) == pytest.approx(
        _ns_d_loss(x_dat @ W + 0.1, fake_dat @ W + 0.1), rel=1e-5)
    # ... and D's SGD step is that loss's gradient: w -= 0.1 * grad_w L_D(x_dat, fake_dat).
    sig = lambda t: 1 / (1 + np.exp(-t))  # noqa: E731
    grad_w = ((-sig(-(x_dat @ W + 0.1)))[:, None] * x_dat).mean(0) + (
        sig(fake_dat @ W + 0.1)[:, None] * fake_dat).mean(0)
    np.testing.assert_allclose(gan.discriminator.get_weights()[0].ravel(), W - 0.1 * grad_w,
                               rtol=1e-5)
    assert not changed(g0, gan.generator)
    np.testing.assert_allclose(d_fake.numpy().reshape(2, 4), fake_dat, rtol=1e-5, atol=1e-6)
    assert float(logs["D_dat_real"]) == pytest.approx(sig(x_dat @ W + 0.1).mean(), rel=1e-5)
    assert float(logs["D_real"]) == pytest.approx(sig(real_logit).mean(), rel=1e-5)
    assert float(logs["dat_linf_fake"]) == pytest.approx(
        np.abs(fake_dat - FAKE).max(axis=1).mean(), rel=1e-5)
    # The clean input gradient is measured (not a 0 that looks like one): for the NS real
    # term, -sigmoid(-d(x_i)) w / N, summed in absolute value over the batch.
    expected_grad = -sig(-real_logit)[:, None] * W / 2
    np.testing.assert_allclose(grad.numpy().reshape(2, 4), expected_grad, rtol=1e-5)
    assert float(logs["grad_l1"]) == pytest.approx(np.abs(expected_grad).sum(), rel=1e-5)


def test_dat_without_input_gradient_tracking_logs_no_grad_l1():
    gan = _dat_gan(methods.DAT(), track_input_grad=False)
    grad, _ = gan.discriminator_update(as_images(X), as_images(FAKE))
    assert grad is None and "grad_l1" not in gan.step_logs()


def test_dat_add_keeps_the_clean_loss():
    gan = _dat_gan(methods.DAT(loss="add"))
    gan.discriminator_update(as_images(X), as_images(FAKE))
    real_logit, fake_logit = X @ W + 0.1, FAKE @ W + 0.1
    clean = _ns_d_loss(real_logit, fake_logit)
    replace = _dat_gan(methods.DAT())
    replace.discriminator_update(as_images(X), as_images(FAKE))
    assert float(gan.step_logs()["d_loss"]) == pytest.approx(
        clean + float(replace.step_logs()["d_loss"]), rel=1e-5)


def test_dat_leaves_the_generator_update_the_ordinary_one():
    # One whole train step with SGD(1) on G: G's change is the gradient of the ordinary
    # G loss on the *clean* fakes through the D left by step 1 (DAT moves D only).
    g, d = deterministic_pair()
    gan = ASGAN(g, d, latent_dim=LATENT, adversarial=False, dat=methods.DAT())
    gan.compile(d_optimizer=keras.optimizers.SGD(0.1), g_optimizer=keras.optimizers.SGD(1.0))
    g0 = snapshot(g)
    gan.train_step(tf.constant(images(4, res=8)))
    probe, d_after = deterministic_pair()
    d_after.set_weights(d.get_weights())
    probe.set_weights(g0)
    with tf.GradientTape() as tape:
        fake = probe(tf.zeros((4, LATENT)), training=True)  # G ignores z
        loss = tf_asgan.losses.non_saturating_generator_loss(tf.reshape(d_after(fake), [-1]))
    expected = [w - grad.numpy() for w, grad in zip(g0, tape.gradient(
        loss, probe.trainable_variables))]
    for a, b in zip(g.get_weights(), expected):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


# -- DAT, the L-infinity variant ---------------------------------------------------------------


def test_dat_pgd_moves_each_side_by_epsilon_against_d():
    eps = 0.05
    gan = _dat_gan(methods.DAT(variant="pgd", epsilon=eps, steps=3))
    x_near_edge = X.copy()
    x_near_edge[0, 1] = 0.98  # its move would leave [-1, 1]: clipped
    x, fake = as_images(x_near_edge), as_images(FAKE)
    x_dat, fake_dat = dat_examples(gan, x, fake)[:2]
    # NS loss, linear D: the real term falls along +w, so the attack moves reals by
    # -eps * sign(w); the fake term rises along +w, fakes move by +eps * sign(w).
    np.testing.assert_allclose(x_dat.numpy().reshape(2, 4),
                               np.clip(x_near_edge - eps * np.sign(W), -1, 1), atol=1e-6)
    np.testing.assert_allclose(fake_dat.numpy().reshape(2, 4),
                               np.clip(FAKE + eps * np.sign(W), -1, 1), atol=1e-6)
    hinge = _dat_gan(methods.DAT(variant="pgd", epsilon=eps, steps=2, side="fake"),
                     loss="wasserstein")
    x_same, fake_w = dat_examples(hinge, x, fake)[:2]
    assert x_same is x
    np.testing.assert_allclose(fake_w.numpy().reshape(2, 4), FAKE + eps * np.sign(W), atol=1e-6)


def test_dat_pgd_takes_steps_of_two_and_a_half_epsilon_over_steps_by_default():
    # A D whose logit is sum (x - c)^2: ascending the NS real term softplus(-d) pulls
    # each pixel towards c, which lies inside the epsilon ball. Sign steps of size alpha
    # then overshoot and come back; where they end depends on alpha (NumPy replays them).
    eps, steps, c = 0.1, 4, 0.03
    x_in = keras.Input((2, 2, 1))
    d = keras.Model(x_in, layers.Lambda(
        lambda t: tf.reduce_sum(tf.square(t - c), axis=[1, 2, 3]))(x_in))
    options = methods.DAT(variant="pgd", side="real", epsilon=eps, steps=steps)
    assert options.resolved_step_size == pytest.approx(2.5 * eps / steps)
    x = np.zeros((1, 4))
    ex = dat.examples(options, as_images(x), as_images(x), logits_of(d), "non_saturating")
    alpha, x_t = 2.5 * eps / steps, x.copy()
    for _ in range(steps):
        x_t = np.clip(x_t + alpha * np.sign(c - x_t), x - eps, x + eps)
    np.testing.assert_allclose(ex.real.numpy().reshape(1, 4), x_t, atol=1e-6)
    assert abs(x_t[0, 0]) < eps - 1e-3  # not at the ball's edge: a step of 1 would be


# -- AdvAs --------------------------------------------------------------------------------------

def _sig(t):
    return 1 / (1 + np.exp(-t))


def _d_loss_grad(x, fake, w, b):
    """grad_(w, b) of L_D = mean softplus(-d(x)) + mean softplus(d(fake)), linear D."""
    rl, fl = x @ w + b, fake @ w + b
    gw = (-_sig(-rl)[:, None] * x).mean(0) + (_sig(fl)[:, None] * fake).mean(0)
    gb = -_sig(-rl).mean() + _sig(fl).mean()
    return np.append(gw, gb)


def _penalty_by_hand(x, fake, w, b, estimate):
    if estimate == "biased":
        grad = _d_loss_grad(x, fake, w, b)
        return grad @ grad
    h = len(x) // 2
    return _d_loss_grad(x[:h], fake[:h], w, b) @ _d_loss_grad(x[h:], fake[h:], w, b)


def _objective(phi, z, x, w, b, estimate):
    """(L_G, r) for linear G (weights phi) and linear D, NS losses, in float64."""
    fake = z @ phi.reshape(3, 4)
    return np.log1p(np.exp(-(fake @ w + b))).mean(), _penalty_by_hand(x, fake, w, b, estimate)


def _numeric_grad(f, phi, h=1e-6):
    grad = np.zeros_like(phi)
    for i in range(phi.size):
        e = np.zeros_like(phi)
        e.flat[i] = h
        grad.flat[i] = (f(phi + e) - f(phi - e)) / (2 * h)
    return grad


@pytest.mark.parametrize("estimate", ["unbiased", "biased"])
def test_advas_penalty_is_the_hand_computed_estimate(estimate):
    rng = np.random.default_rng(3)
    x, fake = rng.uniform(-1, 1, (6, 4)), rng.uniform(-1, 1, (6, 4))
    w, b = np.array([0.7, -0.4, 0.9, 0.3]), 0.1
    d = linear_d(w, b)
    value = advas.penalty(logits_of(d), tf_asgan.losses.minimax_discriminator_loss,
                          as_images(x), as_images(fake), d.trainable_variables, estimate)
    assert float(value) == pytest.approx(_penalty_by_hand(x, fake, w, b, estimate), rel=1e-5)


def test_the_unbiased_estimate_averages_to_the_squared_norm_and_the_biased_one_does_not():
    # Populations of reals and fakes; batches of 4 of each drawn with replacement. The
    # per-sample gradients of L_D for a linear D give the truth ||mu||^2 and the bias
    # of the one-batch estimate, trace(Cov_real + Cov_fake) / 4, in closed form.
    rng = np.random.default_rng(0)
    reals, fakes = rng.normal(0.3, 0.5, (400, 4)), rng.normal(-0.2, 0.5, (400, 4))
    w, b = np.array([0.7, -0.4, 0.9, 0.3]), 0.1
    per_real = -_sig(-(reals @ w + b))[:, None] * np.hstack([reals, np.ones((400, 1))])
    per_fake = _sig(fakes @ w + b)[:, None] * np.hstack([fakes, np.ones((400, 1))])
    mu = per_real.mean(0) + per_fake.mean(0)
    truth = mu @ mu
    bias = (np.trace(np.cov(per_real.T, bias=True)) + np.trace(np.cov(per_fake.T, bias=True))) / 4
    d = linear_d(w, b)
    estimate = tf.function(lambda x, f, kind: advas.penalty(
        logits_of(d), tf_asgan.losses.minimax_discriminator_loss, x, f,
        d.trainable_variables, kind), reduce_retracing=True)
    draws = {"unbiased": [], "biased": []}
    for _ in range(1500):
        i, j = rng.integers(0, 400, 4), rng.integers(0, 400, 4)
        x, f = as_images(reals[i]), as_images(fakes[j])
        for kind in draws:
            draws[kind].append(float(estimate(x, f, kind)))
    unbiased, biased = np.array(draws["unbiased"]), np.array(draws["biased"])
    se_u = unbiased.std() / np.sqrt(len(unbiased))
    se_b = biased.std() / np.sqrt(len(biased))
    assert abs(unbiased.mean() - truth) < 4 * se_u
    assert abs(biased.mean() - (truth + bias)) < 4 * se_b
    assert bias > 8 * max(se_u, se_b)  # the test tells the two apart
    assert unbiased.min() < 0 < truth  # an unbiased estimate of a square can be negative


@pytest.mark.parametrize("w_scale", [0.1, 2.0])
@pytest.mark.parametrize("weight,estimate", [("norm_ratio", "unbiased"),
                                             ("norm_ratio", "biased"),
                                             ("fixed", "unbiased")])
def test_advas_generator_update_matches_finite_differences(weight, estimate, w_scale):
    rng = np.random.default_rng(0)
    phi0 = rng.normal(size=(3, 4)) * 0.3
    z = rng.normal(size=(6, 3))
    x = rng.uniform(-1, 1, (6, 4))
    w, b, lam = np.array([0.7, -0.4, 0.9, 0.3]) * w_scale, 0.1, 0.8
    g = linear_g(phi0)
    d = linear_d(w, b)
    gan = ASGAN(g, d, latent_dim=3, adversarial=False,
                advas=methods.AdvAs(lam=lam, weight=weight, estimate=estimate))
    gan.compile(d_optimizer=keras.optimizers.SGD(1.0), g_optimizer=keras.optimizers.SGD(1.0))
    d_before = snapshot(d)
    tape = tf.GradientTape(watch_accessed_variables=False, persistent=True)
    with tape:
        tape.watch([v.value for v in g.trainable_variables])
        fake = g(tf.constant(z, tf.float32), training=True)
    gan.generator_update(tape, fake, as_images(x))
    applied = phi0 - g.get_weights()[0]  # SGD with lr 1: the applied gradient
    l_g, penalty = _objective(phi0.ravel(), z, x, w, b, estimate)
    logs = gan.step_logs()
    assert float(logs["advas_penalty"]) == pytest.approx(penalty, rel=1e-4)
    grad_lg = _numeric_grad(lambda p: _objective(p, z, x, w, b, estimate)[0], phi0.ravel())
    grad_p = _numeric_grad(lambda p: _objective(p, z, x, w, b, estimate)[1], phi0.ravel())
    ratio = np.linalg.norm(grad_lg) / np.linalg.norm(grad_p)
    # Both regimes of min(1, ratio) occur over the w scales: capped and not.
    assert (ratio > 1) == (w_scale == 2.0), ratio
    effective = lam if weight == "fixed" else lam * min(1.0, ratio)
    assert float(logs["advas_lambda"]) == pytest.approx(effective, rel=1e-3)
    np.testing.assert_allclose(applied.ravel(), grad_lg + effective * grad_p, rtol=2e-3,
                               atol=1e-6)
    assert not changed(d_before, d)  # the G update leaves D alone
    assert float(logs["g_loss"]) == pytest.approx(l_g, rel=1e-5)


def test_norm_ratio_weight_by_hand():
    g = [tf.constant([3.0, 0.0]), tf.constant([[4.0]])]  # norm 5
    assert float(advas.norm_ratio_weight(g, [tf.constant([0.0, 10.0]), tf.zeros((1, 1))])) \
        == pytest.approx(0.5)
    assert float(advas.norm_ratio_weight(g, [tf.constant([1.0, 0.0]), tf.zeros((1, 1))])) == 1
    assert float(advas.norm_ratio_weight(g, [tf.zeros(2), tf.zeros((1, 1))], 0.3)) \
        == pytest.approx(0.3)


def test_the_unbiased_estimate_refuses_a_batch_of_one():
    d = linear_d(W)
    with pytest.raises(ValueError, match="at least 2 samples"):
        advas.penalty(logits_of(d), tf_asgan.losses.minimax_discriminator_loss,
                      as_images(X[:1]), as_images(FAKE[:1]), d.trainable_variables)


# -- wiring, combinations ------------------------------------------------------------------


def test_dat_and_advas_change_only_their_network_in_each_sub_step():
    g, d = deterministic_pair()
    gan = ASGAN(g, d, latent_dim=LATENT, adversarial=True, dat=methods.DAT(side="fake"),
                advas=methods.AdvAs())
    gan.compile()
    x = tf.constant(images(4, res=8))
    tape = tf.GradientTape(watch_accessed_variables=False, persistent=True)
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
    (dict(advas={"weight": "auto"}), "Unknown AdvAs weight"),
    (dict(advas={"weight": "relative"}), "was removed"),
    (dict(advas={"estimate": "exact"}), "Unknown AdvAs estimate"),
    (dict(advas={"scale": "fixed"}), "Unknown AdvAs option"),
    (dict(dat="authors"), "dat must be None, a dict or a tf_asgan.methods.DAT"),
])
def test_rejected_combinations_and_values(kwargs, message):
    g, d = deterministic_pair()
    kwargs = dict({"adversarial": False}, **kwargs)
    with pytest.raises(ValueError, match=message):
        ASGAN(g, d, latent_dim=LATENT, **kwargs)


def test_dat_pgd_epsilon_ceiling_is_the_library_s():
    top = schedules.MAX_EPSILON
    assert methods.DAT(variant="pgd", epsilon=top).validate().epsilon == top
    with pytest.raises(errors.InputError, match=f"\\(0, {top:g}\\]"):
        methods.DAT(variant="pgd", epsilon=float(np.nextafter(top, 3.0))).validate()


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
    "advas": dict(adversarial=False, advas=methods.AdvAs()),
    "advas_fixed_biased": dict(adversarial=False, advas=methods.AdvAs(
        lam=0.1, weight="fixed", estimate="biased")),
    "as_advas": dict(adversarial=True, advas=methods.AdvAs()),
    "as_dat_fake": dict(adversarial=True, dat=methods.DAT(side="fake")),
}


@pytest.mark.slow
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
        assert "D_dat_fake" in logs and logs["dat_linf_fake"] > 0
    if "advas" in method:
        assert np.isfinite(logs["advas_penalty"]) and logs["advas_penalty"] != 0
        if "fixed" in method:
            assert logs["advas_lambda"] == pytest.approx(0.1)
        else:
            assert 0 < logs["advas_lambda"] <= 1
    if method.startswith("as_"):
        assert "D_adv" in logs


@pytest.mark.slow
def test_fit_with_batch_norm_networks():
    g, d = tiny_dcgan()
    gan = ASGAN(g, d, latent_dim=LATENT, adversarial=True, dat=methods.DAT(side="fake"),
                advas=methods.AdvAs())
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
    fake_dat = dat_examples(gan, x, fake).fake
    moved = np.abs(fake_dat.numpy() - fake.numpy()).max()
    assert moved == pytest.approx(0.1 if moves else 0.0, abs=1e-6)
