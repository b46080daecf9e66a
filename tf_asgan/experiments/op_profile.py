"""Where one train step spends its time, by kind of operation: TensorFlow's profiler trace
summed into categories.

:func:`trace_ops` runs a ``tf.function`` ``calls`` times under
``tf.profiler.experimental`` (after one untraced call) and reads the trace it writes (an
``XSpace`` protocol buffer, ``*.xplane.pb``): every event on the executor's threads
(``tf_Compute``) whose name is ``"scope/.../name:OpType"`` is one op's run; its
duration is what the op took, from start to end. :func:`categorize` puts each op into one
of :data:`CATEGORIES` (first rule that matches): the optimizer updates and the batch
norm layers by name scope (the optimizers' and the batch-norm layers' names; their casts
and element-wise ops included), the rest by op type (oneDNN's ``_Mkl`` / ``_MklNative``
variants counted as the op they implement). :func:`breakdown` gives milliseconds per call
per category.

How to read it (ours): the ops of one step may run two at a time (TensorFlow's inter-op
threads), so the categories' sum can exceed the step's wall time, and an op that shares
the cores with another takes longer than alone; each category's share of the sum is the
comparable figure, and the wall time per call is reported beside it. A
``Conv2DBackpropInput`` is both the input gradient of a convolution and the forward pass
of a transposed one (G's upsampling), and a ``Conv2D`` both a convolution's forward pass
and a transposed one's input gradient, so each pair shares a category. CPU only: on a
GPU the executor threads only launch kernels, and their events are not the kernels' time.
"""

import collections
import glob
import os
import re
import shutil
import tempfile
import time

import keras
import tensorflow as tf
from tensorflow.tsl.profiler.protobuf import xplane_pb2

from tf_asgan import errors
from tf_asgan.utils import timing

# Category: op types (after the _Mkl prefix is dropped) that fall into it.
OP_TYPES = {
    "conv forward / transposed conv input gradient": ("Conv2D", "FusedConv2D",
                                                      "DepthwiseConv2dNative"),
    "conv input gradient / transposed conv forward": ("Conv2DBackpropInput",),
    "conv weight gradient (kernel)": ("Conv2DBackpropFilter",),
    "patch extraction": ("ExtractImagePatches",),
    "matmul": ("MatMul", "BatchMatMulV2", "BatchMatMulV3"),
    "cast": ("Cast",),
    "activations": ("LeakyRelu", "LeakyReluGrad", "Relu", "ReluGrad", "Tanh", "TanhGrad",
                    "Sigmoid", "SigmoidGrad", "Softplus", "SoftplusGrad"),
}
OPTIMIZER, BATCH_NORM, OTHER = "optimizer update", "batch norm", "other"
CATEGORIES = (OPTIMIZER, BATCH_NORM, *OP_TYPES, OTHER)
_BY_TYPE = {op: category for category, ops in OP_TYPES.items() for op in ops}


_OP_EVENT = re.compile(r"([^:]+):([A-Za-z_][A-Za-z0-9_]*)")


def op_type(event_name):
    """``"scope/name:_MklNativeConv2D"`` -> ``"Conv2D"``; ``None`` for an event that is
    not one op's run (the executor's own, e.g. ``"ExecutorState::Process"``, which spans
    the ops it runs)."""
    match = _OP_EVENT.fullmatch(event_name)
    return None if match is None else re.sub(r"^_Mkl(Native)?", "", match.group(2))


def categorize(event_name, optimizer_scopes=(), batch_norm_scopes=()):
    """The category (:data:`CATEGORIES`) of op event ``event_name``: :data:`OPTIMIZER` if
    a scope of its name is one of ``optimizer_scopes``, :data:`BATCH_NORM` if one is
    among ``batch_norm_scopes`` (a scope matches a name with or without the ``_<k>``
    suffixes of repeated calls), else by its op type, else :data:`OTHER`.

    Raises:
      tf_asgan.errors.InputError: ``event_name`` is not one op's event (:func:`op_type`).
    """
    kind = op_type(event_name)
    if kind is None:
        raise errors.InputError(f"{event_name!r} is not one op's event "
                                "('scope/name:OpType').")
    scopes = event_name.rsplit(":", 1)[0].split("/")
    if _in_scope(scopes, optimizer_scopes):
        return OPTIMIZER
    if _in_scope(scopes, batch_norm_scopes):
        return BATCH_NORM
    return _BY_TYPE.get(kind, OTHER)


def _in_scope(scopes, names):
    """Whether a scope is one of ``names``, with or without the ``_<k>`` suffixes that
    TensorFlow adds to repeated scopes (``d_bn2_1``, ``adam_1_1``)."""
    return any(re.fullmatch(re.escape(name) + r"(_\d+)*", scope)
               for scope in scopes for name in names)


def trace_ops(fn, calls=3):
    """``({op event name: total ms over the calls}, wall ms per call)`` of ``calls``
    calls of ``fn()`` (a ``tf.function``; called twice first, outside the trace), from the
    profiler's trace of the executor threads. The trace is written to a temporary folder
    and removed.

    Raises:
      tf_asgan.errors.InputError: ``calls`` not an integer >= 1.
      RuntimeError: the profiler wrote no trace, or one without op runs on the executor
        threads (e.g. a GPU's).
    """
    timing.check_counts(calls=calls)
    timing.time_calls(fn, warmup=1, repeats=1, calls=1)  # traced and warm, untimed
    logdir = tempfile.mkdtemp(prefix="op_profile_")
    try:
        tf.profiler.experimental.start(logdir)
        try:
            start = time.perf_counter()
            for _ in range(calls):
                out = fn()
            timing.sync(out)
            wall = 1000 * (time.perf_counter() - start) / calls
        finally:
            tf.profiler.experimental.stop()
        return _op_times(logdir), wall
    finally:
        shutil.rmtree(logdir, ignore_errors=True)


def _op_times(logdir):
    files = glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True)
    if not files:
        raise RuntimeError(f"The profiler wrote no trace under {logdir}.")
    space = xplane_pb2.XSpace()
    with open(max(files, key=os.path.getmtime), "rb") as f:
        space.ParseFromString(f.read())
    times = space_op_times(space)
    if not times:
        raise RuntimeError("The profiler's trace holds no op run on TensorFlow's executor "
                           "threads (tf_Compute); the breakdown reads CPU traces only.")
    return times


def space_op_times(space):
    """``{op event name: total ms}`` of an ``XSpace``: the op events
    (:func:`op_type`) on every plane's ``tf_Compute`` lines, leaves only: an op event
    that encloses another op event of its line (a function call, a control-flow op) is
    left out, so no time is counted twice."""
    times = collections.Counter()
    for plane in space.planes:
        names = {key: meta.name for key, meta in plane.event_metadata.items()}
        for line in plane.lines:
            if line.name.startswith("tf_Compute"):
                events = [(e.offset_ps, e.duration_ps, names[e.metadata_id])
                          for e in line.events if op_type(names[e.metadata_id])]
                for _, duration, name in _leaves(events):
                    times[name] += duration / 1e9
    return dict(times)


def _leaves(events):
    """The ``(start, duration, name)`` events that enclose no other one."""
    events = sorted(events, key=lambda e: (e[0], -e[1]))
    enclosing = set()
    open_events = []  # indices of events still open, outermost first
    for i, (start, _, _) in enumerate(events):
        while open_events and sum(events[open_events[-1]][:2]) <= start:  # ended before
            open_events.pop()
        if open_events:
            enclosing.add(open_events[-1])
        open_events.append(i)
    return [e for i, e in enumerate(events) if i not in enclosing]


def breakdown(times, calls, optimizer_scopes=(), batch_norm_scopes=()):
    """``{category: ms per call}`` over :data:`CATEGORIES` (each present, 0.0 when no op
    fell into it) of ``times`` (:func:`trace_ops`'s, over ``calls`` calls)."""
    out = dict.fromkeys(CATEGORIES, 0.0)
    for name, ms in times.items():
        out[categorize(name, optimizer_scopes, batch_norm_scopes)] += ms / calls
    return out


def model_scopes(gan):
    """``(optimizer scopes, batch-norm scopes)`` of a compiled :class:`tf_asgan.ASGAN`:
    its optimizers' names and its networks' ``BatchNormalization`` layers' names."""
    optimizers = {gan.d_optimizer.name, gan.g_optimizer.name}
    norms = {layer.name for model in (gan.generator, gan.discriminator)
             for layer in model.layers
             if isinstance(layer, keras.layers.BatchNormalization)}
    return tuple(sorted(optimizers)), tuple(sorted(norms))
