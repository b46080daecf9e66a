"""Runs stopped by Ctrl-C, a kill or a full disk: one line saying where the run resumes,
and the stopped epoch's outputs (sample grid, history.csv row, evaluation) written when
the resumed run finishes that epoch."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
import types

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from helpers import REPO, Interrupt, generated_source, script_env, small_config
from tf_asgan import errors
from tf_asgan.training import builder, callbacks, checkpoints, loop
from tf_asgan.utils import images

SPE = 3  # small_config's steps per epoch


def tiny(**changes):
    return small_config(width=0.125, export=False, checkpoints_to_keep=10, **changes)


def train(config, workdir, **kwargs):
    return loop.train(config, str(workdir), verbose=0, source=generated_source(), **kwargs)


def history(workdir):
    with open(os.path.join(workdir, "history.csv")) as f:
        return list(csv.DictReader(f))


def generator_at(config, prefix):
    """The generator of checkpoint ``prefix``, read into a fresh model."""
    gan = builder.model_of(config)
    builder.checkpoint_for(gan).restore(prefix).assert_existing_objects_matched()
    return gan


def fake_fid(generator):
    """A number that depends on every generator weight (stands in for FID)."""
    return float(sum(np.abs(v.numpy()).sum() for v in generator.trainable_variables))


class FakeEvaluator:
    """An evaluator whose 'FID' is :func:`fake_fid` (no network, no real statistics)."""
    protocol = types.SimpleNamespace(num_samples=0)
    network = types.SimpleNamespace(name="fake")

    def evaluate(self, generator):
        return {"metrics": {"fid": fake_fid(generator)}}


class RaiseAt(keras.callbacks.Callback):
    """Raises ``error`` after step ``step``'s batch hooks (after its checkpoint, if any)."""

    def __init__(self, step, error=Interrupt):
        super().__init__()
        self.step, self.error = step, error

    def on_train_batch_end(self, batch, logs=None):
        if self.model.completed_steps() == self.step:
            raise self.error


@pytest.mark.slow
def test_an_epoch_stopped_after_its_last_step_gets_its_outputs_on_resume(tmp_path,
                                                                          monkeypatch):
    monkeypatch.setattr(builder, "make_evaluator", lambda *a, **k: FakeEvaluator())
    config = tiny(eval_every_epochs=1)
    with pytest.raises(Interrupt):  # after epoch 1's last step, before its epoch end
        train(config, tmp_path, callbacks=[RaiseAt(SPE)])
    assert not os.path.exists(tmp_path / "samples" / "epoch_0001.png")
    train(config, tmp_path)

    rows = history(tmp_path)
    assert [(r["epoch"], r["step"]) for r in rows] == [("1", "3"), ("2", "6")]
    with open(tmp_path / "metrics.jsonl") as f:
        records = [json.loads(line) for line in f]
    assert [(r["epoch"], r["step"]) for r in records] == [(1, 3), (2, 6)]
    # The outputs are those of the weights at the end of epoch 1 (checkpoint 3).
    gan = generator_at(config, str(tmp_path / "checkpoints" / "ckpt-3"))
    assert records[0]["metrics"]["fid"] == pytest.approx(fake_fid(gan.generator), rel=1e-6)
    latents = builder.fixed_latents(config.optim.seed, config.model.latent_dim)
    expected = images.grid(gan.generate(tf.constant(latents)).numpy(), 8)
    written = np.asarray(Image.open(tmp_path / "samples" / "epoch_0001.png"))
    assert np.abs(written.astype(int) - expected.astype(int)).max() <= 1


@pytest.mark.slow
def test_an_epoch_end_done_again_replaces_its_rows_instead_of_repeating_them(tmp_path,
                                                                             monkeypatch):
    monkeypatch.setattr(builder, "make_evaluator", lambda *a, **k: FakeEvaluator())
    config = tiny(eval_every_epochs=1)
    save_at_epoch_end = callbacks.Checkpointer.on_epoch_end

    def stopped_before_saving(self, epoch, logs=None):
        if epoch == 0:  # epoch 1's outputs are written, its checkpoint is not
            raise Interrupt
        save_at_epoch_end(self, epoch, logs)

    monkeypatch.setattr(callbacks.Checkpointer, "on_epoch_end", stopped_before_saving)
    with pytest.raises(Interrupt):
        train(config, tmp_path)
    assert [r["epoch"] for r in history(tmp_path)] == ["1"]
    monkeypatch.setattr(callbacks.Checkpointer, "on_epoch_end", save_at_epoch_end)
    train(config, tmp_path)  # resumes at step 2, does step 3 and epoch 1's end again
    rows = history(tmp_path)
    assert [(r["epoch"], r["steps_in_mean"]) for r in rows] == [("1", "1"), ("2", "3")]
    with open(tmp_path / "metrics.jsonl") as f:
        assert [json.loads(line)["epoch"] for line in f] == [1, 2]


@pytest.mark.slow
def test_ctrl_c_during_training_says_in_one_line_where_the_run_resumes(tmp_path):
    with pytest.raises(KeyboardInterrupt) as caught:
        train(tiny(), tmp_path, callbacks=[RaiseAt(4, KeyboardInterrupt)])
    err = caught.value
    latest = tf.train.latest_checkpoint(str(tmp_path / "checkpoints"))
    assert latest.endswith("ckpt-4")
    assert isinstance(err, loop.TrainingInterrupted) and "\n" not in str(err)
    assert str(err).startswith("Interrupted at step 4.")
    assert f"resume {tmp_path} from its last checkpoint, {latest} (step 4)" in str(err)
    assert train(tiny(), tmp_path)["step"] == 6


def no_space_at(number, monkeypatch):
    """Makes checkpoint ``number``'s save fail as on a full disk (TensorFlow's own
    message), after it has left a partial file and its temporary folder behind."""
    save = tf.train.CheckpointManager.save

    def full_disk(manager, checkpoint_number=None, **kwargs):
        if checkpoint_number != number:
            return save(manager, checkpoint_number=checkpoint_number, **kwargs)
        prefix = os.path.join(manager.directory, f"ckpt-{number}")
        os.makedirs(prefix + "_temp")
        with open(prefix + ".data-00000-of-00001", "wb") as f:
            f.write(b"\0" * 100)
        raise tf.errors.ResourceExhaustedError(
            None, None, f"{prefix}_temp/part-00000-of-00001.data-00000-of-00001.tempstate1; "
            "No space left on device")

    monkeypatch.setattr(tf.train.CheckpointManager, "save", full_disk)


@pytest.mark.slow
def test_a_full_disk_during_a_checkpoint_names_the_last_good_one(tmp_path, monkeypatch):
    no_space_at(4, monkeypatch)
    with pytest.raises(checkpoints.OutOfSpaceError) as caught:
        train(tiny(), tmp_path)
    err, directory = caught.value, str(tmp_path / "checkpoints")
    assert isinstance(err, errors.TfAsganError) and isinstance(err, OSError)
    latest = tf.train.latest_checkpoint(directory)
    assert latest.endswith("ckpt-3")
    assert "\n" not in str(err)
    assert "No space left on device" in str(err)
    assert f"The last good checkpoint is {latest} (step 3)" in str(err)
    assert sorted(os.listdir(directory)) == sorted(  # the failed write's files are gone
        [f"ckpt-{n}{ext}" for n in range(4) for ext in (".index", ".data-00000-of-00001")]
        + ["checkpoint"])
    monkeypatch.undo()
    assert train(tiny(), tmp_path)["step"] == 6


def test_other_writes_out_of_space_name_the_last_good_checkpoint(tmp_path):
    with pytest.raises(checkpoints.OutOfSpaceError, match="none yet"):
        with checkpoints.space_reported(str(tmp_path)):
            raise OSError(28, "No space left on device", "samples/epoch_0001.png")
    with pytest.raises(PermissionError):  # not a lack of space: unchanged
        with checkpoints.space_reported(str(tmp_path)):
            raise PermissionError(13, "Permission denied")
    with pytest.raises(tf.errors.ResourceExhaustedError):  # e.g. out of GPU memory
        with checkpoints.space_reported(str(tmp_path)):
            raise tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor")


EPOCHS = 8
TRAIN_FLAGS = (f"--epochs={EPOCHS}", "--steps_per_epoch=3", "--batch_size=8", "--latent_dim=16",
               "--width=0.125", "--eval_every_epochs=0", "--noexport",
               "--checkpoint_every_steps=1", "--checkpoints_to_keep=100")


def start_training(workdir, epochs=EPOCHS):
    flags = [f"--epochs={epochs}" if f.startswith("--epochs=") else f for f in TRAIN_FLAGS]
    return subprocess.Popen(
        [sys.executable, os.path.join(REPO, "scripts", "train.py"), f"--workdir={workdir}",
         *flags], cwd=REPO, env=script_env(), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, preexec_fn=_default_sigint)


def _default_sigint():
    """In the child before it starts: SIGINT's default action. A shell starts background
    jobs with SIGINT ignored, and a Python started with it ignored never raises
    KeyboardInterrupt (``make test &`` once ran the whole run through the signal)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def wait_for_checkpoint(proc, directory, step, timeout=300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        recorded = checkpoints.recorded_checkpoints(directory)
        if recorded and checkpoints.step_of(recorded[-1]) >= step:
            return
        time.sleep(0.05)
    raise AssertionError(f"no checkpoint {step} in {directory}")


@pytest.mark.slow
def test_train_py_interrupted_by_ctrl_c_prints_one_line_and_resumes(tmp_path):
    workdir = tmp_path / "run"
    # 5x the epochs, so that the signal lands while the run still trains however busy
    # the machine is (with 24 steps in all, the run once ended before it came)
    epochs = 5 * EPOCHS
    proc = start_training(workdir, epochs)
    wait_for_checkpoint(proc, str(workdir / "checkpoints"), 4)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err[-3000:]
    assert "Traceback" not in err
    ours = [line for line in err.splitlines() if line.startswith("train.py:")]
    latest = tf.train.latest_checkpoint(str(workdir / "checkpoints"))
    step = checkpoints.step_of(latest)
    assert len(ours) == 1 and ours[0].startswith("train.py: Interrupted at step ")
    assert ours[0].endswith(f"from its last checkpoint, {latest} (step {step}).")

    proc = start_training(workdir, epochs)  # the same command resumes and finishes
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    grids = sorted(name for name in os.listdir(workdir / "samples") if name.startswith("epoch"))
    assert grids == [f"epoch_{e:04d}.png" for e in range(1, epochs + 1)]
    assert [r["epoch"] for r in history(workdir)] == [str(e) for e in range(1, epochs + 1)]


@pytest.fixture
def small_disk(tmp_path):
    """A 2.6 MB file system (tmpfs; needs root, else the test is skipped): room for two
    checkpoints of :data:`TRAIN_FLAGS`' run."""
    path = tmp_path / "disk"
    path.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2600k", "tmpfs", str(path)],
                             capture_output=True)
    if mounted.returncode:
        pytest.skip("cannot mount a small file system here (needs root)")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=True)


@pytest.mark.slow
def test_train_py_on_a_full_disk_prints_one_line_and_resumes_once_there_is_room(small_disk):
    workdir = small_disk / "run"
    proc = start_training(workdir)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 1, err[-3000:]
    assert "Traceback" not in err
    ours = [line for line in err.splitlines() if line.startswith("train.py:")]
    latest = tf.train.latest_checkpoint(str(workdir / "checkpoints"))
    assert len(ours) == 1 and ours[0].startswith("train.py: Could not write ")
    assert "No space left on device" in ours[0]
    assert f"The last good checkpoint is {latest} (step {checkpoints.step_of(latest)})" in ours[0]
    assert not [name for name in os.listdir(workdir / "checkpoints") if "_temp" in name]

    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)
    proc = start_training(workdir)  # room again: the same command resumes and finishes
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    assert [r["epoch"] for r in history(workdir)] == [str(e) for e in range(1, EPOCHS + 1)]
