"""The multi-seed study: runs end to end and resumes, averages only defined values,
compares by Welch's t-test, refuses bad settings (tf_asgan.experiments.study)."""

import dataclasses
import json
import logging
import os

import numpy as np
import pytest

from helpers import REPO, is_png
from tf_asgan import randomness
from tf_asgan.experiments import study
from tf_asgan.training import builder, loop


@pytest.mark.slow
def test_the_study_runs_end_to_end_and_resumes(tmp_path, monkeypatch, caplog):
    config = study.StudyConfig(datasets=("digits",), methods=("dat", "asgan"),
                               digits_seeds=(0, 1), steps=4, steps_per_epoch=2, width=0.125,
                               eval_num_samples=200, analysis_num=16).validate()
    lines = []
    results = study.run(config, str(tmp_path), progress=lines.append)
    assert len(results) == 4 and len(lines) == 4 and lines[-1].startswith("[4/4] digits asgan")
    for r in results:
        assert r["step"] == 4 and r["fid"] > 0
        # (4 steps: D may classify no real image right yet, and then nothing can flip)
        (real,) = [x for x in r["robustness"] if x["side"] == "real"]
        assert 0 <= r["flipped_real"] <= 1 if real["right"] else np.isnan(r["flipped_real"])
        assert 1 <= r["modes"] <= 10 and np.isfinite(r["d_loss_std"])
        # DAT's step sizes over training are kept (the logged per-step values)
        assert ("dat_linf_fake" in r["traces"]) == (r["method"] == "dat")
    dat_trace = results[0]["traces"]["dat_linf_fake"]
    assert 0 < dat_trace["median"] <= dat_trace["max"] <= 1
    text = study.summarize(config, results, str(tmp_path), "python scripts/study.py --tiny")
    assert "| dat | " in text and "| asgan | " in text and "--tiny" in text
    assert (tmp_path / "summary.md").read_text() == text
    table = json.loads((tmp_path / "study.json").read_text())["table"]
    fids = [r["fid"] for r in results if r["method"] == "asgan"]
    assert table["digits"]["asgan"]["fid"][0] == pytest.approx(np.mean(fids))
    assert table["digits"]["asgan"]["fid"][1] == pytest.approx(np.std(fids, ddof=1))
    for name in ("fid.png", "curves_digits.png"):
        assert is_png(str(tmp_path / name))
    # Running it again reads the stored results instead of training or measuring ...
    monkeypatch.setattr(builder, "make_evaluator", lambda *a, **k: pytest.fail("measured"))
    again = study.run(config, str(tmp_path), progress=lambda _: None)
    assert [r["fid"] for r in again] == [r["fid"] for r in results]
    monkeypatch.undo()
    # ... and another attack radius re-measures the same trained runs without training.
    monkeypatch.setattr(loop, "train", lambda *a, **k: {"step": 4})
    wider = dataclasses.replace(config, attack_epsilon=16 / 255)
    remeasured = study.run(wider, str(tmp_path), progress=lambda _: None)
    assert [r["robustness"][0]["epsilon"] for r in remeasured] == [16 / 255] * 4
    assert [r["fid"] for r in remeasured] == [r["fid"] for r in results]
    monkeypatch.undo()
    # A run trained with an earlier random-draw scheme is trained again, from scratch.
    stored = tmp_path / "digits" / "asgan" / "seed1" / "result.json"
    record = json.loads(stored.read_text())
    del record["draws"]
    stored.write_text(json.dumps(record))
    with caplog.at_level(logging.WARNING, logger="tf_asgan"):
        redone = study.run(config, str(tmp_path), progress=lambda _: None)
    assert "earlier random-draw scheme: deleted the previous run in " in caplog.text
    assert str(tmp_path / "digits" / "asgan" / "seed1") in caplog.text
    assert redone[-1]["draws"] == randomness.SCHEME and redone[-1]["step"] == 4
    assert [r["fid"] for r in redone[:3]] == [r["fid"] for r in results[:3]]


def test_the_study_averages_only_defined_values_and_says_how_many():
    config = study.StudyConfig(datasets=("digits",), methods=("asgan", "dat"),
                               digits_seeds=(0, 1, 2))
    nan = float("nan")
    results = [{"dataset": "digits", "method": m, "fid": 10.0 + i, "flipped_real": f,
                "flipped_fake": g}
               for m, flipped in (("asgan", [(0.2, nan), (nan, nan), (0.4, nan)]),
                                  ("dat", [(0.1, 0.5), (0.3, 0.5), (0.2, 0.5)]))
               for i, (f, g) in enumerate(flipped)]
    table = study.aggregate(results)["digits"]
    mean, std, n = table["asgan"]["flipped_real"]
    assert (mean, n) == (pytest.approx(0.3), 2)  # the NaN seed left out, not counted as 0
    assert std == pytest.approx(np.std([0.2, 0.4], ddof=1))
    assert "flipped_fake" not in table["asgan"]  # no seed defines it
    assert table["dat"]["flipped_real"][2] == 3
    text = study.markdown(config, {"digits": table})
    row = next(line for line in text.splitlines() if line.startswith("| asgan |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    titles = [t for _, t, _ in study.COLUMNS]
    assert cells[1 + titles.index("flipped real @{eps}")] == "30.0% +- 14.1% (2 of 3 seeds)"
    assert cells[1 + titles.index("flipped fake @{eps}")] == "-"
    assert "(3 of 3" not in text and "when some are not" in text


def test_study_comparisons_are_welchs_t_test_by_hand():
    rows = [("baseline", 10.0), ("baseline", 14.0), ("baseline", 12.0),
            ("asgan", 5.0), ("asgan", 6.0), ("asgan", 8.0), ("asgan", 5.0)]
    results = [{"dataset": "digits", "method": m, "fid": v, "modes": 10, "d_loss_std": 0.5}
               for m, v in rows]
    p = study.comparisons(results)["digits"]["asgan"]
    a, b = np.array([5.0, 6.0, 8.0, 5.0]), np.array([10.0, 14.0, 12.0])
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    t = (a.mean() - b.mean()) / np.sqrt(va + vb)
    dof = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    import scipy.special

    # two-sided p of Student's t with Welch's degrees of freedom, via the incomplete beta
    by_hand = scipy.special.betainc(dof / 2, 0.5, dof / (dof + t * t))
    assert p["fid"] == pytest.approx(by_hand, rel=1e-9) and p["fid"] < 0.05
    assert np.isnan(p["modes"]) and np.isnan(p["d_loss_std"])  # no spread: undefined


def test_study_rejects_bad_sizes_and_names():
    with pytest.raises(ValueError, match="Unknown methods \\['gan'\\]"):
        study.StudyConfig(methods=("gan",)).validate()
    with pytest.raises(ValueError, match="multiple of"):
        study.StudyConfig(steps=150, steps_per_epoch=100).validate()
    with pytest.raises(ValueError, match="analysis_num"):
        study.StudyConfig(analysis_num=0).validate()
    # every dataset gets exactly the budget: digits' epochs divide it
    config = study.StudyConfig()
    for dataset in ("digits", "stacked_digits"):
        c = config.train_config(dataset, "asgan", 0)
        assert c.optim.epochs * c.optim.steps_per_epoch == 800
    assert config.train_config("digits", "asgan", 0).optim.steps_per_epoch == 20  # <= 22
    assert os.path.exists(os.path.join(REPO, "scripts", "study.py"))
