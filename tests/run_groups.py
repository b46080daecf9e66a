"""Runs the test suite as one pytest process per group, two at a time (``make test``).

A group is a folder of tests/ (tests/data, tests/training, ...) or the top-level test
files together. Separate processes keep each one's memory to what its own tests build
(TensorFlow does not give all of a test's memory back), and two at a time use both
cores of a small machine. Each group's output is printed whole when it ends, with its
time and peak memory; the exit status is non-zero if any group failed.

    python tests/run_groups.py [pytest options, e.g. -m "not slow"]
"""

import os
import pathlib
import subprocess
import sys
import tempfile
import time

TESTS = pathlib.Path(__file__).resolve().parent
WORKERS = 2
DURATIONS = "--durations=5"  # each group's slowest tests, to keep the suite in its budget


def groups():
    """The test folders (largest first, so the long ones start early) and the top-level
    test files as one group."""
    folders = [p for p in TESTS.iterdir() if p.is_dir() and any(p.glob("test_*.py"))]
    folders.sort(key=lambda p: -sum(f.stat().st_size for f in p.glob("test_*.py")))
    return [[str(p)] for p in folders] + [sorted(str(p) for p in TESTS.glob("test_*.py"))]


def main(options):
    pending, running, failed = groups(), {}, []
    start = time.time()
    while pending or running:
        while pending and len(running) < WORKERS:
            paths = pending.pop(0)
            log = tempfile.TemporaryFile("w+")
            proc = subprocess.Popen([sys.executable, "-m", "pytest", "-q", DURATIONS, *options,
                                     *paths],
                                    stdout=log, stderr=subprocess.STDOUT, cwd=TESTS.parent)
            running[proc.pid] = (proc, paths, log, time.time())
        pid, status, usage = os.wait4(-1, 0)
        if pid not in running:
            continue
        proc, paths, log, began = running.pop(pid)
        log.seek(0)
        name = os.path.relpath(paths[0], TESTS.parent) if len(paths) == 1 else "tests/test_*.py"
        print(f"==== {name}: {time.time() - began:.0f} s, peak memory "
              f"{usage.ru_maxrss / 2**20:.2f} GB ====")
        print(log.read().rstrip("\n"))
        log.close()
        code = os.waitstatus_to_exitcode(status)
        if code not in (0, 5):  # 5: no test selected in this group
            failed.append(name)
    print(f"==== all groups: {time.time() - start:.0f} s; "
          + (f"FAILED: {', '.join(failed)}" if failed else "every group passed") + " ====")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
