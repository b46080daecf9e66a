"""The study's summary: the seeds aggregated (mean, standard deviation) per dataset,
setting and method, Welch's test of each method against the baseline, ``summary.md``,
``study.json`` and the plots.
"""

import dataclasses
import logging
import os

import numpy as np

from tf_asgan.analysis import figures
from tf_asgan.experiments import statistics
from tf_asgan.experiments.study_settings import COLUMNS
from tf_asgan.utils import io

log = logging.getLogger(__name__)

def section(r):
    """The table section of a result: ``"<dataset>/<setting>"`` (results written before
    settings existed are ``standard``)."""
    return f"{r['dataset']}/{r.get('setting', 'standard')}"


def aggregate(results):
    """``{"<dataset>/<setting>": {method: {key: (mean, std, n)}}}`` over seeds.

    A value that is missing or NaN (undefined: e.g. ``flipped_<side>`` of a D that
    classified none of those images right, or of a D with non-finite logits) counts as
    no measurement: it is left out of the mean and the standard deviation (never read as
    0), and ``n`` is the number of seeds whose value is defined. A key no seed defines
    is absent from the row.
    """
    table = {}
    for r in results:
        table.setdefault(section(r), {}).setdefault(r["method"], []).append(r)
    out = {}
    for dataset, by_method in table.items():
        for method, runs in by_method.items():
            row = {}
            for key, _, _ in COLUMNS:
                values = np.array([r[key] for r in runs if r.get(key) is not None], float)
                values = values[~np.isnan(values)]  # undefined: not a measurement (docstring)
                if len(values):
                    row[key] = (float(values.mean()), float(values.std(ddof=1))
                                if len(values) > 1 else 0.0, len(values))
            out.setdefault(dataset, {})[method] = row
    return out


# Keys compared with the baseline by Welch's t-test in the summary.
COMPARED = (("fid", "FID"), ("recall", "recall"), ("coverage", "coverage"),
            ("modes", "modes"), ("d_loss_std", "std d_loss"))


def comparisons(results, reference="baseline"):
    """``{section: {method: {key: p}}}``: the two-sided p-value of Welch's t-test
    (``scipy.stats.ttest_ind(equal_var=False)``) of each method's per-seed values against
    ``reference``'s in the same dataset and setting (:func:`section`), for the keys of
    :data:`COMPARED`; NaN where it is undefined (fewer than 2 seeds, or no spread on
    either side). A small p says the difference is unlikely under equal means; with 3-5
    seeds a large p mostly says the study is too small. (Unadjusted: the pre-registered
    tests, with Holm's correction, are ``scripts/study_stats.py``'s.)"""
    by = {}
    for r in results:
        by.setdefault(section(r), {}).setdefault(r["method"], []).append(r)
    out = {}
    for dataset, methods in by.items():
        if reference not in methods:
            continue
        for method, runs in methods.items():
            if method == reference:
                continue
            row = {}
            for key, _ in COMPARED:
                a = np.array([r[key] for r in runs if r.get(key) is not None], float)
                b = np.array([r[key] for r in methods[reference] if r.get(key) is not None],
                             float)
                a, b = a[~np.isnan(a)], b[~np.isnan(b)]
                defined = len(a) > 1 and len(b) > 1 and (a.std() > 0 or b.std() > 0)
                row[key] = statistics.welch(a, b)["p"] if defined else float("nan")
            out.setdefault(dataset, {})[method] = row
    return out


def _comparison_lines(tests, dataset):
    if dataset not in tests:
        return []
    lines = ["Welch's t-test against the baseline over seeds (two-sided p):", "",
             "| method | " + " | ".join(f"p ({t})" for _, t in COMPARED) + " |",
             "|---|" + "---:|" * len(COMPARED)]
    for method, row in tests[dataset].items():
        cells = ["-" if np.isnan(row[k]) else f"{row[k]:.3f}" for k, _ in COMPARED]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return lines + [""]


def markdown(study, table, command=None, tests=None):
    eps = f"{study.attack_epsilon * 255:g}/255"
    lines = [f"# Study: {', '.join(study.methods)} on {', '.join(study.datasets)} "
             f"({', '.join(study.settings)})", ""]
    if command:
        lines += [f"Command: `{command}`", ""]
    seeds = ", ".join(f"{d} {list(study.seeds_for(d))}" for d in study.datasets)
    lines += [f"DCGAN at 32 px, width x{study.width:g}, batch {study.batch_size}, "
              f"{study.steps} steps per run, seeds: {seeds}; FID and modes from "
              f"{study.eval_num_samples} samples with the digit classifier, precision / "
              f"recall (k = 3, Kynkaanniemi et al. 2019) and density / coverage (k = 5, "
              f"Naeem et al. 2020) on its features of the KID subsets (sizes: each run's "
              f"protocol in result.json; recall and coverage: how much of the real data "
              f"the samples reach, precision and density: how real they look); FGSM at {eps} "
              f"on {study.analysis_num} real and fake images (\"flipped\": of the images "
              f"D classifies right, the fraction the attack makes it classify wrong; "
              f"undefined when it classifies none right). Mean +- standard deviation over "
              f"the seeds where a value is defined: \"(k of n seeds)\" when some are not, "
              f"\"-\" when none is.", ""]
    for name, by_method in table.items():
        lines += [f"## {name}", "",
                  "| method | " + " | ".join(t.format(eps=eps) for _, t, _ in COLUMNS) + " |",
                  "|---|" + "---:|" * len(COLUMNS)]
        seeds = len(study.seeds_for(name.split("/")[0]))
        for method, row in by_method.items():
            cells = []
            for key, _, fmt in COLUMNS:
                if key in row:
                    mean, std, n = row[key]
                    spread = f" +- {fmt.format(std)}" if n > 1 else ""
                    some = f" ({n} of {seeds} seeds)" if n < seeds else ""
                    cells.append(fmt.format(mean) + spread + some)
                else:
                    cells.append("-")
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
        lines.append("")
        lines += _comparison_lines(tests or {}, name)
    return "\n".join(lines)


def plot(study, results, table, output):
    """``fid.png`` (bars with seed spread) and ``curves_<dataset>_<setting>.png`` (seed
    0's step curves of each method); returns the paths."""
    plt = figures.pyplot()
    paths = []
    fig, axes = plt.subplots(1, len(table), figsize=(4.5 * len(table), 3.2), squeeze=False)
    for ax, (name, by_method) in zip(axes[0], table.items()):
        methods = [m for m in by_method if "fid" in by_method[m]]  # (failed runs: none)
        means = [by_method[m]["fid"][0] for m in methods]
        stds = [by_method[m]["fid"][1] for m in methods]
        ax.bar(methods, means, yerr=stds, capsize=4, color="tab:blue")
        for m in methods:  # every seed as a dot
            seeds = [r["fid"] for r in results
                     if section(r) == name and r["method"] == m and "fid" in r]
            ax.scatter([m] * len(seeds), seeds, color="black", s=8, zorder=3)
        ax.set_title(f"{name}: FID (lower is better)", fontsize=10)
        ax.set_xlabel("method")
        ax.set_ylabel("FID: mean +- std over seeds (dots: seeds)")
    paths.append(figures.save_figure(fig, os.path.join(output, "fid.png")))
    for name in table:
        dataset, setting = name.split("/")
        seed = study.seeds_for(dataset)[0]
        runs = {m: os.path.join(output, dataset, setting, m, f"seed{seed}")
                for m in study.methods}
        paths.append(figures.plot_training_curves(
            runs, os.path.join(output, f"curves_{dataset}_{setting}.png"), smooth=25))
    return paths


def summarize(study, results, output, command=None):
    """Writes ``study.json``, ``summary.md`` and the plots; returns the markdown."""
    table = aggregate(results)
    tests = comparisons(results)
    text = markdown(study, table, command, tests)
    io.atomic_write_text(os.path.join(output, "summary.md"), text)
    io.atomic_write_json(os.path.join(output, "study.json"),
                         {"study": dataclasses.asdict(study), "table": table, "welch_p": tests,
                          "runs": [{k: v for k, v in r.items() if k != "config"}
                                   for r in results]}, indent=2, sort_keys=True)
    plot(study, results, table, output)
    return text
