"""The study's figures, drawn from its committed files so that anyone can redraw them.

- :func:`dot_plot`: one metric of the per-seed CSV (``setting, method, seed, metric,
  value``; :func:`tf_asgan.experiments.study_results.read_csvs`): every seed as a dot and the
  mean with its 95% t-interval (:func:`mean_interval`), one panel per setting;
- :func:`find_runs` and :func:`export_curves`: the study's step logs (TensorBoard, every
  step) binned into a small CSV (``setting, method, seed, step, metric, value``);
- :func:`curves_plot`: that CSV's curves, the median over seeds per bin with the
  interquartile range shaded, one panel per setting.

The interval is Student's: ``mean +- t_{0.975, n-1} s / sqrt(n)`` with ``s`` the sample
standard deviation (``ddof=1``), as ``scipy.stats.t.interval``. A NaN value (an undefined
measurement, e.g. a flip rate of a D that classified no image right) is left out and
counted under its method's label; an infinity is refused. A failed run (the study's
``failed`` metric) is drawn at the value the pre-registration gives it
(:func:`tf_asgan.experiments.study_results.arm_values`: 0 modes, the setting's worst
FID; NaN, so left out, for other metrics), as an orange cross, and counted in the label
as failed (not as NaN); the mean and interval include it, as the tests do.
"""

import collections
import csv
import glob
import io as text_io
import logging
import math
import os

import numpy as np
from scipy import stats

from tf_asgan import errors, layout
from tf_asgan.analysis import figures
from tf_asgan.experiments import statistics, study_results
from tf_asgan.utils import io

log = logging.getLogger(__name__)

CURVE_COLUMNS = ("setting", "method", "seed", "step", "metric", "value")
RESULT = "result.json"  # a finished study run's record (tf_asgan.experiments.study)
_JITTER = 0.08  # half-width of the dots' horizontal spread, in method slots
_DOTS, _BAR = -0.12, 0.18  # offsets of the dots' centre and of the error bar from the slot


def mean_interval(values, confidence=0.95):
    """``(mean, low, high, n, n_nan)`` of the defined values of ``values``.

    ``n`` counts the values that are not NaN, ``n_nan`` the NaNs left out. The interval is
    ``mean +- t_{(1 + confidence) / 2, n - 1} s / sqrt(n)`` (Student's t, ``s`` with
    ``ddof=1``); ``low = high = mean`` when the values have no spread, NaN when ``n < 2``
    (and the mean NaN when ``n == 0``).

    Raises:
      tf_asgan.errors.InputError: an infinite value, or not a 1-D sequence of numbers.
    """
    x = np.asarray(values, dtype=float)
    if x.ndim != 1 or np.isinf(x).any():
        raise errors.InputError(f"mean_interval needs a 1-D sequence of finite numbers or NaN; "
                                f"got {values!r}.")
    nan = np.isnan(x)
    x = x[~nan]
    n, n_nan = len(x), int(nan.sum())
    if n == 0:
        return math.nan, math.nan, math.nan, 0, n_nan
    mean = float(x.mean())
    if n == 1:
        return mean, math.nan, math.nan, 1, n_nan
    half = float(stats.t.ppf((1 + confidence) / 2, n - 1) * x.std(ddof=1) / math.sqrt(n))
    return mean, mean - half, mean + half, n, n_nan


def metric_label(metric):
    """The axis label of ``metric``: its name and, from ``statistics.BETTER``, its way."""
    way = statistics.BETTER.get(metric)
    return f"{metric} ({way} is better)" if way else metric


def _settings(arms):
    """The settings of ``arms`` in order of first appearance, each with its methods."""
    by_setting = {}
    for setting, method in arms:
        by_setting.setdefault(setting, []).append(method)
    return by_setting


def _jitter(k):
    """``k`` evenly spread horizontal offsets in ``[-_JITTER, _JITTER]`` (seed order)."""
    return np.linspace(-_JITTER, _JITTER, k) if k > 1 else np.zeros(k)


def _dot_panel(ax, table, metric, setting, methods):
    labels = []
    legend = {"seeds": "seed", "failed": "failed run (pre-registered value)",
              "bars": "mean, 95% t-interval"}
    for i, method in enumerate(methods):
        seeds, n_failed = study_results.arm_values(table, setting, method, metric)
        failed = study_results.failed_seeds(table, setting, method)
        values = np.array(list(seeds.values()), dtype=float)
        is_failed = np.array([s in failed for s in seeds])
        mean, low, high, n, n_nan = mean_interval(values)
        n_nan -= int((is_failed & np.isnan(values)).sum())  # a failed run's NaN: "failed"
        defined = ~np.isnan(values)
        x = i + _DOTS + _jitter(n)
        for mask, style in ((~is_failed[defined], dict(s=14, color="black", marker="o")),
                            (is_failed[defined], dict(s=30, color="tab:orange", marker="x"))):
            if mask.any():
                ax.scatter(x[mask], values[defined][mask], zorder=3, **style,
                           label=legend.pop("failed" if style["marker"] == "x" else "seeds",
                                            None))
        if n >= 2:
            ax.errorbar([i + _BAR], [mean], yerr=[[mean - low], [high - mean]], fmt="o",
                        color="tab:red", capsize=4, markersize=5,
                        label=legend.pop("bars", None))
        elif n == 1:
            ax.plot([i + _BAR], [mean], "o", color="tab:red", markersize=5)
        labels.append(f"{method}\nn = {n}" + (f"\n({n_nan} NaN)" if n_nan else "")
                      + (f"\n({n_failed} failed)" if n_failed else ""))
    ax.set_xticks(range(len(methods)), labels)
    ax.set_xlim(-0.6, len(methods) - 0.4)
    ax.set_title(setting, fontsize=10)
    ax.set_xlabel("method (n: seeds with a defined value)")
    ax.set_ylabel(metric_label(metric))
    ax.grid(axis="y", alpha=0.3)


def dot_figure(table, metric, arms, title=None):
    """The figure of :func:`dot_plot` (unsaved; the caller closes it); same arguments."""
    arms = [tuple(arm) for arm in arms]
    missing = [f"{s}/{m}" for s, m in arms if not table.get((s, m, metric))
               and not study_results.failed_seeds(table, s, m)]
    if not arms or missing:
        raise errors.InputError(f"No {metric} values of {missing or 'any arm'} in the CSV: "
                                "check --settings, --methods and --metrics against it.")
    panels = _settings(arms)
    fig, axes = figures.pyplot().subplots(
        1, len(panels), squeeze=False, layout="constrained",
        figsize=(max(5.0, sum(1.3 * len(m) + 1.2 for m in panels.values())), 4.0),
        width_ratios=[len(m) + 1 for m in panels.values()])
    for ax, (setting, methods) in zip(axes[0], panels.items()):
        _dot_panel(ax, table, metric, setting, methods)
    axes[0, -1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0),
                       borderaxespad=0)
    fig.suptitle(title or f"{metric}: every seed (dots), the mean and its 95% t-interval "
                 "(bars), per setting")
    return fig


def dot_plot(table, metric, arms, path, title=None):
    """Writes a dot plot of ``metric`` as a PNG and returns ``path``.

    Args:
      table: ``{(setting, method, metric): {seed: value}}``
        (:func:`tf_asgan.experiments.study_results.read_csvs`); NaN values are left out and
        counted under their method's label; failed runs are drawn as the module
        docstring says.
      metric: a metric name of the CSV; the y label says which way is better
        (``statistics.BETTER``).
      arms: ordered ``(setting, method)`` pairs: one panel per setting (in order of first
        appearance), its methods on the x axis in the given order, ``n`` (defined seeds)
        in each tick label. Each seed is a dot (evenly jittered in seed order) and the
        mean with its 95% t-interval (:func:`mean_interval`) is a bar beside the dots.
      path: the PNG written (1.3 inches per method plus 1.2 per panel, at least 5,
        4 inches high).
      title: the figure's title (default: what it shows).

    Raises:
      tf_asgan.errors.InputError: an arm with no values of ``metric`` (named), no arms,
        or an infinite value.
    """
    return figures.save_figure(dot_figure(table, metric, arms, title), path)


def find_runs(outputs, dataset):
    """``{(setting, method, seed): workdir}`` of the finished runs (those holding a
    ``result.json``) of ``dataset`` in the study output folders ``outputs``
    (``<output>/<dataset>/<setting>/<method>/seed<k>/``).

    Raises:
      tf_asgan.errors.MissingError: an output folder that does not exist, or no run found.
      tf_asgan.errors.InputError: the same (setting, method, seed) in two output folders.
    """
    runs = {}
    for output in outputs:
        if not os.path.isdir(output):
            raise errors.MissingError(f"No study output folder {output}.")
        for record in sorted(glob.glob(os.path.join(output, dataset, "*", "*", "seed*",
                                                    RESULT))):
            workdir = os.path.dirname(record)
            rest, seed = os.path.split(workdir)
            rest, method = os.path.split(rest)
            setting = os.path.basename(rest)
            if not seed[len("seed"):].isdigit():
                continue  # not a run folder (seed<k>)
            key = (setting, method, int(seed[len("seed"):]))
            if key in runs:
                raise errors.InputError(f"{setting}/{method} seed {key[2]} is in two study "
                                        f"outputs: {runs[key]} and {workdir}; pass one of them.")
            runs[key] = workdir
    if not runs:
        raise errors.MissingError(f"No finished {dataset} runs (<output>/{dataset}/<setting>/"
                                  f"<method>/seed<k>/{RESULT}) in {list(outputs)}.")
    return runs


def bin_means(steps, values, bin_steps):
    """``(labels, means)``: ``values`` averaged over the bins of ``bin_steps`` training steps
    ``1..bin_steps``, ``bin_steps + 1..2 bin_steps``, ... (bin ``(step - 1) // bin_steps``),
    each labelled by the last step it holds; a partial bin is averaged over what it has."""
    steps, values = np.asarray(steps, dtype=np.int64), np.asarray(values, dtype=float)
    index = (steps - 1) // bin_steps
    bins, inverse = np.unique(index, return_inverse=True)
    sums = np.bincount(inverse, weights=values, minlength=len(bins))
    counts = np.bincount(inverse, minlength=len(bins))
    last = np.zeros(len(bins), np.int64)
    np.maximum.at(last, inverse, steps)
    return last, sums / counts


def export_curves(run_dirs, names, bin_steps, path):
    """Writes the runs' step logs of ``names``, binned, to the CSV ``path`` (atomically).
    Where ``path`` exists, the rows of its runs that ``run_dirs`` does not hold are kept
    (a study run in parts, whose earlier run folders may be gone); a run of both is
    replaced.

    Args:
      run_dirs: ``{(setting, method, seed): workdir}`` (:func:`find_runs`).
      names: logged step quantities, e.g. ``("d_loss", "g_loss")``.
      bin_steps: training steps per bin (:func:`bin_means`), >= 1.
      path: the CSV written: :data:`CURVE_COLUMNS`, one row per run, bin and name, sorted
        in that column order, values written with ``repr`` (exact floats).

    Returns:
      the number of rows written of ``run_dirs`` (kept rows not counted).

    Raises:
      tf_asgan.errors.InputError: ``bin_steps < 1``, no runs, a run with no step logs at
        all (named), none of ``names`` logged by any run, or an existing ``path`` binned
        over other than ``bin_steps`` steps (as :func:`read_curves`). A run missing some
        of ``names`` is warned about and those names skipped for it.
    """
    if bin_steps < 1 or not run_dirs or not names:
        raise errors.InputError(f"export_curves needs runs, names and bin_steps >= 1; got "
                                f"{len(run_dirs)} runs, names {list(names)}, bin_steps "
                                f"{bin_steps}.")
    rows = []
    for (setting, method, seed), workdir in sorted(run_dirs.items()):
        logs = figures.read_scalars(layout.entry(workdir, layout.TENSORBOARD))
        if not logs:
            raise errors.InputError(f"{setting}/{method} seed {seed} has no step logs in "
                                    f"{layout.entry(workdir, layout.TENSORBOARD)}.")
        for name in names:
            if name not in logs:
                log.warning("%s/%s seed %d did not log %s (%s); skipped.", setting, method,
                            seed, name, workdir)
                continue
            for step, value in zip(*bin_means(*logs[name], bin_steps)):
                rows.append((setting, method, seed, int(step), name, float(value)))
    if not rows:
        raise errors.InputError(f"No run logged any of {list(names)}.")
    written = len(rows)
    rows += _kept_curves(path, set(run_dirs), bin_steps)
    rows.sort()
    out = text_io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CURVE_COLUMNS)
    writer.writerows(row[:5] + (repr(row[5]),) for row in rows)
    io.atomic_write_text(path, out.getvalue())
    return written


def _kept_curves(path, replaced, bin_steps):
    """The rows of the curves CSV ``path`` (none where it does not exist) of the runs not
    in ``replaced`` (``(setting, method, seed)`` keys); refuses other bins."""
    if not os.path.exists(path):
        return []
    curves = read_curves(path)
    width = _bin_width(curves.values()) if curves else bin_steps
    if width != bin_steps:
        raise errors.InputError(f"{path} holds curves binned over {width} steps; pass "
                                f"bin_steps={width}, or another path for {bin_steps}.")
    return [(setting, method, seed, int(step), metric, float(value))
            for (setting, method, metric), seeds in curves.items()
            for seed, (steps, values) in seeds.items()
            if (setting, method, seed) not in replaced
            for step, value in zip(steps, values)]


def read_curves(path):
    """``{(setting, method, metric): {seed: (steps, values)}}`` of an
    :func:`export_curves` CSV (arrays sorted by step; dict in order of first appearance).

    Raises:
      tf_asgan.errors.InputError: a header other than :data:`CURVE_COLUMNS`, a seed,
        step or value that is no number, or a (setting, method, seed, step, metric) twice.
      FileNotFoundError: no file at ``path``.
    """
    points = collections.defaultdict(dict)
    rows = study_results.csv_rows(path, CURVE_COLUMNS)
    for line, (setting, method, seed, step, metric, value) in rows:
        try:
            seed, step, value = int(seed), int(step), float(value)
        except ValueError:
            raise errors.InputError(f"{path}:{line}: seed, step or value is no number.") \
                from None
        by_step = points[(setting, method, metric)].setdefault(seed, {})
        if step in by_step:
            raise errors.InputError(f"{path}:{line}: {setting}/{method} seed {seed} has "
                                    f"{metric} at step {step} twice.")
        by_step[step] = value
    return {key: {seed: (np.array(sorted(by_step)), np.array([by_step[s] for s in
                                                              sorted(by_step)]))
                  for seed, by_step in seeds.items()}
            for key, seeds in points.items()}


def _bin_width(curves):
    """The bin width of the curves, in steps. Bins begin at step 1 and are labelled by
    their last step, so a full bin's width is the first label and the spacing of the
    labels; only the last bin may be shorter (a smaller spacing; the first label too when
    it is the only bin). The larger of the first label and the largest spacing."""
    steps = np.unique(np.concatenate([s for seeds in curves for s, _ in seeds.values()]))
    return int(max(steps[0], np.diff(steps).max(initial=0)))


def _quartiles(seeds):
    """``(steps, 25%, median, 75%)`` over seeds per step (NaN and absent seeds left out)."""
    steps = np.unique(np.concatenate([s for s, _ in seeds.values()]))
    grid = np.full((len(seeds), len(steps)), np.nan)
    for row, (s, v) in enumerate(seeds.values()):
        grid[row, np.searchsorted(steps, s)] = v
    keep = ~np.isnan(grid).all(axis=0)
    q25, q50, q75 = np.nanpercentile(grid[:, keep], [25, 50, 75], axis=0)
    return steps[keep], q25, q50, q75


def curves_figure(curves_csv, metric="d_loss", arms=None):
    """The figure of :func:`curves_plot` (unsaved); same arguments and errors."""
    curves = read_curves(curves_csv)
    if arms is None:
        arms = [(s, m) for s, m, name in curves if name == metric]
    arms = [tuple(arm) for arm in arms]
    missing = [f"{s}/{m}" for s, m in arms if (s, m, metric) not in curves]
    if not arms or missing:
        raise errors.InputError(f"{curves_csv} has no {metric} curves of "
                                f"{missing or 'any arm'}; export them first (--runs).")
    panels = _settings(arms)
    colors = {m: f"C{i}" for i, m in enumerate(dict.fromkeys(m for _, m in arms))}
    fig, axes = figures.pyplot().subplots(1, len(panels), squeeze=False, sharex=True,
                                          figsize=(5 * len(panels) + 1.5, 3.8),
                                          layout="constrained")
    for ax, (setting, methods) in zip(axes[0], panels.items()):
        for method in methods:
            seeds = curves[(setting, method, metric)]
            steps, q25, q50, q75 = _quartiles(seeds)
            ax.plot(steps, q50, color=colors[method], linewidth=1.2,
                    label=f"{method} (n = {len(seeds)} seeds)")
            ax.fill_between(steps, q25, q75, color=colors[method], alpha=0.25, linewidth=0)
        ax.set_title(setting, fontsize=10)
        ax.set_xlabel("training step")
        ax.set_ylabel(f"{metric} (bin mean)")
        ax.grid(alpha=0.3)
        # below the panel, never over its curves
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=2)
    width = _bin_width([curves[(s, m, metric)] for s, m in arms])
    fig.suptitle(f"{metric}: median (line) and interquartile range (25-75%, shaded) over "
                 f"seeds, binned over {width} steps")
    return fig


def curves_plot(curves_csv, path, metric="d_loss", arms=None):
    """Writes the binned step curves of ``metric`` from an :func:`export_curves` CSV (and
    nothing else, so it can be redrawn from committed files) as a PNG; returns ``path``.

    One panel per setting (in order of first appearance in ``arms``); per method the
    median over seeds per bin as a line and the 25-75% range shaded (NumPy's linear
    percentiles), the legend (below the panel) giving its number of seeds; 5 inches wide
    per panel, 3.8 high. ``arms``: ordered ``(setting, method)`` pairs (default: every arm
    of the CSV with ``metric``). The title gives the bin width, inferred from the steps
    (:func:`_bin_width`).

    Raises:
      tf_asgan.errors.InputError: an arm without ``metric`` curves in the CSV (named), or
        a malformed CSV (:func:`read_curves`).
      FileNotFoundError: no CSV at ``curves_csv``.
    """
    return figures.save_figure(curves_figure(curves_csv, metric, arms), path)
