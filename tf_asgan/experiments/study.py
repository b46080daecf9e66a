"""A small, honest comparison of the methods that runs on a CPU.

Every (dataset, method, seed) run trains the same DCGAN (narrowed by ``width``) for the
same number of steps, then is measured the same way: FID, precision, recall, density,
coverage and the modes covered with the project's digit classifier, D's robustness to
FGSM on real and fake images, the L1 norm of D's input gradient on real images, and the
spread of the step losses over the second half of training (a stability measure). Runs are kept in
``<output>/<dataset>/<method>/seed<k>/`` with their ``result.json``, so an interrupted
study continues where it stopped. :func:`summarize` aggregates the seeds (mean and
standard deviation) into ``study.json``, ``summary.md`` and plots, whichever way the
numbers go.
"""

import dataclasses
import json
import logging
import os
import time

import numpy as np
import tensorflow as tf

from tf_asgan import errors, layout, legacy, randomness
from tf_asgan.analysis import attacks, figures
from tf_asgan.config.train_config import TrainConfig
from tf_asgan.data import catalog
from tf_asgan.experiments import presets
from tf_asgan.training import builder, checkpoints, loop, rundir
from tf_asgan.utils import io

log = logging.getLogger(__name__)

# The methods compared by default: as their sources define them (presets.AS_PUBLISHED).
DEFAULT_METHODS = presets.AS_PUBLISHED
DATASETS = ("stacked_digits", "digits")
# bumped when a measurement's definition changes (4: flipped NaN, right; 5: precision,
# recall, density, coverage measured: runs are re-measured, not retrained)
MEASURE_VERSION = 5
# Logged per-step quantities summarised (median and max over training) into result.json.
TRACES = ("dat_linf_real", "dat_linf_fake", "advas_lambda", "advas_penalty")
# (key in result.json, column title, format)
COLUMNS = (
    ("fid", "FID", "{:.2f}"),
    ("precision", "precision", "{:.3f}"),
    ("recall", "recall", "{:.3f}"),
    ("density", "density", "{:.3f}"),
    ("coverage", "coverage", "{:.3f}"),
    ("modes", "modes", "{:.1f}"),
    ("modes_kl", "KL(modes)", "{:.3f}"),
    ("accuracy_real", "D acc. real", "{:.1%}"),
    ("flipped_real", "flipped real @{eps}", "{:.1%}"),
    ("accuracy_fake", "D acc. fake", "{:.1%}"),
    ("flipped_fake", "flipped fake @{eps}", "{:.1%}"),
    ("grad_l1", "grad L1", "{:.3g}"),
    ("d_loss_std", "std d_loss", "{:.3f}"),
    ("g_loss_std", "std g_loss", "{:.3f}"),
)


@dataclasses.dataclass
class StudyConfig:
    """The study's size. The defaults (32 runs) took 68 minutes on 2 CPU cores."""

    datasets: tuple = DATASETS
    methods: tuple = DEFAULT_METHODS
    seeds: tuple = (0, 1, 2, 3, 4)  # stacked_digits (1,000 modes: the noisier measure)
    digits_seeds: tuple = (0, 1, 2)
    steps: int = 800  # training steps per run (the same budget for every method)
    steps_per_epoch: int = 100
    batch_size: int = 64
    width: float = 0.25  # DCGAN channel multiplier
    epsilon: float = 1 / 255  # AS-GAN's
    eval_num_samples: int = 10_000
    analysis_num: int = 256
    attack_epsilon: float = 4 / 255  # the robustness column of the table

    def validate(self):
        presets.check(self.methods)
        bad = [d for d in self.datasets if d not in DATASETS]
        if bad:
            raise errors.InputError(f"Unknown study datasets {bad}; choose from {list(DATASETS)}.")
        if (not self.seeds or not self.digits_seeds or self.steps < 1 or self.steps_per_epoch < 1
                or self.analysis_num < 1 or self.eval_num_samples < 1):
            raise errors.InputError("The study needs seeds, and steps, steps_per_epoch, "
                                    "analysis_num and eval_num_samples >= 1.")
        if not 0 < self.attack_epsilon < attacks.MAX_ATTACK_EPSILON:  # an analysis radius
            raise errors.InputError(f"attack_epsilon must lie in (0, "
                                    f"{attacks.MAX_ATTACK_EPSILON:g}), e.g. 4/255; got "
                                    f"{self.attack_epsilon}.")
        if self.steps % self.steps_per_epoch:
            raise errors.InputError(f"steps={self.steps} must be a multiple of "
                                    f"steps_per_epoch={self.steps_per_epoch}.")
        return self

    def seeds_for(self, dataset):
        """The seeds run on ``dataset``."""
        return self.digits_seeds if dataset == "digits" else self.seeds

    def train_config(self, dataset, method, seed):
        steps_per_epoch = self.steps_per_epoch
        if dataset == "digits":  # 1,437 images: 22 batches of 64 per pass
            natural = 1437 // self.batch_size
            # the largest epoch length that fits one pass and divides the budget
            steps_per_epoch = max(k for k in range(1, min(steps_per_epoch, natural) + 1)
                                  if self.steps % k == 0)
        epochs = self.steps // steps_per_epoch
        return TrainConfig(
            dataset=dataset, width=self.width, batch_size=self.batch_size,
            steps_per_epoch=steps_per_epoch, epochs=epochs, seed=seed, epsilon=self.epsilon,
            sample_every_epochs=epochs, checkpoint_every_minutes=0.0, export=False,
            log_every_steps=1,  # the loss spreads and traces read every step's values
            eval_num_samples=self.eval_num_samples, eval_num_real=0, jit_compile="off",
            **presets.preset(method)).validate()


def _loss_spread(workdir, name):
    series = figures.read_scalars(layout.entry(workdir, layout.TENSORBOARD)).get(name)
    if series is None:
        return float("nan")
    values = series[1][len(series[1]) // 2:]
    return float(np.std(values))


def _traces(workdir, steps_per_epoch):
    """``{name: {"median", "max", "first_epoch_max"}}`` over training of the logged
    :data:`TRACES` (per-step values)."""
    scalars = figures.read_scalars(layout.entry(workdir, layout.TENSORBOARD))
    out = {}
    for name in TRACES:
        if name in scalars and len(scalars[name][1]):
            steps, values = scalars[name][0], np.asarray(scalars[name][1], float)
            first = values[steps <= steps[0] + steps_per_epoch - 1]
            out[name] = {"median": float(np.median(values)), "max": float(values.max()),
                         "first_epoch_max": float(first.max())}
    return out


def run_one(study, dataset, method, seed, workdir):
    """Trains (or resumes) one run and measures it; returns (and stores) its result."""
    path = os.path.join(workdir, "result.json")
    config = study.train_config(dataset, method, seed)
    # What the measurements depend on besides the run: a change re-measures.
    measure = {"eval_num_samples": study.eval_num_samples,
               "analysis_num": study.analysis_num, "attack_epsilon": study.attack_epsilon,
               "version": MEASURE_VERSION}
    if os.path.exists(path):
        with open(path) as f:
            stored = json.load(f)
        # (the configuration includes methods_version: a run of an older DAT / AdvAs is
        # retrained, not re-measured)
        if (stored.get("config") == config.to_dict() and stored.get("measure") == measure
                and not legacy.draws_outdated(stored)):
            return stored
        if legacy.draws_outdated(stored):  # the same run would draw otherwise
            rundir.remove_run(workdir, reason="trained with an earlier random-draw scheme")
    elif checkpoints.written_before_counts(layout.entry(workdir, layout.CHECKPOINTS)):
        # interrupted under an earlier scheme: resuming it would mix the two
        rundir.remove_run(workdir, reason="started with an earlier random-draw scheme")
    start = time.time()
    source = catalog.source(dataset, config.model.resolution, seed=seed)
    # The study owns its run folders: a run of an older study setting is replaced.
    result = loop.train(config, workdir, verbose=0, source=source,
                        existing_run="overwrite")
    train_seconds = time.time() - start
    gan, _, _ = rundir.restore_model(workdir)
    # The real subset's shuffle folds in TensorFlow's global seed: set it, so that a
    # re-measurement reads the same real images in the same order as the first one.
    tf.random.set_seed(seed)
    evaluator = builder.make_evaluator(config.eval, config.data, config.model.resolution,
                                       config.optim.seed, source)
    metrics = evaluator.evaluate(gan.generator)["metrics"]
    reals = attacks.real_batch(source, study.analysis_num, seed)
    z = np.random.default_rng(seed + 99).standard_normal(
        (study.analysis_num, config.model.latent_dim)).astype(np.float32)
    fakes = gan.generator(z, training=False).numpy()
    records = attacks.robustness(gan.discriminator, reals, fakes, [study.attack_epsilon],
                                 loss=config.method.loss)
    grad = attacks.input_gradient(gan.discriminator, reals, loss=config.method.loss)
    out = {
        "dataset": dataset, "method": method, "seed": seed, "step": result["step"],
        "train_seconds": train_seconds, "seconds": time.time() - start,
        "metrics": metrics, "robustness": records,
        "fid": metrics["fid"], "modes": metrics.get("modes"),
        **{key: metrics[key] for key in ("precision", "recall", "density", "coverage")},
        "modes_kl": metrics.get("modes_kl"),
        **{f"flipped_{r['side']}": r["flipped"] for r in records},
        **{f"accuracy_{r['side']}": r["accuracy_before"] for r in records},  # clean
        "grad_l1": attacks.gradient_statistics(grad)["l1_mean"],
        "d_loss_std": _loss_spread(workdir, "d_loss"),
        "g_loss_std": _loss_spread(workdir, "g_loss"),
        "traces": _traces(workdir, config.optim.steps_per_epoch),
        "config": config.to_dict(), "measure": measure, "draws": randomness.SCHEME,
    }
    io.atomic_write_json(path, out, indent=2, sort_keys=True)
    return out


def run(study, output, progress=print):
    """Runs every (dataset, method, seed) of ``study`` into ``output``; returns results."""
    study.validate()
    jobs = [(d, m, s) for d in study.datasets for m in study.methods
            for s in study.seeds_for(d)]
    results, start = [], time.time()
    for i, (dataset, method, seed) in enumerate(jobs, 1):
        workdir = os.path.join(output, dataset, method, f"seed{seed}")
        results.append(run_one(study, dataset, method, seed, workdir))
        elapsed = time.time() - start
        r = results[-1]
        progress(f"[{i}/{len(jobs)}] {dataset} {method} seed {seed}: FID {r['fid']:.2f}, "
                 f"recall {r['recall']:.3f}, coverage {r['coverage']:.3f}, "
                 f"modes {r['modes']}, flipped real {r['flipped_real']:.1%} "
                 f"({r['seconds']:.0f} s; elapsed {elapsed / 60:.1f} min, about "
                 f"{elapsed / i * (len(jobs) - i) / 60:.1f} min left)")
    return results


def aggregate(results):
    """``{dataset: {method: {key: (mean, std, n)}}}`` over seeds.

    A value that is missing or NaN (undefined: e.g. ``flipped_<side>`` of a D that
    classified none of those images right, or of a D with non-finite logits) counts as
    no measurement: it is left out of the mean and the standard deviation (never read as
    0), and ``n`` is the number of seeds whose value is defined. A key no seed defines
    is absent from the row.
    """
    table = {}
    for r in results:
        table.setdefault(r["dataset"], {}).setdefault(r["method"], []).append(r)
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
    """``{dataset: {method: {key: p}}}``: the two-sided p-value of Welch's t-test
    (``scipy.stats.ttest_ind(equal_var=False)``) of each method's per-seed values against
    ``reference``'s, for the keys of :data:`COMPARED`; NaN where it is undefined (fewer
    than 2 seeds, or no spread on either side). A small p says the difference is unlikely
    under equal means; with 3-5 seeds a large p mostly says the study is too small."""
    from scipy import stats

    by = {}
    for r in results:
        by.setdefault(r["dataset"], {}).setdefault(r["method"], []).append(r)
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
                defined = len(a) > 1 and len(b) > 1 and (a.std() > 0 or b.std() > 0)
                row[key] = (float(stats.ttest_ind(a, b, equal_var=False).pvalue) if defined
                            else float("nan"))
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
    lines = [f"# Study: {', '.join(study.methods)} on {', '.join(study.datasets)}", ""]
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
    for dataset, by_method in table.items():
        lines += [f"## {dataset}", "",
                  "| method | " + " | ".join(t.format(eps=eps) for _, t, _ in COLUMNS) + " |",
                  "|---|" + "---:|" * len(COLUMNS)]
        seeds = len(study.seeds_for(dataset))
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
        lines += _comparison_lines(tests or {}, dataset)
    return "\n".join(lines)


def plot(study, results, table, output):
    """``fid.png`` (bars with seed spread) and ``curves_<dataset>.png`` (seed 0's step
    curves of each method); returns the paths."""
    plt = figures.pyplot()
    paths = []
    fig, axes = plt.subplots(1, len(table), figsize=(4.5 * len(table), 3.2), squeeze=False)
    for ax, (dataset, by_method) in zip(axes[0], table.items()):
        methods = list(by_method)
        means = [by_method[m]["fid"][0] for m in methods]
        stds = [by_method[m]["fid"][1] for m in methods]
        ax.bar(methods, means, yerr=stds, capsize=4, color="tab:blue")
        for m in methods:  # every seed as a dot
            seeds = [r["fid"] for r in results if r["dataset"] == dataset and r["method"] == m]
            ax.scatter([m] * len(seeds), seeds, color="black", s=8, zorder=3)
        ax.set_title(f"{dataset}: FID (lower is better)", fontsize=10)
        ax.set_xlabel("method")
        ax.set_ylabel("FID: mean +- std over seeds (dots: seeds)")
    paths.append(figures.save_figure(fig, os.path.join(output, "fid.png")))
    for dataset in table:
        runs = {m: os.path.join(output, dataset, m, f"seed{study.seeds_for(dataset)[0]}")
                for m in study.methods}
        paths.append(figures.plot_training_curves(
            runs, os.path.join(output, f"curves_{dataset}.png"), smooth=25))
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
