"""Scale and speed: strategies (one device, mirrored, multi-worker through train.py),
chief-only outputs, the precision and XLA rules, and the benchmark."""

import csv
import json
import os
import re
import socket
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from helpers import REPO
from tf_asgan import networks
from tf_asgan.config.train_config import TrainConfig
from tf_asgan.training import loop as loop_lib
from tf_asgan.training import rundir
from tf_asgan.utils import distribute


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_cluster(workdir, *args, workers=2):
    """Runs ``train.py`` (demo flags, 2 steps per epoch, batch 8) as ``workers`` local
    processes of one TF_CONFIG cluster; returns each worker's ``(stdout, stderr)``."""
    cluster = {"worker": [f"127.0.0.1:{_free_port()}" for _ in range(workers)]}
    procs = []
    for index in range(workers):
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", TF_CONFIG=json.dumps(
            {"cluster": cluster, "task": {"type": "worker", "index": index}}))
        procs.append(subprocess.Popen(
            [sys.executable, "scripts/train.py", "--flagfile=flags/demo.flags",
             f"--workdir={workdir}", "--steps_per_epoch=2", "--batch_size=8",
             "--eval_every_epochs=0", "--width=0.125", *args],
            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outs = []
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-3000:]
        outs.append((out, err))
    return outs


@pytest.mark.slow
@pytest.mark.parametrize("sync_bn", [False, True])
def test_two_worker_processes_train_and_resume_through_train_py(tmp_path, sync_bn):
    workdir = tmp_path / "run"
    outs = run_cluster(workdir, "--epochs=1", "--strategy=auto", f"--sync_bn={sync_bn}")
    assert "MultiWorkerMirroredStrategy: 2 replica(s), global batch 8 = 2 x 4" in outs[0][1]
    digests = [re.search(r"weights sha1 (\w+) \(with batch-norm statistics (\w+)", out).groups()
               for out, _ in outs]
    assert digests[0][0] == digests[1][0]  # both workers end with identical weights
    # Batch-norm moving statistics are per replica unless synchronized.
    assert (digests[0][1] == digests[1][1]) == sync_bn
    assert all("Done: 2 steps" in out for out, _ in outs)
    # Only the chief (worker 0) writes the run; the other cleaned its scratch folder.
    assert "generator exported to" in outs[0][0] and "generator exported" not in outs[1][0]
    assert (workdir / "checkpoints" / "ckpt-2.index").exists()
    assert (workdir / "generator" / "saved_model.pb").exists()
    assert not (workdir / ".workers" / "worker_1").exists()
    if sync_bn:
        return
    # Extended (one case is enough): both workers resume from the chief's checkpoint at
    # step 2 and end at step 4.
    for out, err in run_cluster(workdir, "--epochs=2", "--strategy=auto", "--nosync_bn"):
        assert "resuming at step 2" in err and "Done: 4 steps" in out
    assert (workdir / "checkpoints" / "ckpt-4.index").exists()


# -- in one process: two logical CPU devices (tests/conftest.py) ---------------------------


def small_config(**changes):
    values = dict(batch_size=8, epochs=1, steps_per_epoch=2, export=False,
                  sample_every_epochs=1, width=0.125)
    values.update(changes)
    return TrainConfig(**values)


@pytest.mark.slow
def test_mirrored_training_run_resumes_and_logs_the_batch_split(tmp_path, caplog, mirrored):
    strategy = mirrored
    with caplog.at_level("INFO", logger="tf_asgan"):
        result = loop_lib.train(small_config(), str(tmp_path), verbose=0, strategy=strategy)
    assert result["step"] == 2 and result["chief"]
    assert "MirroredStrategy: 2 replica(s), global batch 8 = 2 x 4 per replica" in caplog.text
    assert "XLA off" in caplog.text  # the rule: several replicas
    # the run's start says what --precision=auto chose here and why
    assert "; float32 (--precision=auto on a CPU: bfloat16 does not keep AS-GAN's" in caplog.text
    result = loop_lib.train(small_config(epochs=2), str(tmp_path), verbose=0,
                            strategy=strategy)
    assert result["step"] == 4
    with pytest.raises(ValueError, match="divisible by the 2 replicas"):
        loop_lib.train(small_config(batch_size=7), str(tmp_path / "odd"), verbose=0,
                       strategy=strategy)


def test_strategy_rules(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert distribute.resolve_strategy_name("auto") == "one_device"  # no GPU here
    assert distribute.describe(distribute.make_strategy("one_device")) == "one device"
    assert distribute.is_chief(tf.distribute.get_strategy())
    with pytest.raises(ValueError, match="needs TF_CONFIG"):
        distribute.make_strategy("multi_worker")
    monkeypatch.setenv("TF_CONFIG", json.dumps(
        {"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 1}}))
    assert distribute.resolve_strategy_name("auto") == "multi_worker"
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(ValueError, match="TF_CONFIG is not valid JSON"):
        distribute.resolve_strategy_name("auto")
    with pytest.raises(ValueError, match="Unknown strategy"):
        distribute.resolve_strategy_name("tpu")


def test_precision_and_xla_rules_on_a_cpu(mirrored):
    assert distribute.resolve_precision("auto") == "float32"
    assert distribute.resolve_precision("mixed_bfloat16") == "mixed_bfloat16"
    one = tf.distribute.get_strategy()
    two = mirrored
    assert distribute.resolve_jit("auto", one) is False  # CPU: XLA measured slower here
    assert distribute.resolve_jit("on", one) is True and distribute.resolve_jit("off", one) is False
    assert distribute.resolve_jit("auto", two) is False
    with pytest.raises(ValueError, match="jit_compile"):
        distribute.resolve_jit("maybe", one)
    with pytest.raises(ValueError, match="Unknown precision"):
        distribute.resolve_precision("float8")
    assert distribute.precision_reason("auto", "float32") == (
        "float32 (--precision=auto on a CPU: bfloat16 does not keep AS-GAN's perturbation, "
        "docs/results.md, and float16 has no fast CPU kernels)")
    # a run resumed here that started in another precision keeps its own: no CPU reason
    assert distribute.precision_reason("auto", "mixed_bfloat16") == (
        "mixed_bfloat16 (the precision this run started in)")
    assert distribute.precision_reason("float32", "float32") == "float32"


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_run_trains_with_float32_logits(tmp_path, precision):
    result = loop_lib.train(small_config(precision=precision, steps_per_epoch=1),
                            str(tmp_path), verbose=0)
    assert result["step"] == 1
    assert keras.mixed_precision.global_policy().name == "float32"  # restored afterwards
    g, _, _ = rundir.restore_generator(str(tmp_path))
    with open(tmp_path / "history.csv") as f:
        last = list(csv.DictReader(f))[-1]
    losses = {k: float(v) for k, v in last.items()
              if k in ("d_loss", "g_loss", "d_loss_adv", "D_adv")}
    assert len(losses) == 4
    assert all(np.isfinite(v) for v in losses.values()), losses
    assert g(np.zeros((2, 100), np.float32)).dtype == "float32"


def test_sync_bn_builds_synchronized_layers():
    d = networks.build_discriminator("dcgan", 32, sync_bn=True)
    bns = [layer for layer in d.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert bns and all(layer.synchronized for layer in bns)
    plain = networks.build_discriminator("dcgan", 32)
    assert [type(x).__name__ for x in plain.layers] == [type(x).__name__ for x in d.layers]




def test_gpu_rules_with_simulated_devices(monkeypatch):
    """The GPU branches of the rules, with the device list faked (no GPU here)."""
    gpus = ["GPU:0", "GPU:1"]
    real = tf.config.list_physical_devices
    monkeypatch.setattr(tf.config, "list_physical_devices",
                        lambda kind=None: gpus if kind == "GPU" else real(kind))
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert distribute.resolve_strategy_name("auto") == "mirrored"
    capability = {"GPU:0": (8, 0), "GPU:1": (7, 5)}
    monkeypatch.setattr(tf.config.experimental, "get_device_details",
                        lambda gpu: {"compute_capability": capability[gpu]})
    assert distribute.resolve_precision("auto") == "mixed_float16"
    assert distribute.precision_reason("auto", "mixed_float16") == (
        "mixed_float16 (--precision=auto: every GPU has tensor cores)")
    # a float32 run resumed on these GPUs: auto picks mixed_float16, the run keeps float32
    assert distribute.precision_reason("auto", "float32") == (
        "float32 (the precision this run started in)")
    capability["GPU:1"] = (6, 1)  # one old GPU: no tensor cores, float32
    assert distribute.resolve_precision("auto") == "float32"
    assert distribute.precision_reason("auto", "float32") == (
        "float32 (--precision=auto: a GPU without tensor cores)")
    assert distribute.precision_reason("auto", "mixed_float16") == (
        "mixed_float16 (the precision this run started in)")
    assert distribute.precision_reason("mixed_bfloat16", "mixed_bfloat16") == "mixed_bfloat16"
