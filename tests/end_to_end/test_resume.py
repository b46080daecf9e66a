"""A run killed (SIGKILL) at any moment and resumed ends bit-identical to an
uninterrupted one: same step, same batches at every step, same weights.

Each run is a separate process (tests/resume_child.py) that logs, from inside every
train step, the step, the replica and a hash of the batch it trains on. Kill points are
drawn from a seeded generator: after a step (before or after its checkpoint), while a
checkpoint's files are written but not yet recorded, and one at a random moment chosen
from outside the process.
"""

import collections
import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest

CHILD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "resume_child.py")
TOTAL_STEPS = 12  # resume_child.config(): 3 epochs of 4 steps, checkpoints every 2


def start(workdir, name, *options):
    """Starts one training process on ``workdir``; its batch log and result go beside it."""
    paths = [str(workdir) + suffix for suffix in (".batches", ".json")]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.Popen([sys.executable, CHILD, str(workdir), *paths, *options],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proc.label = f"{name} {' '.join(options)}"
    return proc


def finish(proc, *, killed):
    out, err = proc.communicate(timeout=300)
    expected = -signal.SIGKILL if killed else 0
    assert proc.returncode == expected, f"{proc.label}: {proc.returncode}\n{err[-3000:]}"


def batches(workdir):
    """``{(step, replica): {batch hashes logged}}`` and the number of lines."""
    seen = collections.defaultdict(set)
    with open(str(workdir) + ".batches") as f:
        lines = [line.split() for line in f if line.strip()]
    for step, replica, digest in lines:
        seen[int(step), int(replica)].add(digest)
    return seen, len(lines)


def result(workdir):
    with open(str(workdir) + ".json") as f:
        return json.load(f)


def kill_when_logged(proc, log_path, lines):
    """SIGKILLs ``proc`` a random moment after its batch log reaches ``lines`` lines."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if os.path.exists(log_path):
            with open(log_path) as f:
                if sum(1 for _ in f) >= lines:
                    break
        time.sleep(0.01)
    time.sleep(random.Random(lines).uniform(0.0, 0.3))
    if proc.poll() is None:
        proc.kill()
    proc.communicate(timeout=300)


def assert_same_run(full, resumed, replicas):
    assert result(resumed) == result(full)  # the same step and bit-identical weights
    assert result(full)["step"] == TOTAL_STEPS
    expected, full_lines = batches(full)
    seen, lines = batches(resumed)
    assert sorted(expected) == [(s, r) for s in range(TOTAL_STEPS) for r in range(replicas)]
    assert all(len(hashes) == 1 for hashes in expected.values())
    assert seen == expected  # every step, including redone ones, trained on the same batch
    assert lines > full_lines  # the kills made the run redo steps from a checkpoint


@pytest.mark.slow
@pytest.mark.parametrize("mirrored", [False, True], ids=["one_device", "mirrored_2_cpus"])
def test_a_run_killed_at_random_points_ends_bit_identical(tmp_path, mirrored):
    rng = random.Random(2024 + mirrored)
    flags = ["--mirrored"] if mirrored else []
    replicas = 2 if mirrored else 1
    full, resumed = tmp_path / "full", tmp_path / "resumed"
    uninterrupted = start(full, "uninterrupted", *flags)  # beside the killed ones

    after = rng.randrange(1, 6)  # after step 1-5, before or after its checkpoint
    saving = rng.choice([s for s in range(after + 1, 10) if s % 2 == 0])
    finish(start(resumed, "kill", *flags, f"--kill=after:{after}"), killed=True)
    finish(start(resumed, "kill", *flags, f"--kill=checkpoint:{saving}"), killed=True)
    if not mirrored:  # one more, at a moment picked from outside the process
        _, lines = batches(resumed)
        proc = start(resumed, "external kill")
        kill_when_logged(proc, str(resumed) + ".batches", lines + rng.randrange(1, 4))
    finish(start(resumed, "last", *flags), killed=False)
    finish(uninterrupted, killed=False)
    assert_same_run(full, resumed, replicas)
