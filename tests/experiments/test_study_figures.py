"""The study's figures (tf_asgan.experiments.study_figures, scripts/study_figures.py):
intervals against SciPy, binned curves against NumPy by hand, the files written."""

import csv
import json
import logging
import math
import os

import numpy as np
import pytest
import tensorflow as tf
from scipy import stats

from helpers import is_png, run_script
from tf_asgan import errors, layout
from tf_asgan.experiments import study_figures, study_results

VALUES = {  # (setting, method): per-seed fid; NaN: undefined
    ("standard", "baseline"): [30.0, 34.0, 31.5, 29.0],
    ("standard", "asgan"): [28.0, math.nan, 27.0, math.nan],
    ("no_bn_d", "baseline"): [50.0, 61.0, 55.0, 58.0],
    ("no_bn_d", "asgan"): [44.0, 47.5, math.nan, 41.0],
}
ARMS = list(VALUES)
STEPS = 45  # two full bins of 20 steps and a partial one of 5


def write_csv(path):
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(study_results.CSV_COLUMNS)
        for (setting, method), values in VALUES.items():
            for seed, value in enumerate(values):
                writer.writerow([setting, method, seed, "fid", repr(value)])
                writer.writerow([setting, method, seed, "modes", seed + 10])
    return str(path)


def loss(name, seed, step):
    """A logged value that differs by name, seed and step (float32-exact)."""
    return float(np.float32((1.0 if name == "d_loss" else 3.0) + seed + np.sin(step)))


def write_run(workdir, seed, names=("d_loss", "g_loss"), finished=True):
    with tf.summary.create_file_writer(os.path.join(workdir, layout.TENSORBOARD)).as_default():
        for step in range(1, STEPS + 1):
            for name in names:
                tf.summary.scalar("step/" + name, loss(name, seed, step), step=step)
    if finished:
        with open(os.path.join(workdir, "result.json"), "w") as f:
            json.dump({"seed": seed}, f)
    return str(workdir)


@pytest.fixture(scope="module")
def study_output(tmp_path_factory):
    """A study output folder: standard/{baseline,asgan} x seeds 0-2."""
    root = tmp_path_factory.mktemp("study")
    for method in ("baseline", "asgan"):
        for seed in range(3):
            write_run(root / "stacked_digits" / "standard" / method / f"seed{seed}", seed)
    return str(root)


@pytest.mark.parametrize("values", [[1.0, 2.0, 4.5], [3.0, 3.5, math.nan, 10.0, math.nan],
                                    [7.0, 7.0]])
def test_mean_interval_is_scipys_t_interval_without_the_nans(values):
    x = np.array(values)
    defined = x[~np.isnan(x)]
    mean, low, high, n, n_nan = study_figures.mean_interval(values)
    assert (n, n_nan) == (len(defined), int(np.isnan(x).sum()))
    assert mean == pytest.approx(defined.mean(), rel=1e-12)
    if defined.std() > 0:
        ref = stats.t.interval(0.95, len(defined) - 1, loc=defined.mean(),
                               scale=stats.sem(defined))
        assert (low, high) == pytest.approx(ref, rel=1e-12)
    else:  # no spread: the interval is the mean
        assert low == high == mean


def test_mean_interval_of_too_few_values_and_refusals():
    assert study_figures.mean_interval([2.0, math.nan])[:4] == pytest.approx(
        (2.0, math.nan, math.nan, 1), nan_ok=True)
    assert study_figures.mean_interval([math.nan])[3:] == (0, 1)
    with pytest.raises(errors.InputError, match="finite"):
        study_figures.mean_interval([1.0, math.inf])


def test_dot_plot_draws_every_arm_with_its_counts(tmp_path):
    table = study_results.read_csv(write_csv(tmp_path / "s.csv"))
    path = str(tmp_path / "dots_fid.png")
    assert study_figures.dot_plot(table, "fid", ARMS, path) == path
    assert is_png(path, (300, 200)) and os.path.getsize(path) > 10_000
    fig = study_figures.dot_figure(table, "fid", ARMS)
    axes = fig.axes
    assert [ax.get_title() for ax in axes] == ["standard", "no_bn_d"]
    assert axes[0].get_ylabel() == "fid (lower is better)"
    ticks = [t.get_text() for t in axes[0].get_xticklabels()]
    assert ticks == ["baseline\nn = 4", "asgan\nn = 2\n(2 NaN)"]
    # the error bar's ends are the interval of the defined values
    _, low, high, _, _ = study_figures.mean_interval(VALUES[("no_bn_d", "asgan")])
    caps = [line for line in axes[1].get_lines() if line.get_marker() == "_"]
    assert sorted(float(c.get_ydata()[0]) for c in caps[-2:]) == pytest.approx([low, high])
    dots = np.concatenate([c.get_offsets()[:, 1] for c in axes[1].collections
                           if c.get_offsets().shape[0] in (3, 4)])
    assert sorted(dots) == sorted(v for arm in ARMS[2:] for v in VALUES[arm]
                                  if not math.isnan(v))
    fig.clf()
    unlabelled = study_figures.dot_figure(table, "modes", ARMS[:1])
    assert unlabelled.axes[0].get_ylabel() == "modes (higher is better)"


def test_dot_plot_draws_a_failed_run_at_its_pre_registered_value():
    table = {("standard", "asgan", "modes"): {0: 300.0, 1: 500.0},
             ("standard", "asgan", "failed"): {0: 0.0, 1: 0.0, 2: 1.0},
             ("standard", "baseline", "modes"): {0: 100.0, 1: 200.0, 2: 150.0}}
    fig = study_figures.dot_figure(table, "modes", [("standard", "baseline"),
                                                    ("standard", "asgan")])
    ax = fig.axes[0]
    ticks = [t.get_text() for t in ax.get_xticklabels()]
    assert ticks == ["baseline\nn = 3", "asgan\nn = 3\n(1 failed)"]
    crosses = [c for c in ax.collections if c.get_label().startswith("failed run")]
    assert len(crosses) == 1 and crosses[0].get_offsets()[:, 1].tolist() == [0.0]
    _, low, high, _, _ = study_figures.mean_interval([300.0, 500.0, 0.0])  # 0 modes
    caps = [line for line in ax.get_lines() if line.get_marker() == "_"]
    assert sorted(float(c.get_ydata()[0]) for c in caps[-2:]) == pytest.approx([low, high])
    fig.clf()
    # an arm whose every run failed is still drawn (its values are the rule's)
    table[("standard", "dat", "failed")] = {0: 1.0}
    fig = study_figures.dot_figure(table, "modes", [("standard", "dat")])
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["dat\nn = 1\n(1 failed)"]
    fig.clf()
    # a metric without a failure value: the failed run is undefined, counted once
    table[("standard", "asgan", "grad_l1")] = {0: 3.0, 1: math.nan}
    fig = study_figures.dot_figure(table, "grad_l1", [("standard", "asgan")])
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == [
        "asgan\nn = 1\n(1 NaN)\n(1 failed)"]
    fig.clf()


def test_dot_plot_refuses_an_arm_without_the_metric(tmp_path):
    table = study_results.read_csv(write_csv(tmp_path / "s.csv"))
    with pytest.raises(errors.InputError, match="lr_d_4e-4/asgan"):
        study_figures.dot_plot(table, "fid", ARMS + [("lr_d_4e-4", "asgan")],
                               str(tmp_path / "x.png"))
    assert not os.path.exists(tmp_path / "x.png")


def read_rows(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


def test_export_curves_bins_the_step_logs(study_output, tmp_path, caplog):
    runs = study_figures.find_runs([study_output], "stacked_digits")
    assert sorted(runs) == [("standard", m, s) for m in ("asgan", "baseline") for s in range(3)]
    partial = write_run(tmp_path / "partial", 7, names=("d_loss",))
    runs[("standard", "asgan", 7)] = partial
    path = str(tmp_path / "curves.csv")
    with caplog.at_level(logging.WARNING):
        rows = study_figures.export_curves(runs, ("d_loss", "g_loss"), 20, path)
    assert "g_loss" in caplog.text and "partial" in caplog.text
    lines = read_rows(path)
    assert tuple(lines[0]) == study_figures.CURVE_COLUMNS
    assert rows == len(lines) - 1 == (6 * 2 + 1) * 3
    keys = [(s, m, int(k), int(st), n) for s, m, k, st, n, _ in lines[1:]]
    assert keys == sorted(keys)
    got = {(m, int(k), n, int(st)): float(v) for _, m, k, st, n, v in lines[1:]}
    for (_, method, seed), _ in runs.items():
        for name in ("d_loss",) if seed == 7 else ("d_loss", "g_loss"):
            logged = np.array([loss(name, seed, s) for s in range(1, STEPS + 1)])
            for last, (lo, hi) in ((20, (0, 20)), (40, (20, 40)), (45, (40, 45))):
                assert got[(method, seed, name, last)] == pytest.approx(logged[lo:hi].mean(),
                                                                       rel=1e-12)
    assert ("asgan", 7, "g_loss", 20) not in got


def test_export_curves_keeps_the_runs_of_an_earlier_part(study_output, tmp_path):
    runs = study_figures.find_runs([study_output], "stacked_digits")
    path = str(tmp_path / "curves.csv")
    first = {k: w for k, w in runs.items() if k[2] < 2}  # part 1: seeds 0 and 1
    assert study_figures.export_curves(first, ("d_loss",), 20, path) == 4 * 3
    # part 2: seed 2, and seed 0 of asgan again from a run logged as seed 5
    second = {k: w for k, w in runs.items() if k[2] == 2}
    second[("standard", "asgan", 0)] = write_run(tmp_path / "again", 5, names=("d_loss",))
    assert study_figures.export_curves(second, ("d_loss",), 20, path) == 3 * 3
    lines = read_rows(path)
    assert len(lines) - 1 == 6 * 3
    got = {(m, int(k), int(st)): float(v) for _, m, k, st, _, v in lines[1:]}
    for method in ("asgan", "baseline"):
        for seed in range(3):
            logged = 5 if (method, seed) == ("asgan", 0) else seed  # replaced
            expected = np.mean([loss("d_loss", logged, s) for s in range(41, 46)])
            assert got[(method, seed, 45)] == pytest.approx(expected, rel=1e-12)
    before = open(path).read()
    with pytest.raises(errors.InputError, match="binned over 20 steps"):
        study_figures.export_curves(second, ("d_loss",), 15, path)
    assert open(path).read() == before


def test_export_curves_refuses_a_run_without_logs(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(errors.InputError, match="no_bn_d/asgan seed 3"):
        study_figures.export_curves({("no_bn_d", "asgan", 3): str(empty)}, ("d_loss",), 20,
                                    str(tmp_path / "c.csv"))
    assert not os.path.exists(tmp_path / "c.csv")


def test_find_runs_refuses_a_run_in_two_outputs(study_output, tmp_path):
    write_run(tmp_path / "stacked_digits" / "no_bn_d" / "asgan" / "seed0", 0)
    write_run(tmp_path / "stacked_digits" / "no_bn_d" / "asgan" / "seed1", 1, finished=False)
    runs = study_figures.find_runs([study_output, str(tmp_path)], "stacked_digits")
    assert ("no_bn_d", "asgan", 0) in runs and ("no_bn_d", "asgan", 1) not in runs
    with pytest.raises(errors.InputError, match="standard/asgan seed 0 is in two"):
        study_figures.find_runs([study_output, study_output], "stacked_digits")
    with pytest.raises(errors.MissingError, match="No finished digits runs"):
        study_figures.find_runs([study_output], "digits")


def test_curves_plot_draws_the_median_and_quartiles_of_the_csv(study_output, tmp_path):
    runs = study_figures.find_runs([study_output], "stacked_digits")
    csv_path = str(tmp_path / "curves.csv")
    study_figures.export_curves(runs, ("d_loss", "g_loss"), 20, csv_path)
    path = str(tmp_path / "curves_g_loss.png")
    arms = [("standard", "baseline"), ("standard", "asgan")]
    assert study_figures.curves_plot(csv_path, path, "g_loss", arms) == path
    assert is_png(path, (300, 200)) and os.path.getsize(path) > 10_000
    fig = study_figures.curves_figure(csv_path, "g_loss", arms)
    assert "binned over 20 steps" in fig._suptitle.get_text()
    assert "median" in fig._suptitle.get_text()
    (ax,) = fig.axes
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "baseline (n = 3 seeds)", "asgan (n = 3 seeds)"]
    line = ax.get_lines()[0]
    np.testing.assert_array_equal(line.get_xdata(), [20, 40, 45])
    bins = np.array([[np.mean([loss("g_loss", seed, s) for s in range(lo + 1, hi + 1)])
                      for lo, hi in ((0, 20), (20, 40), (40, 45))] for seed in range(3)])
    np.testing.assert_allclose(line.get_ydata(), np.median(bins, axis=0), rtol=1e-12)
    fig.clf()
    with pytest.raises(errors.InputError, match="no_bn_d/asgan"):
        study_figures.curves_plot(csv_path, path, "g_loss", [("no_bn_d", "asgan")])


@pytest.mark.slow
def test_the_script_draws_dots_and_curves(study_output, tmp_path):
    out = tmp_path / "not" / "yet" / "figures"  # made by the script
    # one process: the dot plots, the runs exported to the curves CSV, the curves from it
    # (drawing from that CSV alone, and the refusals, are tested above in this process)
    proc = run_script("study_figures.py", f"--csv={write_csv(tmp_path / 's.csv')}",
                      f"--runs={study_output}", f"--output={out}", "--metrics=fid,modes",
                      "--bin_steps=15")
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = read_rows(out / "curves_stacked_digits.csv")
    assert {int(row[3]) for row in lines[1:]} == {15, 30, 45}
    assert sorted(os.listdir(out)) == ["curves_d_loss.png", "curves_g_loss.png",
                                       "curves_stacked_digits.csv", "dots_fid.png",
                                       "dots_modes.png"]
    for name in ("dots_fid.png", "dots_modes.png", "curves_d_loss.png", "curves_g_loss.png"):
        assert is_png(out / name, (300, 200)), name
    assert f"{out / 'curves_stacked_digits.csv'}: 36 rows from 6 runs" in proc.stdout
