"""The per-precision breakdown of a train step (tf_asgan.experiments.precision_profile):
every component runs and computes in the policy's dtype, the report's speed-ups are its
own ratios, the table names every component, the global policy comes back."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_asgan import errors
from tf_asgan.experiments import benchmark, op_profile
from tf_asgan.experiments import precision_profile as pp
from tf_asgan.utils import distribute, machine

TINY = dict(batch_size=4, width=1 / 8, warmup=1, repeats=1, calls=1)


def _finite(out):
    return all(np.isfinite(np.asarray(tf.cast(v, tf.float32))).all()
               for v in tf.nest.flatten(out))


@pytest.mark.parametrize("precision,dtype", [("float32", "float32"),
                                             ("mixed_bfloat16", "bfloat16")])
def test_every_component_runs_finite_in_the_policy_dtype(precision, dtype):
    with distribute.precision_policy(precision):
        gan, batch = benchmark.build("dcgan", 32, "asgan", 4, width=1 / 8)
        fns = pp.components(gan, batch)
        assert list(fns) == list(pp.COMPONENTS)
        before = [v.numpy() for v in gan.d_variables]
        outputs = {name: fn() for name, fn in fns.items()}
    assert all(_finite(out) for out in outputs.values()), \
        [name for name, out in outputs.items() if not _finite(out)]
    # Adam with zero gradients moves nothing: the throwaway model keeps its weights.
    assert all(np.array_equal(a, b.numpy()) for a, b in zip(before, gan.d_variables))
    layer, _ = pp.largest_conv(gan.discriminator)
    assert layer.compute_dtype == dtype and layer.kernel.dtype == "float32"
    # D's convolutions really compute in the policy's dtype (an intermediate of D).
    inner = keras.Model(gan.discriminator.input, layer.output)(batch, training=True)
    assert inner.dtype == dtype
    conv_out = outputs["conv2d forward"]
    assert conv_out.dtype == dtype and conv_out.shape == (4, *layer.output.shape[1:])
    assert outputs["conv2d input gradient"].shape == (4, *layer.input.shape[1:])
    assert outputs["conv2d weight gradient"].shape == layer.kernel.shape
    patch = outputs["conv2d weight gradient as patch matmul"]
    assert patch.dtype == dtype and patch.shape == layer.kernel.shape
    if dtype == "float32":  # the layer's own strides, padding and dilation reach it
        np.testing.assert_allclose(patch.numpy(), outputs["conv2d weight gradient"].numpy(),
                                   rtol=1e-4, atol=1e-4)
    assert outputs["FGSM input gradient"].shape == batch.shape  # x_hat
    assert len(outputs["D forward+backward"]) == len(gan.d_variables)


@pytest.fixture(scope="module")
def report():
    with distribute.precision_policy("mixed_float16"):  # neither of the measured two
        result = pp.measure(**TINY, log=lambda *a: None)
        assert keras.mixed_precision.global_policy().name == "mixed_float16"
    return result


@pytest.mark.slow
def test_report_speedups_are_its_own_ratios(report):
    json.dumps(report)
    names = [*pp.COMPONENTS, pp.TRAIN_STEP]
    assert report["components"] == names
    assert report["precisions"] == ["float32", "mixed_bfloat16"]
    base, bf16 = (report["results"][p] for p in report["precisions"])
    assert (base["compute_dtype"], bf16["compute_dtype"]) == ("float32", "bfloat16")
    for name in names:
        assert base["ms"][name] > 0 and bf16["ms"][name] > 0
        assert report["speedup"]["mixed_bfloat16"][name] == base["ms"][name] / bf16["ms"][name]
        assert report["speedup"]["float32"][name] == 1.0
    assert report["matmul_bound"]["mixed_bfloat16"] == \
        bf16["matmul_gflops"] / base["matmul_gflops"]
    conv = bf16["conv"]
    assert conv["gflops"]["conv2d forward"] == \
        pytest.approx(conv["gflop"] / bf16["ms"]["conv2d forward"] * 1000)
    assert report["parts_sum_ms"]["float32"] == pytest.approx(
        2 * (base["ms"]["D forward+backward"] + base["ms"]["D optimizer update"])
        + base["ms"]["G forward+backward"] + base["ms"]["G optimizer update"])
    for result in (base, bf16):  # the step by kind of operation: its convolutions found
        assert list(result["ops"]) == list(op_profile.CATEGORIES)
        assert result["ops"]["conv weight gradient (kernel)"] > 0
        assert result["ops"][op_profile.OPTIMIZER] > 0 and result["ops_wall_ms"] > 0


@pytest.mark.slow
def test_table_names_every_component(report):
    text = pp.table(report)
    for name in report["components"]:
        assert f"| {name} |" in text
    assert "mixed_bfloat16 speed-up" in text and "Matmul 2048x2048" in text
    for category in op_profile.CATEGORIES:
        assert f"| {category} | " in text
    ops = report["results"]["mixed_bfloat16"]["ops"]
    share = 100 * ops["cast"] / sum(ops.values())
    assert f"{ops['cast']:.1f} ({share:.0f}%)" in text
    assert text.startswith(f"Machine: {machine.cpu_description()}; threads ")


def test_largest_conv_counts_multiply_adds():
    x = keras.Input((8, 8, 3))
    h = keras.layers.Conv2D(4, 3, padding="same", name="a")(x)  # 2*8*8*4*9*3 = 13824
    h = keras.layers.Conv2D(16, 3, strides=2, padding="same", name="b")(h)  # 2*4*4*16*9*4
    layer, flops = pp.largest_conv(keras.Model(x, keras.layers.Flatten()(h)))
    assert (layer.name, flops) == ("b", 18432)
    with pytest.raises(errors.InputError, match="no Conv2D"):
        pp.largest_conv(keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)]))
    model = keras.Model(x, keras.layers.Flatten()(h))  # another layer, by name
    assert pp.profiled_conv(model, None)[0].name == "b"
    assert (pp.profiled_conv(model, "a")[0].name, pp.profiled_conv(model, "a")[1]) == (
        "a", 13824)
    with pytest.raises(errors.InputError, match=r"no Conv2D layer 'c'; choose from \['a', 'b'\]"):
        pp.profiled_conv(model, "c")


@pytest.mark.parametrize("kwargs,match", [
    (dict(calls=0), "calls"), (dict(warmup=0), "warmup"), (dict(batch_size=2.5), "batch_size"),
    (dict(repeats=0), "repeats must be an integer >= 1"),
    (dict(precisions=("float64",)), "precision"), (dict(method="nope"), "nope")])
def test_measure_refuses_bad_input_before_timing(kwargs, match):
    with pytest.raises(errors.InputError, match=match):
        pp.measure(**{**TINY, **kwargs}, log=lambda *a: pytest.fail("timed"))


def test_table_without_float32_has_no_speedups():
    ms = {name: 2.0 for name in [*pp.COMPONENTS, pp.TRAIN_STEP]}
    conv = {"layer": "d_conv2", "input_shape": [4, 16, 16, 16], "kernel_shape": [4, 4, 16, 32],
            "gflop": 0.004, "gflops": {op: 2.0 for op in pp.CONV_OPS}}
    report = {"machine": {"cpu": "Some CPU", "threads": {"OMP_NUM_THREADS": "1"}},
              "tensorflow": "2", "architecture": "dcgan", "resolution": 32,
              "method": "asgan", "batch_size": 4, "width": 1.0, "matmul_size": 2048,
              "precisions": ["mixed_bfloat16"], "components": list(ms), "speedup": {},
              "matmul_bound": {}, "parts_sum_ms": {"mixed_bfloat16": 12.0},
              "results": {"mixed_bfloat16": {"compute_dtype": "bfloat16", "ms": ms,
                                             "matmul_gflops": 50.0, "conv": conv}}}
    text = pp.table(report)
    assert "speed-up" not in text and "| G forward | 2.00 |" in text
    assert "bfloat16 50.0." in text
    assert "dcgan-32 asgan, batch 4, width 1, XLA off\n" in text
    assert text.startswith("Machine: Some CPU; threads OMP_NUM_THREADS=1; TensorFlow 2\n")
    assert "Parts summed as the step composes them: mixed_bfloat16 12.00 ms (step 2.00)" in text
    # another method's step adds terms: no sum, and the table says why
    text = pp.table({**report, "method": "dat", "parts_sum_ms": {"mixed_bfloat16": None}})
    assert "Parts summed" not in text and "Parts not summed: dat's step adds terms" in text


def test_the_train_step_is_timed_with_xla_off_as_the_table_says(monkeypatch):
    jit = []
    monkeypatch.setattr(pp.benchmark, "measure_step",
                        lambda gan, batch, **kw: jit.append(kw["jit_compile"]) or (1.0, [1.0]))
    monkeypatch.setattr(pp.timing, "time_calls", lambda fn, **kw: (1.0, [1.0]))
    monkeypatch.setattr(pp.timing, "matmul_gflops", lambda *a, **kw: 1.0)
    step_function = pp.benchmark.step_function  # the step the operations are traced in
    monkeypatch.setattr(pp.benchmark, "step_function",
                        lambda gan, jit_compile: jit.append(jit_compile)
                        or step_function(gan, jit_compile))
    pp._measure_precision("dcgan", 32, "baseline", 2, 1 / 16,
                          dict(warmup=1, repeats=1, calls=1), 8, "none")
    assert jit == [False, False]
