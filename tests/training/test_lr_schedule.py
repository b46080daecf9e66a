"""Learning-rate schedules: Mimicry's linear decay of the train step, resolved once per run
and recorded, so that extending a run keeps its schedule; old configurations stay
constant."""

import json
import logging

import keras
import numpy as np
import pytest
import tensorflow as tf

from helpers import LATENT, images, small_config, tiny_dcgan
from tf_asgan import errors, optimizers
from tf_asgan.asgan import ASGAN
from tf_asgan.config import train_config
from tf_asgan.config.method import MethodConfig
from tf_asgan.config.sections import OptimConfig
from tf_asgan.training import builder, loop, rundir

LR = 2e-4


def mimicry_lr(lr0, global_step, num_steps):
    """Mimicry's LRScheduler.linear_decay with lr_value_range (lr0, 0) and lr_step_range
    (0, num_steps), transcribed (torch_mimicry/training/scheduler.py)."""
    v1, v2, s1, s2 = lr0, 0.0, 0, num_steps
    if global_step <= s1:
        return v1
    if global_step >= s2:
        return v2
    return v1 + (global_step - s1) / (s2 - s1) * (v2 - v1)


@pytest.mark.parametrize("t", [0, 1, 7, 99, 100, 150])
def test_linear_decay_is_mimicrys_formula(t):
    # Mimicry sets the rate of step t (t steps done) after its global_step += 1 reaches t:
    # lr0 at step 0, lr0 / T at the last step T - 1, 0 from T on.
    got = optimizers.linear_decay(LR, t, 100).numpy()
    assert got.dtype == np.float32
    assert got == np.float32(mimicry_lr(LR, t, 100))
    assert got == np.float32(LR * max(0.0, 1.0 - t / 100))


def test_the_optimizer_follows_the_train_step_not_its_iterations():
    step = keras.Variable(0, dtype="int64", trainable=False)
    opt = optimizers.adam(1e-3, 0.5, 0.999, schedule="linear", decay_steps=10, step=step)
    w = keras.Variable([0.0, 0.0])
    opt.build([w])
    step.assign(7)  # the optimizer has made no update: its iterations are 0
    opt.apply_gradients([(tf.constant([1.0, -1.0]), w)])
    # Adam's first update of gradient g = +-1: lr * sqrt(1 - b2) / (sqrt(1 - b2) + eps)
    lr = 1e-3 * (1 - 7 / 10)
    size = lr * np.sqrt(1 - 0.999) / (np.sqrt(1 - 0.999) + 1e-7)
    np.testing.assert_allclose(w.numpy(), [-size, size], rtol=1e-5)
    assert int(opt.iterations) == 1


def test_every_update_of_a_step_uses_that_steps_rate():
    g, d = tiny_dcgan()
    gan = ASGAN(g, d, latent_dim=LATENT, d_steps=2, seed=0)
    rates = dict(schedule="linear", decay_steps=5, step=gan.step_counter)
    gan.compile(d_optimizer=optimizers.adam(LR, 0.5, 0.999, **rates),
                g_optimizer=optimizers.adam(LR, 0.5, 0.999, **rates))
    seen = []

    class Rates(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            seen.append((float(gan.d_optimizer.learning_rate),
                         float(gan.g_optimizer.learning_rate)))

    x = tf.data.Dataset.from_tensor_slices(images(12)).batch(4)  # 3 steps of 2 D updates
    gan.fit(x, epochs=1, verbose=0, callbacks=[Rates()])
    expected = [np.float32(LR * (1 - t / 5)) for t in range(3)]
    assert [r[0] for r in seen] == expected and [r[1] for r in seen] == expected
    # the optimizer's own counts differ: D's is 2 x 2 (with AS-GAN's second update) per step
    assert int(gan.d_optimizer.iterations) == 12 and gan.completed_steps() == 3
    assert float(gan.d_optimizer.learning_rate) == np.float32(LR * (1 - 3 / 5))


def test_builder_wires_the_schedule_and_constant_stays_a_float():
    config = small_config(width=0.0625, lr_schedule="linear", lr_decay_steps=4, lr_g=1e-4)
    gan = builder.model_of(config, jit_compile=False)
    gan.step_counter.assign(3)
    assert float(gan.g_optimizer.learning_rate) == np.float32(1e-4 * (1 - 3 / 4))
    assert float(gan.d_optimizer.learning_rate) == np.float32(2e-4 * (1 - 3 / 4))
    constant = builder.model_of(small_config(width=0.0625), jit_compile=False)
    assert isinstance(constant.g_optimizer._learning_rate, keras.Variable)


def test_an_old_config_without_the_fields_loads_constant_and_off():
    values = small_config().to_dict()
    for name in ("lr_schedule", "lr_decay_steps", "ema_decay", "ema_start_step"):
        del values[name]
    config = train_config.TrainConfig.from_dict(values).validate()
    assert (config.optim.lr_schedule, config.optim.lr_decay_steps) == ("constant", 0)
    assert (config.optim.ema_decay, config.optim.ema_start_step) == (0.0, 0)


@pytest.mark.parametrize("changes,words", [
    (dict(lr_decay_steps=10), "only used by --lr_schedule=linear"),
    (dict(lr_schedule="cosine"), "Unknown lr_schedule"),
    (dict(ema_decay=1.0), "ema_decay must lie in [0, 1)"),
    (dict(ema_start_step=5), "ema_start_step needs an EMA"),
])
def test_bad_values_are_refused(changes, words):
    with pytest.raises(errors.InputError, match=words.replace("[", r"\[").replace(")", r"\)")):
        OptimConfig(**changes).validate()


def test_linear_needs_its_steps_in_the_library():
    with pytest.raises(errors.InputError, match="decay_steps >= 1"):
        optimizers.adam(LR, 0.5, 0.999, schedule="linear", decay_steps=0,
                        step=keras.Variable(0))


def test_d_steps_help_states_the_batch_mapping():
    help_text = {f.name: f.metadata["help"] for f in MethodConfig.fields()}["d_steps"]
    assert "--batch_size=320 --d_steps=5" in help_text


def test_extending_a_run_keeps_its_recorded_schedule(tmp_path, caplog):
    workdir = str(tmp_path)
    config = small_config(lr_schedule="linear", epochs=2)  # 3 steps per epoch
    run = rundir.RunDir.resolve(config, workdir)
    started = run.lr_decay(config, 6)
    assert started.optim.lr_decay_steps == 6
    run.save_config(started)
    with open(f"{workdir}/config.json") as f:
        assert json.load(f)["lr_decay_steps"] == 6
    # extended from the library (lr_decay_steps=0 again) or as train.py does (the
    # recorded value): the same experiment, the same schedule, and a warning
    for extended in (config.replace(epochs=4), started.replace(epochs=4)):
        run = rundir.RunDir.resolve(extended, workdir)
        with caplog.at_level(logging.WARNING, logger="tf_asgan"):
            resolved = run.lr_decay(extended, 12)
        assert resolved.optim.lr_decay_steps == 6
        assert "its steps 7 to 12 (counted from 1) train with learning rate 0" in caplog.text
    with pytest.raises(rundir.ConfigMismatchError, match="lr_decay_steps: 6 -> 12"):
        rundir.RunDir.resolve(config.replace(epochs=4, lr_decay_steps=12), workdir)


@pytest.mark.slow
def test_a_trained_run_records_its_decay_and_keeps_it_when_extended(tmp_path):
    config = small_config(width=0.125, export=False, epochs=1, lr_schedule="linear")
    loop.train(config, str(tmp_path), verbose=0)
    assert train_config.load(str(tmp_path)).optim.lr_decay_steps == 3
    loop.train(config.replace(epochs=2), str(tmp_path), verbose=0)
    stored = train_config.load(str(tmp_path))
    assert stored.optim.lr_decay_steps == 3 and stored.optim.epochs == 2
    gan, _, _ = rundir.restore_model(str(tmp_path))
    assert gan.completed_steps() == 6 and float(gan.g_optimizer.learning_rate) == 0.0
