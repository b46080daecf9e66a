"""Timing of TensorFlow calls (tf_asgan.utils.timing): the calls counted, the median
taken, the matmul rate's formula, and the counts that cannot be timed refused."""

import numpy as np
import pytest
import tensorflow as tf

from tf_asgan import errors
from tf_asgan.utils import timing


def test_time_calls_counts_its_calls_and_takes_the_median():
    calls = []

    def fn():
        calls.append(1)
        return {"x": tf.constant(1.0, tf.bfloat16)}  # read back without np.asarray

    median, runs = timing.time_calls(fn, warmup=2, repeats=3, calls=4)
    assert len(calls) == 2 + 3 * 4 and len(runs) == 3 and median == sorted(runs)[1]
    assert all(ms > 0 for ms in runs)


@pytest.mark.parametrize("size,ms", [(64, 0.5), (100, 3.0), (2048, 80.0)])
def test_matmul_gflops_is_two_size_cubed_over_the_median_time(monkeypatch, size, ms):
    seen = []

    def fixed(fn, warmup, repeats, calls):
        seen.append((warmup, repeats, calls))
        return ms, [ms] * repeats

    monkeypatch.setattr(timing, "time_calls", fixed)
    got = timing.matmul_gflops("float32", size=size, warmup=1, repeats=2, calls=3)
    # a size x size product: size^2 dot products of length size, a multiply and an add each
    assert got == pytest.approx(2 * size ** 3 / (ms / 1000) / 1e9, rel=1e-12)
    assert seen == [(1, 2, 3)]


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_matmul_gflops_runs_in_its_dtype(dtype):
    assert 0 < timing.matmul_gflops(dtype, size=64, warmup=1, repeats=1, calls=1) < 1e6


@pytest.mark.parametrize("counts,name", [
    (dict(warmup=0), "warmup"), (dict(calls=0), "calls"), (dict(repeats=0), "repeats"),
    (dict(repeats=-2), "repeats"), (dict(calls=2.5), "calls"), (dict(warmup=None), "warmup")])
def test_time_calls_refuses_a_count_it_cannot_time_before_any_call(counts, name):
    def never():
        raise AssertionError("called before refusing")

    with pytest.raises(errors.InputError, match=f"{name} must be an integer >= 1, got"):
        timing.time_calls(never, **counts)


def test_check_counts_names_the_bad_count_and_passes_integers_only():
    timing.check_counts(a=1, b=np.int64(3), c=10 ** 6)
    with pytest.raises(errors.InputError, match=r"^b must be an integer >= 1, got 3\.0\.$"):
        timing.check_counts(a=1, b=3.0)  # range() and tensor shapes refuse a float
    with pytest.raises(errors.InputError, match="warmup must be"):
        timing.time_calls(lambda: tf.constant(1.0), warmup=2.0)
    with pytest.raises(errors.InputError, match=r"^b must be an integer >= 1, got 0\.$"):
        timing.check_counts(a=1, b=0, c=2)
    with pytest.raises(errors.InputError, match="flag must be an integer >= 1, got True"):
        timing.check_counts(flag=True)
    with pytest.raises(errors.InputError, match="size must be"):
        timing.matmul_gflops(size=0)
