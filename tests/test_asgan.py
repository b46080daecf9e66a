"""The AS-GAN model: Algorithm 1's math, its wiring, and fit smoke tests."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_asgan
from helpers import LATENT, changed, deterministic_pair, images, snapshot, tiny_dcgan
from tf_asgan import errors, losses, perturbations, schedules
from tf_asgan.analysis import attacks

EPS = 0.05


def make_gan(batch_norm=True, **kwargs):
    g, d = tiny_dcgan(batch_norm)
    gan = tf_asgan.ASGAN(g, d, latent_dim=LATENT, **kwargs)
    gan.compile()
    return gan


class Recorder:
    """Wraps ``gan.discriminator_logits`` to record every image batch D sees, in order (eager)."""

    def __init__(self, gan):
        self.inputs = []
        self._inner = gan.discriminator_logits
        gan.discriminator_logits = self

    def __call__(self, x, training=True):
        self.inputs.append(np.array(x))
        return self._inner(x, training)


# ---- the input gradient and the perturbation -------------------------------------------

def test_input_gradient_is_taken_at_the_pre_update_discriminator():
    gan = make_gan(epsilon=EPS)
    x = tf.constant(images(4))
    fake = gan.generate(4, training=True)
    clone = keras.models.clone_model(gan.discriminator)
    clone.set_weights(gan.discriminator.get_weights())
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = losses.get("non_saturating").discriminator(
            tf.reshape(clone(x, training=True), [-1]),
            tf.reshape(clone(fake, training=True), [-1]))
    expected = tape.gradient(loss, x)
    before = snapshot(gan.discriminator)
    grad, _ = gan.discriminator_update(x, fake)
    assert changed(before, gan.discriminator)
    np.testing.assert_allclose(grad, expected, rtol=1e-4, atol=1e-9)
    assert float(tf.reduce_max(tf.abs(grad))) > 0


def test_train_step_uses_fgsm_of_that_gradient_and_reuses_the_fake_batch():
    gan = make_gan(epsilon=EPS)
    x = tf.constant(images(4))
    rec = Recorder(gan)
    # grad_x at the pre-step D, computed independently on a clone.
    clone = keras.models.clone_model(gan.discriminator)
    clone.set_weights(gan.discriminator.get_weights())
    gan.train_step(x)
    x_seen, fake1, x_hat, fake3, fake4 = rec.inputs  # steps 1, 1, 3, 3, 4
    np.testing.assert_array_equal(x_seen, x)
    np.testing.assert_array_equal(fake3, fake1)  # step 3 uses step 1's fake batch
    np.testing.assert_array_equal(fake4, fake1)  # G update through the same batch
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = losses.get("non_saturating").discriminator(
            tf.reshape(clone(x, training=True), [-1]),
            tf.reshape(clone(tf.constant(fake1), training=True), [-1]))
    grad = tape.gradient(loss, x).numpy()
    np.testing.assert_allclose(x_hat, np.clip(x + EPS * np.sign(grad), -1, 1), atol=1e-6)
    assert np.abs(x_hat - x.numpy()).max() == pytest.approx(EPS, rel=1e-5)


def test_real_only_second_update_skips_the_fake_term():
    gan = make_gan(epsilon=EPS, second_update="real_only")
    rec = Recorder(gan)
    gan.train_step(tf.constant(images(4)))
    assert len(rec.inputs) == 4  # x, fake (step 1); x_hat (step 3); fake (step 4)
    assert np.abs(rec.inputs[2] - rec.inputs[0]).max() == pytest.approx(EPS, rel=1e-5)


@pytest.mark.parametrize("compiled", [True, False])
def test_step_two_is_fgsm_on_a_linear_discriminator(rng, compiled):
    w = rng.normal(size=(8, 8, 3)).astype("float32")
    g, _ = deterministic_pair(8)
    x_in = keras.Input((8, 8, 3))
    dense = keras.layers.Dense(1, use_bias=False)
    d = keras.Model(x_in, dense(keras.layers.Flatten()(x_in)))
    dense.kernel.assign(w.reshape(-1, 1))
    gan = tf_asgan.ASGAN(g, d, latent_dim=LATENT, epsilon=EPS)
    if compiled:
        gan.compile()
    # before compile: step 0 (no optimizer yet), the same values
    assert gan.completed_steps() == 0 and float(gan.current_epsilon()) == pytest.approx(EPS)
    x = tf.constant(images(5, res=8) * 0.5)
    # the train step's step 2, given grad_x of the real term of L_D at the current D
    real_loss = lambda t: gan.gan_loss.real_term(tf.reshape(d(t), [-1]))  # noqa: E731
    grad = perturbations.input_gradient(real_loss, x)
    x_hat = gan.perturb(x, grad, gan.current_epsilon())
    np.testing.assert_allclose(x_hat, x - EPS * np.sign(w), atol=1e-6)
    # and the one attack entry point outside the train step agrees
    np.testing.assert_allclose(perturbations.attack(gan.perturbation, x, real_loss,
                                                    epsilon=gan.current_epsilon()),
                               x_hat, atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("jit_compile", [False, True])
@pytest.mark.parametrize("scale", [255.0, 1.02])
def test_images_outside_minus_one_one_are_refused(scale, jit_compile):
    g, d = tiny_dcgan(False)
    gan = tf_asgan.ASGAN(g, d, latent_dim=LATENT)
    gan.compile(jit_compile=jit_compile)  # XLA compiles in-graph asserts away
    x = (images(8) + 1) / 2 * scale  # [0, 255] (uint8 not rescaled), or a bit beyond 1
    g0 = snapshot(g)
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"(?s)images in \[-1, 1\].*x / 127.5 - 1"):  # with the remedy
        gan.fit(tf.data.Dataset.from_tensors((x, np.zeros(8))), epochs=1, verbose=0)
    with pytest.raises(ValueError, match=rf"these span \[{x.min():g}, {x.max():g}\]"):
        gan.fit(x, epochs=1, verbose=0, batch_size=8)
    assert not changed(g0, g)  # refused before any step


def test_an_attack_on_the_model_s_d_leaves_its_batch_norm_statistics_alone():
    # The analyses attack D in inference mode: its moving statistics stay as trained.
    gan = make_gan(epsilon=EPS)
    before = [v.numpy().copy() for v in gan.discriminator.non_trainable_variables]
    x_hat = attacks.attack(gan.discriminator, images(4), EPS)
    after = [v.numpy() for v in gan.discriminator.non_trainable_variables]
    assert all(np.array_equal(a, b) for a, b in zip(before, after))
    assert np.abs(x_hat - images(4)).max() == pytest.approx(EPS, rel=1e-5)


@pytest.mark.parametrize("kwargs,bad", [
    (dict(perturbation="pgd", perturbation_kwargs={"stepz": 3}), "stepz"),
    (dict(perturbation="fgsm", perturbation_kwargs={"steps": 3}), "steps"),
    # the baseline still names a perturbation: its options are checked all the same
    (dict(perturbation="pgd", adversarial=False, perturbation_kwargs={"stepz": 3}), "stepz"),
])
def test_a_misspelt_perturbation_option_is_refused_at_construction(kwargs, bad):
    g, d = tiny_dcgan(False)
    name = kwargs["perturbation"]
    valid = ", ".join(perturbations.get(name).options)
    with pytest.raises(errors.InputError, match=f"\\['{bad}'\\] for perturbation "
                                                f"'{name}'; its options are: {valid}"):
        tf_asgan.ASGAN(g, d, latent_dim=LATENT, **kwargs)


def test_valid_perturbation_options_are_kept():
    g, d = tiny_dcgan(False)
    options = {"steps": 2, "step_size": 0.01, "random_start": True, "clip_range": (-1, 1)}
    gan = tf_asgan.ASGAN(g, d, latent_dim=LATENT, perturbation="pgd",
                         perturbation_kwargs=options)
    assert gan.perturbation_kwargs == options


def test_the_model_epsilon_ceiling_is_the_whole_input_range():
    g, d = tiny_dcgan(False)
    assert schedules.MAX_EPSILON == 2.0
    for epsilon, unit in ((2.0, "input"), (1.0, "pixel")):  # both 2.0 in input units
        gan = tf_asgan.ASGAN(g, d, latent_dim=LATENT, epsilon=epsilon, epsilon_unit=unit)
        assert float(gan.current_epsilon()) == pytest.approx(2.0)
    for epsilon, unit in ((np.nextafter(2.0, 3.0), "input"), (1.0 + 1e-6, "pixel")):
        with pytest.raises(errors.InputError, match="must lie in \\[0, 2\\] in input units"):
            tf_asgan.ASGAN(g, d, latent_dim=LATENT, epsilon=epsilon, epsilon_unit=unit)


# ---- wiring: which weights change in which sub-step ---------------------------------------

def test_sub_steps_change_the_right_network():
    gan = make_gan(epsilon=EPS)
    x = tf.constant(images(4))
    g_before, d_before = snapshot(gan.generator), snapshot(gan.discriminator)
    g_tape = tf.GradientTape(watch_accessed_variables=False)
    with g_tape:
        g_tape.watch([v.value for v in gan.generator.trainable_variables])
        fake = gan.generator(gan.sample_latent(4), training=True)
    g_after_forward = snapshot(gan.generator)  # BN statistics of G may move here

    grad, _ = gan.discriminator_update(x, fake)  # step 1
    assert changed(d_before, gan.discriminator)
    assert not changed(g_after_forward, gan.generator)

    d1 = snapshot(gan.discriminator)
    x_hat = gan.perturb(x, grad, tf.constant(EPS))  # step 2: no weights change
    assert not changed(d1, gan.discriminator)
    gan.adversarial_update(x_hat, fake)  # step 3
    assert changed(d1, gan.discriminator)
    assert not changed(g_after_forward, gan.generator)

    d3 = snapshot(gan.discriminator)
    gan.generator_update(g_tape, fake)  # step 4
    assert changed(g_before, gan.generator)
    trainable = [v.numpy() for v in gan.discriminator.trainable_variables]
    d3_trainable = [d3[i] for i, v in enumerate(gan.discriminator.weights)
                    if v.trainable]
    assert all(np.array_equal(a, b) for a, b in zip(trainable, d3_trainable))


@pytest.mark.parametrize("adversarial,d_steps,expected_d", [
    (True, 1, 2), (False, 1, 1), (True, 2, 4), (False, 3, 3)])
def test_update_counts(adversarial, d_steps, expected_d):
    gan = make_gan(adversarial=adversarial, d_steps=d_steps)
    logs = gan.train_step(tf.constant(images(2 * d_steps)))
    assert int(gan.d_optimizer.iterations) == expected_d
    assert int(gan.g_optimizer.iterations) == 1
    assert ("D_adv" in logs) == adversarial and ("epsilon" in logs) == adversarial


def test_baseline_changes_discriminator_once_and_never_perturbs():
    gan = make_gan(perturbation=None)
    assert not gan.adversarial
    rec = Recorder(gan)
    gan.train_step(tf.constant(images(4)))
    assert len(rec.inputs) == 3  # x, fake, fake (G step)


def test_d_steps_needs_a_divisible_batch():
    gan = make_gan(d_steps=3)
    with pytest.raises((ValueError, tf.errors.InvalidArgumentError)):
        gan.train_step(tf.constant(images(4)))


# ---- the logged quantities -----------------------------------------------------------------

def test_logs_match_direct_computation():
    g, d = deterministic_pair(8)
    gan = tf_asgan.ASGAN(g, d, latent_dim=LATENT, epsilon=EPS)
    gan.compile(d_optimizer=keras.optimizers.SGD(0.0), g_optimizer=keras.optimizers.SGD(0.0))
    x = tf.constant(images(6, res=8))
    fake = g(tf.zeros((6, LATENT)))
    real_logits = tf.reshape(d(x), [-1])
    fake_logits = tf.reshape(d(fake), [-1])
    with tf.GradientTape() as tape:
        tape.watch(x)
        per_sample = tf.nn.softplus(-tf.reshape(d(x), [-1]))
    per_sample_grads = tape.gradient(per_sample, x)  # row i: d l(x_i) / d x_i
    x_hat = np.clip(x + EPS * np.sign(per_sample_grads), -1, 1)  # ascend L_D
    logs = gan.train_step(x)  # learning rate 0: every quantity is at the same D
    expected = {
        "D_real": tf.reduce_mean(tf.sigmoid(real_logits)),
        "D_fake": tf.reduce_mean(tf.sigmoid(fake_logits)),
        "D_adv": tf.reduce_mean(tf.sigmoid(tf.reshape(d(x_hat), [-1]))),
        "d_loss": tf.reduce_mean(tf.nn.softplus(-real_logits))
        + tf.reduce_mean(tf.nn.softplus(fake_logits)),
        "g_loss": tf.reduce_mean(tf.nn.softplus(-fake_logits)),
        "grad_l1": tf.reduce_mean(tf.reduce_sum(tf.abs(per_sample_grads), axis=[1, 2, 3])),
        "epsilon": EPS,
    }
    for key, value in expected.items():
        np.testing.assert_allclose(float(logs[key]), float(value), rtol=1e-5, err_msg=key)
    assert float(logs["D_adv"]) < float(logs["D_real"])  # the attack lowers D(x)


def test_epsilon_schedule_and_pixel_units():
    gan = make_gan(epsilon=schedules.Delayed(2.0 / 255, start_step=2), epsilon_unit="pixel")
    assert float(gan.current_epsilon()) == 0.0
    rec = Recorder(gan)
    gan.train_step(tf.constant(images(4)))
    np.testing.assert_array_equal(rec.inputs[2], rec.inputs[0])  # eps = 0: x_hat = x
    gan.train_step(tf.constant(images(4)))
    np.testing.assert_allclose(float(gan.current_epsilon()), 4.0 / 255, rtol=1e-6)


# ---- input validation ----------------------------------------------------------------------

@pytest.mark.parametrize("kwargs,match", [
    ({"loss": "lsgan"}, "non_saturating"),
    ({"perturbation": "cw"}, "fgsm"),
    ({"second_update": "fake_only"}, "real_only"),
    ({"epsilon": -1.0}, ">= 0"),
    ({"epsilon": 3.0}, "beyond the whole"),
    ({"epsilon": 1.5, "epsilon_unit": "pixel"}, "beyond the whole"),
    ({"epsilon_unit": "grey"}, "input"),
    ({"d_steps": 0}, "d_steps"),
    ({"latent_dim": 100}, "latent_dim=8"),
])
def test_bad_arguments(kwargs, match):
    g, d = tiny_dcgan()
    kwargs.setdefault("latent_dim", LATENT)
    with pytest.raises(ValueError, match=match):
        tf_asgan.ASGAN(g, d, **kwargs)


def test_mismatched_resolutions():
    g, _ = tiny_dcgan()
    d = tf_asgan.networks.build_discriminator("dcgan", 64)
    with pytest.raises(ValueError, match="same resolution"):
        tf_asgan.ASGAN(g, d, latent_dim=LATENT)


@pytest.mark.slow
def test_generate():
    gan = make_gan()
    out = gan.generate(3).numpy()
    assert out.shape == (3, 32, 32, 3) and out.min() >= -1 and out.max() <= 1
    z = gan.sample_latent(2)
    np.testing.assert_array_equal(gan.generate(z), gan.generate(z))
    np.testing.assert_array_equal(gan(z), gan.generate(z))
