"""SSGAN's rotation loss (tf_asgan.regularizers.rotation): the rotations against NumPy's
``rot90`` and hand values, the two schemes' labels, the cross-entropy on fixed logits by
hand; then its wiring into ASGAN (which weights each sub-step changes, the head's update
against its closed form, the clean reals in every D update), the refusals, the
configuration and one fit step."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import layers

from helpers import small_config, snapshot
from tf_asgan import ASGAN, errors, layout, networks
from tf_asgan.config.train_config import TrainConfig
from tf_asgan.networks import heads
from tf_asgan.regularizers import RotationLoss, rotation
from tf_asgan.training import builder

SEED = 3
LR = 0.1


# ---- the math ---------------------------------------------------------------------------------

def test_a_quarter_turn_is_counter_clockwise_as_numpy_rot90():
    # [[a, b], [c, d]] turned 90 degrees counter-clockwise is [[b, d], [a, c]]
    two = np.array([[1.0, 2.0], [3.0, 4.0]], np.float32)
    turned = rotation.rotate(tf.constant(two[None, ..., None]), 1).numpy()[0, ..., 0]
    np.testing.assert_array_equal(turned, [[2.0, 4.0], [1.0, 3.0]])
    three = np.arange(9, dtype=np.float32).reshape(3, 3)
    by_hand = {0: three, 1: [[2, 5, 8], [1, 4, 7], [0, 3, 6]],
               2: [[8, 7, 6], [5, 4, 3], [2, 1, 0]], 3: [[6, 3, 0], [7, 4, 1], [8, 5, 2]]}
    rgb = np.stack([three, 10 + three, 20 + three], axis=-1)[None]  # channels turn together
    for k, expected in by_hand.items():
        np.testing.assert_array_equal(np.rot90(three, k), expected)
        got = rotation.rotate(tf.constant(rgb), k).numpy()[0]
        for c in range(3):
            np.testing.assert_array_equal(got[..., c], np.asarray(expected) + 10 * c)
    assert rotation.rotate(tf.constant(rgb), 5).numpy().tolist() == \
        rotation.rotate(tf.constant(rgb), 1).numpy().tolist()


@pytest.mark.parametrize("n, labels", [(8, [0, 0, 1, 1, 2, 2, 3, 3]), (6, [0, 0, 1, 2, 2, 3]),
                                       (4, [0, 1, 2, 3]), (3, [0, 1, 2]), (1, [0])])
def test_the_quarter_scheme_turns_image_i_by_floor_4i_over_n_as_mimicry(n, labels):
    x = np.random.default_rng(n).uniform(-1, 1, (n, 3, 3, 2)).astype(np.float32)
    turned, got = rotation.rotated_batch(tf.constant(x), "quarter")
    assert got.numpy().tolist() == labels
    for i, k in enumerate(labels):
        np.testing.assert_array_equal(turned.numpy()[i], np.rot90(x[i], k, axes=(0, 1)))


def test_the_all_scheme_holds_every_image_in_all_four_turns_angle_major():
    x = np.random.default_rng(0).uniform(-1, 1, (3, 4, 4, 1)).astype(np.float32)
    turned, labels = rotation.rotated_batch(tf.constant(x), "all")
    assert labels.numpy().tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]
    expected = np.concatenate([np.rot90(x, k, axes=(1, 2)) for k in range(4)])
    np.testing.assert_array_equal(turned.numpy(), expected)


def test_non_square_images_and_unknown_schemes_are_refused():
    with pytest.raises(errors.InputError, match="square"):
        rotation.rotated_batch(tf.zeros((2, 3, 4, 1)))
    with pytest.raises(errors.InputError, match="Unknown rotation scheme 'half'"):
        rotation.rotated_batch(tf.zeros((2, 3, 3, 1)), "half")


def test_the_cross_entropy_on_fixed_logits_is_the_hand_value():
    logits = np.array([[2.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, -1.0], [0.5, 0.5, 3.0, 0.5]])
    labels = np.array([0, 3, 1])
    by_hand = [math.log(math.exp(2) + 3) - 2,                    # -log(e^2 / (e^2 + 3))
               math.log(1 + math.e + 1 + math.exp(-1)) + 1,      # -log(e^-1 / sum)
               math.log(3 * math.exp(0.5) + math.exp(3)) - 0.5]  # -log(e^0.5 / sum)
    got = rotation.cross_entropy(tf.constant(logits, tf.float32), tf.constant(labels))
    assert float(got) == pytest.approx(np.mean(by_hand), rel=1e-6)
    assert float(rotation.cross_entropy(tf.zeros((5, 4)), tf.zeros(5, tf.int32))) == \
        pytest.approx(math.log(4), rel=1e-6)
    # the largest logit is at the label in row 0 only (rows 1 and 2: at 1 and 2)
    assert float(rotation.accuracy(tf.constant(logits), tf.constant(labels))) == \
        pytest.approx(1 / 3)


def corner_logits(images):
    """Logits that read the turn off a bright top-left pixel: class ``k`` is where
    ``k`` counter-clockwise quarter turns move it (top-left, bottom-left, bottom-right,
    top-right), times 2."""
    corners = [images[:, 0, 0, 0], images[:, -1, 0, 0], images[:, -1, -1, 0],
               images[:, 0, -1, 0]]
    return 2.0 * tf.stack(corners, axis=1)


@pytest.mark.parametrize("scheme", rotation.SCHEMES)
def test_the_loss_labels_each_turn_by_its_angle(scheme):
    x = np.zeros((8, 5, 5, 1), np.float32)
    x[:, 0, 0, 0] = 1.0
    ce, acc = rotation.loss(corner_logits, tf.constant(x), scheme)
    assert float(acc) == 1.0  # every turn recognised, so labels and turns agree
    # each row: logit 2 at its label, 0 elsewhere
    assert float(ce) == pytest.approx(math.log(math.exp(2) + 3) - 2, rel=1e-6)


def test_options_and_the_sources_weights():
    assert rotation.as_rotation(None) is None and rotation.as_rotation("none") is None
    default = rotation.as_rotation("quarter")
    assert (default.weight_d, default.weight_g) == (1.0, 0.2)
    assert rotation.as_rotation({"scheme": "all", "weight_g": 0.5}) == RotationLoss("all", 1.0,
                                                                                    0.5)
    with pytest.raises(errors.InputError, match="Unknown rotation loss option"):
        rotation.as_rotation({"weight": 1.0})
    with pytest.raises(errors.InputError, match="weight_d must be >= 0"):
        rotation.as_rotation(RotationLoss(weight_d=-1.0))
    with pytest.raises(errors.InputError, match="Unknown rotation scheme"):
        rotation.as_rotation("sideways")


# ---- the wiring into ASGAN --------------------------------------------------------------------

LATENT = 3


def small_pair(res=4, channels=1, seed=0):
    """A linear-ish G and a D with a ``d_features`` layer (no batch norm)."""
    keras.utils.set_random_seed(seed)
    z = keras.Input((LATENT,))
    h = layers.Dense(res * res * channels, activation="tanh")(z)
    g = keras.Model(z, layers.Reshape((res, res, channels))(h))
    x = keras.Input((res, res, channels))
    h = layers.Conv2D(3, 3, padding="same", activation="tanh")(x)
    features = layers.Flatten(name=heads.FEATURES)(h)
    d = keras.Model(x, layers.Dense(1)(features))
    return g, d


def rotation_gan(scheme="quarter", weight_d=1.0, weight_g=0.2, **kwargs):
    g, d = small_pair()
    gan = ASGAN(g, d, latent_dim=LATENT, seed=SEED,
                rotation=RotationLoss(scheme, weight_d, weight_g), **kwargs)
    gan.compile(d_optimizer=keras.optimizers.SGD(LR), g_optimizer=keras.optimizers.SGD(LR))
    return gan


def head(gan):
    return gan.rotation_classifier.get_layer("d_rotation")


def batch(n=8, seed=1):
    rng = np.random.default_rng(seed)
    return (tf.constant(rng.uniform(-1, 1, (n, 4, 4, 1)).astype(np.float32)),
            tf.constant(rng.uniform(-1, 1, (n, 4, 4, 1)).astype(np.float32)))


def same(a, b):
    return all(np.array_equal(u, v) for u, v in zip(a, b))


@pytest.mark.parametrize("scheme", rotation.SCHEMES)
def test_a_d_step_updates_d_and_the_head_by_the_closed_form_and_leaves_g(scheme):
    gan = rotation_gan(scheme, weight_d=0.5)
    x, fake = batch()
    features = keras.Model(gan.discriminator.inputs,
                           gan.discriminator.get_layer(heads.FEATURES).output)
    turned, labels = rotation.rotated_batch(x, scheme)
    f = features(turned).numpy().astype(np.float64)
    w, b = (v.astype(np.float64) for v in head(gan).get_weights())
    g_before, d_before = snapshot(gan.generator), snapshot(gan.discriminator)
    gan.discriminator_update(x, fake)
    # softmax cross-entropy: d/dW mean_i CE_i = f^T (p - onehot) / M, times weight_d
    logits = f @ w + b
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    delta = (p - np.eye(4)[labels.numpy()]) / len(f)
    new_w, new_b = head(gan).get_weights()
    np.testing.assert_allclose(new_w, w - LR * 0.5 * f.T @ delta, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(new_b, b - LR * 0.5 * delta.sum(0), rtol=1e-5, atol=1e-6)
    assert same(g_before, gan.generator.get_weights())
    assert not same(d_before, gan.discriminator.get_weights())


def test_a_g_step_changes_g_alone_and_its_loss_holds_the_weighted_term():
    x, _ = batch()
    z = tf.constant(np.random.default_rng(2).normal(size=(8, LATENT)).astype(np.float32))
    results = {}
    for weight_g in (0.0, 0.2):
        gan = rotation_gan(weight_g=weight_g)
        d_before, head_before = snapshot(gan.discriminator), head(gan).get_weights()
        g_tape = tf.GradientTape(watch_accessed_variables=False)
        with g_tape:
            g_tape.watch([v.value for v in gan.generator.trainable_variables])
            fake = gan.generator(z, training=True)
        ce, _ = rotation.loss(gan._rotation_logits, fake)
        gan.generator_update(g_tape, fake, x)
        assert same(d_before, gan.discriminator.get_weights())
        assert same(head_before, head(gan).get_weights())
        logs = gan.step_logs()
        assert float(logs["rotation_g"]) == pytest.approx(weight_g * float(ce), rel=1e-6)
        results[weight_g] = gan.generator.get_weights()
    assert not same(results[0.0], results[0.2])  # the term moved G


class Recorder:
    """Wraps ``gan._rotation_logits`` to record the image batches the head sees."""

    def __init__(self, gan):
        self.inputs, self._inner = [], gan._rotation_logits
        gan._rotation_logits = self

    def __call__(self, images, training=True):
        self.inputs.append(np.array(images))
        return self._inner(images, training)


@pytest.mark.parametrize("dat", [None, {"side": "fake"}])
def test_every_d_update_takes_the_loss_on_the_clean_reals_and_the_attack_ignores_it(dat):
    """AS-GAN (FGSM on the reals) and DAT (on the fakes): steps 1 and 3 both add the
    rotation loss of the clean reals; grad_x L_D, which the attack follows, is that of the
    GAN loss alone."""
    gan = rotation_gan(perturbation="fgsm", epsilon=0.1, dat=dat)
    plain = ASGAN(*small_pair(), latent_dim=LATENT, seed=SEED, perturbation="fgsm",
                  epsilon=0.1, dat=dat)
    plain.compile(d_optimizer=keras.optimizers.SGD(LR), g_optimizer=keras.optimizers.SGD(LR))
    rec = Recorder(gan)
    x, fake = batch()
    turned = rotation.rotated_batch(x)[0].numpy()
    grad, d_fake = gan.discriminator_update(x, fake)
    np.testing.assert_array_equal(rec.inputs[-1], turned)
    np.testing.assert_allclose(grad.numpy(), plain.discriminator_update(x, fake)[0].numpy(),
                               rtol=1e-6, atol=1e-9)
    x_hat = gan.perturb(x, grad, 0.1)
    assert not np.allclose(x_hat.numpy(), x.numpy())
    gan.adversarial_update(x_hat, d_fake, clean=(x, fake))
    assert len(rec.inputs) == 2
    np.testing.assert_array_equal(rec.inputs[-1], turned)
    with pytest.raises(errors.InputError, match="clean="):
        gan.adversarial_update(x_hat, d_fake)


def test_refusals_say_why():
    with pytest.raises(errors.InputError, match="AdvAs"):
        rotation_gan(advas={"lam": 1.0})
    g, _ = small_pair()
    x = keras.Input((4, 4, 1))
    no_features = keras.Model(x, layers.Dense(1)(layers.Flatten()(x)), name="plain_d")
    with pytest.raises(errors.InputError, match="'plain_d' has no layer named 'd_features'"):
        ASGAN(g, no_features, latent_dim=LATENT, rotation="quarter")
    with pytest.raises(errors.InputError, match="AdvAs"):
        TrainConfig(rotation_loss="quarter", advas_lambda=1.0).validate()
    with pytest.raises(errors.InputError, match="rotation_weight_g must be >= 0"):
        TrainConfig(rotation_loss="quarter", rotation_weight_g=-0.1).validate()


@pytest.mark.parametrize("scheme, adversarial", [("quarter", True), ("all", False)])
def test_one_fit_step_logs_the_terms_as_their_own_values(scheme, adversarial):
    gan = rotation_gan(scheme, adversarial=adversarial)
    history = gan.fit(batch(8)[0].numpy(), batch_size=8, epochs=1, verbose=0).history
    assert {"rotation_d", "rotation_acc", "rotation_g"} <= set(history)
    for name in ("rotation_d", "rotation_g", "d_loss", "g_loss"):
        assert np.isfinite(history[name][-1]) and history[name][-1] > 0
    assert 0.0 <= history["rotation_acc"][-1] <= 1.0


def _network_gan(architecture, spectral_norm=False, **kwargs):
    """The architecture at its smallest resolution and 1/16 width, its batch norm where
    its source has it (none in D with spectral norm), with the rotation loss."""
    module = networks.ARCHITECTURES[architecture]
    resolution = min(module.RESOLUTIONS)
    channels = 1 if architecture == "wgangp_mnist" else 3
    keras.utils.set_random_seed(0)
    g = networks.build_generator(architecture, resolution, latent_dim=LATENT, width=0.0625,
                                 batch_norm="generator" in module.BATCH_NORM,
                                 channels=channels)
    d = networks.build_discriminator(
        architecture, resolution, width=0.0625, spectral_norm=spectral_norm,
        batch_norm="discriminator" in module.BATCH_NORM and not spectral_norm,
        channels=channels)
    gan = ASGAN(g, d, latent_dim=LATENT, seed=SEED, rotation="quarter", **kwargs)
    gan.compile(run_eagerly=True)  # one step: tracing it would cost more than running it
    return gan, np.random.default_rng(0).uniform(
        -1, 1, (4, resolution, resolution, channels)).astype(np.float32)


# every architecture with a rotation head, with AS-GAN (the default); then SSGAN's DAT
# setting (Mimicry's SNGAN D, spectral norm, hinge loss, DAT on both batches) and the
# rotation loss beside WGAN-GP's penalty
NETWORK_CASES = [(name, False, {}) for name in networks.ARCHITECTURES if name != "dcgan"] + [
    ("sngan_resnet", True, {"loss": "hinge", "adversarial": False,
                            "dat": {"variant": "authors", "side": "both"}}),
    ("wgangp_resnet", False, {"loss": "wasserstein", "adversarial": False,
                              "gradient_penalty": "wgan_gp"})]


@pytest.mark.parametrize("architecture, spectral_norm, options", NETWORK_CASES)
def test_one_fit_step_on_every_network_with_a_rotation_head(architecture, spectral_norm,
                                                            options):
    gan, x = _network_gan(architecture, spectral_norm, **options)
    d_before, head_before = snapshot(gan.discriminator), head(gan).get_weights()
    history = gan.fit(x, batch_size=4, epochs=1, verbose=0).history
    assert np.isfinite(history["rotation_d"][-1]) and np.isfinite(history["rotation_g"][-1])
    assert not same(d_before, gan.discriminator.get_weights())
    assert not same(head_before, head(gan).get_weights())


def test_a_d_without_a_rotation_head_is_refused_by_name():
    g = networks.build_generator("dcgan", 32, width=0.125)
    d = networks.build_discriminator("dcgan", 32, width=0.125)
    with pytest.raises(errors.InputError, match="d_features"):
        ASGAN(g, d, rotation="quarter")


# ---- the configuration and the checkpoint -----------------------------------------------------

def test_config_flags_reach_the_model_and_the_head_is_checkpointed(tmp_path):
    config = small_config(architecture="resnet", bn_d=False, width=0.0625,
                          rotation_loss="all", rotation_weight_g=0.5).validate()
    assert config.rotation.rotation_object() == RotationLoss("all", 1.0, 0.5)
    assert config.to_dict()["rotation_loss"] == "all"  # recorded with the run
    old = config.to_dict()
    for name in ("rotation_loss", "rotation_weight_d", "rotation_weight_g"):
        del old[name]
    assert TrainConfig.from_dict(old).rotation.rotation_object() is None
    gan = builder.model_of(config, jit_compile=False)
    assert gan.rotation == RotationLoss("all", 1.0, 0.5)
    ckpt = builder.checkpoint_for(gan)
    assert getattr(ckpt, layout.ROTATION_CLASSIFIER) is gan.rotation_classifier
    head(gan).kernel.assign(head(gan).kernel + 1.0)  # not the initial values
    saved = head(gan).kernel.numpy()
    path = ckpt.save(str(tmp_path / "ckpt"))
    resumed = builder.model_of(config, jit_compile=False)  # as a resumed run builds it
    assert not np.array_equal(head(resumed).kernel.numpy(), saved)
    builder.checkpoint_for(resumed).restore(path).assert_existing_objects_matched()
    np.testing.assert_array_equal(head(resumed).kernel.numpy(), saved)
    # the head's variables are trained with D's
    assert len(gan.d_variables) == len(gan.discriminator.trainable_variables) + 2
