"""Reliability: kills, crashes mid-write, corrupt checkpoints, NaNs, existing runs, exports."""

import glob
import json
import logging
import os
import signal
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from helpers import REPO, Steps, generated_source, script_env, small_config
from tf_asgan import export
from tf_asgan.training import builder, callbacks, checkpoints, loop, rundir
from tf_asgan.utils import io, nonfinite


def recorded_steps(workdir):
    return [int(p.rsplit("-", 1)[1])
            for p in checkpoints.recorded_checkpoints(os.path.join(workdir, "checkpoints"))]




# -- a crash during a checkpoint write ---------------------------------------------------

CRASH_DURING_WRITE = """
import glob, os, signal, sys
import tensorflow as tf
from tf_asgan.training import loop
from helpers import generated_source, small_config

original = tf.train.Checkpoint._write

def crashing_write(self, file_prefix, options=None):
    if file_prefix.endswith("ckpt-4"):
        # The files are written but not recorded yet; half of the data reaches the disk.
        original(self, file_prefix, options=tf.train.CheckpointOptions())
        data = glob.glob(file_prefix + ".data*")[0]
        with open(data, "r+b") as f:
            f.truncate(os.path.getsize(data) // 2)
        os.kill(os.getpid(), signal.SIGKILL)
    return original(self, file_prefix, options=options)

tf.train.Checkpoint._write = crashing_write
loop.train(small_config(), sys.argv[1], verbose=0, source=generated_source())
"""


@pytest.mark.slow
def test_a_crash_during_a_checkpoint_write_leaves_the_previous_one_in_use(tmp_path):
    workdir = str(tmp_path)
    proc = subprocess.run([sys.executable, "-c", CRASH_DURING_WRITE, workdir], cwd=REPO,
                          env=script_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    ckpt_dir = os.path.join(workdir, "checkpoints")
    assert os.path.exists(os.path.join(ckpt_dir, "ckpt-4.index"))  # the half-written one
    assert tf.train.latest_checkpoint(ckpt_dir).endswith("ckpt-3")  # ... is not recorded
    config = small_config()
    gan = builder.model_of(config)
    assert checkpoints.restore_latest(builder.checkpoint_for(gan), ckpt_dir).endswith("ckpt-3")
    assert gan.completed_steps() == 3

    steps = Steps()
    result = loop.train(config, workdir, verbose=0, source=generated_source(),
                        callbacks=[steps])
    assert steps.seen == [4, 5, 6] and result["step"] == 6
    assert export.read_metadata(result["export"])["step"] == 6


# -- corrupt checkpoints are reported and not loaded -------------------------------------


def flip_a_byte(prefix):
    path = glob.glob(prefix + ".data*")[0]
    with open(path, "r+b") as f:
        f.seek(os.path.getsize(path) // 2)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0xFF]))


@pytest.mark.slow
def test_a_corrupt_latest_checkpoint_is_moved_aside_and_the_previous_one_used(tmp_path,
                                                                              caplog):
    config = small_config(epochs=2, export=False)
    workdir = str(tmp_path)
    loop.train(config, workdir, verbose=0, source=generated_source())
    ckpt_dir = os.path.join(workdir, "checkpoints")
    assert recorded_steps(workdir) == [4, 5, 6]
    flip_a_byte(os.path.join(ckpt_dir, "ckpt-6"))

    steps = Steps()
    with caplog.at_level(logging.WARNING, logger="tf_asgan"):
        result = loop.train(config.replace(epochs=3), workdir, verbose=0,
                            source=generated_source(), callbacks=[steps])
    assert "ckpt-6 is unreadable (" in caplog.text and "Checksum does not match" in caplog.text
    assert os.path.exists(os.path.join(ckpt_dir, "corrupt", "ckpt-6.index"))
    assert steps.seen == [6, 7, 8, 9]  # from step 5: the rest of epoch 2, then epoch 3
    assert result["step"] == 9 and recorded_steps(workdir)[-1] == 9


@pytest.mark.slow
def test_when_every_checkpoint_is_corrupt_nothing_is_loaded(tmp_path):
    config = small_config(epochs=1, export=False, checkpoints_to_keep=2)
    workdir = str(tmp_path)
    loop.train(config, workdir, verbose=0, source=generated_source())
    for step in recorded_steps(workdir):
        flip_a_byte(os.path.join(workdir, "checkpoints", f"ckpt-{step}"))
    for _ in range(2):  # and again on the next start: never a silent restart from step 0
        with pytest.raises(checkpoints.CorruptCheckpointError, match="No readable checkpoint"
                           ".*ckpt-2 .*another --workdir, or delete"):
            loop.train(config.replace(epochs=2), workdir, verbose=0,
                       source=generated_source())
    assert os.path.exists(os.path.join(workdir, "checkpoints", "corrupt", "ckpt-3.index"))


@pytest.mark.slow
def test_a_relative_workdir_resumes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # train.py's default workdir is relative (runs/demo)
    config = small_config(epochs=1, export=False)
    loop.train(config, os.path.join("runs", "x"), verbose=0, source=generated_source())
    steps = Steps()
    result = loop.train(config.replace(epochs=2), os.path.join("runs", "x"),
                        verbose=0, source=generated_source(), callbacks=[steps])
    assert steps.seen == [4, 5, 6] and result["step"] == 6
    gan, _, path = rundir.restore_model(os.path.join("runs", "x"))
    assert path == os.path.join("runs", "x", "checkpoints", "ckpt-6")


@pytest.mark.slow
def test_a_checkpoint_of_another_network_is_an_error_not_corruption(tmp_path):
    config = small_config(epochs=1, export=False)
    loop.train(config, str(tmp_path), verbose=0, source=generated_source())
    other = builder.model_of(config.replace(latent_dim=8))
    with pytest.raises((AssertionError, ValueError), match="incompatible|not bound"):
        checkpoints.restore_latest(builder.checkpoint_for(other),
                                   str(tmp_path / "checkpoints"))
    assert recorded_steps(str(tmp_path)) == [1, 2, 3]  # nothing moved


# -- time-based checkpoints --------------------------------------------------------------


class FakeManager:
    def __init__(self):
        self.saved = []

    def save(self, checkpoint_number):
        self.saved.append(checkpoint_number)


class FakeModel:
    def __init__(self):
        self.step = 0
        self.generator = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
        self.discriminator = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])

    def completed_steps(self):
        return self.step


def test_checkpointer_saves_every_m_minutes_and_at_epoch_ends():
    now = [0.0]
    manager, model = FakeManager(), FakeModel()
    cb = callbacks.Checkpointer(manager, every_minutes=1.0, clock=lambda: now[0])
    cb.set_model(model)
    cb.on_train_begin()
    for step in range(1, 8):  # 25 s per step
        now[0] += 25.0
        model.step = step
        cb.on_train_batch_end(step - 1)
    assert manager.saved == [3, 6]  # at 75 s, then 60 s after that save (150 s)
    cb.on_epoch_end(0)
    assert manager.saved == [3, 6, 7]


def test_checkpointer_refuses_non_finite_weights_and_names_them():
    manager, model = FakeManager(), FakeModel()
    cb = callbacks.Checkpointer(manager, every_steps=1)
    cb.set_model(model)
    cb.on_train_begin()
    model.step = 1
    cb.on_train_batch_end(0)
    kernel = model.discriminator.layers[0].kernel
    kernel.assign(np.array([[1.0], [np.inf]], np.float32))
    model.step = 2
    with pytest.raises(nonfinite.NonFiniteError,
                       match=f"Non-finite weights at training step 2: {kernel.path}"):
        cb.on_train_batch_end(1)
    assert manager.saved == [1]


def test_nonfinite_variables_matches_a_direct_check():
    rng = np.random.default_rng(0)
    values = [rng.normal(size=(3, 4)).astype(np.float32) for _ in range(5)]
    values[1][2, 3], values[4][0, 0] = np.nan, -np.inf
    variables = [tf.Variable(v, name=f"v{i}") for i, v in enumerate(values)]
    expected = [v.name for v, a in zip(variables, values) if not np.isfinite(a).all()]
    assert nonfinite.nonfinite_variables(variables) == expected == ["v1:0", "v4:0"]


# -- bad numbers ---------------------------------------------------------------------------


class PoisonAt(keras.callbacks.Callback):
    """Before every step once ``step`` steps are done, sets one D weight to NaN, ``times``
    times at most."""

    def __init__(self, step, times=1):
        super().__init__()
        self.step, self.times = step, times

    def on_train_batch_begin(self, batch, logs=None):
        if self.model.completed_steps() >= self.step and self.times:
            self.times -= 1
            kernel = self.model.discriminator.trainable_variables[0]
            kernel.assign(tf.fill(kernel.shape, float("nan")))


@pytest.mark.slow
def test_an_injected_nan_stops_training_names_the_step_and_keeps_the_last_good_checkpoint(
        tmp_path):
    config = small_config()
    with pytest.raises(nonfinite.NonFiniteError) as err:
        loop.train(config, str(tmp_path), verbose=0, source=generated_source(),
                   callbacks=[PoisonAt(4)])
    message = str(err.value)
    assert message.startswith("Non-finite losses at training step 5: ")
    assert "d_loss=nan" in message and "D_real=nan" in message
    assert "last good checkpoint is " + str(tmp_path / "checkpoints" / "ckpt-4") in message
    assert "nothing was exported" in message and "--on_nonfinite=rollback" in message
    assert err.value.step == 5
    assert recorded_steps(str(tmp_path))[-1] == 4
    assert not (tmp_path / "generator").exists()
    gan = builder.model_of(config)
    builder.checkpoint_for(gan).restore(str(tmp_path / "checkpoints" / "ckpt-4"))
    assert nonfinite.nonfinite_variables(gan.discriminator.variables) == []


@pytest.mark.slow
def test_rollback_restores_the_last_good_checkpoint_and_finishes(tmp_path, caplog):
    config = small_config(on_nonfinite="rollback")
    steps = Steps()
    with caplog.at_level(logging.WARNING, logger="tf_asgan"):
        result = loop.train(config, str(tmp_path), verbose=0, source=generated_source(),
                            callbacks=[PoisonAt(4), steps])
    assert "Rolled back to " + str(tmp_path / "checkpoints" / "ckpt-4") in caplog.text
    assert result["rollbacks"] == 1 and result["step"] == 6
    assert steps.seen == [1, 2, 3, 4, 5, 6]  # the failed step 5 stopped before `steps`
    # The rollback count is part of the draws' seeds, and checkpointed with the weights.
    gan = builder.model_of(config)
    checkpoints.restore_latest(builder.checkpoint_for(gan), str(tmp_path / "checkpoints"))
    assert gan.completed_steps() == 6 and int(gan.rollback_count.numpy()) == 1
    loaded = tf.saved_model.load(result["export"])
    assert np.isfinite(loaded.sample(tf.constant(4), tf.constant(0))["images"].numpy()).all()


@pytest.mark.slow
def test_rollback_gives_up_after_max_rollbacks(tmp_path):
    config = small_config(on_nonfinite="rollback", max_rollbacks=2)
    with pytest.raises(nonfinite.NonFiniteError, match="2 rollback\\(s\\) did not help"):
        loop.train(config, str(tmp_path), verbose=0, source=generated_source(),
                   callbacks=[PoisonAt(4, times=10)])
    assert not (tmp_path / "generator").exists()


@pytest.mark.slow
def test_a_nan_in_the_first_step_rolls_back_to_the_initial_weights(tmp_path, caplog):
    config = small_config(epochs=1, on_nonfinite="rollback", export=False)
    steps = Steps()
    with caplog.at_level(logging.WARNING, logger="tf_asgan"):
        result = loop.train(config, str(tmp_path), verbose=0, source=generated_source(),
                            callbacks=[PoisonAt(0), steps])
    assert "training step 1: " in caplog.text and "ckpt-0 (rollback 1" in caplog.text
    assert result["rollbacks"] == 1 and steps.seen == [1, 2, 3]


# -- an existing workdir and an existing export ------------------------------------------


@pytest.mark.slow
def test_existing_run_new_writes_beside_it_and_overwrite_replaces_only_the_run(tmp_path):
    workdir = str(tmp_path / "run")
    config = small_config(epochs=1, export=False)
    loop.train(config, workdir, verbose=0, source=generated_source())
    notes = tmp_path / "run" / "notes.txt"
    notes.write_text("mine")
    other = config.replace(lr_d=4e-4)
    with pytest.raises(rundir.ConfigMismatchError, match="--existing_run=new"):
        loop.train(other, workdir, verbose=0, source=generated_source())

    result = loop.train(other, workdir, verbose=0, source=generated_source(),
                        existing_run="new")
    assert result["workdir"] == workdir + "_2" and result["step"] == 3
    # The same command again resumes that run (here: finished) instead of a third one ...
    steps = Steps()
    result = loop.train(other.replace(epochs=2), workdir, verbose=0,
                        source=generated_source(), existing_run="new", callbacks=[steps])
    assert result["workdir"] == workdir + "_2" and steps.seen == [4, 5, 6]
    # ... and a third experiment goes to the next free one.
    third = config.replace(lr_g=1e-4)
    result = loop.train(third, workdir, verbose=0, source=generated_source(),
                        existing_run="new")
    assert result["workdir"] == workdir + "_3"
    assert not os.path.exists(workdir + "_4")
    with open(os.path.join(workdir, "config.json")) as f:
        assert json.load(f)["lr_d"] == 2e-4  # the first run is untouched

    steps = Steps()
    result = loop.train(other, workdir, verbose=0, source=generated_source(),
                        existing_run="overwrite", callbacks=[steps])
    assert steps.seen == [1, 2, 3]  # from scratch
    with open(os.path.join(workdir, "config.json")) as f:
        assert json.load(f)["lr_d"] == 4e-4
    assert notes.read_text() == "mine"  # not part of the run: kept
    # Overwriting is not repeated: the same command again resumes (a finished run).
    steps = Steps()
    loop.train(other, workdir, verbose=0, source=generated_source(),
               existing_run="overwrite", callbacks=[steps])
    assert steps.seen == [] and recorded_steps(workdir)[-1] == 3


def test_a_foreign_folder_at_the_export_path_is_refused_before_training(tmp_path):
    (tmp_path / "generator").mkdir()
    (tmp_path / "generator" / "weights.h5").write_text("someone's")
    steps = Steps()
    with pytest.raises(rundir.ExportConflictError, match="is not a tf_asgan export"):
        loop.train(small_config(), str(tmp_path), verbose=0, source=generated_source(),
                   callbacks=[steps])
    assert steps.seen == [] and not (tmp_path / "checkpoints").exists()
    assert (tmp_path / "generator" / "weights.h5").read_text() == "someone's"


def test_an_unreadable_export_is_not_called_foreign(tmp_path, monkeypatch):
    # (Root reads any file whatever its mode, so the failing read is simulated.)
    (tmp_path / "generator" / "assets.extra").mkdir(parents=True)

    def denied(path):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(export, "read_metadata", denied)
    with pytest.raises(rundir.ExportUnreadableError, match="Permission denied.*--noexport"):
        loop.train(small_config(), str(tmp_path), verbose=0, source=generated_source())
    assert not (tmp_path / "checkpoints").exists()


@pytest.mark.slow
def test_an_extended_run_keeps_its_earlier_export(tmp_path):
    config = small_config(epochs=1)
    first = loop.train(config, str(tmp_path), verbose=0, source=generated_source())
    z = tf.constant(np.zeros((1, 16), np.float32))
    loaded = tf.saved_model.load(first["export"])  # kept referenced (docs/dependencies.md)
    before = loaded.generate(z)["images"].numpy()
    result = loop.train(config.replace(epochs=2), str(tmp_path), verbose=0,
                        source=generated_source())
    assert export.read_metadata(result["export"])["step"] == 6
    kept = str(tmp_path / "generator_step3")
    assert export.read_metadata(kept)["step"] == 3
    loaded = tf.saved_model.load(kept)
    np.testing.assert_array_equal(loaded.generate(z)["images"].numpy(), before)


# -- metric logs written by a killed run ---------------------------------------------------


def test_a_half_written_metrics_line_is_ignored_and_the_next_starts_a_new_line(tmp_path,
                                                                               caplog):
    path = tmp_path / "metrics.jsonl"
    path.write_text(json.dumps({"metrics": {"fid": 12.5}}) + "\n" + '{"metrics": {"fi')
    with caplog.at_level(logging.WARNING, logger="tf_asgan"):
        cb = callbacks.Evaluate(None, 1, 1, str(path))
    assert cb.best_fid == 12.5 and "line 2 is not a complete record" in caplog.text
    io.append_line(str(path), json.dumps({"metrics": {"fid": 3.0}}))
    lines = path.read_text().splitlines()
    assert json.loads(lines[-1]) == {"metrics": {"fid": 3.0}} and len(lines) == 3
    assert callbacks.Evaluate(None, 1, 1, str(path)).best_fid == 3.0


@pytest.mark.slow
def test_readers_skip_a_corrupt_latest_checkpoint_without_moving_it(tmp_path, caplog):
    loop.train(small_config(epochs=1, export=False), str(tmp_path), verbose=0,
               source=generated_source())
    latest = str(tmp_path / "checkpoints" / "ckpt-3")
    flip_a_byte(latest)
    with caplog.at_level(logging.WARNING, logger="tf_asgan"):
        _, _, path = rundir.restore_generator(str(tmp_path))
    assert path.endswith("ckpt-2") and "ckpt-3 is unreadable" in caplog.text
    assert os.path.exists(latest + ".index")  # a reader does not move a run's files
    with pytest.raises(checkpoints.CorruptCheckpointError,
                       match="ckpt-3 cannot be read .*Checksum does not match"):
        rundir.restore_generator(str(tmp_path), latest)


def test_a_generator_with_a_nan_weight_is_not_exported(tmp_path):
    gan = builder.model_of(small_config())
    kernel = gan.generator.trainable_variables[0]
    kernel.assign(tf.fill(kernel.shape, float("inf")))
    with pytest.raises(nonfinite.NonFiniteError,
                       match=f"generator weights \\(not exported\\) .*{kernel.path}"):
        export.export_generator(gan.generator, str(tmp_path / "g"), metadata={"step": 7})
    assert not os.path.exists(tmp_path / "g") and os.listdir(tmp_path) == []


def test_evaluation_refuses_non_finite_weights_before_evaluating(tmp_path):
    model = FakeModel()
    model.step = 9
    model.generator.layers[0].kernel.assign(np.full((2, 1), np.nan, np.float32))
    cb = callbacks.Evaluate(None, 1, 1, str(tmp_path / "metrics.jsonl"))  # no evaluator
    cb.set_model(model)
    with pytest.raises(nonfinite.NonFiniteError, match="weights at training step 9"):
        cb.on_epoch_end(0)
    assert not (tmp_path / "metrics.jsonl").exists() and cb.results == []


@pytest.mark.parametrize("prefix,step", [("runs/x/checkpoints/ckpt-120", 120),
                                         ("runs/x/best/best-7", 7), ("runs/x/best/best-7/", 7),
                                         ("runs/x/checkpoints/final", None)])
def test_one_parser_reads_the_step_of_every_checkpoint_name(prefix, step):
    assert checkpoints.step_of(prefix) == step
