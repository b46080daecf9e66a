"""The study's hypothesis tests, recomputed from its per-seed CSV.

    python scripts/study_stats.py --csv=docs/results/stacked_digits.csv --primary=fid \
        --family=H1,H2a,H2b --secondary=modes,coverage

For each hypothesis of the family (arm a against arm b, each a setting and a method; the
candidates are ``tf_asgan.experiments.statistics.HYPOTHESES``, ``--hypothesis`` adds or
redefines one) and each metric, prints a Markdown table: the arms' means and defined
seeds (NaN values are left out and counted; failed runs are counted and count as the
pre-registered rule says, ``tf_asgan.experiments.study_results.arm_values``, with a
second table without them when there are any; ``--seeds`` refuses a family with a
missing run, ``--seeds_b`` gives arm b other seeds), the difference in means a - b with
Welch's 95% CI, Hedges' g with its 95% CI, Welch's two-sided p, Holm's adjusted p across the
family, the permutation p (also Holm-adjusted) and the verdict at --alpha: "not robust"
where the two adjusted p-values decide differently, "undefined" where an arm lost more
than a quarter of its values to NaN. Holm's correction runs over the family once per
metric: the primary metric's is the pre-registered one; the secondary metrics' tables
are reported as secondary. With --holm_across_metrics it runs over the metrics of each
hypothesis instead (H4-H6: one comparison, three metrics):

    python scripts/study_stats.py --csv=... --family=H1 --primary=d_loss_std \
        --secondary=flipped_real,grad_l1 --holm_across_metrics

--power adds the seeds per arm that 80% power would need at the observed |g| (a pilot's
use), at --alpha and at Holm's smallest level.
"""

import math
import sys
import warnings

from absl import app, flags

from tf_asgan import errors
from tf_asgan.experiments import statistics, study_results

flags.DEFINE_list("csv", None, "The study's CSVs (setting, method, seed, metric, value): "
                  "one, or the parts of a study run in several folders, comma-separated.")
flags.DEFINE_string("primary", "fid", "The primary metric (Holm's family is on it).")
flags.DEFINE_list("secondary", [], "Secondary metrics, e.g. modes,recall,coverage.")
flags.DEFINE_list("family", ["H1", "H2a", "H2b"], "The hypotheses of the family: "
                  + ", ".join(statistics.HYPOTHESES) + ", or --hypothesis names.")
flags.DEFINE_multi_string("hypothesis", [], "NAME=setting/method:setting/method (arm a, "
                          "then arm b); adds or redefines NAME.")
flags.DEFINE_list("seeds", [], "The seeds every arm must have, e.g. 0-16 (a missing run is "
                  "refused: the pre-registration tests complete families only); empty: "
                  "whatever the CSVs hold.")
flags.DEFINE_list("seeds_b", [], "The seeds arm b must have where they differ from "
                  "--seeds, e.g. 0-16 for H3 and the siblings (10 seeds each against the "
                  "baseline's 17); empty: --seeds.")
flags.DEFINE_float("alpha", 0.05, "Family-wise error rate (Holm).")
flags.DEFINE_bool("holm_across_metrics", False, "Holm's correction across the metrics "
                  "(--primary and --secondary) of each hypothesis instead of across the "
                  "hypotheses: a family of several metrics on one comparison (H4-H6).")
flags.DEFINE_integer("n_resamples", 100_000, "Monte Carlo permutations when exact "
                     "enumeration is too large.")
flags.DEFINE_integer("seed", 0, "Seed of the Monte Carlo permutations.")
flags.DEFINE_bool("power", False, "Also print the seeds per arm for 80% power at |g|.")
flags.mark_flag_as_required("csv")
FLAGS = flags.FLAGS


def parse_hypotheses(texts):
    """``{name: ((setting, method), (setting, method))}`` of ``NAME=s/m:s/m`` strings."""
    out = {}
    for text in texts:
        try:
            name, arms = text.split("=")
            a, b = (tuple(arm.split("/")) for arm in arms.split(":"))
            if len(a) != 2 or len(b) != 2:
                raise ValueError
        except ValueError:
            raise errors.InputError(f"--hypothesis={text}: write NAME=setting/method:"
                                    "setting/method, e.g. H1=standard/asgan:standard/"
                                    "baseline.") from None
        out[name] = (a, b)
    return out


def _number(x, fmt="{:.3g}"):
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else fmt.format(x)


def table_lines(metric, rows, alpha, family_size, power):
    lines = ["| hypothesis | a | b | n a (NaN, failed) | n b (NaN, failed) | mean a | mean b "
             "| a - b [95% CI] | g [95% CI] | p Welch | p Holm | p perm. | p perm. Holm "
             "| verdict |" + (
                 " seeds/arm for 80% (alpha, alpha/m) |" if power else ""),
             "|---|---|---|---:|---:|---:|---:|---|---|---:|---:|---:|---:|---|" + (
                 "---|" if power else "")]
    for r in rows:
        cells = [r["name"], r["a"], r["b"], f"{r['n_a']} ({r['nan_a']}, {r['failed_a']})",
                 f"{r['n_b']} ({r['nan_b']}, {r['failed_b']})", _number(r.get("mean_a")),
                 _number(r.get("mean_b")),
                 f"{_number(r['diff'])} [{_number(r['ci'][0])}, {_number(r['ci'][1])}]",
                 f"{_number(r['g'])} [{_number(r['g_ci'][0])}, {_number(r['g_ci'][1])}]",
                 _number(r["p"]), _number(r["p_holm"]), _number(r["p_perm"]),
                 _number(r["p_perm_holm"]), r["verdict"]]
        if power:
            g = r["g"]
            cells.append("-" if not g or math.isnan(g) else
                         f"{statistics.seeds_per_arm(g, alpha)}, "
                         f"{statistics.seeds_per_arm(g, alpha / family_size)}")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def family_tables(table, family, seeds, failures):
    """``{metric: rows}`` of the primary and secondary metrics (Holm across the
    hypotheses, or with --holm_across_metrics across the metrics); ``seeds``: arm a's
    and arm b's."""
    tests = {}
    for metric in [FLAGS.primary, *FLAGS.secondary]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # NaNs are counted in the table instead
            tests[metric] = statistics.family_tests(
                table, family, metric, FLAGS.alpha, FLAGS.seed, FLAGS.n_resamples, seeds[0],
                failures, seeds_b=seeds[1])
    if FLAGS.holm_across_metrics:
        statistics.across_metrics(tests, FLAGS.alpha)
    return tests


def report(tests, family, heading=""):
    size = len(tests) if FLAGS.holm_across_metrics else len(family)
    out = []
    for metric, rows in tests.items():
        kind = ("family member" if FLAGS.holm_across_metrics else
                "primary" if metric == FLAGS.primary else "secondary")
        out += [f"## {metric} ({kind}){heading}", "",
                *table_lines(metric, rows, FLAGS.alpha, size, FLAGS.power), ""]
    return out


def main(argv):
    del argv
    try:
        hypotheses = {**statistics.HYPOTHESES, **parse_hypotheses(FLAGS.hypothesis)}
        unknown = [h for h in FLAGS.family if h not in hypotheses]
        if unknown:
            raise errors.InputError(f"Unknown hypotheses {unknown}; choose from "
                                    f"{list(hypotheses)} or define them with --hypothesis.")
        family = {h: hypotheses[h] for h in FLAGS.family}
        seeds = study_results.parse_seeds(FLAGS.seeds, "--seeds")
        seeds_b = study_results.parse_seeds(FLAGS.seeds_b, "--seeds_b")  # None: --seeds
        table = study_results.read_csvs(FLAGS.csv)
        over = (f"over the {1 + len(FLAGS.secondary)} metrics of each hypothesis"
                if FLAGS.holm_across_metrics else
                f"over {len(family)} hypotheses per metric")
        out = [f"Tests of {', '.join(FLAGS.csv)}: arm a against arm b; Welch's two-sided "
               f"t-test, Holm's correction {over} at alpha = {FLAGS.alpha:g}, permutation "
               "test of the difference in means, Hedges' g"
               + study_results.seeds_required(seeds, seeds_b), ""]
        tests = family_tables(table, family, (seeds, seeds_b), "substitute")
        out += report(tests, family)
        if any(r["failed_a"] or r["failed_b"] for rows in tests.values() for r in rows):
            out += ["Failed runs counted by the pre-registered rule above; without them "
                    "(sensitivity analysis):", "",
                    *report(family_tables(table, family, (seeds, seeds_b), "exclude"), family,
                            ", failed runs left out")]
    except (errors.TfAsganError, OSError) as err:
        sys.exit(f"study_stats.py: {err}")
    print("\n".join(out))


if __name__ == "__main__":
    app.run(main)
