"""The EMA of G's weights: its closed form after k updates, the start step, batch-norm
statistics, the train step, tf.distribute, checkpoints (also those without it), and the
sample grids, evaluations and exports that use it."""

import json
import logging
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from helpers import LATENT, images, small_config, tiny_dcgan
from tf_asgan import ema, errors, export, layout
from tf_asgan.asgan import ASGAN
from tf_asgan.config import train_config
from tf_asgan.training import builder, callbacks, checkpoints, loop, rundir
from tf_asgan.utils import images as images_lib


def _randomise(variables, rng):
    for v in variables:
        v.assign(rng.standard_normal(v.shape).astype(np.float32))


def _values(variables):
    return [v.numpy().copy() for v in variables]


def test_closed_form_after_k_updates_and_batch_norm_copied():
    g, _ = tiny_dcgan()
    averaged = ema.GeneratorEMA(g, decay=0.9)
    rng = np.random.default_rng(0)
    history = [_values(g.trainable_variables)]  # w_0: the EMA starts as a copy of G
    for step in range(5):  # a "G update", then the EMA's update of that step
        _randomise(g.trainable_variables + g.non_trainable_variables, rng)
        averaged.update(step)
        history.append(_values(g.trainable_variables))
    for i, v in enumerate(averaged.model.trainable_variables):
        expected = ema.closed_form([h[i] for h in history], 0.9)
        np.testing.assert_allclose(v.numpy(), expected, rtol=1e-5, atol=1e-6)
        assert not np.allclose(v.numpy(), history[-1][i])  # an average, not a copy
    # batch-norm moving statistics: G's, copied (stylegan2-ada), not averaged
    assert averaged.model.non_trainable_variables  # the tiny DCGAN has batch norm
    for e, b in zip(averaged.model.non_trainable_variables, g.non_trainable_variables):
        np.testing.assert_array_equal(e.numpy(), b.numpy())


def test_closed_form_by_hand():
    # three updates of a scalar at decay 0.5 from 0: 0.5^3*0 + 0.5*(0.5^2*1 + 0.5*2 + 3)
    assert ema.closed_form([0.0, 1.0, 2.0, 3.0], 0.5) == pytest.approx(2.125)


def test_before_the_start_step_the_ema_copies_g():
    g, _ = tiny_dcgan()
    averaged = ema.GeneratorEMA(g, decay=0.9, start_step=2)
    rng = np.random.default_rng(1)
    for step in range(2):
        _randomise(g.trainable_variables, rng)
        averaged.update(step)
        for e, w in zip(averaged.model.trainable_variables, g.trainable_variables):
            np.testing.assert_array_equal(e.numpy(), w.numpy())
    history = [_values(g.trainable_variables)]
    for step in (2, 3):
        _randomise(g.trainable_variables, rng)
        averaged.update(step)
        history.append(_values(g.trainable_variables))
    for i, v in enumerate(averaged.model.trainable_variables):
        np.testing.assert_allclose(v.numpy(), ema.closed_form([h[i] for h in history], 0.9),
                                   rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("decay,start", [(0.0, 0), (1.0, 0), (0.5, -1)])
def test_bad_options_are_refused(decay, start):
    g, _ = tiny_dcgan()
    with pytest.raises(errors.InputError, match="ema_"):
        ema.GeneratorEMA(g, decay, start)


class RecordG(keras.callbacks.Callback):
    """G's trainable weights after every train step."""

    def __init__(self, generator):
        super().__init__()
        self.generator = generator
        self.history = [_values(generator.trainable_variables)]

    def on_train_batch_end(self, batch, logs=None):
        self.history.append(_values(self.generator.trainable_variables))


def _train(gan, steps, batch=4):
    record = RecordG(gan.generator)
    x = tf.data.Dataset.from_tensor_slices(images(steps * batch)).batch(batch)
    gan.fit(x, epochs=1, verbose=0, callbacks=[record])
    return record.history


def _assert_closed_form(gan, history, decay):
    for i, v in enumerate(gan.ema.model.trainable_variables):
        np.testing.assert_allclose(v.numpy(), ema.closed_form([h[i] for h in history], decay),
                                   rtol=1e-5, atol=1e-6)


def test_the_train_step_updates_the_ema_after_each_g_update():
    g, d = tiny_dcgan()
    gan = ASGAN(g, d, latent_dim=LATENT, seed=0, ema_decay=0.8)
    gan.compile()
    history = _train(gan, 3)
    _assert_closed_form(gan, history, 0.8)
    for e, b in zip(gan.ema.model.non_trainable_variables, g.non_trainable_variables):
        np.testing.assert_array_equal(e.numpy(), b.numpy())
    assert gan.eval_generator is gan.ema.model and gan.eval_generator_kind == "ema"


@pytest.mark.slow
def test_under_mirrored_strategy_every_replica_keeps_the_same_ema(mirrored):
    with mirrored.scope():
        g, d = tiny_dcgan(batch_norm=False)
        gan = ASGAN(g, d, latent_dim=LATENT, seed=0, ema_decay=0.8)
        gan.compile()
    history = _train(gan, 2)
    _assert_closed_form(gan, history, 0.8)
    for v in gan.ema.model.trainable_variables:
        copies = v.value.values  # the per-replica copies of a mirrored variable
        assert len(copies) == 2
        np.testing.assert_array_equal(copies[0].numpy(), copies[1].numpy())


def _ema_gan(ema_decay=0.8):
    g, d = tiny_dcgan()
    gan = ASGAN(g, d, latent_dim=LATENT, seed=0, ema_decay=ema_decay)
    gan.compile()
    return gan


def test_a_checkpoint_restores_the_ema(tmp_path):
    gan = _ema_gan()
    _randomise(gan.ema.model.variables, np.random.default_rng(2))  # as if trained
    saved = _values(gan.ema.model.variables)
    manager = tf.train.CheckpointManager(builder.checkpoint_for(gan), str(tmp_path), 1)
    manager.save(checkpoint_number=2)
    fresh = _ema_gan()
    checkpoints.restore_latest(builder.checkpoint_for(fresh), str(tmp_path))
    for a, b in zip(saved, fresh.ema.model.variables):
        np.testing.assert_array_equal(a, b.numpy())
    # the EMA is its own: not G's weights
    assert any(not np.array_equal(e.numpy(), w.numpy()) for e, w in
               zip(fresh.ema.model.trainable_variables, fresh.generator.trainable_variables))


def test_a_checkpoint_without_the_ema_restores_it_from_g_with_a_warning(tmp_path, caplog):
    old = _ema_gan(ema_decay=0.0)  # a run without an EMA wrote it
    assert old.ema is None
    _randomise(old.generator.variables, np.random.default_rng(3))  # as if trained
    old.step_counter.assign(1)
    manager = tf.train.CheckpointManager(builder.checkpoint_for(old), str(tmp_path), 1)
    manager.save(checkpoint_number=1)
    gan = _ema_gan()
    with caplog.at_level(logging.WARNING, logger="tf_asgan"):
        checkpoints.restore_latest(builder.checkpoint_for(gan), str(tmp_path))
    assert "holds no EMA of G's weights" in caplog.text
    assert gan.completed_steps() == 1
    for a, b, c in zip(old.generator.variables, gan.generator.variables, gan.ema.model.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
        np.testing.assert_array_equal(a.numpy(), c.numpy())


def _distinguishable(gan):
    """Sets the kernel of the EMA's output layer to ones: its images differ from G's
    (whose untrained outputs are close to 0)."""
    for v in gan.ema.model.layers[-2].weights:
        v.assign(tf.ones_like(v))


def test_the_sample_grid_shows_the_ema(tmp_path):
    gan = _ema_gan()
    _distinguishable(gan)
    z = np.random.default_rng(0).standard_normal((4, LATENT)).astype(np.float32)
    grid = callbacks.SampleGrid(str(tmp_path), z, columns=2)
    grid.set_model(gan)
    grid.on_epoch_end(0)
    pixels = np.asarray(Image.open(grid.path(1)))
    np.testing.assert_array_equal(pixels, images_lib.grid(gan.ema.model(z).numpy(), 2))
    assert not np.array_equal(pixels, images_lib.grid(gan.generator(z).numpy(), 2))


class FakeEvaluator:
    class protocol:
        num_samples = 4

    class network:
        name = "fake"

    def evaluate(self, generator):
        self.generator = generator
        return {"metrics": {"fid": 1.0}, "protocol": {}}


def test_the_evaluation_judges_the_ema_and_says_so(tmp_path):
    gan = _ema_gan()
    evaluator = FakeEvaluator()
    metrics = str(tmp_path / layout.METRICS)
    evaluate = callbacks.Evaluate(evaluator, 1, 1, metrics)
    evaluate.set_model(gan)
    evaluate.on_epoch_end(0)
    assert evaluator.generator is gan.ema.model
    with open(metrics) as f:
        assert json.loads(f.readline())["generator"] == "ema"
    with open(tmp_path / layout.BEST_RECORD) as f:
        assert json.load(f)["generator"] == "ema"


def test_a_run_without_ema_is_judged_on_g(tmp_path):
    gan = _ema_gan(ema_decay=0.0)
    evaluator = FakeEvaluator()
    evaluate = callbacks.Evaluate(evaluator, 1, 1, str(tmp_path / layout.METRICS))
    evaluate.set_model(gan)
    evaluate.on_epoch_end(0)
    assert evaluator.generator is gan.generator and evaluate.results[-1]["generator"] == "raw"


def test_restore_generator_and_the_export_record_give_the_ema(tmp_path):
    config = small_config(width=0.0625, ema_decay=0.9)
    train_config.save(config, str(tmp_path))
    gan = builder.model_of(config, jit_compile=False)
    _distinguishable(gan)
    manager = tf.train.CheckpointManager(builder.checkpoint_for(gan),
                                         os.path.join(tmp_path, layout.CHECKPOINTS), 1)
    manager.save(checkpoint_number=0)
    generator, _, _ = rundir.restore_generator(str(tmp_path))
    for a, b in zip(generator.variables, gan.ema.model.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert rundir.export_metadata(config, 0)["generator"] == "ema"
    assert rundir.export_metadata(small_config(), 0)["generator"] == "raw"


@pytest.mark.slow
def test_a_trained_run_exports_the_ema(tmp_path):
    config = small_config(width=0.125, epochs=1, ema_decay=0.5)
    result = loop.train(config, str(tmp_path), verbose=0)
    assert export.read_metadata(result["export"])["generator"] == "ema"
    gan, _, _ = rundir.restore_model(str(tmp_path))
    exported = export.load(result["export"])
    z = tf.constant(np.random.default_rng(0).standard_normal((4, 16)).astype(np.float32))
    images_out = exported.generate(z)["images"].numpy()
    # (untrained images are close to 0: compared relative to their size)
    np.testing.assert_allclose(images_out, gan.ema.model(z).numpy(), rtol=1e-4, atol=1e-8)
    assert not np.allclose(images_out, gan.generator(z).numpy(), rtol=1e-2, atol=1e-8)
