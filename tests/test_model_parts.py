"""The pieces the model is assembled from: logged quantities, optimizers, the epsilon
argument and the network pair check, each against values known by hand."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from helpers import LATENT, deterministic_pair
from tf_asgan import methods, networks, optimizers, schedules, tracking
from tf_asgan.utils import distribute


def test_metric_names_follow_the_options():
    assert tracking.metric_names() == ["d_loss", "g_loss", "D_real", "D_fake"]
    names = tracking.metric_names(input_grad=True, adversarial=True,
                                  dat=methods.DAT(side="fake"), advas=True)
    assert names == ["d_loss", "g_loss", "D_real", "D_fake", "grad_l1", "d_loss_adv",
                     "D_adv", "epsilon", "D_dat_fake", "dat_linf_fake", "advas_penalty",
                     "advas_lambda"]


def test_step_metrics_keep_epoch_means_and_the_last_step_apart():
    logged = tracking.StepMetrics(["d_loss", "g_loss"])
    logged.start_step()
    logged.record("d_loss", 1.0)
    logged.record("d_loss", 3.0)  # two D updates in one step: the step mean is 2
    logged.record("g_loss", 5.0)
    logged.start_step()
    logged.record("d_loss", 8.0)
    logged.record("g_loss", 7.0)
    step = {k: float(v) for k, v in logged.step_results().items()}
    epoch = {k: float(v) for k, v in logged.epoch_logs().items()}
    assert step == {"d_loss": 8.0, "g_loss": 7.0}
    assert epoch == {"d_loss": 4.0, "g_loss": 6.0}
    assert "d_loss" in logged and "grad_l1" not in logged
    assert [m.name for m in logged.epoch_metrics] == ["d_loss", "g_loss"]


def test_batch_summaries():
    logits = tf.constant([0.0, np.log(3.0)])  # sigmoid: 1/2 and 3/4
    assert float(tracking.mean_probability(logits)) == pytest.approx(0.625)
    delta = tf.constant([[[0.1, -0.3]], [[0.2, 0.0]]])
    assert float(tracking.mean_linf(delta)) == pytest.approx(0.25)


def test_optimizers_default_to_the_papers_adam():
    g, d = deterministic_pair()
    d_opt, g_opt = optimizers.prepare(None, None, d, g)
    for opt in (d_opt, g_opt):
        assert isinstance(opt, keras.optimizers.Adam)
        assert float(opt.learning_rate) == pytest.approx(2e-4)
        assert (opt.beta_1, opt.beta_2) == (0.5, 0.999)
    assert d_opt is not g_opt and d_opt.built and g_opt.built


def test_optimizers_refuse_one_object_for_both():
    g, d = deterministic_pair()
    shared = keras.optimizers.Adam()
    with pytest.raises(ValueError, match="distinct optimizer objects"):
        optimizers.prepare(shared, shared, d, g)


def test_float16_networks_get_loss_scaling_and_refuse_double_backprop():
    with distribute.precision_policy("mixed_float16"):
        g, d = deterministic_pair()
    assert optimizers.uses_float16(g, d)
    d_opt, g_opt = optimizers.prepare(None, None, d, g)
    assert isinstance(d_opt, keras.optimizers.LossScaleOptimizer)
    assert optimizers.loss_scaled(d_opt) is d_opt
    with pytest.raises(ValueError, match="double back-propagation"):
        optimizers.prepare(None, None, d, g, double_backprop=True)


def test_epsilon_argument_in_pixel_units_and_its_limit():
    schedule, factor = schedules.as_schedule(2 / 255, "pixel")
    assert factor == 2.0 and float(schedule(tf.constant(0))) == pytest.approx(2 / 255)
    assert schedules.as_schedule(2.0)[1] == 1.0  # the whole range is still accepted
    with pytest.raises(ValueError, match="beyond the whole"):
        schedules.as_schedule(1.5, "pixel")


def test_network_pair_check():
    g, d = deterministic_pair(res=8)
    networks.check_pair(g, d, LATENT)
    with pytest.raises(ValueError, match="pass latent_dim=8"):
        networks.check_pair(g, d, LATENT + 1)
    _, d16 = deterministic_pair(res=16)
    with pytest.raises(ValueError, match="same resolution"):
        networks.check_pair(g, d16, LATENT)
    with pytest.raises(ValueError, match="built keras.Model"):
        networks.check_pair(g, "D", LATENT)


def test_cross_replica_sum(mirrored):
    assert distribute.cross_replica_sum() is None and distribute.num_replicas() == 1

    def replica_fn():
        ctx = tf.distribute.get_replica_context()
        value = tf.cast(ctx.replica_id_in_sync_group + 1, tf.float32)
        return distribute.cross_replica_sum()(value), distribute.num_replicas()

    sums, replicas = mirrored.run(replica_fn)
    assert replicas == 2
    assert [float(v) for v in mirrored.experimental_local_results(sums)] == [3.0, 3.0]


def test_pgd_under_float16_takes_every_step_where_unscaled_gradients_underflow():
    """D(x) = 1e-4 * sum(x) + 12: the real term's input gradient is about 1.5e-10 a pixel,
    0 in float16 (smallest subnormal 6e-8), so an unscaled attack would not move; scaled by
    the loss scale (2^15, as D's own update) its sign is kept and every step is taken."""
    from tf_asgan import ASGAN

    with distribute.precision_policy("mixed_float16"):
        g, _ = deterministic_pair(res=4)
        x_in = keras.Input((4, 4, 3))
        dense = keras.layers.Dense(1, kernel_initializer=keras.initializers.Constant(1e-4),
                                   bias_initializer=keras.initializers.Constant(12.0))
        d = keras.Model(x_in, dense(keras.layers.Flatten()(x_in)))
    gan = ASGAN(g, d, latent_dim=LATENT, perturbation="pgd",
                perturbation_kwargs={"steps": 3, "random_start": False})
    gan.compile()
    x = tf.zeros((4, 4, 4, 3))
    unscaled = tf.GradientTape()
    with unscaled:
        unscaled.watch(x)
        loss = gan.gan_loss.real_term(gan.discriminator_logits(x))
    assert not np.any(unscaled.gradient(loss, x).numpy())  # the underflow this is about
    x_hat = gan.perturb(x, None, 0.03).numpy()
    # The real term falls as D(x) rises: every pixel steps down, to the ball's edge.
    np.testing.assert_allclose(x_hat, -0.03, rtol=1e-6)
