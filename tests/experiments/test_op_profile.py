"""The train step by kind of operation (tf_asgan.experiments.op_profile): op names parsed
and put in their categories by hand-written cases, the per-call sums by hand, and a real
profiler trace of a convolution's forward and backward passes found in the right
categories (the kernel's weight gradient, or the patch route's extraction and matmul)."""

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.tsl.profiler.protobuf import xplane_pb2

from tf_asgan import errors
from tf_asgan.experiments import benchmark
from tf_asgan.experiments import op_profile as op
from tf_asgan.networks import weight_gradients as wg

FORWARD = "conv forward / transposed conv input gradient"


@pytest.mark.parametrize("name,kind", [
    ("gradient_tape/d/d_conv3/convolution/Conv2DBackpropFilter:_MklNativeConv2DBackpropFilter",
     "Conv2DBackpropFilter"),
    ("d/d_conv1/convolution:_MklConv2D", "Conv2D"),
    ("a:b:Conv2D", None),  # one colon only
    ("Cast_46:Cast", "Cast"),
    ("ExecutorState::Process", None),  # the executor's span around the ops it runs
    ("ThreadpoolListener::StartRegion", None),
    ("no op here", None)])
def test_op_type_reads_the_type_after_the_colon_without_onednns_prefix(name, kind):
    assert op.op_type(name) == kind


@pytest.mark.parametrize("name,category", [
    ("adam_1_1/Sub_14:Sub", op.OPTIMIZER),
    ("gradient_tape/dcgan_discriminator_32_1/d_bn2_1/moments/Tile:Tile", op.BATCH_NORM),
    ("dcgan_discriminator_32_5/d_bn3_1/Cast:Cast", op.BATCH_NORM),  # its casts included
    ("dcgan_discriminator_32_5/d_conv3_1/Cast:Cast", "cast"),
    ("dcgan_generator_32_1/g_conv3_1/conv_transpose:_MklNativeConv2DBackpropInput",
     "conv input gradient / transposed conv forward"),
    ("ExtractImagePatches_13:ExtractImagePatches", "patch extraction"),
    ("MatMul_4:_MklMatMul", "matmul"),
    ("gradient_tape/d/d_block1_1/LeakyRelu/LeakyReluGrad:LeakyReluGrad", "activations"),
    ("d_bn20/Mean:Mean", "other"),  # d_bn20 is not d_bn2 (nor d_bn2_<k>)
    ("Sign:Sign", "other")])
def test_categorize_by_scope_first_then_by_op_type(name, category):
    assert op.categorize(name, ("adam",), ("d_bn2", "d_bn3")) == category


def test_categorize_refuses_an_event_that_is_not_an_op():
    with pytest.raises(errors.InputError, match="not one op's event"):
        op.categorize("ExecutorState::Process")


def test_breakdown_is_ms_per_call_with_every_category():
    times = {"a/Conv2D:_MklConv2D": 30.0, "b:Cast": 6.0, "c:Cast": 3.0, "adam/x:Sub": 1.5}
    got = op.breakdown(times, 3, optimizer_scopes=("adam",))
    assert list(got) == list(op.CATEGORIES)
    assert got[FORWARD] == 10.0 and got["cast"] == 3.0
    assert got[op.OPTIMIZER] == 0.5 and got["other"] == 0.0
    assert sum(got.values()) == pytest.approx(sum(times.values()) / 3)


def _space(lines):
    """An XSpace of one plane: ``{line name: [(name, offset ps, duration ps)]}``."""
    space = xplane_pb2.XSpace()
    plane = space.planes.add(name="/host:CPU")
    ids = {}
    for line_name, events in lines.items():
        line = plane.lines.add(name=line_name)
        for name, offset, duration in events:
            if name not in ids:
                ids[name] = len(ids) + 1
                plane.event_metadata[ids[name]].name = name
            line.events.add(metadata_id=ids[name], offset_ps=offset, duration_ps=duration)
    return space


def test_the_trace_is_read_from_the_executor_threads_leaves_only_in_ms():
    space = _space({
        "tf_Compute/1": [("ExecutorState::Process", 0, 10**10),  # not an op: ignored
                         ("f:PartitionedCall", 0, 9 * 10**9),  # encloses two ops: dropped
                         ("f/a:Conv2D", 10**9, 2 * 10**9), ("f/b:Cast", 4 * 10**9, 10**9),
                         ("c:Cast", 12 * 10**9, 5 * 10**8)],
        "tf_Compute/2": [("f/a:Conv2D", 0, 3 * 10**9)],  # the same op on another thread
        "python": [("d:MatMul", 0, 10**12)]})  # not an executor thread: ignored
    assert op.space_op_times(space) == {"f/a:Conv2D": 5.0, "f/b:Cast": 1.0, "c:Cast": 0.5}


def _conv_step(conv):
    rng = np.random.default_rng(0)
    x = tf.constant(rng.standard_normal((8, 16, 16, 8)), tf.float32)
    kernel = tf.Variable(rng.standard_normal((4, 4, 8, 16)).astype(np.float32))

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = conv(tf.cast(x, tf.float32), kernel)
            loss = tf.reduce_sum(tf.square(y))
        return tape.gradient(loss, [x, kernel])

    return step


@pytest.mark.parametrize("route", wg.WEIGHT_GRADIENTS)
def test_a_trace_finds_the_convolutions_kernels_in_their_categories(route):
    if route == "kernel":
        step = _conv_step(lambda x, k: tf.nn.conv2d(x, k, 2, "SAME"))
    else:
        step = _conv_step(lambda x, k: wg.patch_gradient_conv2d(x, k, (2, 2), "same"))
    times, wall = op.trace_ops(step, calls=2)
    got = op.breakdown(times, 2)
    assert got[FORWARD] > 0 and got["conv input gradient / transposed conv forward"] > 0
    if route == "kernel":
        assert got["conv weight gradient (kernel)"] > 0 and got["patch extraction"] == 0
    else:
        assert got["conv weight gradient (kernel)"] == 0
        assert got["patch extraction"] > 0 and got["matmul"] > 0
    # the ops' time lies within the wall time of the two inter-op threads that run them
    assert 0 < sum(got.values()) < 2 * wall * 1.1


def test_model_scopes_name_the_optimizers_and_batch_norm_layers():
    gan, _ = benchmark.build("dcgan", 32, "baseline", 2, width=1 / 16)
    optimizers, norms = op.model_scopes(gan)
    assert gan.d_optimizer.name in optimizers and gan.g_optimizer.name in optimizers
    assert set(norms) == {"g_bn1", "g_bn2", "g_bn3", "d_bn2", "d_bn3"}
