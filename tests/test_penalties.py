"""Gradient penalties (tf_asgan.regularizers.penalties): WGAN-GP and R1 against their
closed forms, lazy scaling, the alpha draws; then their wiring into ASGAN's D updates
(checked step by step against NumPy), the configuration, and one fit step each."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import layers

from helpers import LATENT, changed, deterministic_pair, images, small_config, snapshot, tiny_dcgan
from tf_asgan import ASGAN, errors, randomness
from tf_asgan.config.train_config import TrainConfig
from tf_asgan.regularizers import GradientPenalty, penalties
from tf_asgan.training import builder

RNG = np.random.default_rng(7)
X = RNG.uniform(-1, 1, (4, 2, 2, 1)).astype(np.float32)  # four 2x2 one-channel "images"
FAKE = RNG.uniform(-1, 1, (4, 2, 2, 1)).astype(np.float32)
W = np.array([0.5, -1.0, 2.0, 0.25])  # ||W|| = 2.305
WG = RNG.normal(0, 0.3, (3, 4))  # the linear G's weights, latent 3 -> 4 pixels
LR = 0.1
SEED = 11


def flat(a):
    return np.asarray(a, np.float64).reshape(len(a), -1)


def linear_logits(w, b=0.0):
    """``d(x) = w . x + b`` as a logits function."""
    w = tf.constant(np.asarray(w, np.float32).reshape(-1, 1))
    return lambda x: tf.reshape(tf.matmul(tf.reshape(x, [tf.shape(x)[0], -1]), w), [-1]) + b


# ---- the math -------------------------------------------------------------------------------

@pytest.mark.parametrize("scale", [0.3, 1.0, 2.5])
def test_wgan_gp_on_a_linear_critic_is_lambda_times_norm_minus_one_squared_for_any_alpha(scale):
    w = W / np.linalg.norm(W) * scale  # ||w|| = scale
    for alpha in (np.zeros(4), np.ones(4), np.array([0.1, 0.5, 0.9, 0.33]), 0.7):
        got = penalties.wgan_gp(linear_logits(w, 0.3), X, FAKE, alpha, weight=10.0).numpy()
        np.testing.assert_allclose(got, np.full(4, 10.0 * (scale - 1.0) ** 2), rtol=1e-5,
                                   atol=1e-6)


def test_wgan_gp_with_fixed_alpha_on_a_nonlinear_critic_matches_numpy():
    hidden = RNG.normal(0, 1, (4, 5))
    v, c = RNG.normal(0, 1, 5), RNG.normal(0, 0.1, 5)

    def critic(x):  # d(x) = v . tanh(H^T x + c)
        h = tf.tanh(tf.matmul(tf.reshape(x, [tf.shape(x)[0], -1]),
                              tf.constant(hidden, tf.float32)) + tf.constant(c, tf.float32))
        return tf.reduce_sum(h * tf.constant(v, tf.float32), axis=1)

    for alpha in (0.3, np.array([0.0, 0.25, 0.8, 1.0])):
        a = np.reshape(alpha, (-1, 1))
        x_hat = a * flat(X) + (1 - a) * flat(FAKE)
        t = np.tanh(x_hat @ hidden + c)
        grads = ((1 - t ** 2) * v) @ hidden.T  # grad_x d at each x_hat, [4, 4]
        expected = 7.0 * (np.linalg.norm(grads, axis=1) - 1.0) ** 2
        got = penalties.wgan_gp(critic, X, FAKE, alpha, weight=7.0).numpy()
        np.testing.assert_allclose(got, expected, rtol=1e-5)
        np.testing.assert_allclose(penalties.interpolates(X, FAKE, alpha).numpy().reshape(4, 4),
                                   x_hat, rtol=1e-6, atol=1e-7)


def test_r1_on_a_linear_critic_is_half_gamma_times_the_squared_norm():
    got = penalties.r1(linear_logits(W, -0.4), X, gamma=3.0).numpy()
    np.testing.assert_allclose(got, np.full(4, 1.5 * np.sum(W ** 2)), rtol=1e-6)


def test_r1_on_a_quadratic_critic_matches_the_closed_form():
    m = RNG.normal(0, 1, (4, 4))
    a = (m + m.T) / 2  # d(x) = x^T A x / 2 + w . x, grad = A x + w

    def critic(x):
        f = tf.reshape(x, [tf.shape(x)[0], -1])
        quad = 0.5 * tf.reduce_sum(f * tf.matmul(f, tf.constant(a, tf.float32)), axis=1)
        return quad + tf.reduce_sum(f * tf.constant(W, tf.float32), axis=1)

    expected = 5.0 * np.sum((flat(X) @ a + W) ** 2, axis=1)  # gamma / 2 = 5
    np.testing.assert_allclose(penalties.r1(critic, X, gamma=10.0).numpy(), expected, rtol=1e-5)


@pytest.mark.parametrize("kind", ["wgan_gp", "r1"])
def test_the_weight_gradient_of_the_penalty_is_the_closed_form(kind):
    """Double back-propagation: d penalty / d w of a linear critic, by hand."""
    w = tf.Variable(np.asarray(W, np.float32).reshape(-1, 1))
    critic = lambda x: tf.reshape(tf.matmul(tf.reshape(x, [4, -1]), w), [-1])  # noqa: E731
    with tf.GradientTape() as tape:
        value = GradientPenalty(kind).mean(critic, X, FAKE, seed=[1, 2])
    norm = np.linalg.norm(W)
    expected = 2 * 10.0 * (norm - 1) * W / norm if kind == "wgan_gp" else 10.0 * W
    np.testing.assert_allclose(tape.gradient(value, w).numpy().ravel(), expected, rtol=1e-5)


def test_lazy_term_computes_every_kth_update_and_scales_it_by_k():
    calls = []

    def penalty():
        calls.append(1)
        return tf.constant(2.5)

    for update in range(6):
        term, value, due = penalties.lazy_term(penalty, tf.constant(update, tf.int64), 3)
        expected_due = update % 3 == 0
        assert float(due) == float(expected_due)
        assert float(value) == (2.5 if expected_due else 0.0)
        assert float(term) == (7.5 if expected_due else 0.0)
    assert len(calls) == 2  # eagerly, the penalty is computed only when due
    term, value, due = penalties.lazy_term(penalty, 5, 1)
    assert (float(term), float(value), float(due)) == (2.5, 2.5, 1.0)


def test_alpha_is_per_sample_uniform_and_a_function_of_the_step_seed():
    def alpha(step, update=0, seed=SEED):
        key = randomness.step_key(seed, tf.constant(step, tf.int64))
        return penalties.draw_alpha(64, randomness.draw_seed(key, "gp_alpha", update)).numpy()

    a = alpha(0)
    assert a.shape == (64,) and a.min() >= 0.0 and a.max() < 1.0
    assert len(np.unique(a)) == 64  # one per sample
    assert 0.3 < a.mean() < 0.7  # U[0, 1): mean 1/2, sd 0.036 for 64 draws
    np.testing.assert_array_equal(a, alpha(0))  # reproducible from the step's seed
    assert not np.array_equal(a, alpha(1)) and not np.array_equal(a, alpha(0, update=1))
    assert not np.array_equal(a, alpha(0, seed=SEED + 1))
    # the earlier purposes keep their values, so no existing run's draws change
    assert randomness.PURPOSES["latent"] == 1 and randomness.PURPOSES["perturbation"] == 2


@pytest.mark.parametrize("value, message", [
    ("wgan", "Unknown gradient penalty"), ({"kind": "r1", "weight": 0.0}, "must be > 0"),
    ({"kind": "r1", "every": 0}, "integer >= 1"), ({"kind": "r1", "gama": 1}, "Unknown gradient"),
    (3, "gradient_penalty must be")])
def test_bad_penalty_options_are_refused(value, message):
    with pytest.raises(errors.InputError, match=message):
        penalties.as_penalty(value)


def test_penalty_options_and_paper_defaults():
    assert penalties.as_penalty(None) is None and penalties.as_penalty("none") is None
    assert penalties.as_penalty("wgan_gp").resolved_weight == 10.0
    assert penalties.as_penalty({"kind": "r1", "weight": 0.5}).resolved_weight == 0.5


# ---- the wiring into ASGAN ------------------------------------------------------------------

def linear_d(w, b=0.0):
    x = keras.Input((2, 2, 1))
    dense = layers.Dense(1)
    model = keras.Model(x, dense(layers.Flatten()(x)))
    dense.set_weights([np.asarray(w, np.float32).reshape(-1, 1), np.array([b], np.float32)])
    return model


def linear_g(weights):
    z = keras.Input((3,))
    dense = layers.Dense(4, use_bias=False)
    model = keras.Model(z, layers.Reshape((2, 2, 1))(dense(z)))
    dense.set_weights([np.asarray(weights, np.float32)])
    return model


def linear_gan(penalty, adversarial=False, d_optimizer=None, **kwargs):
    """A linear G and critic with the Wasserstein loss, trained by SGD: the loss's weight
    gradient, ``mean(fakes) - mean(reals)``, does not depend on the critic's weights, so
    every update can be written down by hand."""
    gan = ASGAN(linear_g(WG), linear_d(W, 0.1), latent_dim=3, loss="wasserstein",
                perturbation="none", adversarial=adversarial, gradient_penalty=penalty,
                seed=SEED, **kwargs)
    gan.compile(d_optimizer=d_optimizer or keras.optimizers.SGD(LR),
                g_optimizer=keras.optimizers.SGD(LR))
    return gan


def penalty_and_gradient(kind, w, weight=10.0):
    """The penalty of a linear critic and its gradient with respect to ``w``."""
    norm = np.linalg.norm(w)
    if kind == "wgan_gp":
        return weight * (norm - 1) ** 2, 2 * weight * (norm - 1) * w / norm
    return weight / 2 * norm ** 2, weight * w


def step_latents(step):
    key = randomness.step_key(SEED, tf.constant(step, tf.int64))
    return randomness.normal((4, 3), seed=randomness.draw_seed(key, "latent", 0)).numpy()


@pytest.mark.parametrize("kind", ["wgan_gp", "r1"])
@pytest.mark.parametrize("adversarial", [False, True])
def test_each_d_update_adds_the_penalty_gradient_and_g_is_unchanged_by_it(kind, adversarial):
    gan = linear_gan(kind, adversarial)
    logs = gan.train_step(tf.constant(X))
    z = step_latents(0)
    fakes = z @ WG
    loss_grad = fakes.mean(0) - flat(X).mean(0)  # d/dw (mean d(fake) - mean d(x))
    w, values = W.copy(), []
    for _ in range(2 if adversarial else 1):  # step 3 with x_hat = x: the same loss gradient
        value, grad = penalty_and_gradient(kind, w)
        values.append(value)
        w = w - LR * (loss_grad + grad)
    kernel, bias = gan.discriminator.get_weights()
    np.testing.assert_allclose(kernel.ravel(), w, rtol=1e-5, atol=1e-6)
    assert bias[0] == pytest.approx(0.1)  # no term depends on b
    assert float(logs["gp"]) == pytest.approx(np.mean(values), rel=1e-5)
    # G's update is L_G = -mean d(G(z)) through the updated critic, nothing more
    g_grad = -z.mean(0)[:, None] * w[None, :]
    np.testing.assert_allclose(gan.generator.get_weights()[0], WG - LR * g_grad, rtol=1e-5,
                               atol=1e-6)


def test_lazy_penalty_is_scaled_by_k_and_counts_every_d_update():
    gan = linear_gan(GradientPenalty("wgan_gp", every=2), adversarial=True)
    logs = gan.train_step(tf.constant(X))  # D updates 0 (penalised, x2) and 1 (not)
    loss_grad = (step_latents(0) @ WG).mean(0) - flat(X).mean(0)
    value, grad = penalty_and_gradient("wgan_gp", W)
    w = W - LR * (loss_grad + 2 * grad)
    w = w - LR * loss_grad
    np.testing.assert_allclose(gan.discriminator.get_weights()[0].ravel(), w, rtol=1e-5)
    assert float(logs["gp"]) == pytest.approx(value, rel=1e-5)  # the unscaled penalty
    # one update per step: step 1 is D update 1, which has no penalty
    gan = linear_gan(GradientPenalty("r1", every=2))
    gan.step_counter.assign(1)
    gan.train_step(tf.constant(X))
    loss_grad = (step_latents(1) @ WG).mean(0) - flat(X).mean(0)
    np.testing.assert_allclose(gan.discriminator.get_weights()[0].ravel(), W - LR * loss_grad,
                               rtol=1e-5)


def test_advas_composes_and_its_r_leaves_the_penalty_out():
    """AdvAs's r is ||grad_phi L_adv||^2 of the game's loss, not of D's regularised loss
    (the presentation: grad_phi L_adv = -grad_phi h): with a linear Wasserstein critic its
    unbiased estimate is X . X', X = mean(f) - mean(x) over each half of the batch."""
    gan = linear_gan("wgan_gp", advas={"lam": 1.0})
    logs = gan.train_step(tf.constant(X))
    fakes, reals = step_latents(0) @ WG, flat(X)
    halves = [fakes[i:i + 2].mean(0) - reals[i:i + 2].mean(0) for i in (0, 2)]
    assert float(logs["advas_penalty"]) == pytest.approx(halves[0] @ halves[1], rel=1e-5)
    value, grad = penalty_and_gradient("wgan_gp", W)
    np.testing.assert_allclose(gan.discriminator.get_weights()[0].ravel(),
                               W - LR * (fakes.mean(0) - reals.mean(0) + grad), rtol=1e-5)
    assert float(logs["gp"]) == pytest.approx(value, rel=1e-5)


@pytest.mark.slow
def test_two_replicas_apply_the_penalty_once(mirrored):
    """Each replica adds its own batch's mean penalty divided by the replicas (like L_D):
    the summed update is the single-device one, not twice the penalty's gradient."""
    with mirrored.scope():
        gan = ASGAN(linear_g(np.zeros((3, 4))), linear_d(W, 0.1), latent_dim=3,
                    loss="wasserstein", adversarial=False, seed=SEED,
                    gradient_penalty={"kind": "r1", "weight": 1.0})
        gan.compile(d_optimizer=keras.optimizers.SGD(LR), g_optimizer=keras.optimizers.SGD(LR))
    history = gan.fit(X, batch_size=4, epochs=1, shuffle=False, verbose=0)
    value, grad = penalty_and_gradient("r1", W, weight=1.0)  # fakes are 0: loss grad -mean x
    np.testing.assert_allclose(gan.discriminator.get_weights()[0].ravel(),
                               W - LR * (-flat(X).mean(0) + grad), rtol=1e-5)
    assert history.history["gp"][-1] == pytest.approx(value, rel=1e-5)


class Recorder:
    """Wraps ``gan.discriminator_logits`` to record every image batch D sees, in order (eager)."""

    def __init__(self, gan):
        self.inputs, self._inner = [], gan.discriminator_logits
        gan.discriminator_logits = self

    def __call__(self, x, training=True):
        self.inputs.append(np.array(x))
        return self._inner(x, training)


def test_the_penalty_is_taken_on_the_clean_batches_with_dat_and_as_gan():
    """DAT attacks both batches and AS-GAN (FGSM) the reals: the penalty's D pass (the
    last of each update) still sees the clean reals and fakes, with the step's alphas."""
    gan = ASGAN(linear_g(WG), linear_d(W, 0.1), latent_dim=3, loss="wasserstein",
                perturbation="fgsm", epsilon=0.1, dat={"side": "fake"},
                gradient_penalty="wgan_gp", seed=SEED)
    gan.compile(d_optimizer=keras.optimizers.SGD(LR), g_optimizer=keras.optimizers.SGD(LR))
    rec = Recorder(gan)
    x, fake = tf.constant(X), tf.constant(FAKE)
    grad, d_fake = gan.discriminator_update(x, fake, index=0)
    assert not np.allclose(d_fake.numpy(), FAKE)  # DAT did attack the fakes
    key = randomness.step_key(SEED, tf.constant(0, tf.int64))

    def interpolation(update):
        a = penalties.draw_alpha(4, randomness.draw_seed(key, "gp_alpha", update)).numpy()
        return a[:, None, None, None] * X + (1 - a[:, None, None, None]) * FAKE

    np.testing.assert_allclose(rec.inputs[-1], interpolation(0), rtol=1e-6)
    x_hat = gan.perturb(x, grad, 0.1)
    gan.adversarial_update(x_hat, d_fake, clean=(x, fake), index=0)
    np.testing.assert_allclose(rec.inputs[-1], interpolation(1), rtol=1e-6)
    with pytest.raises(errors.InputError, match="clean="):
        gan.adversarial_update(x_hat, d_fake)


def test_a_penalty_is_refused_with_batch_norm_in_d():
    g, d = tiny_dcgan(batch_norm=True)
    with pytest.raises(errors.InputError, match="nobn_d"):
        ASGAN(g, d, latent_dim=LATENT, gradient_penalty="r1")


def test_the_penalty_under_mixed_float16_is_loss_scaled_back_to_its_gradient():
    # A small initial scale, so that this step is applied: Keras's 2^15 overflows float16
    # on the penalty's weight gradient (10 * w * 2^15), and dynamic loss scaling skips
    # such steps, halving the scale, until it fits (as for any float16 loss).
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        gan = linear_gan("r1", d_optimizer=keras.optimizers.LossScaleOptimizer(
            keras.optimizers.SGD(LR), initial_scale=2.0 ** 6))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert gan.discriminator.layers[-1].compute_dtype == "float16"
    logs = gan.train_step(tf.constant(X))
    loss_grad = (step_latents(0) @ WG).mean(0) - flat(X).mean(0)
    value, grad = penalty_and_gradient("r1", W)
    # float16 compute: about 3 significant digits
    assert float(logs["gp"]) == pytest.approx(value, rel=2e-3)
    np.testing.assert_allclose(gan.discriminator.get_weights()[0].ravel(),
                               W - LR * (loss_grad + grad), rtol=5e-3, atol=5e-3)


# ---- configuration and fit ------------------------------------------------------------------

def test_config_fields_reach_the_model_and_old_configs_mean_off():
    config = small_config(gradient_penalty="r1", gp_weight=0.5, gp_every=4,
                          bn_d=False).validate()
    kwargs = builder.asgan_kwargs(config.model, config.method, config.siblings, config.optim)
    assert kwargs["gradient_penalty"] == GradientPenalty("r1", 0.5, 4)
    zero = small_config(gradient_penalty="wgan_gp", bn_d=False).method.gradient_penalty_object()
    assert zero.resolved_weight == 10.0  # --gp_weight=0: the paper's lambda
    old = small_config().to_dict()
    for name in ("gradient_penalty", "gp_weight", "gp_every"):
        del old[name]
    assert TrainConfig.from_dict(old).method.gradient_penalty_object() is None
    with pytest.raises(errors.InputError, match="gp_weight"):
        small_config(gradient_penalty="r1", gp_weight=-1.0, bn_d=False).validate()
    with pytest.raises(errors.InputError):
        small_config(gradient_penalty="r1", gp_every=0, bn_d=False).validate()
    with pytest.raises(errors.InputError, match="nobn_d"):  # before any data is read
        small_config(gradient_penalty="r1").validate()


@pytest.mark.parametrize("penalty, adversarial, dat", [
    ("wgan_gp", False, None), ("wgan_gp", True, None), ("r1", False, None),
    (GradientPenalty("r1", every=2), True, None), ("wgan_gp", False, {"side": "both"})])
def test_one_fit_step_with_each_penalty(penalty, adversarial, dat):
    g, d = deterministic_pair(8)
    gan = ASGAN(g, d, latent_dim=LATENT, adversarial=adversarial, dat=dat,
                gradient_penalty=penalty, seed=SEED)
    gan.compile()
    before = snapshot(gan.discriminator)
    history = gan.fit(images(4, res=8), batch_size=4, epochs=1, verbose=0)
    gp = history.history["gp"][-1]
    assert np.isfinite(gp) and gp > 0
    assert changed(before, gan.discriminator)
