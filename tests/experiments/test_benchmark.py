"""The step benchmark: ratios of a tiny run, the training options against their
references, refusals before timing, and the script's JSON and table
(tf_asgan.experiments.benchmark)."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from helpers import run_script
from tf_asgan import errors
from tf_asgan.experiments import benchmark, presets
from tf_asgan.utils import machine


@pytest.mark.slow
def test_benchmark_script_writes_json_and_table_and_profiles_each_precision(tmp_path):
    # one method (DAT: its step is not the parts' sum) keeps the suite in its budget
    proc = run_script("benchmark.py", "--architectures=dcgan", "--methods=dat",
                      "--xla=off", "--batch_size=4", "--warmup=1", "--steps=1", "--repeats=1",
                      "--noloop_overhead", "--profile", "--width=0.125",
                      "--profile_conv=d_conv3",
                      "--precision=float32,mixed_bfloat16", f"--output={tmp_path}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(tmp_path / "benchmark.json") as f:
        report = json.load(f)
    assert {(r["method"], r["precision"]) for r in report["rows"]} == {
        ("dat", p) for p in ("float32", "mixed_bfloat16")}
    assert "loop_overhead" not in report and report["width"] == 0.125
    assert report["machine"]["cpu"] == machine.cpu_description()
    (profile,) = report["profile"]
    assert profile["method"] == "dat" and profile["width"] == 0.125
    assert profile["precisions"] == ["float32", "mixed_bfloat16"]
    assert profile["results"]["mixed_bfloat16"]["compute_dtype"] == "bfloat16"
    assert profile["parts_sum_ms"] == {"float32": None, "mixed_bfloat16": None}
    text = (tmp_path / "benchmark.md").read_text()
    assert text.startswith(f"Machine: {machine.cpu_description()}; threads ")  # as run
    assert "| net | method |" in text and "| loop | ms/step |" not in text
    assert "| conv2d weight gradient as patch matmul |" in text
    assert "| conv2d weight gradient |" in text and "| precision | speed-up vs float32 |" \
        in text
    assert "dcgan-32 dat, batch 4, width 0.125, XLA off" in text  # the profile's
    assert "Parts not summed: dat's step adds terms" in text
    assert "D's conv (d_conv3, input [4, 8, 8, 32]" in text  # --profile_conv's layer
    assert "| conv weight gradient (kernel) | " in text  # the step by kind of operation


@pytest.mark.slow
def test_benchmark_script_times_the_loop_alone(tmp_path):
    proc = run_script("benchmark.py", "--architectures=", "--loop_steps_per_epoch=2",
                      "--loop_epochs=2", "--steps_per_execution=2", "--log_every_steps=2",
                      f"--output={tmp_path}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((tmp_path / "benchmark.json").read_text())
    assert "rows" not in report
    (loop,) = report["loop_overhead"]  # one per precision
    assert loop["precision"] == "float32" and loop["steps_per_execution"] == 2
    by = {r["loop"]: r for r in loop["rows"]}
    assert list(by) == ["bare", "fit", "train"]
    for r in by.values():
        # two rounds of 2 epochs; each round's first epoch (tracing) is left out
        assert r["ms_per_step"] > 0 and len(r["epochs_ms_per_step"]) == 2
        assert r["ms_per_step"] == pytest.approx(np.median(r["epochs_ms_per_step"]))
    assert loop["train_over_fit"] == pytest.approx(
        by["train"]["ms_per_step"] / by["fit"]["ms_per_step"])
    assert by["train"]["epoch_end_ms"] > 0 == by["bare"]["epoch_end_ms"]
    with_ends = {k: r["ms_per_step"] + r["epoch_end_ms"] / 2 for k, r in by.items()}
    assert loop["train_over_fit_with_epoch_ends"] == pytest.approx(
        with_ends["train"] / with_ends["fit"])
    assert np.isfinite(loop["fit_over_bare"])
    text = (tmp_path / "benchmark.md").read_text()
    assert f"loop.train / fit = {loop['train_over_fit']:.3f} per step" in text


@pytest.mark.slow
def test_benchmark_reports_ratios_and_times_each_precision_under_its_policy(monkeypatch):
    policies, build = [], benchmark.build

    def recording_build(*args, **kwargs):
        policies.append(keras.mixed_precision.global_policy().name)
        return build(*args, **kwargs)

    monkeypatch.setattr(benchmark, "build", recording_build)
    methods = ("baseline", "asgan", "asgan_real_only")
    report = benchmark.run(architectures=("dcgan",), method_names=methods, xla=(False,),
                           batch_size=4, warmup=1, steps=1, repeats=2, width=1 / 8,
                           log=lambda *a: None, precisions=("float32", "mixed_bfloat16"))
    assert policies == ["float32"] * 3 + ["mixed_bfloat16"] * 3
    assert keras.mixed_precision.global_policy().name == "float32"  # restored
    rows = {(r["method"], r["precision"]): r for r in report["rows"]}
    assert report["precisions"] == ["float32", "mixed_bfloat16"]
    base = rows["baseline", "float32"]
    assert base["time_ratio"] == 1.0 and base["flop_ratio"] == 1.0
    # D and G cost about the same here: the extra D update with the fake term is ~1.5x
    # the baseline's arithmetic, on the perturbed reals alone ~1.25x.
    assert 1.35 < rows["asgan", "float32"]["flop_ratio"] < 1.65
    assert 1.12 < rows["asgan_real_only", "float32"]["flop_ratio"] < 1.38
    assert all(r["ms_per_step"] > 0 and len(r["ms_repeats"]) == 2 for r in rows.values())
    assert report["input_pipeline_images_per_s"] > 0
    json.dumps(report)
    for method in methods:
        full, half = rows[method, "float32"], rows[method, "mixed_bfloat16"]
        assert half["precision_speedup"] == full["ms_per_step"] / half["ms_per_step"]
        assert "precision_speedup" not in full
        # the method's ratio is to the baseline in the same precision
        assert half["time_ratio"] == half["ms_per_step"] / rows[
            "baseline", "mixed_bfloat16"]["ms_per_step"]
    table = benchmark.table(report)
    assert "| dcgan-32 | asgan | off |" in table
    assert "| precision | speed-up vs float32 |" in table
    assert f"| mixed_bfloat16 | {rows['asgan', 'mixed_bfloat16']['precision_speedup']:.2f} |" \
        in table


def test_a_precision_named_twice_is_refused_before_timing():
    assert benchmark.check_precisions(["float32", "mixed_bfloat16"]) == [
        "float32", "mixed_bfloat16"]
    with pytest.raises(errors.InputError, match="names one policy twice"):
        benchmark.check_precisions(["float32", "auto"])  # auto is float32 on a CPU
    with pytest.raises(errors.InputError, match="Unknown precision 'bf16'"):
        benchmark.check_precisions(["bf16"])
    with pytest.raises(errors.InputError, match="at least one precision"):
        benchmark.check_precisions([])


# -- the training options: each compared with the same method without it ---------------


def test_each_option_is_compared_with_the_same_method_without_it():
    assert presets.reference("none") is None
    assert [presets.reference(o) for o in ("nobn_d", "ema", "rotation_quarter",
                                           "rotation_all")] == ["none"] * 4
    # spectral norm and the penalties need a D without batch norm: their reference has none
    for option in ("spectral_norm", "wgan_gp", "r1"):
        assert presets.reference(option) == "nobn_d"
        assert presets.option(option).items() >= {("bn_d", False)}
    assert presets.with_references(["ema", "r1"]) == ("none", "nobn_d", "r1", "ema")
    with pytest.raises(errors.InputError, match=r"Unknown options \['sn'\]"):
        presets.with_references(["sn"])


def test_an_option_row_differs_from_its_reference_by_the_option_alone():
    for option in presets.OPTIONS:
        ref = presets.reference(option)
        if ref is None:
            continue
        row = benchmark.row_config("dcgan", 32, "asgan", option)
        base = benchmark.row_config("dcgan", 32, "asgan", ref)
        changes = set(presets.option(option))
        a, b = row.to_dict(), base.to_dict()  # mutable fields (speed options) included
        assert {k for k in a if a[k] != b[k]} == (
            changes - {"bn_d"} if ref == "nobn_d" else changes)
    # the networks are the sources': no batch norm in SN-GAN's D, latent 128, MNIST grey
    sngan = benchmark.row_config("sngan_resnet", 32, "baseline")
    assert (sngan.model.bn_g, sngan.model.bn_d, sngan.model.latent_dim) == (True, False, 128)
    mnist = benchmark.row_config("wgangp_mnist", 28, "baseline")
    assert (mnist.model.channels, mnist.model.bn_g) == (1, False)


def test_an_unknown_method_and_a_missing_resolution_are_refused_before_timing():
    with pytest.raises(errors.InputError, match=r"Unknown methods \['nope'\]"):
        benchmark.check(["dcgan"], [32], ["nope"], ["none"])
    with pytest.raises(errors.InputError, match=r"--architectures=dcgan supports "
                       r"--resolutions .*not \[48\]"):
        benchmark.check(["dcgan"], [48], ["baseline"], ["none"])


def test_rotation_on_dcgan_and_rotation_with_advas_are_refused_before_timing(monkeypatch):
    def no_timing(*args, **kwargs):
        raise AssertionError("timed before refusing")

    monkeypatch.setattr(benchmark, "build", no_timing)
    with pytest.raises(errors.InputError, match="rotation_all needs a D with a rotation "
                       "head, which --architectures=dcgan lacks.*not dcgan"):
        benchmark.run(architectures=("sngan_cnn", "dcgan"), options=("rotation_all",),
                      method_names=("baseline",), xla=(False,))
    with pytest.raises(errors.InputError, match="--methods=advas with "
                       "--options=rotation_quarter on sngan_cnn-32: The rotation loss"):
        benchmark.check(["sngan_cnn"], [32], ["advas"], ["rotation_quarter"])


def _rows(report):
    return {(r["method"], r["option"]): r for r in report["rows"]}


@pytest.mark.slow
def test_benchmark_option_ratios_are_to_the_right_reference_row():
    report = benchmark.run(architectures=("dcgan",), method_names=("baseline", "asgan"),
                           options=("spectral_norm",), xla=(False,), batch_size=4,
                           warmup=1, steps=1, repeats=1, width=1 / 8, log=lambda *a: None)
    rows = _rows(report)
    assert set(rows) == {(m, o) for m in ("baseline", "asgan")
                         for o in ("none", "nobn_d", "spectral_norm")}
    for method in ("baseline", "asgan"):
        sn, nobn, none = (rows[method, o] for o in ("spectral_norm", "nobn_d", "none"))
        assert (sn["reference"], nobn["reference"], none["reference"]) == \
            ("nobn_d", "none", None)
        assert sn["option_time_ratio"] == sn["ms_per_step"] / nobn["ms_per_step"]
        assert sn["option_flop_ratio"] == sn["flops"] / nobn["flops"]
        assert sn["option_flop_ratio"] > 1.0  # the power iteration's products
        assert "option_time_ratio" not in none
        # the method ratio compares with the baseline carrying the same option
        assert sn["flop_ratio"] == sn["flops"] / rows["baseline", "spectral_norm"]["flops"]
    assert 1.3 < rows["asgan", "spectral_norm"]["flop_ratio"] < 1.7
    text = benchmark.table(report)
    assert "| dcgan-32 | baseline | spectral_norm | nobn_d | off |" in text
    json.dumps(report)


def test_a_d_without_batch_norm_has_one_reference_row():
    # SN-GAN's D has no batch norm: nobn_d is none's configuration, measured once as none
    assert benchmark._aliases("sngan_cnn", 32, ("none", "nobn_d", "spectral_norm")) == \
        {"nobn_d": "none"}
    assert benchmark._aliases("dcgan", 32, ("none", "nobn_d", "spectral_norm")) == {}


@pytest.mark.slow
def test_benchmark_rotation_and_ema_rows_on_an_sngan_d():
    report = benchmark.run(architectures=("sngan_cnn",), method_names=("baseline",),
                           options=("nobn_d", "ema", "rotation_quarter"), xla=(False,),
                           batch_size=4, warmup=1, steps=1, repeats=1, width=1 / 8,
                           log=lambda *a: None)
    rows = _rows(report)
    assert set(rows) == {("baseline", o) for o in ("none", "ema", "rotation_quarter")}
    ema, rotation = rows["baseline", "ema"], rows["baseline", "rotation_quarter"]
    assert ema["reference"] == rotation["reference"] == "none"
    # of the EMA's element-wise update the profiler counts only the multiplications
    assert 1.0 < ema["option_flop_ratio"] < 1.01
    assert rotation["option_flop_ratio"] > 1.0  # D also classifies the rotated reals


@pytest.mark.parametrize("counts,name", [
    (dict(warmup=0), "warmup"), (dict(steps=0), "steps"), (dict(repeats=0), "repeats"),
    (dict(batch_size=0), "batch_size")])
def test_run_refuses_a_count_it_cannot_time_before_building(monkeypatch, counts, name):
    def no_timing(*args, **kwargs):
        raise AssertionError("built before refusing")

    monkeypatch.setattr(benchmark, "build", no_timing)
    monkeypatch.setattr(benchmark, "input_throughput", no_timing)
    with pytest.raises(errors.InputError, match=f"^{name} must be an integer >= 1, got 0"):
        benchmark.run(architectures=("dcgan",), method_names=("baseline",), xla=(False,),
                      log=lambda *a: None, **counts)


def test_measure_step_times_through_the_timing_module(monkeypatch):
    seen = []
    monkeypatch.setattr(benchmark.timing, "time_calls",
                        lambda fn, *counts: seen.append(counts) or (1.0, [1.0]))
    monkeypatch.setattr(benchmark, "step_function", lambda gan, jit: lambda batch: batch)
    assert benchmark.measure_step(None, tf.zeros(1), warmup=2, steps=3, repeats=4) == \
        (1.0, [1.0])
    assert seen == [(2, 4, 3)]  # warmup, repeats, calls = steps
