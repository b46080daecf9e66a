"""The training loop's own work: non-finite values caught in the graph, steps counted on
the host, ``steps_per_execution`` with every callback, and the overhead benchmark."""

import math

import keras
import pytest
import tensorflow as tf

from helpers import generated_source, small_config
from tf_asgan.config import train_config
from tf_asgan.training import callbacks, loop
from tf_asgan.utils import nonfinite

NAMES = ["d_loss", "g_loss", "D_real"]


def test_the_monitor_keeps_the_first_nonfinite_step_and_its_values():
    monitor = nonfinite.NonFiniteMonitor(NAMES)
    monitor.check()  # nothing yet
    steps = [{"d_loss": 1.0, "g_loss": 2.0, "D_real": 0.5},
             {"d_loss": 1.5, "g_loss": math.inf, "D_real": 0.5},  # step index 1: the first
             {"d_loss": math.nan, "g_loss": 2.0, "D_real": 0.5}]
    update = tf.function(monitor.update)
    for step, values in enumerate(steps):
        update(tf.constant(step, tf.int64), {k: tf.constant(v) for k, v in values.items()})
    with pytest.raises(nonfinite.NonFiniteError) as err:
        monitor.check()
    assert err.value.step == 2 and err.value.quantities == ["g_loss=inf"]
    monitor.check()  # forgotten once reported: a rolled-back run starts clean
    assert int(monitor.first_step.numpy()) == 0


def test_the_monitor_sees_a_nan_on_any_replica(mirrored):
    with mirrored.scope():
        monitor = nonfinite.NonFiniteMonitor(["d_loss"])

    def replica_step():
        replica = tf.distribute.get_replica_context().replica_id_in_sync_group
        value = tf.where(tf.equal(replica, 1), math.nan, 1.0)  # replica 1 alone
        monitor.update(tf.constant(6, tf.int64), {"d_loss": value})

    tf.function(lambda: mirrored.run(replica_step))()
    with pytest.raises(nonfinite.NonFiniteError, match="at training step 7: d_loss=nan"):
        monitor.check()


class AtStep(keras.callbacks.Callback):
    """Calls ``action(model)`` after the batch that completes step ``step``."""

    def __init__(self, step, action):
        super().__init__()
        self.step, self.action = step, action

    def on_train_batch_end(self, batch, logs=None):
        if self.model.completed_steps() == self.step:
            self.action(self.model)


def poison(model):
    """Sets one D weight to NaN."""
    kernel = model.discriminator.trainable_variables[0]
    kernel.assign(tf.fill(kernel.shape, float("nan")))


def interrupt(model):
    raise KeyboardInterrupt


@pytest.mark.slow
def test_a_nan_between_checks_is_reported_with_its_step_and_nothing_of_it_is_saved(tmp_path):
    # Checks (and logs) every 4 steps, checkpoints every 4: the NaN of step 6 is only
    # read at step 8, before checkpoint 8 would be written.
    config = small_config(epochs=2, steps_per_epoch=8, checkpoint_every_steps=4,
                          log_every_steps=4, export=False)
    with pytest.raises(nonfinite.NonFiniteError) as err:
        loop.train(config, str(tmp_path), verbose=0, source=generated_source(80),
                   callbacks=[AtStep(5, poison)])
    assert err.value.step == 6 and "d_loss=nan" in err.value.quantities
    assert tf.train.latest_checkpoint(str(tmp_path / "checkpoints")).endswith("ckpt-4")


def tensorboard_steps(logdir, tag):
    steps = []
    for event_file in sorted(logdir.iterdir()):
        for event in tf.compat.v1.train.summary_iterator(str(event_file)):
            steps += [event.step for value in event.summary.value if value.tag == tag]
    return steps


class Seen(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.batches = []

    def on_train_batch_end(self, batch, logs=None):
        self.batches.append((batch, self.model.completed_steps()))


@pytest.mark.slow
def test_steps_per_execution_keeps_every_callback_on_its_steps(tmp_path):
    config = small_config(epochs=3, steps_per_epoch=4, steps_per_execution=2,
                          checkpoint_every_steps=2, log_every_steps=2, checkpoints_to_keep=10)
    seen = Seen()
    result = loop.train(config, str(tmp_path), verbose=0, source=generated_source(),
                        callbacks=[seen])
    assert result["step"] == 12
    # Keras calls the batch hooks once per execution of 2 steps, with the last index.
    assert seen.batches == [(1, 2), (3, 4), (1, 6), (3, 8), (1, 10), (3, 12)]
    ckpts = sorted(int(p.name.split("-")[1].split(".")[0])
                   for p in (tmp_path / "checkpoints").glob("ckpt-*.index"))
    assert ckpts == [0, 2, 4, 6, 8, 10, 12]
    assert tensorboard_steps(tmp_path / "tensorboard", "step/d_loss") == [2, 4, 6, 8, 10, 12]
    assert tensorboard_steps(tmp_path / "tensorboard", "epoch/d_loss") == [4, 8, 12]
    assert sorted(p.name for p in (tmp_path / "samples").iterdir()) == [
        "epoch_0001.png", "epoch_0002.png", "epoch_0003.png", "real.png"]


@pytest.mark.slow
def test_steps_per_execution_that_splits_an_epoch_is_refused_before_training(tmp_path):
    with pytest.raises(ValueError, match="does not divide the 5 steps per epoch"):
        small_config(steps_per_epoch=5, steps_per_execution=2,
                     checkpoint_every_steps=0, log_every_steps=2).validate()
    with pytest.raises(ValueError, match="--checkpoint_every_steps=3 is not a multiple"):
        small_config(checkpoint_every_steps=3, steps_per_execution=2).validate()
    with pytest.raises(ValueError, match="--log_every_steps=5 is not a multiple"):
        small_config(checkpoint_every_steps=0, log_every_steps=5,
                     steps_per_execution=2).validate()
    # One pass over 40 images in batches of 8 is 5 steps: known only from the data.
    config = small_config(steps_per_epoch=0, checkpoint_every_steps=0, log_every_steps=2,
                          steps_per_execution=2)
    with pytest.raises(ValueError, match="does not divide the 5 steps per epoch"):
        loop.train(config, str(tmp_path / "new"), verbose=0, source=generated_source(40))
    assert not (tmp_path / "new").exists()  # nothing written, not even config.json
    # ... and before an existing run would be replaced
    other = tmp_path / "other"
    loop.train(small_config(epochs=1, export=False), str(other), verbose=0,
               source=generated_source())
    with pytest.raises(ValueError, match="does not divide"):
        loop.train(config, str(other), verbose=0, source=generated_source(40),
                   existing_run="overwrite")
    assert (other / "checkpoints").exists() and train_config.load(str(other)).optim.epochs == 1


def test_steps_per_execution_with_several_replicas_is_refused(tmp_path, mirrored):
    config = small_config(checkpoint_every_steps=0, log_every_steps=2, steps_per_epoch=4,
                          steps_per_execution=2)
    with pytest.raises(ValueError, match="does not work with 2 replicas"):
        loop.train(config, str(tmp_path), verbose=0, strategy=mirrored,
                   source=generated_source())
    assert not tmp_path.joinpath("config.json").exists()


@pytest.mark.slow
def test_resuming_where_a_new_steps_per_execution_cannot_land_is_refused(tmp_path):
    config = small_config(epochs=2, steps_per_epoch=4, export=False)  # checkpoints every step
    with pytest.raises(KeyboardInterrupt):
        loop.train(config, str(tmp_path), verbose=0, source=generated_source(),
                   callbacks=[AtStep(3, interrupt)])
    faster = config.replace(steps_per_execution=2, checkpoint_every_steps=2, log_every_steps=2)
    with pytest.raises(ValueError, match="resumes at step 3, 3 steps into its epoch"):
        loop.train(faster, str(tmp_path), verbose=0, source=generated_source())
    assert train_config.load(str(tmp_path)).run.steps_per_execution == 1  # config.json kept
    # Finishing that epoch with the old value, then the new one, works.
    loop.train(config.replace(epochs=1), str(tmp_path), verbose=0,
               source=generated_source())
    result = loop.train(faster, str(tmp_path), verbose=0, source=generated_source())
    assert result["step"] == 8




def test_callbacks_count_steps_on_the_host_exactly():
    class Model:
        def __init__(self):
            self.reads = 0

        def completed_steps(self):
            self.reads += 1
            return 10

    cb = callbacks.RunCallback()
    model = Model()
    cb.set_model(model)
    cb.set_params({"steps": 6})
    cb.on_train_begin()
    cb.on_epoch_begin(0)
    assert [cb._advance(b) for b in (1, 3, 5)] == [10, 12, 14] and cb.step == 16
    assert model.reads == 1  # one read per fit, none per batch
    cb.on_epoch_begin(1)
    cb._advance(7)  # the nominal index of a last execution cut short by the data
    assert cb.step == 22
    assert cb.crossed(19, 22, 4) and not cb.crossed(20, 23, 4) and not cb.crossed(3, 9, 0)


