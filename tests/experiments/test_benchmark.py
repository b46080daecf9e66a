"""The step benchmark: ratios of a tiny run, and the script's JSON and table
(tf_asgan.experiments.benchmark)."""

import json
import os
import subprocess
import sys

import pytest

from helpers import REPO
from tf_asgan.experiments import benchmark


@pytest.mark.slow
def test_benchmark_tiny_run_reports_ratios():
    report = benchmark.run(architectures=("dcgan",), method_names=(
        "baseline", "asgan", "asgan_real_only"), xla=(False,), batch_size=4, warmup=1,
        steps=1, repeats=2, log=lambda *a: None)
    rows = {r["method"]: r for r in report["rows"]}
    assert rows["baseline"]["time_ratio"] == 1.0 and rows["baseline"]["flop_ratio"] == 1.0
    # D and G cost about the same here: the extra D update with the fake term is ~1.5x
    # the baseline's arithmetic, on the perturbed reals alone ~1.25x.
    assert 1.35 < rows["asgan"]["flop_ratio"] < 1.65
    assert 1.12 < rows["asgan_real_only"]["flop_ratio"] < 1.38
    assert all(r["ms_per_step"] > 0 and len(r["ms_repeats"]) == 2 for r in rows.values())
    assert report["input_pipeline_images_per_s"] > 0
    json.dumps(report)
    assert "| dcgan-32 | asgan | off |" in benchmark.table(report)


@pytest.mark.slow
def test_benchmark_script_writes_json_and_table(tmp_path):
    proc = subprocess.run(
        [sys.executable, "scripts/benchmark.py", "--architectures=dcgan",
         "--methods=baseline,dat,advas", "--xla=off", "--batch_size=4", "--warmup=1",
         "--steps=1", "--repeats=1", "--loop_steps_per_epoch=2", "--loop_epochs=2",
         "--steps_per_execution=2", "--log_every_steps=2", f"--output={tmp_path}"],
        cwd=REPO, capture_output=True, text=True, timeout=600,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(tmp_path / "benchmark.json") as f:
        report = json.load(f)
    assert {r["method"] for r in report["rows"]} == {"baseline", "dat", "advas"}
    loop = report["loop_overhead"]
    assert [r["loop"] for r in loop["rows"]] == ["bare", "fit", "train"]
    assert loop["steps_per_execution"] == 2 and loop["train_over_fit"] > 0
    text = (tmp_path / "benchmark.md").read_text()
    assert text.startswith("| net | method |") and "| loop | ms/step |" in text
