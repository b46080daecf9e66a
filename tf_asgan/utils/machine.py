"""What machine a measurement ran on: the CPU's model and its matrix / vector features, and
the thread settings TensorFlow was started with. Speed figures and study results are
recorded with it, since both depend on the CPU (``/proc/cpuinfo`` on Linux;
``platform.processor()`` elsewhere).
"""

import os
import platform
import re

# The features that decide reduced-precision speed: AMX tiles with bfloat16, AVX-512's
# bfloat16 and float16 arithmetic, and AVX-512 itself.
CPU_FLAGS = ("amx_bf16", "amx_tile", "avx512_bf16", "avx512_fp16", "avx512f")
# TensorFlow's thread-pool sizes, read from the environment at start-up (unset: one
# intra-op thread per core).
THREAD_VARIABLES = ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS")


def cpu_info(path="/proc/cpuinfo"):
    """``(model name, set of flags)`` of the first CPU in ``path``; ``(platform.processor()
    or "unknown CPU", set())`` where the file cannot be read."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return platform.processor() or "unknown CPU", set()
    model = re.search(r"^model name\s*:\s*(.*)$", text, re.M)
    flags = re.search(r"^flags\s*:\s*(.*)$", text, re.M)
    return (model.group(1).strip() if model else "unknown CPU",
            set(flags.group(1).split()) if flags else set())


def cpu_description(path="/proc/cpuinfo"):
    """``"<model name> (<n> cores; amx_bf16 no, avx512_bf16 yes, ...)"``: :func:`cpu_info`
    with each of :data:`CPU_FLAGS` said present or not."""
    name, have = cpu_info(path)
    listed = ", ".join(f"{f} {'yes' if f in have else 'no'}" for f in CPU_FLAGS)
    return f"{name} ({os.cpu_count()} cores; {listed})"


def description(path="/proc/cpuinfo"):
    """``{"cpu": cpu_description(), "cores", "threads": {variable: value or None}}``: what
    a result file records of the machine that produced it."""
    return {"cpu": cpu_description(path), "cores": os.cpu_count(),
            "threads": {v: os.environ.get(v) for v in THREAD_VARIABLES}}


def summary(record):
    """One line of a :func:`description` record: the CPU, then the thread variables that
    are set (``"...; threads TF_NUM_INTRAOP_THREADS=1"``; none set: ``"...; threads
    TensorFlow's defaults"``)."""
    threads = {k: v for k, v in (record.get("threads") or {}).items() if v is not None}
    said = (", ".join(f"{k}={v}" for k, v in threads.items()) if threads
            else "TensorFlow's defaults")
    return f"{record['cpu']}; threads {said}"


def header(record, tensorflow):
    """The first line of a timing table: ``"Machine: <summary(record)>; TensorFlow
    <tensorflow>"``."""
    return f"Machine: {summary(record)}; TensorFlow {tensorflow}"
