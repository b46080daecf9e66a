"""Every loss against values computed by hand on fixed logits."""

import math

import numpy as np
import pytest
import tensorflow as tf

from tf_asgan import losses

REAL = tf.constant([0.5, 2.0, -1.0])
FAKE = tf.constant([-2.0, 0.0, 1.0])


def softplus(v):
    return math.log1p(math.exp(v))


def mean(values):
    return sum(values) / len(values)


def ns_d_real():  # -mean log sigmoid(d(x)) = mean softplus(-d(x))
    return mean([softplus(-0.5), softplus(-2.0), softplus(1.0)])


def ns_d_fake():  # -mean log(1 - sigmoid(d(G(z)))) = mean softplus(d(G(z)))
    return mean([softplus(-2.0), softplus(0.0), softplus(1.0)])


CASES = {
    # name: (D loss on real+fake, D loss on real only, G loss)
    "non_saturating": (ns_d_real() + ns_d_fake(), ns_d_real(),
                       mean([softplus(2.0), softplus(0.0), softplus(-1.0)])),
    "minimax": (ns_d_real() + ns_d_fake(), ns_d_real(), -ns_d_fake()),
    # relu(1 - [0.5, 2, -1]) = [0.5, 0, 2]; relu(1 + [-2, 0, 1]) = [0, 1, 2]
    "hinge": (2.5 / 3 + 3.0 / 3, 2.5 / 3, -(-1.0 / 3)),
    # mean fake - mean real = -1/3 - 1.5/3; real only: -mean real
    "wasserstein": (-1.0 / 3 - 1.5 / 3, -1.5 / 3, 1.0 / 3),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_loss_values(name):
    d_full, d_real, g = CASES[name]
    loss = losses.get(name)
    np.testing.assert_allclose(loss.discriminator(REAL, FAKE).numpy(), d_full, rtol=1e-6)
    np.testing.assert_allclose(loss.discriminator(REAL, None).numpy(), d_real, rtol=1e-6)
    np.testing.assert_allclose(loss.generator(FAKE).numpy(), g, rtol=1e-6)


@pytest.mark.parametrize("name", sorted(CASES))
def test_real_and_fake_terms(name):
    # The real term is the "real only" value; the fake term is the rest, by hand.
    d_full, d_real, _ = CASES[name]
    loss = losses.get(name)
    np.testing.assert_allclose(loss.real_term(REAL).numpy(), d_real, rtol=1e-6)
    np.testing.assert_allclose(loss.fake_term(FAKE).numpy(), d_full - d_real, rtol=1e-6,
                               atol=1e-7)
    np.testing.assert_allclose(loss.discriminator(None, FAKE).numpy(), d_full - d_real,
                               rtol=1e-6, atol=1e-7)


def test_a_loss_needs_some_logits():
    with pytest.raises(ValueError, match="real_logits, fake_logits or both"):
        losses.get("hinge").discriminator(None, None)


def test_handpicked_non_saturating_value():
    # d(x) = 0 and d(G(z)) = 0: D(.) = 1/2, so L_D = 2 log 2 and L_G = log 2.
    zeros = tf.zeros([4, 1])
    loss = losses.get("non_saturating")
    np.testing.assert_allclose(loss.discriminator(zeros, zeros), 2 * math.log(2), rtol=1e-6)
    np.testing.assert_allclose(loss.generator(zeros), math.log(2), rtol=1e-6)


def test_no_label_smoothing():
    # TF-GAN's minimax D loss defaults to 0.25 smoothing; ours must not smooth:
    # a very confident correct D has a loss near 0.
    big = tf.constant([30.0])
    assert losses.get("minimax").discriminator(big, -big).numpy() < 1e-6


def test_registry_rejects_unknown_name():
    with pytest.raises(ValueError, match="non_saturating"):
        losses.get("lsgan")


def test_gradients_are_finite_for_extreme_logits():
    logits = tf.Variable([-100.0, 100.0])
    with tf.GradientTape() as tape:
        loss = losses.get("non_saturating").discriminator(logits, logits)
    grad = tape.gradient(loss, logits)
    assert np.all(np.isfinite(grad.numpy()))

