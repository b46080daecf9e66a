"""Runs the test suite as one pytest process per group, two at a time (``make test``).

A group is a folder of tests/ (tests/data, tests/training, ...) or the top-level test
files together. Separate processes keep each one's memory to what its own tests build
(TensorFlow does not give all of a test's memory back), and two at a time use both
cores of a small machine. Each runs TensorFlow with one intra-op thread (unless the
environment sets the thread variables already): the tests' networks are small, and two
workers of TensorFlow's default two threads contend for two cores (one group's tests
took 25% less CPU time with one thread; docs/results.md, "The test suite"). Each group's
output is printed whole when it ends, with its time and peak memory; the exit status is
non-zero if any group failed.

    python tests/run_groups.py [pytest options, e.g. -m "not slow"]
"""

import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

TESTS = pathlib.Path(__file__).resolve().parent
WORKERS = 2
# One thread per worker (what a test process starts TensorFlow with; its subprocesses too).
THREADS = {"TF_NUM_INTRAOP_THREADS": "1", "OMP_NUM_THREADS": "1"}
SPLIT_BYTES = 45_000  # a group of more test code than this runs as two
DURATIONS = "--durations=5"  # each group's slowest tests, to keep the suite in its budget


def _halves(files):
    """``files`` in two lists of about equal total size (largest first, each to the
    smaller list)."""
    parts = ([], [])
    for f in sorted(files, key=lambda f: -f.stat().st_size):
        min(parts, key=lambda part: sum(g.stat().st_size for g in part)).append(f)
    return [sorted(str(f) for f in part) for part in parts if part]


def groups():
    """The test folders and the top-level test files as one more group, each split in
    two when its test files exceed :data:`SPLIT_BYTES` (so that no group keeps one
    worker busy long after the other is done); largest first, so the long ones start
    early."""
    folders = [sorted(p.glob("test_*.py")) for p in TESTS.iterdir() if p.is_dir()]
    out = []
    for files in [f for f in folders if f] + [sorted(TESTS.glob("test_*.py"))]:
        if sum(f.stat().st_size for f in files) > SPLIT_BYTES and len(files) > 1:
            out.extend(_halves(files))
        else:
            out.append([str(f) for f in files])
    out.sort(key=lambda paths: -sum(os.path.getsize(p) for p in paths))
    return out


def main(options):
    pending, running, failed = groups(), {}, []
    env = {**THREADS, **os.environ}  # the caller's settings win
    # one digit classifier for every group (tests/conftest.py): trained once (about 25 s),
    # not once per group that evaluates; removed at the end
    cache = tempfile.mkdtemp(prefix="tf_asgan_test_cache_")
    env.setdefault("TF_ASGAN_TEST_CACHE", cache)
    start = time.time()
    while pending or running:
        while pending and len(running) < WORKERS:
            paths = pending.pop(0)
            log = tempfile.TemporaryFile("w+")
            proc = subprocess.Popen([sys.executable, "-m", "pytest", "-q", DURATIONS, *options,
                                     *paths],
                                    stdout=log, stderr=subprocess.STDOUT, cwd=TESTS.parent,
                                    env=env)
            running[proc.pid] = (proc, paths, log, time.time())
        pid, status, usage = os.wait4(-1, 0)
        if pid not in running:
            continue
        proc, paths, log, began = running.pop(pid)
        log.seek(0)
        name = " ".join(os.path.relpath(p, TESTS.parent) for p in paths)
        print(f"==== {name}: {time.time() - began:.0f} s, peak memory "
              f"{usage.ru_maxrss / 2**20:.2f} GB ====")
        print(log.read().rstrip("\n"))
        log.close()
        code = os.waitstatus_to_exitcode(status)
        if code not in (0, 5):  # 5: no test selected in this group
            failed.append(name)
    shutil.rmtree(cache, ignore_errors=True)
    print(f"==== all groups: {time.time() - start:.0f} s; "
          + (f"FAILED: {', '.join(failed)}" if failed else "every group passed") + " ====")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
