"""The study's statistics against SciPy, hand values and simulation
(tf_asgan.experiments.statistics)."""

import json
import math
import warnings

import numpy as np
import pytest
from scipy import stats

from helpers import run_script
from tf_asgan import errors
from tf_asgan.experiments import statistics, study_results

A = np.array([5.0, 6.0, 8.0, 5.0, 7.5])
B = np.array([10.0, 14.0, 12.0, 9.0])


def test_welch_matches_scipy_and_its_interval():
    out = statistics.welch(A, B)
    ref = stats.ttest_ind(A, B, equal_var=False)
    assert out["t"] == pytest.approx(ref.statistic, rel=1e-12)
    assert out["p"] == pytest.approx(ref.pvalue, rel=1e-10)
    assert out["df"] == pytest.approx(ref.df, rel=1e-12)
    low, high = ref.confidence_interval(0.95)
    assert out["ci"] == pytest.approx((low, high), rel=1e-10)
    assert out["diff"] == pytest.approx(A.mean() - B.mean())
    # by hand: Welch-Satterthwaite's df
    va, vb = A.var(ddof=1) / 5, B.var(ddof=1) / 4
    assert out["df"] == pytest.approx((va + vb) ** 2 / (va ** 2 / 4 + vb ** 2 / 3))


def test_nan_is_dropped_counted_and_warned_and_infinity_refused():
    with pytest.warns(UserWarning, match="1 of 6 values are NaN"):
        out = statistics.welch(np.append(A, np.nan), B)
    assert (out["n_a"], out["nan_a"], out["n_b"], out["nan_b"]) == (5, 1, 4, 0)
    assert out["p"] == pytest.approx(statistics.welch(A, B)["p"])
    with pytest.raises(ValueError, match="infinite"):
        statistics.welch(A, [1.0, math.inf, 2.0])
    with pytest.raises(ValueError, match=">= 2 defined values"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        statistics.welch(A, [1.0, math.nan])
    assert math.isnan(statistics.welch([1.0, 1.0], [2.0, 2.0])["p"])  # no spread


def test_holm_by_hand():
    # sorted: .005 (x4 = .02), .01 (x3 = .03), .03 (x2 = .06), .04 (x1 = .04 -> .06: monotone)
    adjusted = statistics.holm([0.01, 0.04, 0.03, 0.005])
    assert adjusted == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert statistics.holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # capped at 1
    # a NaN counts in m (and stays NaN): 0.01 is multiplied by 3, not 2
    out = statistics.holm([0.01, math.nan, 0.02])
    assert out[0] == pytest.approx(0.03) and math.isnan(out[1]) and out[2] == pytest.approx(0.04)
    with pytest.raises(ValueError, match="p-values in"):
        statistics.holm([0.1, 1.5])


def _holm_rejects(p, alpha):
    """Holm's step-down procedure at family-wise level ``alpha`` (Holm 1979): the sorted
    p_(k), k = 1..m, are rejected while p_(k) <= alpha / (m - k + 1)."""
    order, rejected = np.argsort(p), set()
    for k, i in enumerate(order):
        if p[i] > alpha / (len(p) - k):
            break
        rejected.add(int(i))
    return rejected


def test_holm_adjusted_p_is_the_smallest_level_that_rejects():
    # The other route to the same numbers: an adjusted p-value is the smallest alpha at
    # which the step-down procedure rejects that hypothesis; the candidates are the
    # levels where a rejection can start, (m - k + 1) p_(k).
    p = np.random.default_rng(0).uniform(0, 0.2, 7)
    levels = sorted({min(1.0, (len(p) - k) * v) for k, v in enumerate(np.sort(p))} | {1.0})
    expected = [min(a for a in levels if i in _holm_rejects(p, a * (1 + 1e-12)))
                for i in range(len(p))]
    assert statistics.holm(p) == pytest.approx(expected, rel=1e-12)


def test_permutation_test_exact_by_hand_and_against_scipy():
    # 20 splits of {1..6} into 3 + 3; only {1,2,3} and {4,5,6} reach |diff| = 3
    out = statistics.permutation_test([1.0, 2.0, 3.0], [4.0, 5.0, 6.0])
    assert out["exact"] and out["resamples"] == 20 and out["p"] == pytest.approx(0.1)
    # equal arms: the null distribution is symmetric, so SciPy's two-sided (twice the
    # smaller one-sided p) equals P(|T| >= |t|)
    rng = np.random.default_rng(1)
    a, b = rng.normal(0, 1, 6), rng.normal(1, 1, 6)
    ref = stats.permutation_test((a, b), lambda x, y: x.mean() - y.mean(),
                                 permutation_type="independent", n_resamples=np.inf)
    assert statistics.permutation_test(a, b)["p"] == pytest.approx(ref.pvalue, rel=1e-12)


def test_permutation_test_monte_carlo_agrees_and_is_never_zero():
    rng = np.random.default_rng(2)
    a, b = rng.normal(0, 1, 9), rng.normal(0.8, 1, 9)
    exact = statistics.permutation_test(a, b)
    mc = statistics.permutation_test(a, b, n_resamples=20_000, seed=3, max_exact=0)
    assert exact["exact"] and not mc["exact"]
    assert abs(mc["p"] - exact["p"]) < 4 * math.sqrt(exact["p"] * (1 - exact["p"]) / 20_000)
    again = statistics.permutation_test(a, b, n_resamples=20_000, seed=3, max_exact=0)
    assert again["p"] == mc["p"]  # seeded
    far = statistics.permutation_test(np.arange(12.0), np.arange(12.0) + 100,
                                      n_resamples=999, max_exact=0)
    assert far["p"] == pytest.approx(1 / 1000)  # (b + 1) / (m + 1), b = 0


def test_hedges_g_by_hand_and_its_interval():
    out = statistics.hedges_g(A, B)
    pooled = math.sqrt((4 * A.var(ddof=1) + 3 * B.var(ddof=1)) / 7)
    d = (A.mean() - B.mean()) / pooled
    assert out["d"] == pytest.approx(d)
    assert out["g"] == pytest.approx(d * math.gamma(3.5) / (math.sqrt(3.5) * math.gamma(3)))
    assert statistics.hedges_correction(40) == pytest.approx(1 - 3 / (4 * 40 - 1), abs=1e-4)
    # the interval's ends put 2.5% of the noncentral t above / below the observed t
    scale = math.sqrt(1 / 5 + 1 / 4)
    low, high = out["ci"]
    assert stats.nct.cdf(d / scale, 7, low / scale) == pytest.approx(0.975, abs=1e-7)
    assert stats.nct.cdf(d / scale, 7, high / scale) == pytest.approx(0.025, abs=1e-7)
    assert low < out["g"] < high < 0
    # large arms: the normal approximation var(d) = (n_a + n_b) / (n_a n_b) + d^2 /
    # (2 (n_a + n_b)) (Hedges & Olkin 1985, ch. 5)
    rng = np.random.default_rng(4)
    a, b = rng.normal(0.5, 1, 400), rng.normal(0, 1, 400)
    big = statistics.hedges_g(a, b)
    half = 1.959964 * math.sqrt(800 / 400 ** 2 + big["d"] ** 2 / 1600)
    assert big["ci"] == pytest.approx((big["d"] - half, big["d"] + half), abs=3e-3)


def test_hedges_interval_covers_delta_95_percent_of_the_time():
    rng = np.random.default_rng(5)
    trials, covered = 300, 0
    for _ in range(trials):
        low, high = statistics.hedges_g(rng.normal(1, 1, 6), rng.normal(0, 1, 6))["ci"]
        covered += low <= 1.0 <= high
    assert abs(covered / trials - 0.95) < 3.5 * math.sqrt(0.95 * 0.05 / trials)


def test_seeds_per_arm_matches_cohens_table_and_simulation():
    assert statistics.seeds_per_arm(0.5) == 64  # Cohen (1988), Table 2.4.1
    assert statistics.seeds_per_arm(0.8) == 26
    assert statistics.seeds_per_arm(-1.2) == 12
    assert statistics.seeds_per_arm(1.2, alpha=0.05 / 3) > 12  # Holm's smallest level
    n = statistics.seeds_per_arm(1.2, alpha=0.05 / 3)
    assert statistics.power(n, 1.2, 0.05 / 3) >= 0.8 > statistics.power(n - 1, 1.2, 0.05 / 3)
    # the power formula against simulated Welch tests (12 per arm, d = 1.2)
    rng = np.random.default_rng(6)
    a, b = rng.normal(1.2, 1, (20_000, 12)), rng.normal(0, 1, (20_000, 12))
    p = stats.ttest_ind(a, b, axis=1, equal_var=False).pvalue
    assert abs((p < 0.05).mean() - statistics.power(12, 1.2, 0.05)) < 0.015
    with pytest.raises(ValueError, match="finite d != 0"):
        statistics.seeds_per_arm(0.0)


def test_read_csv_checks_its_header_and_duplicates(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("setting,method,seed,metric,value\nstandard,asgan,0,fid,12.5\n"
                    "standard,asgan,1,fid,nan\n")
    table = study_results.read_csv(path)
    assert table[("standard", "asgan", "fid")][0] == 12.5
    assert math.isnan(table[("standard", "asgan", "fid")][1])
    path.write_text("setting,method,seed,value\n")
    with pytest.raises(ValueError, match="header must be"):
        study_results.read_csv(path)
    path.write_text("setting,method,seed,metric,value\ns,m,0,fid,1\ns,m,0,fid,2\n")
    with pytest.raises(ValueError, match="fid twice"):
        study_results.read_csv(path)
    path.write_text("setting,method,seed,metric,value\ns,m,0,fid\n")
    with pytest.raises(ValueError, match="s.csv:2: 4 cells; the header has 5"):
        study_results.read_csv(path)


def test_read_csvs_merges_the_parts_of_a_study_and_refuses_overlaps(tmp_path):
    header = "setting,method,seed,metric,value\n"
    (tmp_path / "a.csv").write_text(header + "standard,asgan,0,fid,12.5\n")
    (tmp_path / "b.csv").write_text(header + "standard,asgan,1,fid,13.5\n"
                                    "standard,baseline,1,modes,7\n")
    table = study_results.read_csvs([tmp_path / "a.csv", tmp_path / "b.csv"])
    assert table == {("standard", "asgan", "fid"): {0: 12.5, 1: 13.5},
                     ("standard", "baseline", "modes"): {1: 7.0}}
    (tmp_path / "c.csv").write_text(header + "standard,asgan,0,fid,99\n")
    with pytest.raises(ValueError, match="c.csv:2: standard/asgan seed 0 has fid twice"):
        study_results.read_csvs([tmp_path / "a.csv", tmp_path / "c.csv"])
    # the parts' JSONs: other seeds are fine, another protocol is another study
    meta = {"study": {"steps": 800, "seeds": [0]}, "measure": {"version": 5}}
    (tmp_path / "a.json").write_text(json.dumps(meta))
    (tmp_path / "b.json").write_text(json.dumps({**meta, "study": {"steps": 800,
                                                                   "seeds": [1]}}))
    assert study_results.read_csvs([tmp_path / "a.csv", tmp_path / "b.csv"]) == table
    (tmp_path / "b.json").write_text(json.dumps({**meta, "study": {"steps": 400}}))
    with pytest.raises(ValueError, match="record different study settings or measurements"):
        study_results.read_csvs([str(tmp_path / "a.csv"), str(tmp_path / "b.csv")])


def _csv(path):
    rng = np.random.default_rng(7)
    lines = ["setting,method,seed,metric,value"]
    arms = {("standard", "asgan"): 10.0, ("standard", "baseline"): 14.0,
            ("no_bn_d", "asgan"): 20.0, ("no_bn_d", "baseline"): 20.5}
    for (setting, method), mean in arms.items():
        for seed in range(6):
            fid = "nan" if (method, seed) == ("asgan", 5) else repr(mean + rng.normal())
            lines += [f"{setting},{method},{seed},fid,{fid}",
                      f"{setting},{method},{seed},modes,{repr(5.0 + rng.normal())}"]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_family_tests_holm_adjust_welch_and_give_verdicts(tmp_path):
    table = study_results.read_csv(_csv(tmp_path / "s.csv"))
    family = {k: statistics.HYPOTHESES[k] for k in ("H1", "H2a")}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rows = statistics.family_tests(table, family, "fid")
        a = [table[("standard", "asgan", "fid")][s] for s in range(6)]
        b = [table[("standard", "baseline", "fid")][s] for s in range(6)]
        welch = statistics.welch(a, b)
    h1, h2a = rows
    assert (h1["n_a"], h1["nan_a"], h1["n_b"]) == (5, 1, 6)
    assert h1["p"] == pytest.approx(welch["p"]) and h1["ci"] == pytest.approx(welch["ci"])
    assert [r["p_holm"] for r in rows] == pytest.approx(statistics.holm([h1["p"], h2a["p"]]))
    assert h1["verdict"] == "a better" and h2a["verdict"] == "no difference shown"
    assert statistics.verdict("modes", -1.0, 0.01, 0.05) == "a worse"
    assert statistics.verdict("step", 1.0, 0.01, 0.05) == "a higher"
    assert [r["p_perm_holm"] for r in rows] == pytest.approx(
        statistics.holm([h1["p_perm"], h2a["p_perm"]]))
    with pytest.raises(ValueError, match="H1: No kid values of standard/asgan"):
        statistics.family_tests(table, family, "kid")


@pytest.mark.slow
def test_study_stats_script_prints_the_table(tmp_path):
    path = _csv(tmp_path / "s.csv")
    lines = path.read_text().splitlines()  # the study in two parts: two files
    part = [lines[0]] + [x for x in lines[1:] if x.startswith("no_bn_d")]
    (tmp_path / "part.csv").write_text("\n".join(part) + "\n")
    path.write_text("\n".join(x for x in lines if not x.startswith("no_bn_d")) + "\n")
    proc = run_script("study_stats.py", f"--csv={path},{tmp_path / 'part.csv'}",
                      "--family=H1,H2a,H9", "--hypothesis=H9=no_bn_d/asgan:standard/asgan",
                      "--secondary=modes", "--power", "--n_resamples=2000")
    assert proc.returncode == 0, proc.stderr
    assert "## fid (primary)" in proc.stdout and "## modes (secondary)" in proc.stdout
    row = next(line for line in proc.stdout.splitlines() if line.startswith("| H1 |"))
    assert "| 5 (1, 0) | 6 (0, 0) |" in row and "a better" in row
    # H4-H6's form: one hypothesis, Holm across its metrics; the seeds required
    proc = run_script("study_stats.py", f"--csv={path},{tmp_path / 'part.csv'}",
                      "--family=H1", "--primary=fid", "--secondary=modes",
                      "--holm_across_metrics", "--seeds=0-4", "--seeds_b=0-5",
                      "--n_resamples=2000")
    assert proc.returncode == 0, proc.stderr
    assert "Holm's correction over the 2 metrics of each hypothesis" in proc.stdout
    assert "seeds required: arm a 0-4 (5), arm b 0-5 (6)." in proc.stdout
    assert "## modes (family member)" in proc.stdout
    row = next(line for line in proc.stdout.splitlines() if line.startswith("| H1 |"))
    assert "| 5 (0, 0) | 6 (0, 0) |" in row  # seed 5 of arm a (its NaN FID) left out
    # a missing seed is refused: arm_values, tested below in this process


def test_parse_seeds_reads_lists_and_ranges_and_refuses_reversed_ones():
    assert study_results.parse_seeds(["0-3", "7", "2"]) == [0, 1, 2, 3, 7]
    assert study_results.parse_seeds([]) is None
    for bad in (["16-0"], ["a"], ["-1"], ["3-x"]):
        with pytest.raises(errors.InputError, match="--seeds=.*give seeds and ranges"):
            study_results.parse_seeds(bad, "--seeds")
    assert study_results.seeds_text([0, 1, 2, 3]) == "0-3"
    assert study_results.seeds_text([0, 2, 5]) == "0, 2, 5"
    assert study_results.seeds_required(None) == "."
    assert study_results.seeds_required([0, 1, 2]) == "; seeds 0-2 (3) required."
    assert study_results.seeds_required([0, 1], [0, 1, 2]) == (
        "; seeds required: arm a 0-1 (2), arm b 0-2 (3).")
    assert study_results.seeds_required(None, [0, 2]) == (
        "; seeds required: arm a whatever the CSVs hold, arm b 0, 2 (2).")


def _row(p, p_perm, diff=-1.0, n=6, nan=0):
    return {"p": p, "p_perm": p_perm, "diff": diff, "n_a": n - nan, "nan_a": nan, "n_b": n,
            "nan_b": 0}


def test_holm_across_metrics_adjusts_each_hypothesis_over_its_metrics():
    tests = {"d_loss_std": [_row(0.010, 0.012), _row(0.20, 0.30)],
             "flipped_real": [_row(0.030, 0.020), _row(0.01, 0.01, nan=2)],
             "grad_l1": [_row(0.040, 0.200), _row(0.02, 0.03)]}
    statistics.across_metrics(tests)
    first = [tests[m][0] for m in tests]
    assert [r["p_holm"] for r in first] == pytest.approx([0.03, 0.06, 0.06])
    assert [r["p_perm_holm"] for r in first] == pytest.approx(
        statistics.holm([0.012, 0.020, 0.200]))
    assert first[0]["verdict"] == "a better"  # lower is better: diff < 0
    assert first[1]["verdict"] == ("no difference shown (not robust: the permutation test "
                                   "decides otherwise)")  # perm. Holm 0.04 < 0.05
    assert first[2]["verdict"] == "no difference shown"
    # 2 of 6 values NaN (a third): more than a quarter lost, so no verdict
    assert tests["flipped_real"][1]["verdict"].startswith("undefined")
    # ... and it takes part in Holm as a test never rejected (holm's NaN), not with its p
    assert math.isnan(tests["flipped_real"][1]["p_holm"])
    assert tests["grad_l1"][1]["p_holm"] == pytest.approx(0.06)  # 3 x 0.02: m stays 3
    # exactly a quarter lost (1 of 4) still gets a verdict
    quarter = {"fid": [_row(0.01, 0.01, n=4, nan=1)]}
    statistics.across_metrics(quarter)
    assert quarter["fid"][0]["verdict"] == "a better"
    # two constant, equal arms: Welch's p is undefined, but there is no difference
    equal = {"modes": [_row(math.nan, 1.0, diff=0.0)]}
    statistics.across_metrics(equal)
    assert equal["modes"][0]["verdict"].startswith("no difference shown")


def test_a_failed_run_counts_as_the_pre_registered_rule_says():
    table = {("standard", "asgan", "modes"): {0: 300.0, 1: 500.0},
             ("standard", "asgan", "fid"): {0: 900.0, 1: 800.0},
             ("standard", "asgan", "failed"): {2: 1.0},
             ("standard", "baseline", "fid"): {0: 1500.0, 1: 1700.0, 2: 1600.0},
             ("no_bn_d", "baseline", "fid"): {0: 3000.0}}
    modes, failed = study_results.arm_values(table, "standard", "asgan", "modes")
    assert modes == {0: 300.0, 1: 500.0, 2: 0.0} and failed == 1  # total collapse
    fid, _ = study_results.arm_values(table, "standard", "asgan", "fid")
    assert fid[2] == 1700.0  # the worst FID of its setting (not no_bn_d's 3000)
    kept, _ = study_results.arm_values(table, "standard", "asgan", "fid", failures="exclude")
    assert kept == {0: 900.0, 1: 800.0}
    table[("standard", "asgan", "grad_l1")] = {0: 1.0, 1: 2.0}
    grad, _ = study_results.arm_values(table, "standard", "asgan", "grad_l1")
    assert math.isnan(grad[2])  # other metrics: undefined
    # the pre-registered seeds: every one must be a value or a failed run
    assert study_results.arm_values(table, "standard", "asgan", "fid", seeds=[0, 2])[0] == {
        0: 900.0, 2: 1700.0}
    with pytest.raises(ValueError, match=r"standard/baseline has no fid for seeds \[3\]: "
                       "the family is not complete"):
        study_results.arm_values(table, "standard", "baseline", "fid", seeds=range(4))
    with pytest.raises(ValueError, match="failures must be one of"):
        study_results.arm_values(table, "standard", "asgan", "fid", failures="drop")
    rows = statistics.family_tests(table, {"H1": statistics.HYPOTHESES["H1"]}, "fid",
                                   seeds=range(3))
    assert (rows[0]["failed_a"], rows[0]["failed_b"], rows[0]["n_a"]) == (1, 0, 3)
    # arm b's own seeds (H3 and the siblings: 10 seeds against the baseline's 17)
    rows = statistics.family_tests(table, {"H1": statistics.HYPOTHESES["H1"]}, "fid",
                                   seeds=range(2), seeds_b=range(3))
    assert (rows[0]["failed_a"], rows[0]["n_a"], rows[0]["n_b"]) == (0, 2, 3)
    assert rows[0]["diff"] == pytest.approx(850.0 - 1600.0)
    with pytest.raises(ValueError, match=r"H1: standard/asgan has no fid for seeds \[3\]"):
        statistics.family_tests(table, {"H1": statistics.HYPOTHESES["H1"]}, "fid",
                                seeds=range(4), seeds_b=range(3))
    with pytest.raises(ValueError, match=r"H1: standard/baseline has no fid for seeds \[3\]"):
        statistics.family_tests(table, {"H1": statistics.HYPOTHESES["H1"]}, "fid",
                                seeds=range(2), seeds_b=range(4))
