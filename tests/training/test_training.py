"""Training runs in a workdir: outputs, interruption and resumption, checkpoints, scripts."""

import csv
import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from helpers import Interrupt, Steps, StopAt, generated_source, run_script, small_config
from tf_asgan import export
from tf_asgan.config import train_config
from tf_asgan.training import builder, loop, rundir


@pytest.mark.slow
def test_train_writes_every_output(tmp_path):
    config = small_config()
    result = loop.train(config, str(tmp_path), verbose=0, source=generated_source())
    assert (result["step"], result["steps_per_epoch"], result["total_steps"]) == (6, 3, 6)
    assert train_config.load(str(tmp_path)) == config
    assert (tmp_path / "flags.txt").read_text() == train_config.to_flagfile(config, str(tmp_path))
    assert sorted(os.listdir(tmp_path / "samples")) == ["epoch_0001.png", "epoch_0002.png",
                                                        "real.png"]
    with open(tmp_path / "history.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert {"d_loss", "g_loss", "D_real", "D_fake", "d_loss_adv", "D_adv", "epsilon",
            "grad_l1"} <= set(rows[0])
    assert tf.train.latest_checkpoint(str(tmp_path / "checkpoints")).endswith("ckpt-6")
    assert export.read_metadata(result["export"])["step"] == 6
    # TensorBoard: one value per step for every metric, plus the epoch means.
    tags = {}
    for event_file in (tmp_path / "tensorboard").iterdir():
        for event in tf.compat.v1.train.summary_iterator(str(event_file)):
            for value in event.summary.value:
                tags.setdefault(value.tag, []).append(event.step)
    assert tags["step/d_loss"] == [1, 2, 3, 4, 5, 6]
    assert tags["step/epsilon"] == [1, 2, 3, 4, 5, 6]
    assert tags["epoch/g_loss"] == [3, 6]


@pytest.mark.slow
def test_step_logs_are_the_last_step_and_epoch_logs_the_mean(tmp_path):
    per_step = []

    class Record(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            per_step.append(float(self.model.step_logs()["d_loss"]))

        def on_epoch_end(self, epoch, logs=None):
            per_step.append(("mean", logs["d_loss"]))

    loop.train(small_config(epochs=1, export=False), str(tmp_path), verbose=0,
               source=generated_source(), callbacks=[Record()])
    *steps, (_, mean) = per_step
    assert len(steps) == 3 and len(set(steps)) == 3
    assert mean == pytest.approx(np.mean(steps), rel=1e-5)


@pytest.mark.slow
def test_interrupted_run_resumes_and_finishes_with_the_right_step_count(tmp_path):
    config = small_config(epsilon_schedule="delayed", epsilon_start_step=4)
    src = generated_source()
    stop = StopAt(4)
    with pytest.raises(Interrupt):
        loop.train(config, str(tmp_path), verbose=0, source=src, callbacks=[stop])
    latest = tf.train.latest_checkpoint(str(tmp_path / "checkpoints"))
    assert latest.endswith("ckpt-4")

    # The checkpoint holds both networks, both optimizers (with their Adam moments) and
    # the step, from which the epsilon schedule position follows.
    gan = builder.model_of(config)
    builder.checkpoint_for(gan).restore(latest).assert_consumed()
    assert int(gan.g_optimizer.iterations) == 4
    assert int(gan.d_optimizer.iterations) == 8  # two D updates per step
    assert float(gan.current_epsilon()) == pytest.approx(1 / 255)
    at_stop = stop.state
    np.testing.assert_equal([v.numpy() for v in gan.generator.variables], at_stop["g"])
    np.testing.assert_equal([v.numpy() for v in gan.discriminator.variables], at_stop["d"])
    np.testing.assert_equal([v.numpy() for v in gan.d_optimizer.variables], at_stop["d_opt"])
    np.testing.assert_equal([v.numpy() for v in gan.g_optimizer.variables], at_stop["g_opt"])
    assert len(at_stop["d_opt"]) == 2 + 2 * len(gan.discriminator.trainable_variables)

    steps = Steps()
    result = loop.train(config, str(tmp_path), verbose=0, source=src, callbacks=[steps])
    assert steps.seen == [5, 6]  # the rest of epoch 2 only
    assert result["step"] == 6
    with open(tmp_path / "history.csv") as f:
        assert [r["epoch"] for r in csv.DictReader(f)] == ["1", "2"]
    # Running the finished run again does nothing more.
    steps = Steps()
    assert loop.train(config, str(tmp_path), verbose=0, source=src,
                      callbacks=[steps])["step"] == 6
    assert steps.seen == []


@pytest.mark.slow
def test_a_finished_run_can_be_extended(tmp_path):
    config = small_config(epochs=1)
    loop.train(config, str(tmp_path), verbose=0, source=generated_source())
    steps = Steps()
    result = loop.train(config.replace(epochs=2), str(tmp_path), verbose=0,
                        source=generated_source(), callbacks=[steps])
    assert steps.seen == [4, 5, 6] and result["step"] == 6
    assert export.read_metadata(result["export"])["step"] == 6


@pytest.mark.slow
def test_a_different_configuration_is_refused(tmp_path):
    config = small_config(epochs=1, export=False)
    loop.train(config, str(tmp_path), verbose=0, source=generated_source())
    before = (tmp_path / "config.json").read_text()
    with pytest.raises(rundir.ConfigMismatchError, match="lr_d: 0.0002 -> 0.0004") as err:
        loop.train(config.replace(lr_d=4e-4), str(tmp_path), verbose=0,
                   source=generated_source())
    assert "flags.txt" in str(err.value)
    assert (tmp_path / "config.json").read_text() == before


def test_invalid_configuration_fails_before_writing(tmp_path):
    with pytest.raises(ValueError, match="not 48"):
        loop.train(small_config(resolution=48), str(tmp_path / "run"))
    assert not (tmp_path / "run" / "config.json").exists()


@pytest.mark.slow
def test_restore_generator_matches_the_export(tmp_path):
    result = loop.train(small_config(epochs=1), str(tmp_path), verbose=0,
                        source=generated_source())
    g, config, path = rundir.restore_generator(str(tmp_path))
    assert path.endswith("ckpt-3") and config.model.latent_dim == 16
    z = np.random.default_rng(1).standard_normal((4, 16)).astype(np.float32)
    loaded = tf.saved_model.load(result["export"])
    np.testing.assert_array_equal(g(z, training=False).numpy(),
                                  loaded.generate(tf.constant(z))["images"].numpy())
    with pytest.raises(FileNotFoundError, match="not a training workdir"):
        rundir.restore_generator(str(tmp_path / "nothing"))


# -- the scripts, as a user runs them -----------------------------------------------------




@pytest.mark.slow
def test_scripts_train_export_sample_evaluate(tmp_path):
    workdir = str(tmp_path / "run")
    args = ["--flagfile=flags/demo.flags", f"--workdir={workdir}", "--epochs=1",
            "--steps_per_epoch=2", "--batch_size=8", "--eval_num_samples=300",
            "--width=0.125"]
    proc = run_script("train.py", *args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Done: 2 steps" in proc.stdout
    # The demo's evaluation: the last epoch with the digit classifier, printed and logged.
    assert "Epoch 1: FID " in proc.stdout and "modes " in proc.stdout
    assert "recall " in proc.stdout and "coverage " in proc.stdout
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        (line,) = f.read().splitlines()
    assert json.loads(line)["protocol"]["num_samples"] == 300
    assert "2/2" in proc.stdout + proc.stderr  # the Keras progress bar
    assert os.path.exists(os.path.join(workdir, "generator", "saved_model.pb"))
    # (flags.txt repeating the run as a no-op: tests/config/test_existing_runs.py)
    # A changed experiment on the same workdir is refused with a clear message.
    proc = run_script("train.py", *args, "--lr_d=1e-3")
    assert proc.returncode != 0 and "different configuration" in proc.stderr
    assert "--existing_run=new" in proc.stderr and "--existing_run=overwrite" in proc.stderr

    proc = run_script("export.py", f"--workdir={workdir}", f"--output={tmp_path}/exported")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert export.read_metadata(str(tmp_path / "exported"))["step"] == 2
    proc = run_script("export.py", f"--workdir={workdir}", f"--output={tmp_path}/exported")
    assert proc.returncode != 0 and "exists" in proc.stderr
    # A best-FID checkpoint records its step too (one name parser for every script).
    proc = run_script("export.py", f"--workdir={workdir}", f"--checkpoint={workdir}/best/best-2",
                      f"--output={tmp_path}/exported_best")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert export.read_metadata(str(tmp_path / "exported_best"))["step"] == 2

    proc = run_script("sample.py", f"--generator={tmp_path}/exported", "--seed=3", "--rows=2",
                      "--steps=5", f"--out_dir={tmp_path}/png")
    assert proc.returncode == 0, proc.stderr[-3000:]
    from PIL import Image
    grid = Image.open(tmp_path / "png" / "grid_seed3.png")
    interp = Image.open(tmp_path / "png" / "interpolation_seed3.png")
    assert grid.size == (8 * 34 + 2, 8 * 34 + 2)  # 64 images of 32 px, 2 px padding
    assert interp.size == (5 * 34 + 2, 2 * 34 + 2)

    proc = run_script("evaluate.py", f"--workdir={workdir}", "--num_samples=400")
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(os.path.join(str(tmp_path), "run", "eval.json")) as f:
        record = json.load(f)
    assert record["protocol"]["num_samples"] == 400 and record["run"]["step"] == 2
    assert record["protocol"]["network"]["name"] == "digit_classifier_v1:digits"
    assert {"fid", "is", "is_std", "kid", "kid_std", "modes", "modes_kl", "precision",
            "recall", "density", "coverage"} <= set(record["metrics"])
    assert "precision " in proc.stdout and "coverage " in proc.stdout  # the printed line
    assert record["metrics"]["fid"] > 0 and 1 <= record["metrics"]["is"] <= 10
    # The real-data statistics computed during training were reused, not recomputed.
    assert "from the cache" in proc.stderr
    # (an existing eval.json kept: tests/test_export.py)
    proc = run_script("evaluate.py", f"--workdir={workdir}", f"--generator={workdir}/generator")
    assert proc.returncode != 0 and "exactly one" in proc.stderr
