"""Scale and speed: strategies (one device, mirrored, multi-worker through train.py),
chief-only outputs, the precision and XLA rules, and the benchmark."""

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

from tf_asgan import benchmark, distribute, training
from tf_asgan.config import TrainConfig

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("sync_bn", [False, True])
def test_two_worker_processes_train_through_train_py(tmp_path, sync_bn):
    cluster = {"worker": [f"127.0.0.1:{_free_port()}" for _ in range(2)]}
    workdir = tmp_path / "run"
    procs = []
    for index in range(2):
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", TF_CONFIG=json.dumps(
            {"cluster": cluster, "task": {"type": "worker", "index": index}}))
        procs.append(subprocess.Popen(
            [sys.executable, "scripts/train.py", "--flagfile=flags/demo.flags",
             f"--workdir={workdir}", "--epochs=1", "--steps_per_epoch=2", "--batch_size=8",
             "--eval_every_epochs=0", "--strategy=auto", f"--sync_bn={sync_bn}"],
            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outs = []
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-3000:]
        outs.append((out, err))
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
