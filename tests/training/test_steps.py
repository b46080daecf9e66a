"""The run's own step count: batches consumed, whatever the optimizers do.

Under ``mixed_float16`` the loss scaler skips the update of a step whose gradients
overflow; the optimizers then do not count it, but the step still consumed a batch.
The run counts steps itself, and the epsilon schedule, the data position and the
checkpoint numbers follow that count.
"""

import logging
import os

import keras
import pytest
import tensorflow as tf

from helpers import small_config
from tf_asgan import layout
from tf_asgan.config import train_config
from tf_asgan.training import builder, checkpoints, loop
from tf_asgan.utils import distribute


class CountBatches(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.batches = 0

    def on_train_batch_end(self, batch, logs=None):
        self.batches += 1


def test_mixed_float16_steps_count_batches_not_updates(tmp_path):
    counter = CountBatches()
    config = small_config(epochs=2, steps_per_epoch=5, width=0.125, checkpoint_every_steps=0,
                          precision="mixed_float16", export=False)
    result = loop.train(config, str(tmp_path), verbose=0, callbacks=[counter])
    assert counter.batches == 10 and result["step"] == 10
    with distribute.precision_policy("mixed_float16"):
        gan = builder.model_of(config)
    checkpoints.restore_latest(builder.checkpoint_for(gan), str(tmp_path / "checkpoints"))
    assert gan.completed_steps() == 10
    # The case this is about happened: the loss scaler skipped at least one G update.
    assert int(gan.g_optimizer.iterations) < 10
    assert tf.train.latest_checkpoint(str(tmp_path / "checkpoints")).endswith("ckpt-10")


@pytest.mark.slow
def test_a_checkpoint_without_the_step_count_resumes_at_the_optimizer_count(tmp_path, caplog):
    # Checkpoints written before the step and rollback counts were saved hold the four
    # run objects only; their step is the generator optimizer's update count.
    config = small_config(epochs=1, steps_per_epoch=3, export=False)
    loop.train(config, str(tmp_path / "new"), verbose=0)
    gan = builder.model_of(config)
    full = builder.checkpoint_for(gan)
    checkpoints.restore_latest(full, str(tmp_path / "new" / "checkpoints"))
    older = tf.train.Checkpoint(**{n: getattr(full, n) for n in layout.RUN_OBJECTS})
    old_run = tmp_path / "old"
    manager = tf.train.CheckpointManager(older, str(old_run / "checkpoints"), max_to_keep=1)
    prefix = manager.save(checkpoint_number=3)
    train_config.save(config, str(old_run))

    again = builder.model_of(config)
    again.rollback_count.assign(2)
    assert again.completed_steps() == 0
    assert checkpoints.written_before_counts(str(old_run / "checkpoints"))
    assert not checkpoints.written_before_counts(str(tmp_path / "new" / "checkpoints"))
    with caplog.at_level(logging.WARNING, logger="tf_asgan"):
        assert checkpoints.restore_one(builder.checkpoint_for(again), prefix) == prefix
    assert "earlier tf_asgan (no step or rollbacks in it)" in caplog.text
    assert "not bit-identical" in caplog.text
    assert again.completed_steps() == 3 == int(again.g_optimizer.iterations)
    assert int(again.rollback_count.numpy()) == 0  # not saved then: no rollback
    for a, b in zip(gan.generator.variables, again.generator.variables):
        assert (a.numpy() == b.numpy()).all()
    counter = CountBatches()
    resumed = loop.train(config.replace(epochs=2), str(old_run), verbose=0,
                         callbacks=[counter])
    assert counter.batches == 3 and resumed["step"] == 6  # resumed at step 3
    assert os.path.exists(str(old_run / "checkpoints" / "ckpt-6.index"))
