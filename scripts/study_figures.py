"""The study's figures, from its per-seed CSV and (optionally) its runs' step logs.

    # dot plots (every seed, the mean and its 95% t-interval) of the default metrics
    python scripts/study_figures.py --csv=docs/results/stacked_digits.csv \
        --output=docs/study

    # also bin the runs' step logs into docs/study/curves_stacked_digits.csv and draw
    # curves_d_loss.png and curves_g_loss.png from it (a study run in two folders)
    python scripts/study_figures.py --csv=a/stacked_digits.csv,b/stacked_digits.csv \
        --runs=/tmp/study_a,/tmp/study_b --output=docs/study

    # only some arms and metrics; the curves are redrawn from the committed curves CSV
    python scripts/study_figures.py --csv=docs/results/stacked_digits.csv \
        --output=docs/study --settings=standard --methods=baseline,asgan --metrics=fid

Writes ``dots_<metric>.png`` per metric (one panel per setting, the methods side by
side; NaN values are left out and counted under their method). With ``--runs`` it first
exports the runs of the chosen arms to ``--curves_csv`` (d_loss and g_loss, mean per
``--bin_steps`` steps), keeping the rows of the other runs it already holds (a study run
in parts, whose earlier run folders may be gone); whenever that CSV exists it draws
``curves_d_loss.png`` and ``curves_g_loss.png`` (median over seeds, interquartile range
shaded) from it alone.
Settings and methods default to every one in the CSV: settings standard, no_bn_d,
lr_d_4e-4 first, methods baseline then asgan first, the others after in CSV order.
"""

import os
import sys

from absl import app, flags

from tf_asgan import errors
from tf_asgan.experiments import study_figures, study_results

flags.DEFINE_list("csv", None, "The study's CSVs (setting, method, seed, metric, value), "
                  "comma-separated (a study run in several folders).")
flags.DEFINE_list("runs", [], "Study output folders (<output>/<dataset>/<setting>/<method>/"
                  "seed<k>/) whose step logs to export as curves; none: reuse --curves_csv.")
flags.DEFINE_string("dataset", "stacked_digits", "The study dataset of the runs.")
flags.DEFINE_string("output", None, "Folder of the figures.")
flags.DEFINE_list("metrics", ["modes", "fid", "d_loss_std", "flipped_real", "grad_l1"],
                  "Metrics of the CSV drawn as dot plots.")
flags.DEFINE_list("settings", None, "Settings drawn, in order (default: all in the CSV).")
flags.DEFINE_list("methods", None, "Methods drawn, in order (default: all in the CSV).")
flags.DEFINE_integer("bin_steps", 20, "Training steps per bin of the exported curves.")
flags.DEFINE_string("curves_csv", None, "The binned step curves (setting, method, seed, "
                    "step, metric, value); default <output>/curves_<dataset>.csv.")
flags.mark_flags_as_required(["csv", "output"])
FLAGS = flags.FLAGS

SETTINGS_FIRST = ("standard", "no_bn_d", "lr_d_4e-4")
METHODS_FIRST = ("baseline", "asgan")
CURVES = ("d_loss", "g_loss")


def ordered(found, first):
    """``found`` (in order of first appearance) with the names of ``first`` moved ahead,
    in that order."""
    found = list(dict.fromkeys(found))
    return [n for n in first if n in found] + [n for n in found if n not in first]


def choose_arms(table, settings, methods):
    """The ``(setting, method)`` pairs to draw: ``settings`` x ``methods`` (default: all
    of the CSV, :func:`ordered`) that the CSV holds.

    Raises:
      tf_asgan.errors.InputError: a requested setting or method not in the CSV, or no arm.
    """
    present = list(dict.fromkeys((s, m) for s, m, _ in table))
    for flag, asked, known in (("settings", settings, [s for s, _ in present]),
                               ("methods", methods, [m for _, m in present])):
        unknown = [n for n in asked or () if n not in known]
        if unknown:
            raise errors.InputError(f"--{flag}: {unknown} not in the CSV; it has "
                                    f"{list(dict.fromkeys(known))}.")
    settings = settings or ordered((s for s, _ in present), SETTINGS_FIRST)
    methods = methods or ordered((m for _, m in present), METHODS_FIRST)
    arms = [(s, m) for s in settings for m in methods if (s, m) in present]
    if not arms:
        raise errors.InputError(f"The CSV has no arm of settings {settings} and methods "
                                f"{methods}.")
    return arms


def main(argv):
    del argv
    curves_csv = FLAGS.curves_csv or os.path.join(FLAGS.output,
                                                  f"curves_{FLAGS.dataset}.csv")
    written = []
    try:
        os.makedirs(FLAGS.output, exist_ok=True)  # the curves CSV may be written first
        if FLAGS.bin_steps < 1:
            raise errors.InputError(f"--bin_steps must be >= 1; got {FLAGS.bin_steps}.")
        table = study_results.read_csvs(FLAGS.csv)
        arms = choose_arms(table, FLAGS.settings, FLAGS.methods)
        for metric in FLAGS.metrics:
            written.append(study_figures.dot_plot(
                table, metric, arms, os.path.join(FLAGS.output, f"dots_{metric}.png")))
        if FLAGS.runs:
            runs = study_figures.find_runs(FLAGS.runs, FLAGS.dataset)
            chosen = {k: w for k, w in runs.items() if k[:2] in arms}
            if not chosen:
                raise errors.InputError(f"No run of the arms {arms} in {FLAGS.runs}.")
            rows = study_figures.export_curves(chosen, CURVES, FLAGS.bin_steps, curves_csv)
            print(f"{curves_csv}: {rows} rows from {len(chosen)} runs")
        if os.path.exists(curves_csv):
            curves = study_figures.read_curves(curves_csv)
            for metric in CURVES:
                drawn = [a for a in arms if (*a, metric) in curves]
                written.append(study_figures.curves_plot(
                    curves_csv, os.path.join(FLAGS.output, f"curves_{metric}.png"), metric,
                    drawn))
    except (errors.TfAsganError, OSError) as err:
        sys.exit(f"study_figures.py: {err}")
    print("\n".join(written))


if __name__ == "__main__":
    app.run(main)
