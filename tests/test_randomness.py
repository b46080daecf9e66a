"""Stateless draws: each random number of a train step is a function of (run seed, step,
rollback count, replica, purpose) alone, never of TensorFlow's global random state."""

import numpy as np
import pytest
import tensorflow as tf

import tf_asgan
from helpers import LATENT, images, tiny_dcgan
from tf_asgan import perturbations, randomness


def key(*args):
    return tuple(randomness.step_key(*args).numpy())


def test_step_keys_differ_in_every_input_and_repeat_for_equal_ones():
    base = key(3, 10, 0)
    assert key(3, 10, 0) == base
    others = [key(4, 10, 0), key(3, 11, 0), key(3, 10, 1)]
    assert len({base, *others}) == 4
    k = randomness.step_key(3, 10, 0)
    seeds = {tuple(randomness.draw_seed(k, p, i).numpy())
             for p in randomness.PURPOSES for i in range(3)}
    assert len(seeds) == 3 * len(randomness.PURPOSES)
    with pytest.raises(KeyError):
        randomness.draw_seed(k, "dropout")


def test_replicas_draw_from_different_keys(mirrored):
    per_replica = mirrored.run(lambda: randomness.step_key(3, 10, 0))
    keys = [tuple(v.numpy()) for v in mirrored.experimental_local_results(per_replica)]
    assert len(keys) == 2 and keys[0] != keys[1]
    assert keys[0] == key(3, 10, 0)  # replica 0 draws as a single device does


def test_draws_with_a_seed_ignore_the_global_generator():
    seed = tf.constant([5, 6], tf.int64)
    tf.random.set_seed(1)
    a = randomness.normal([4, 3], seed=seed)
    b = randomness.uniform([4, 3], -1.0, 1.0, seed=seed)
    tf.random.set_seed(2)
    np.testing.assert_array_equal(a, randomness.normal([4, 3], seed=seed))
    np.testing.assert_array_equal(b, randomness.uniform([4, 3], -1.0, 1.0, seed=seed))
    np.testing.assert_array_equal(a, tf.random.stateless_normal([4, 3], seed, alg="philox"))
    assert b.numpy().min() >= -1 and b.numpy().max() < 1


def test_seeded_random_perturbations_are_reproducible_and_follow_their_formula():
    x = tf.constant(images(4, res=8))
    seed = tf.constant([1, 2], tf.int64)
    eps = 0.1
    noise = tf.random.stateless_normal(x.shape, seed, alg="philox").numpy()
    expected = np.clip(x.numpy() + eps * np.sign(noise), -1, 1)
    np.testing.assert_allclose(perturbations.gaussian_perturbation(x, epsilon=eps, seed=seed),
                               expected, atol=1e-7)
    other = perturbations.gaussian_perturbation(x, epsilon=eps, seed=seed + 1)
    assert not np.array_equal(other, expected)

    def pgd(s):
        # one small step from the random start: the result keeps the start's trace
        return perturbations.pgd_perturbation(x, epsilon=eps, loss_fn=tf.reduce_sum, steps=1,
                                              step_size=0.01, random_start=True,
                                              seed=s).numpy()

    np.testing.assert_array_equal(pgd(seed), pgd(seed))
    assert not np.array_equal(pgd(seed), pgd(seed + 1))


def twins(n, **kwargs):
    """``n`` compiled AS-GANs with equal weights and the same run seed."""
    g, d = tiny_dcgan()
    gans = []
    for _ in range(n):
        g2, d2 = tiny_dcgan()
        g2.set_weights(g.get_weights())
        d2.set_weights(d.get_weights())
        gan = tf_asgan.ASGAN(g2, d2, latent_dim=LATENT, seed=7, epsilon=0.05, **kwargs)
        gan.compile()
        gans.append(gan)
    return gans


def weights(gan):
    return [v.numpy() for v in gan.generator.variables + gan.discriminator.variables]


def same(a, b):
    return all(np.array_equal(u, v) for u, v in zip(weights(a), weights(b)))


def test_a_train_step_depends_on_seed_step_and_rollbacks_not_on_global_state():
    x = tf.constant(images(4))
    a, b, later, rolled_back = twins(4, perturbation="gaussian")
    later.step_counter.assign(1)
    rolled_back.rollback_count.assign(1)
    for i, gan in enumerate((a, b, later, rolled_back)):
        tf.random.set_seed(100 + i)  # a different global state before each
        gan.train_step(x)
    assert same(a, b)
    assert not same(a, later) and not same(a, rolled_back)


def test_the_step_latents_are_the_stateless_draw_of_the_step_seed():
    gan, = twins(1, d_steps=2)
    gan.step_counter.assign(5)
    drawn = []
    sample = gan.sample_latent
    gan.sample_latent = lambda n, seed=None: drawn.append(sample(n, seed)) or drawn[-1]
    gan.train_step(tf.constant(images(8)))
    step_key = randomness.step_key(7, 5, 0)
    for i, z in enumerate(drawn):  # one fresh latent batch per D iteration
        expected = tf.random.stateless_normal(
            [4, LATENT], randomness.draw_seed(step_key, "latent", i), alg="philox")
        np.testing.assert_array_equal(z, expected)
    assert len(drawn) == 2 and not np.array_equal(drawn[0], drawn[1])
    assert gan.completed_steps() == 6


def test_a_seed_that_is_not_a_stateless_seed_is_refused_with_the_reason():
    with pytest.raises(ValueError, match=r"integer tensor of shape \[2\].*int32 of shape \(\)"):
        perturbations.gaussian_perturbation(tf.zeros([1, 2, 2, 3]), epsilon=0.1, seed=3)
    with pytest.raises(ValueError, match="float32"):
        randomness.uniform([2], 0.0, 1.0, seed=tf.constant([1.0, 2.0]))
    g, d = tiny_dcgan()
    with pytest.raises(ValueError, match="must not set 'seed'"):
        tf_asgan.ASGAN(g, d, latent_dim=LATENT, perturbation="gaussian",
                       perturbation_kwargs={"seed": 1})
