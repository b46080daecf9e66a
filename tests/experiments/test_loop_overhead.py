"""The loop-overhead benchmark: its three loops, and a loop that cannot work refused
(tf_asgan.experiments.loop_overhead)."""

import keras
import numpy as np
import pytest

from tf_asgan.experiments import loop_overhead
from tf_asgan.training import builder


def test_the_overhead_benchmark_refuses_a_loop_that_cannot_work():
    with pytest.raises(ValueError, match="does not divide the 3 steps per epoch"):
        loop_overhead.tiny_config(steps_per_epoch=3, steps_per_execution=2, log_every_steps=2)


@pytest.mark.slow
def test_the_loop_overhead_benchmark_reports_its_three_loops():
    config = loop_overhead.tiny_config(steps_per_epoch=3, epochs=2, latent_dim=8)
    lines = []
    source = builder.make_source(config.data, config.model.resolution, config.optim.seed)
    report = loop_overhead.measure(config, source, log=lines.append)
    by = {r["loop"]: r for r in report["rows"]}
    assert list(by) == ["bare", "fit", "train"] and len(lines) == 3
    for r in by.values():
        # two rounds of 2 epochs; each round's first epoch (tracing) is left out
        assert r["ms_per_step"] > 0 and len(r["epochs_ms_per_step"]) == 2
        assert r["ms_per_step"] == pytest.approx(np.median(r["epochs_ms_per_step"]))
    assert report["train_over_fit"] == pytest.approx(
        by["train"]["ms_per_step"] / by["fit"]["ms_per_step"])
    assert by["train"]["epoch_end_ms"] > 0 == by["bare"]["epoch_end_ms"]
    text = loop_overhead.table(report)
    assert f"loop.train / fit = {report['train_over_fit']:.3f} per step" in text
    with_ends = {r["loop"]: r["ms_per_step"] + r["epoch_end_ms"] / 3 for r in report["rows"]}
    assert report["train_over_fit_with_epoch_ends"] == pytest.approx(
        with_ends["train"] / with_ends["fit"])
    assert np.isfinite(report["fit_over_bare"])


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
