"""Perturbations on a linear discriminator, whose input gradient is known by hand.

For ``d(x) = <w, x> + b`` and the non-saturating D loss on reals,
``L = mean softplus(-d(x_i))``, so ``grad_{x_i} L = -sigmoid(-d(x_i)) w / m`` and
``sign(grad_x L) = -sign(w)``: every attack pushes each pixel against ``sign(w)``.
"""

import numpy as np
import pytest
import tensorflow as tf

from tf_asgan import errors, losses, perturbations

SHAPE = (4, 3, 3, 2)
EPS = 0.1


@pytest.fixture
def linear(rng):
    w = rng.choice([-1.0, 1.0], size=SHAPE[1:]) * rng.uniform(0.5, 2.0, SHAPE[1:])
    w = tf.constant(w, tf.float32)
    x = tf.constant(rng.uniform(-0.8, 0.8, SHAPE), tf.float32)

    def loss_fn(images):
        logits = tf.reduce_sum(images * w, axis=[1, 2, 3]) + 0.3
        return losses.get("non_saturating").discriminator(logits, None)

    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = loss_fn(x)
    return x, w, loss_fn, tape.gradient(loss, x)


def test_hand_gradient(linear):
    x, w, _, grad = linear
    d = tf.reduce_sum(x * w, axis=[1, 2, 3]) + 0.3
    expected = -tf.sigmoid(-d)[:, None, None, None] * w / SHAPE[0]
    np.testing.assert_allclose(grad, expected, rtol=1e-5)


def test_fgsm_sign_and_size(linear):
    x, w, loss_fn, grad = linear
    x_hat = perturbations.fgsm_perturbation(x, epsilon=EPS, input_grad=grad)
    np.testing.assert_allclose(x_hat, x - EPS * np.sign(w), atol=1e-6)
    assert loss_fn(x_hat) > loss_fn(x)  # D is less sure the reals are real


def test_fgsm_clips_to_image_range(linear):
    _, w, _, grad = linear
    x = tf.fill(SHAPE, 0.98) * tf.sign(-w)  # next to the boundary the attack points at
    x_hat = perturbations.fgsm_perturbation(x, epsilon=EPS, input_grad=grad)
    np.testing.assert_allclose(x_hat, tf.broadcast_to(tf.sign(-w), SHAPE), atol=1e-6)


def test_fgsm_requires_gradient(linear):
    with pytest.raises(ValueError, match="input_grad"):
        perturbations.fgsm_perturbation(linear[0], epsilon=EPS, input_grad=None)


def test_gaussian_has_size_eps_and_random_signs(rng):
    x = tf.zeros((64, 8, 8, 3))
    x_hat = perturbations.gaussian_perturbation(x, epsilon=EPS).numpy()
    np.testing.assert_allclose(np.abs(x_hat), EPS, rtol=1e-6)
    assert 0.45 < (x_hat > 0).mean() < 0.55
    x_edge = tf.ones((64, 8, 8, 3))
    assert perturbations.gaussian_perturbation(x_edge, epsilon=EPS).numpy().max() == 1.0


def test_none_is_identity(linear):
    x = linear[0]
    np.testing.assert_array_equal(perturbations.no_perturbation(x, epsilon=EPS), x)


def test_pgd_reaches_the_corner_of_the_eps_ball(linear):
    # Each step moves alpha against sign(w); the projection stops it at eps.
    x, w, loss_fn, _ = linear
    x_hat = perturbations.pgd_perturbation(x, epsilon=EPS, loss_fn=loss_fn, steps=5)
    np.testing.assert_allclose(x_hat, x - EPS * np.sign(w), atol=1e-6)


def test_pgd_step_size_sets_the_distance(linear):
    x, w, loss_fn, _ = linear
    x_hat = perturbations.pgd_perturbation(x, epsilon=EPS, loss_fn=loss_fn, steps=2,
                                           step_size=EPS / 4)
    np.testing.assert_allclose(x_hat, x - EPS / 2 * np.sign(w), atol=1e-6)


def test_pgd_random_start_stays_in_the_ball_and_converges(linear):
    x, w, loss_fn, _ = linear
    one = perturbations.pgd_perturbation(x, epsilon=EPS, loss_fn=loss_fn, steps=1,
                                         step_size=EPS / 10, random_start=True)
    assert np.abs(one - x).max() <= EPS + 1e-6
    assert np.abs(one - x).min() > 0  # started off x
    # From anywhere in the ball, two steps of size eps end at the corner.
    two = perturbations.pgd_perturbation(x, epsilon=EPS, loss_fn=loss_fn, steps=2,
                                         step_size=EPS, random_start=True)
    np.testing.assert_allclose(two, x - EPS * np.sign(w), atol=1e-6)


def test_pgd_uses_the_given_first_gradient(linear):
    # A given gradient serves the first step (no extra D pass): pass the opposite
    # of the true one and a single step must follow it.
    x, w, loss_fn, grad = linear
    x_hat = perturbations.pgd_perturbation(x, epsilon=EPS, loss_fn=loss_fn, steps=1,
                                           step_size=EPS, input_grad=-grad)
    np.testing.assert_allclose(x_hat, x + EPS * np.sign(w), atol=1e-6)


def test_registry():
    assert perturbations.get("fgsm").uses_input_grad
    assert not perturbations.get("gaussian").uses_input_grad
    with pytest.raises(ValueError, match="fgsm"):
        perturbations.get("cw")


def test_a_negative_pgd_step_is_refused():
    x = tf.zeros((1, 2, 2, 1))
    with pytest.raises(ValueError, match="step_size must be > 0"):
        perturbations.pgd_perturbation(x, epsilon=0.1, loss_fn=tf.reduce_sum, steps=2,
                                       step_size=-0.01)


@pytest.mark.parametrize("name", ["fgsm", "pgd"])
def test_attack_computes_the_gradient_it_needs(linear, name):
    # With no gradient given, attack() takes it from the loss: FGSM moves each pixel by
    # eps against sign(w); one PGD step of size eps does the same.
    x, w, loss_fn, _ = linear
    options = {"steps": 1, "step_size": EPS} if name == "pgd" else {}
    x_hat = perturbations.attack(name, x, loss_fn, epsilon=EPS, **options)
    expected = np.clip(x.numpy() - EPS * np.sign(w.numpy()), -1, 1)
    np.testing.assert_allclose(x_hat, expected, atol=1e-6)


def test_attack_uses_a_given_gradient_and_the_hinge_real_term(linear):
    x, w, _, _ = linear
    hinge = losses.get("hinge")

    def hinge_real(images):  # mean relu(1 - d(x)); d < 1 here, so the gradient is -w / m
        return hinge.real_term(tf.reduce_sum(images * w, axis=[1, 2, 3]) * 0.01)

    x_hat = perturbations.attack("fgsm", x, hinge_real, epsilon=EPS)
    np.testing.assert_allclose(x_hat, np.clip(x - EPS * np.sign(w), -1, 1), atol=1e-6)
    assert hinge_real(x_hat) > hinge_real(x)
    flipped = perturbations.attack("fgsm", x, hinge_real, epsilon=EPS,
                                   input_grad=-tf.ones_like(x))
    np.testing.assert_allclose(flipped, np.clip(x - EPS, -1, 1), atol=1e-6)


def test_each_perturbation_lists_its_own_options():
    assert perturbations.get("pgd").options == ("clip_range", "steps", "step_size",
                                                "random_start")
    for name in ("fgsm", "gaussian", "none"):
        assert perturbations.get(name).options == ("clip_range",), name
    assert perturbations.check_options("pgd", {"steps": 2, "random_start": True}) == {
        "steps": 2, "random_start": True}
    assert perturbations.check_options("fgsm", None) == {}


@pytest.mark.parametrize("name,options,bad", [
    ("pgd", {"stepz": 3, "steps": 2}, "\\['stepz'\\]"),
    ("fgsm", {"steps": 3, "random_start": True}, "\\['random_start', 'steps'\\]"),
    ("none", {"epsilon_scale": 2.0}, "\\['epsilon_scale'\\]"),
])
def test_an_unknown_option_is_refused_naming_it_and_the_valid_ones(name, options, bad):
    valid = ", ".join(perturbations.get(name).options)
    with pytest.raises(errors.InputError, match=f"{bad} for perturbation '{name}'.*{valid}"):
        perturbations.check_options(name, options)


def test_attack_refuses_an_unknown_option_before_any_gradient(linear):
    x, _, _, _ = linear

    def loss_fn(images):
        raise AssertionError("the loss was evaluated before the options were checked")

    with pytest.raises(errors.InputError, match="stepz"):
        perturbations.attack("pgd", x, loss_fn, epsilon=EPS, stepz=2)


def test_the_functions_take_no_stray_keyword(linear):
    # called directly (as the train step does), a misspelt option fails instead of
    # vanishing into **kwargs
    x, _, loss_fn, grad = linear
    with pytest.raises(TypeError, match="stepz"):
        perturbations.pgd_perturbation(x, epsilon=EPS, loss_fn=loss_fn, stepz=2)
    with pytest.raises(TypeError, match="step_size"):
        perturbations.fgsm_perturbation(x, epsilon=EPS, input_grad=grad, step_size=0.1)
