"""The study's statistics: two-sample tests, Holm's correction, effect sizes, power.

Every function takes the per-seed values of two arms (1-D arrays of floats) and returns
plain numbers, so each statistic can be recomputed from the study's CSV
(``setting, method, seed, metric, value``;
:func:`tf_asgan.experiments.study_results.read_csvs`) by anyone. Sources:

- Welch's t-test: Welch (1947), "The generalization of 'Student's' problem when several
  different population variances are involved", Biometrika 34; its degrees of freedom
  from Satterthwaite (1946). The same as ``scipy.stats.ttest_ind(equal_var=False)``.
- Holm's step-down correction: Holm (1979), "A simple sequentially rejective multiple
  test procedure", Scand. J. Statist. 6, 65-70.
- Permutation test of the difference in means: Fisher (1935); exact enumeration of the
  label assignments when there are few, else Monte Carlo with the p-value
  ``(b + 1) / (m + 1)`` of Phipson & Smyth (2010), "Permutation p-values should never be
  zero", Stat. Appl. Genet. Mol. Biol. 9(1), 39.
- Hedges' g: Hedges (1981), J. Educ. Statist. 6(2), 107-128: Cohen's d on the pooled
  standard deviation times the exact small-sample factor ``J(df) = Gamma(df / 2) /
  (sqrt(df / 2) Gamma((df - 1) / 2))``. The 95% interval of the population effect size
  delta inverts the noncentral t distribution of the pooled t statistic (Steiger &
  Fouladi 1997, in "What if there were no significance tests?"; Cumming & Finch 2001,
  Educ. Psychol. Meas. 61(4), 532-574): exact for normal data with equal variances.
- Power: the two-sided two-sample t-test's power from the noncentral t distribution
  (Cohen 1988, ch. 2), used as an approximation of Welch's test's (close for equal arms
  of similar spread; Welch's own power depends on the two variances, not on d alone).

Undefined values: a NaN (e.g. a flip rate of a D that classified no image right) is no
measurement. :func:`finite` drops it, counts it and warns; every result reports how many
values each arm lost. An infinity is refused (a diverged run must be looked at, not
averaged).
"""

import itertools
import math
import warnings

import numpy as np
from scipy import optimize, special, stats

from tf_asgan import errors
from tf_asgan.experiments import study_results

# Exact enumeration up to this many label assignments (C(20, 10) = 184,756: 10 seeds per
# arm; 17 against 17 or 10 against 17 take the Monte Carlo test).
MAX_EXACT = 200_000
# The most an arm may lose to undefined values before its test's verdict is "undefined"
# (the pre-registration in docs/results.md).
MAX_NAN_FRACTION = 0.25


def finite(values, name="values"):
    """``(array of the non-NaN values, number of NaNs dropped)``; warns when it drops any.

    Raises:
      tf_asgan.errors.InputError: an infinite value (named), or not a 1-D sequence.
    """
    x = np.asarray(values, dtype=float)
    if x.ndim != 1:
        raise errors.InputError(f"{name}: expected a 1-D sequence of numbers, got shape {x.shape}.")
    nan = np.isnan(x)
    if np.isinf(x).any():
        raise errors.InputError(f"{name} holds an infinite value ({x[np.isinf(x)][0]}): a "
                                "diverged run; look at it instead of testing it.")
    if nan.any():
        warnings.warn(f"{name}: {int(nan.sum())} of {len(x)} values are NaN (undefined) and "
                      "left out.", stacklevel=2)
    return x[~nan], int(nan.sum())


def _two_arms(a, b, minimum=2):
    a, na_dropped = finite(a, "arm a")
    b, nb_dropped = finite(b, "arm b")
    if len(a) < minimum or len(b) < minimum:
        raise errors.InputError(f"Each arm needs >= {minimum} defined values; got {len(a)} and "
                                f"{len(b)}.")
    return a, b, {"n_a": len(a), "n_b": len(b), "nan_a": na_dropped, "nan_b": nb_dropped}


def welch(a, b, confidence=0.95):
    """Welch's t-test of ``mean(a) - mean(b)`` (two-sided) and its confidence interval.

    ``se = sqrt(s_a^2 / n_a + s_b^2 / n_b)``, ``t = diff / se``, Welch-Satterthwaite
    ``df = se^4 / ((s_a^2 / n_a)^2 / (n_a - 1) + (s_b^2 / n_b)^2 / (n_b - 1))``,
    ``p = 2 P(T_df > |t|)``, interval ``diff +- t_{df, (1 + confidence) / 2} se``.

    Returns:
      dict: ``diff, se, t, df, p, ci`` (a pair), ``mean_a, mean_b`` and the counts of
      :func:`_two_arms`. ``t`` and ``p`` are NaN when both arms have no spread.

    Raises:
      tf_asgan.errors.InputError: fewer than 2 defined values in an arm, or an infinity.
    """
    a, b, counts = _two_arms(a, b)
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    diff, se = a.mean() - b.mean(), math.sqrt(va + vb)
    out = {"mean_a": float(a.mean()), "mean_b": float(b.mean()), "diff": float(diff),
           "se": se, **counts}
    if se == 0:
        return {**out, "t": math.nan, "df": math.nan, "p": math.nan, "ci": (diff, diff)}
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    t = diff / se
    half = stats.t.ppf((1 + confidence) / 2, df) * se
    return {**out, "t": float(t), "df": float(df), "p": float(2 * stats.t.sf(abs(t), df)),
            "ci": (float(diff - half), float(diff + half))}


def holm(pvalues):
    """Holm's step-down adjusted p-values, in the order given.

    With the m p-values sorted ascending, ``p_(1) <= ... <= p_(m)``, the adjusted value of
    ``p_(i)`` is ``max_{j <= i} min(1, (m - j + 1) p_(j))``; rejecting where it is below
    alpha controls the family-wise error rate at alpha (Holm 1979). A NaN (a test that
    could not be done) counts as one of the m hypotheses, is never rejected (ranked as
    p = 1) and stays NaN: a pre-registered test that fails does not make the others easier.
    """
    p = np.asarray(pvalues, dtype=float)
    if p.ndim != 1 or ((p < 0) | (p > 1)).any():
        raise errors.InputError(f"holm needs a 1-D list of p-values in [0, 1]; got {pvalues}.")
    ranked = np.where(np.isnan(p), 1.0, p)
    order = np.argsort(ranked, kind="stable")
    m = len(p)
    stepped = np.minimum(1.0, (m - np.arange(m)) * ranked[order])
    adjusted = np.empty(m)
    adjusted[order] = np.maximum.accumulate(stepped)
    adjusted[np.isnan(p)] = np.nan
    return adjusted


def permutation_test(a, b, n_resamples=100_000, seed=0, max_exact=MAX_EXACT):
    """Two-sided permutation test of ``mean(a) - mean(b)``.

    The p-value is the fraction of label assignments (the n_a + n_b values split into
    arms of the same sizes) whose ``|difference in means|`` is at least the observed one
    (with a relative tolerance of 1e-12 for ties in floating point). Exact over all
    ``C(n_a + n_b, n_a)`` assignments when they are at most ``max_exact``; else
    ``(b + 1) / (m + 1)`` over ``m = n_resamples`` random assignments drawn with NumPy's
    ``default_rng(seed)`` (Phipson & Smyth 2010), which is never 0.

    Returns:
      dict: ``diff, p, exact`` (bool), ``resamples`` (assignments counted) and the counts.
    """
    a, b, counts = _two_arms(a, b, minimum=1)
    pooled, n_a = np.concatenate([a, b]), len(a)
    total = pooled.sum()
    observed = abs(a.mean() - b.mean())
    tolerance = 1e-12 * max(1.0, observed)

    def extreme(sum_a):  # |mean(arm a) - mean(arm b)| >= observed, per assignment
        diff = sum_a / n_a - (total - sum_a) / len(b)
        return int((np.abs(diff) >= observed - tolerance).sum())

    assignments = math.comb(len(pooled), n_a)
    if assignments <= max_exact:
        index = np.fromiter(itertools.chain.from_iterable(
            itertools.combinations(range(len(pooled)), n_a)), int).reshape(-1, n_a)
        p, exact, count = extreme(pooled[index].sum(axis=1)) / assignments, True, assignments
    else:
        rng, hits, done = np.random.default_rng(seed), 0, 0
        while done < n_resamples:
            k = min(10_000, n_resamples - done)
            keys = rng.random((k, len(pooled)))
            chosen = np.argsort(keys, axis=1)[:, :n_a]
            hits, done = hits + extreme(pooled[chosen].sum(axis=1)), done + k
        p, exact, count = (hits + 1) / (n_resamples + 1), False, n_resamples
    return {"diff": float(a.mean() - b.mean()), "p": float(p), "exact": exact,
            "resamples": count, **counts}


def hedges_correction(df):
    """Hedges' (1981) exact factor ``J(df) = Gamma(df/2) / (sqrt(df/2) Gamma((df-1)/2))``
    (``~ 1 - 3 / (4 df - 1)``), which makes Cohen's d unbiased for normal data."""
    return float(math.exp(special.gammaln(df / 2) - special.gammaln((df - 1) / 2))
                 / math.sqrt(df / 2))


def hedges_g(a, b, confidence=0.95):
    """Hedges' g of ``a`` against ``b`` and its confidence interval.

    ``d = (mean_a - mean_b) / s_p``, ``s_p^2 = ((n_a - 1) s_a^2 + (n_b - 1) s_b^2) / (n_a +
    n_b - 2)`` (Cohen's d on the pooled SD), ``g = J(n_a + n_b - 2) d``. The interval: the
    pooled t statistic ``t = d / sqrt(1/n_a + 1/n_b)`` has a noncentral t distribution with
    ``df = n_a + n_b - 2`` and noncentrality ``delta / sqrt(1/n_a + 1/n_b)``; the
    noncentralities at which ``P(T <= t)`` equals ``(1 + confidence) / 2`` and ``(1 -
    confidence) / 2``, times ``sqrt(1/n_a + 1/n_b)``, bound delta (Steiger & Fouladi 1997;
    Cumming & Finch 2001). Exact for normal data with equal variances; g is the point
    estimate (the interval is delta's, not shrunk by J).

    Returns:
      dict: ``d, g, ci`` (delta's interval) and the counts. NaN when no arm has spread.
    """
    a, b, counts = _two_arms(a, b)
    df = len(a) + len(b) - 2
    pooled = math.sqrt(((len(a) - 1) * a.var(ddof=1) + (len(b) - 1) * b.var(ddof=1)) / df)
    if pooled == 0:
        return {"d": math.nan, "g": math.nan, "ci": (math.nan, math.nan), **counts}
    d = (a.mean() - b.mean()) / pooled
    scale = math.sqrt(1 / len(a) + 1 / len(b))
    t = d / scale

    def ncp_at(prob):  # the noncentrality putting probability prob below t
        def excess(ncp):  # falls as ncp rises
            return stats.nct.cdf(t, df, ncp) - prob

        # widen a bracket from t in doubling steps (SciPy's nct.cdf turns NaN far in a tail)
        side, step = (-1.0 if excess(t) < 0 else 1.0), 1.0
        while excess(t + side * step) * side > 0:
            step *= 2
        ends = sorted((t + side * step / 2 if step > 1 else t, t + side * step))
        return optimize.brentq(excess, *ends, xtol=1e-10)

    lower, upper = ncp_at((1 + confidence) / 2), ncp_at((1 - confidence) / 2)
    return {"d": float(d), "g": float(hedges_correction(df) * d),
            "ci": (lower * scale, upper * scale), **counts}


def power(n, d, alpha, n_b=None):
    """Power of the two-sided two-sample t-test with ``n`` per arm (or ``n`` and ``n_b``)
    at effect size ``d`` (Cohen's d) and level ``alpha``: ``P(|T'| > t_{1 - alpha/2,
    df})``, ``T'`` noncentral t with ``df = n + n_b - 2`` and ``ncp = d sqrt(n n_b / (n +
    n_b))`` (Cohen 1988, ch. 2; equal arms: ``2n - 2`` and ``d sqrt(n / 2)``). The pooled
    test's power, an approximation of Welch's: with unequal arms Welch's power may be
    lower or higher (higher where the smaller arm has the smaller variance)."""
    n_b = n if n_b is None else n_b
    df, ncp = n + n_b - 2, abs(d) * math.sqrt(n * n_b / (n + n_b))
    crit = stats.t.ppf(1 - alpha / 2, df)
    return float(stats.nct.sf(crit, df, ncp) + stats.nct.cdf(-crit, df, ncp))


def seeds_per_arm(d, alpha=0.05, target=0.8, limit=100_000):
    """The smallest n per arm whose :func:`power` reaches ``target`` (e.g. d = 0.5, alpha =
    0.05, power 0.8: 64; d = 0.8: 26, Cohen 1988, Table 2.4.1). After Holm's correction of
    m tests, plan with its smallest level, ``alpha / m``.

    Raises:
      tf_asgan.errors.InputError: ``d`` is 0 or not finite, alpha or target outside (0, 1).
    """
    if not (math.isfinite(d) and d != 0 and 0 < alpha < 1 and 0 < target < 1):
        raise errors.InputError(f"seeds_per_arm needs a finite d != 0 and alpha, target in "
                                f"(0, 1); got d={d}, alpha={alpha}, target={target}.")
    lo, hi = 2, 2
    while power(hi, d, alpha) < target:  # doubling, then bisection: power rises with n
        lo, hi = hi, hi * 2
        if hi > limit:
            raise errors.InputError(f"d={d} needs more than {limit} seeds per arm.")
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (mid + 1, hi) if power(mid, d, alpha) < target else (lo, mid)
    return lo


def compare(a, b, seed=0, n_resamples=100_000, confidence=0.95):
    """Every statistic of ``a`` against ``b``: :func:`welch` (its ``diff, ci, p, df``, the
    means and counts), the permutation ``p_perm`` and Hedges' ``g`` with ``g_ci``."""
    with warnings.catch_warnings():  # one warning per arm is enough (welch's)
        out = welch(a, b, confidence)
        warnings.simplefilter("ignore")
        perm = permutation_test(a, b, n_resamples=n_resamples, seed=seed)
        effect = hedges_g(a, b, confidence)
    return {**out, "p_perm": perm["p"], "perm_exact": perm["exact"], "g": effect["g"],
            "g_ci": effect["ci"]}


# Which way is better, per study metric (the paper's claims: lower FID, more modes, a D
# that FGSM flips less, a smaller input gradient, steadier losses). Others: no direction.
BETTER = {"fid": "lower", "modes_kl": "lower", "modes": "higher", "precision": "higher",
          "recall": "higher", "density": "higher", "coverage": "higher",
          "flipped_real": "lower", "flipped_fake": "lower", "grad_l1": "lower",
          "d_loss_std": "lower", "g_loss_std": "lower"}
# Candidate hypotheses: arm a against arm b, each (setting, method). The pre-registration
# in docs/results.md says which form the family; scripts/study_stats.py can add others.
HYPOTHESES = {
    "H1": (("standard", "asgan"), ("standard", "baseline")),
    "H2a": (("no_bn_d", "asgan"), ("no_bn_d", "baseline")),
    "H2b": (("lr_d_4e-4", "asgan"), ("lr_d_4e-4", "baseline")),
    **{f"H3_{m[6:]}": (("standard", m), ("standard", "baseline"))
       for m in ("asgan_eps0", "asgan_eps0.5", "asgan_eps2", "asgan_eps4", "asgan_gaussian")},
    "DAT": (("standard", "dat"), ("standard", "baseline")),
    "AdvAs": (("standard", "advas"), ("standard", "baseline")),
}


def verdict(metric, diff, p_adjusted, alpha):
    """``"a better"`` / ``"a worse"`` (by :data:`BETTER`; ``"a higher"`` / ``"a lower"``
    for a metric without a direction) when ``p_adjusted < alpha``, else ``"no difference
    shown"``; ``"undefined"`` when the test could not be done."""
    if math.isnan(p_adjusted):
        return "undefined"
    if p_adjusted >= alpha:
        return "no difference shown"
    higher = diff > 0
    if metric not in BETTER:
        return "a higher" if higher else "a lower"
    return "a better" if higher == (BETTER[metric] == "higher") else "a worse"


def family_tests(table, hypotheses, metric, alpha=0.05, seed=0, n_resamples=100_000,
                 seeds=None, failures="substitute", seeds_b=None):
    """Every statistic of ``metric`` for each hypothesis, Holm-adjusted across them.

    Args:
      table: :func:`tf_asgan.experiments.study_results.read_csvs`'s dict.
      hypotheses: ``{name: ((setting, method), (setting, method))}``, arm a then arm b.
      metric: the CSV's metric name (e.g. ``"fid"``).
      seeds, failures: which seeds each arm must have and what a failed run counts as
        (:func:`tf_asgan.experiments.study_results.arm_values`).
      seeds_b: the seeds arm b must have where they differ from arm a's (H3 and the
        siblings: 10 seeds against the baseline's 17); ``None``: ``seeds``.

    Returns:
      ``[dict]``, one per hypothesis in order: :func:`compare`'s values (NaN when an arm
      has fewer than 2 defined values), ``name, a, b``, ``failed_a, failed_b``,
      ``p_holm`` and ``p_perm_holm`` (Welch's and the permutation test's, over this
      family, which holds ``len(hypotheses)`` tests) and the ``verdict`` (see
      :func:`_adjust`).

    Raises:
      tf_asgan.errors.InputError: an arm with no values of ``metric``, or without one of
        ``seeds`` / ``seeds_b`` (named with the hypothesis).
    """
    rows = []
    for name, (a, b) in hypotheses.items():
        arms, failed = [], []
        for (setting, method), arm_seeds in ((a, seeds), (b, seeds if seeds_b is None
                                                          else seeds_b)):
            try:
                values, count = study_results.arm_values(table, setting, method, metric,
                                                         arm_seeds, failures)
            except errors.InputError as err:
                raise errors.InputError(f"{name}: {err}") from None
            arms.append(list(values.values()))
            failed.append(count)
        try:
            row = compare(*arms, seed=seed, n_resamples=n_resamples)
        except errors.InputError:  # fewer than 2 defined values in an arm
            row = {"diff": math.nan, "ci": (math.nan, math.nan), "p": math.nan,
                   "p_perm": math.nan, "g": math.nan, "g_ci": (math.nan, math.nan),
                   "n_a": sum(not math.isnan(v) for v in arms[0]),
                   "n_b": sum(not math.isnan(v) for v in arms[1])}
        row["nan_a"] = sum(math.isnan(v) for v in arms[0])
        row["nan_b"] = sum(math.isnan(v) for v in arms[1])
        rows.append({"name": name, "a": "/".join(a), "b": "/".join(b),
                     "failed_a": failed[0], "failed_b": failed[1], **row})
    _adjust(rows, [metric] * len(rows), alpha)
    return rows


def _adjust(rows, metrics, alpha):
    """Holm's adjustment across ``rows`` (one test each, of ``metrics[i]``) of the Welch
    and the permutation p-values, and each row's verdict: :func:`verdict` on Welch's
    adjusted p; "undefined" where an arm lost more than :data:`MAX_NAN_FRACTION` of its
    values; marked "not robust" where the adjusted permutation p decides otherwise."""
    undefined = [max(r["nan_a"] / max(r["n_a"] + r["nan_a"], 1),
                     r["nan_b"] / max(r["n_b"] + r["nan_b"], 1)) > MAX_NAN_FRACTION
                 for r in rows]
    # an undefined test counts as one of the family and is never rejected (holm's NaN)
    welch_adjusted = holm([math.nan if u else r["p"] for r, u in zip(rows, undefined)])
    perm_adjusted = holm([math.nan if u else r["p_perm"] for r, u in zip(rows, undefined)])
    for row, metric, p_holm, p_perm_holm, lost in zip(rows, metrics, welch_adjusted,
                                                      perm_adjusted, undefined):
        row["p_holm"], row["p_perm_holm"] = float(p_holm), float(p_perm_holm)
        if lost:
            row["verdict"] = "undefined (an arm lost more than a quarter of its values)"
            continue
        if math.isnan(row["p"]) and row["diff"] == 0:  # two constant, equal arms
            row["verdict"] = "no difference shown (both arms constant and equal)"
            continue
        row["verdict"] = verdict(metric, row["diff"], p_holm, alpha)
        if not math.isnan(p_holm) and (p_holm < alpha) != (p_perm_holm < alpha):
            row["verdict"] += " (not robust: the permutation test decides otherwise)"


def across_metrics(tests, alpha=0.05):
    """Holm's correction across metrics instead of hypotheses: ``tests`` is
    ``{metric: family_tests(...) rows}`` for the same hypotheses; for each hypothesis its
    rows (one per metric) are adjusted together and given new verdicts (as
    :func:`family_tests` does across hypotheses). Changes the rows in place and returns
    ``tests``. For a family of several metrics on one comparison (e.g. H4-H6)."""
    metrics = list(tests)
    for i in range(len(next(iter(tests.values()), []))):
        _adjust([tests[m][i] for m in metrics], metrics, alpha)
    return tests
