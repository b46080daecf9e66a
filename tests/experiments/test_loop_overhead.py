"""The loop-overhead benchmark: its three loops, and a loop that cannot work refused
(tf_asgan.experiments.loop_overhead)."""

import keras
import pytest

from tf_asgan.experiments import loop_overhead
from tf_asgan.training import builder


def test_the_overhead_benchmark_refuses_a_loop_that_cannot_work():
    with pytest.raises(ValueError, match="does not divide the 3 steps per epoch"):
        loop_overhead.tiny_config(steps_per_epoch=3, steps_per_execution=2, log_every_steps=2)


# The three loops, timed and reported: the benchmark script's test
# (tests/experiments/test_benchmark.py), which runs them in its own process.


def test_every_loop_is_timed_under_the_configured_precision(monkeypatch):
    seen = []

    def fake_loop(config, source):
        seen.append(keras.mixed_precision.global_policy().name)
        return [1.0, 2.0], [0.0, 0.0]

    monkeypatch.setattr(loop_overhead, "LOOPS", {k: fake_loop for k in ("bare", "fit",
                                                                          "train")})
    config = loop_overhead.tiny_config(steps_per_epoch=3, epochs=2,
                                       precision="mixed_bfloat16")
    source = builder.make_source(config.data, config.model.resolution, config.optim.seed)
    report = loop_overhead.measure(config, source, log=lambda *a: None)
    assert seen == ["mixed_bfloat16"] * 6 and report["precision"] == "mixed_bfloat16"
    assert keras.mixed_precision.global_policy().name == "float32"
    assert "DCGAN-32 at width 0.125, mixed_bfloat16, batch 16" in loop_overhead.table(report)
