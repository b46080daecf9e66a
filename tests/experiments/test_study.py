"""The multi-seed study: runs end to end and resumes, averages only defined values,
compares by Welch's t-test, refuses bad settings (tf_asgan.experiments.study)."""

import dataclasses
import json
import logging
import os
import subprocess

import numpy as np
import pytest

from helpers import REPO, is_png
from tf_asgan import randomness
from tf_asgan.experiments import study, study_results, study_settings, study_summary
from tf_asgan.training import builder, loop
from tf_asgan.utils import machine, nonfinite


@pytest.mark.slow
def test_the_study_runs_settings_end_to_end_writes_its_csv_and_resumes(tmp_path, monkeypatch,
                                                                       caplog):
    config = study.StudyConfig(datasets=("digits",), settings=("standard", "no_bn_d"),
                               methods=("dat", "asgan"), digits_seeds=(0,), steps=2,
                               steps_per_epoch=2, width=0.125, eval_num_samples=200,
                               analysis_num=16).validate()
    lines, out, csvs = [], tmp_path / "runs", tmp_path / "results"
    results = study.run(config, str(out), progress=lines.append, results_dir=str(csvs))
    assert len(results) == 4 and lines[-1].startswith("[4/4] digits no_bn_d asgan seed 0")
    for r in results:
        assert r["step"] == 2 and r["fid"] > 0 and 1 <= r["modes"] <= 10
        assert r["config"]["bn_d"] == (r["setting"] == "standard")
        assert (out / "digits" / r["setting"] / r["method"] / "seed0" / "result.json").exists()
        # (2 steps: D may classify no real image right yet, and then nothing can flip)
        (real,) = [x for x in r["robustness"] if x["side"] == "real"]
        assert 0 <= r["flipped_real"] <= 1 if real["right"] else np.isnan(r["flipped_real"])
        assert ("dat_linf_fake" in r["traces"]) == (r["method"] == "dat")
    rows = study_results.read_csv(csvs / "digits.csv")
    assert rows[("no_bn_d", "asgan", "fid")] == {0: results[3]["fid"]}
    assert rows[("standard", "dat", "dat_linf_fake_median")][0] > 0
    assert {k[:2] for k in rows} == {(c, m) for c in config.settings for m in config.methods}
    meta = json.loads((csvs / "digits.json").read_text())
    assert meta["settings"] == {"no_bn_d": {"bn_d": False}, "standard": {}}
    assert meta["runs"]["no_bn_d/asgan/seed0"]["config_sha256"] == study_results.config_digest(
        results[3]["config"])
    text = study_summary.summarize(config, results, str(out), "python scripts/study.py --tiny")
    assert "## digits/no_bn_d" in text and "| asgan | " in text and "--tiny" in text
    table = json.loads((out / "study.json").read_text())["table"]
    assert table["digits/standard"]["asgan"]["fid"][0] == pytest.approx(results[1]["fid"])
    for name in ("fid.png", "curves_digits_standard.png", "curves_digits_no_bn_d.png"):
        assert is_png(str(out / name))
    # Running it again reads the stored results instead of training or measuring ...
    monkeypatch.setattr(builder, "make_evaluator", lambda *a, **k: pytest.fail("measured"))
    again = study.run(config, str(out), progress=lambda _: None, results_dir=str(csvs))
    assert [r["fid"] for r in again] == [r["fid"] for r in results]
    monkeypatch.undo()
    # ... another attack radius re-measures the same trained runs without training ...
    monkeypatch.setattr(loop, "train", lambda *a, **k: {"step": 2})
    wider = dataclasses.replace(config, attack_epsilon=16 / 255, settings=("standard",),
                                methods=("dat",))
    (remeasured,) = study.run(wider, str(out), progress=lambda _: None)
    assert remeasured["robustness"][0]["epsilon"] == 16 / 255
    assert remeasured["fid"] == results[0]["fid"]
    monkeypatch.undo()
    # ... and a redefined setting trains its runs again from scratch; a part of the study
    # run alone keeps the other part's CSV rows while they still resolve to the same
    # configuration (no_bn_d's dat, redefined and not rerun, loses its rows).
    monkeypatch.setitem(study_settings.SETTINGS, "no_bn_d", {"bn_d": False, "lr_d": 3e-4})
    part = dataclasses.replace(config, settings=("no_bn_d",), methods=("asgan",))
    with caplog.at_level(logging.WARNING, logger="tf_asgan"):
        (redone,) = study.run(part, str(out), progress=lambda _: None, results_dir=str(csvs))
    redone_dir = out / "digits" / "no_bn_d" / "asgan" / "seed0"
    assert f"--existing_run=overwrite: deleted the previous run in {redone_dir}" in caplog.text
    assert redone["config"]["lr_d"] == 3e-4 and redone["step"] == 2
    rows = study_results.read_csv(csvs / "digits.csv")
    assert rows[("no_bn_d", "asgan", "fid")] == {0: redone["fid"]}
    assert rows[("standard", "asgan", "fid")] == {0: results[1]["fid"]}  # kept
    assert ("no_bn_d", "dat", "fid") not in rows
    caplog.clear()
    # A run trained with an earlier random-draw scheme is trained again, from scratch.
    stored = out / "digits" / "standard" / "asgan" / "seed0" / "result.json"
    record = json.loads(stored.read_text())
    del record["draws"]
    stored.write_text(json.dumps(record))
    with caplog.at_level(logging.WARNING, logger="tf_asgan"):
        study.run(dataclasses.replace(config, settings=("standard",), methods=("asgan",)),
                  str(out), progress=lambda _: None, results_dir=str(csvs))
    assert ("earlier random-draw scheme: deleted the previous run in "
            f"{stored.parent}") in caplog.text
    assert randomness.SCHEME == json.loads(stored.read_text())["draws"]
    # every run records the machine that trained it, and the CSV's JSON carries it
    assert json.loads(stored.read_text())["machine"] == machine.description()
    meta = json.loads((csvs / "digits.json").read_text())
    assert meta["runs"]["standard/asgan/seed0"]["machine"]["cpu"] == machine.cpu_description()
    # and the code that trained it (a study run in parts may span commits)
    assert meta["runs"]["standard/asgan/seed0"]["code"] == study_results.code_version()


def test_settings_and_ablation_methods_resolve_and_clashes_are_refused(monkeypatch):
    config = study.StudyConfig(settings=("standard", "no_bn_d", "lr_d_4e-4"),
                               methods=("baseline", "asgan", "asgan_eps0",
                                        "asgan_gaussian")).validate()
    c = config.train_config("stacked_digits", "asgan", 0, "no_bn_d")
    assert (c.model.bn_d, c.model.bn_g, c.method.adversarial) == (False, True, True)
    assert config.train_config("stacked_digits", "baseline", 0, "lr_d_4e-4").optim.lr_d == 4e-4
    eps0 = config.train_config("stacked_digits", "asgan_eps0", 0).method
    assert (eps0.adversarial, eps0.perturbation, eps0.epsilon) == (True, "none", 0.0)
    assert eps0.second_update == "real_and_fake"  # D's second update: the same reals, fakes
    gauss = config.train_config("stacked_digits", "asgan_gaussian", 0).method
    assert (gauss.perturbation, gauss.epsilon) == ("gaussian", 1 / 255)
    assert config.train_config("stacked_digits", "asgan_eps2", 0).method.epsilon == 2 / 255
    # the standard setting is today's study run, unchanged
    assert (config.train_config("digits", "asgan", 1, "standard").to_dict()
            == config.train_config("digits", "asgan", 1).to_dict())
    jobs = config.jobs()
    assert len(jobs) == 3 * 4 * (5 + 3)  # settings x methods x (stacked + digits seeds)
    assert jobs[0] == ("stacked_digits", "standard", "baseline", 0)
    assert jobs[5] == ("stacked_digits", "standard", "asgan", 0)
    with pytest.raises(ValueError, match="Unknown or repeated settings"):
        study.StudyConfig(settings=("standard", "nobn")).validate()
    with pytest.raises(ValueError, match="Unknown or repeated settings"):
        study.StudyConfig(settings=("standard", "standard")).validate()
    with pytest.raises(ValueError, match="asgan_eps7"):
        study.StudyConfig(methods=("asgan_eps7",)).validate()
    monkeypatch.setitem(study_settings.SETTINGS, "wide_eps", {"epsilon": 3 / 255})
    with pytest.raises(ValueError, match="changes \\['epsilon'\\], which method 'asgan_eps2'"):
        config.train_config("digits", "asgan_eps2", 0, "wide_eps")


def _result(setting, method, seed, config, fid, flipped=0.25):
    return {"dataset": "digits", "setting": setting, "method": method, "seed": seed,
            "fid": fid, "modes": 9.0, "flipped_real": flipped, "step": 800,
            "train_seconds": 60.0, "config": config.to_dict(), "machine": {"cpu": "Some CPU"},
            "traces": {"dat_linf_fake": {"median": 0.1, "max": 0.2}}}


def test_write_results_writes_rows_merges_parts_and_drops_redefined_runs(tmp_path, monkeypatch,
                                                                         caplog):
    config = study.StudyConfig(datasets=("digits",), settings=("standard", "no_bn_d"),
                               methods=("baseline",), digits_seeds=(0, 1))
    first = [_result(c, "baseline", s, config.train_config("digits", "baseline", s, c),
                     10.0 + s, flipped=float("nan") if s else 0.25)
             for c in ("standard", "no_bn_d") for s in (0, 1)]
    (path,) = study_results.write_results(config, first, str(tmp_path))
    text = (tmp_path / "digits.csv").read_text().splitlines()
    assert text[0] == "setting,method,seed,metric,value"
    assert "no_bn_d,baseline,1,flipped_real,nan" in text  # undefined, kept as NaN
    assert "standard,baseline,0,dat_linf_fake_max,0.2" in text
    assert len(text) == 1 + 4 * 6  # fid, modes, flipped_real, train_seconds, 2 trace values
    meta = json.loads((tmp_path / "digits.json").read_text())
    assert meta["study"]["steps"] == 800 and meta["methods"] == {"baseline": {
        "adversarial": False}}
    assert set(meta["code"]) == {"package", "git_commit", "git_dirty"}
    assert meta["runs"]["no_bn_d/baseline/seed1"]["machine"] == {"cpu": "Some CPU"}
    # a part of the study: only standard's seed 0, with a new value
    part = [dict(first[0], fid=99.0)]
    study_results.write_results(config, part, str(tmp_path))
    rows = study_results.read_csv(path)
    assert rows[("standard", "baseline", "fid")] == {0: 99.0, 1: 11.0}
    assert rows[("no_bn_d", "baseline", "fid")] == {0: 10.0, 1: 11.0}
    # no_bn_d redefined: its earlier rows no longer describe it and go, with a warning
    monkeypatch.setitem(study_settings.SETTINGS, "no_bn_d", {"bn_d": False, "bn_g": False})
    with caplog.at_level(logging.WARNING, logger="tf_asgan"):
        study_results.write_results(config, part, str(tmp_path))
    assert "dropped 2 runs" in caplog.text and "no_bn_d/baseline/seed0" in caplog.text
    rows = study_results.read_csv(path)
    assert {k[0] for k in rows} == {"standard"}


def test_the_study_averages_only_defined_values_and_says_how_many():
    config = study.StudyConfig(datasets=("digits",), methods=("asgan", "dat"),
                               digits_seeds=(0, 1, 2))
    nan = float("nan")
    results = [{"dataset": "digits", "method": m, "fid": 10.0 + i, "flipped_real": f,
                "flipped_fake": g}
               for m, flipped in (("asgan", [(0.2, nan), (nan, nan), (0.4, nan)]),
                                  ("dat", [(0.1, 0.5), (0.3, 0.5), (0.2, 0.5)]))
               for i, (f, g) in enumerate(flipped)]
    table = study_summary.aggregate(results)["digits/standard"]
    mean, std, n = table["asgan"]["flipped_real"]
    assert (mean, n) == (pytest.approx(0.3), 2)  # the NaN seed left out, not counted as 0
    assert std == pytest.approx(np.std([0.2, 0.4], ddof=1))
    assert "flipped_fake" not in table["asgan"]  # no seed defines it
    assert table["dat"]["flipped_real"][2] == 3
    text = study_summary.markdown(config, {"digits/standard": table})
    row = next(line for line in text.splitlines() if line.startswith("| asgan |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    titles = [t for _, t, _ in study_settings.COLUMNS]
    assert cells[1 + titles.index("flipped real @{eps}")] == "30.0% +- 14.1% (2 of 3 seeds)"
    assert cells[1 + titles.index("flipped fake @{eps}")] == "-"
    assert "(3 of 3" not in text and "when some are not" in text


def test_study_comparisons_are_welchs_t_test_by_hand():
    rows = [("baseline", 10.0), ("baseline", 14.0), ("baseline", 12.0),
            ("asgan", 5.0), ("asgan", 6.0), ("asgan", 8.0), ("asgan", 5.0)]
    results = [{"dataset": "digits", "method": m, "fid": v, "modes": 10, "d_loss_std": 0.5}
               for m, v in rows]
    p = study_summary.comparisons(results)["digits/standard"]["asgan"]
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


def test_a_run_that_fails_is_recorded_and_the_study_goes_on(tmp_path, monkeypatch):
    calls = []

    def failing_train(config, workdir, **kwargs):
        calls.append(workdir)
        raise nonfinite.NonFiniteError(7, ["d_loss"])

    monkeypatch.setattr(loop, "train", failing_train)
    config = study.StudyConfig(datasets=("digits",), methods=("asgan",), digits_seeds=(0, 1),
                               steps=2, steps_per_epoch=2).validate()
    lines, csvs = [], tmp_path / "results"
    results = study.run(config, str(tmp_path / "runs"), progress=lines.append,
                        results_dir=str(csvs))
    assert len(calls) == 2 and [r["step"] for r in results] == [7, 7]  # both seeds ran
    assert results[0]["failed"] == "Non-finite losses at training step 7: d_loss."
    assert "FAILED at step 7: Non-finite losses" in lines[0]
    text = (csvs / "digits.csv").read_text().splitlines()
    assert text[1:] == ["standard,asgan,0,failed,1.0", "standard,asgan,1,failed,1.0"]
    # stored: running again reads the failure instead of training again
    again = study.run(config, str(tmp_path / "runs"), progress=lambda _: None)
    assert len(calls) == 2 and again[1]["failed"] == results[1]["failed"]
    assert study_summary.aggregate(results) == {"digits/standard": {"asgan": {}}}


def test_code_version_counts_only_code_as_dirty(monkeypatch):
    calls = []

    def fake_run(args, **kwargs):
        calls.append(args)
        out = "abc123\n" if "rev-parse" in args else ""  # a clean tree
        return subprocess.CompletedProcess(args, 0, stdout=out, stderr="")

    monkeypatch.setattr(study_results.subprocess, "run", fake_run)
    version = study_results.code_version()
    assert version["git_commit"] == "abc123" and version["git_dirty"] is False
    status = next(c for c in calls if "status" in c)
    # the results a study writes into the checkout do not make the code dirty
    assert status[status.index("--") + 1:] == [f":/{p}" for p in study_results.CODE_PATHS]
    assert "tf_asgan" in study_results.CODE_PATHS and "docs" not in study_results.CODE_PATHS
