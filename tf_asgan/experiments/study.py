"""A small, honest comparison of the methods that runs on a CPU.

Every (dataset, setting, method, seed) run trains the same DCGAN (narrowed by ``width``)
for the same number of steps, then is measured the same way: FID, precision, recall,
density, coverage and the modes covered with the project's digit classifier, D's
robustness to FGSM on real and fake images, the L1 norm of D's input gradient on real
images, and the spread of the step losses over the second half of training (a stability
measure). Runs are kept in ``<output>/<dataset>/<setting>/<method>/seed<k>/`` with their
``result.json``, so an interrupted study continues where it stopped. A *setting*
(:data:`~tf_asgan.experiments.study_settings.SETTINGS`) is a set of
configuration changes on top of the study's standard run (the paper's Table 2 rows); the
methods are the presets (:mod:`tf_asgan.experiments.presets`) and the epsilon ablation
of the paper's Fig. 3 (:data:`~tf_asgan.experiments.study_settings.ABLATION`). A stored
run is reused only when its resolved configuration and measurement protocol equal today's,
so redefining a setting retrains its runs. After each run every per-seed value goes to
``<results>/<dataset>.csv`` (``setting, method, seed, metric, value``) with
``<dataset>.json`` beside it (:mod:`tf_asgan.experiments.study_results`), which
:mod:`tf_asgan.experiments.statistics` tests; :mod:`tf_asgan.experiments.study_summary`
aggregates the seeds (mean and standard deviation) into ``study.json``, ``summary.md`` and
plots, whichever way the numbers go.
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
from tf_asgan.experiments.study_results import code_version, write_results
from tf_asgan.experiments.study_settings import (
    SETTINGS,
    TRACES,
    check_methods,
    check_settings,
    method_changes,
)
from tf_asgan.training import builder, checkpoints, loop, rundir
from tf_asgan.utils import io, machine, nonfinite

log = logging.getLogger(__name__)

# The methods compared by default: as their sources define them (presets.AS_PUBLISHED).
DEFAULT_METHODS = presets.AS_PUBLISHED
DATASETS = ("stacked_digits", "digits")
# bumped when a measurement's definition changes (4: flipped NaN, right; 5: precision,
# recall, density, coverage measured: runs are re-measured, not retrained)
MEASURE_VERSION = 5
@dataclasses.dataclass
class StudyConfig:
    """The study's size. The defaults (32 runs) took 68 minutes on 2 CPU cores."""

    datasets: tuple = DATASETS
    methods: tuple = DEFAULT_METHODS
    settings: tuple = ("standard",)
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
        check_methods(self.methods)
        check_settings(self.settings)
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

    def train_config(self, dataset, method, seed, setting="standard"):
        """The resolved configuration of one run: the study's standard run, the method's
        changes (:func:`method_changes`), then the setting's (:data:`SETTINGS`).

        Raises:
          tf_asgan.errors.InputError: an unknown name, or a setting that changes a field
            the method sets (the run would not be the method any more).
        """
        check_settings([setting])
        changes, adverse = method_changes(method), SETTINGS[setting]
        clash = sorted(set(changes) & set(adverse))
        if clash:
            raise errors.InputError(f"Setting {setting!r} changes {clash}, which method "
                                    f"{method!r} sets; choose another setting or method.")
        steps_per_epoch = self.steps_per_epoch
        if dataset == "digits":  # 1,437 images: 22 batches of 64 per pass
            natural = 1437 // self.batch_size
            # the largest epoch length that fits one pass and divides the budget
            steps_per_epoch = max(k for k in range(1, min(steps_per_epoch, natural) + 1)
                                  if self.steps % k == 0)
        epochs = self.steps // steps_per_epoch
        standard = dict(
            dataset=dataset, width=self.width, batch_size=self.batch_size,
            steps_per_epoch=steps_per_epoch, epochs=epochs, seed=seed, epsilon=self.epsilon,
            sample_every_epochs=epochs, checkpoint_every_minutes=0.0, export=False,
            log_every_steps=1,  # the loss spreads and traces read every step's values
            eval_num_samples=self.eval_num_samples, eval_num_real=0, jit_compile="off")
        return TrainConfig(**{**standard, **changes, **adverse}).validate()

    def measure(self):
        """What the measurements depend on besides the run: a change re-measures."""
        return {"eval_num_samples": self.eval_num_samples, "analysis_num": self.analysis_num,
                "attack_epsilon": self.attack_epsilon, "version": MEASURE_VERSION}

    def jobs(self):
        """Every ``(dataset, setting, method, seed)`` of the study, in the order it runs."""
        return [(d, c, m, s) for d in self.datasets for c in self.settings
                for m in self.methods for s in self.seeds_for(d)]


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


def run_one(study, dataset, method, seed, workdir, setting="standard"):
    """Trains (or resumes) one run and measures it; returns (and stores) its result.

    The stored ``result.json`` is returned as it is when its resolved configuration and
    :meth:`StudyConfig.measure` equal today's; a different measurement re-measures the
    trained run, a different configuration trains it again from scratch.
    """
    path = os.path.join(workdir, "result.json")
    config = study.train_config(dataset, method, seed, setting)
    measure = study.measure()
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
    try:
        result = loop.train(config, workdir, verbose=0, source=source,
                            existing_run="overwrite")
    except nonfinite.NonFiniteError as err:  # a failed run is a result (docs/results.md)
        return _failed(path, err, dataset, setting, method, seed, config, measure,
                       time.time() - start)
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
        "dataset": dataset, "setting": setting, "method": method, "seed": seed,
        "step": result["step"],
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
        "machine": machine.description(), "code": code_version(),
    }
    io.atomic_write_json(path, out, indent=2, sort_keys=True)
    return out


def _failed(path, err, dataset, setting, method, seed, config, measure, seconds):
    """Stores and returns the result of a run that stopped on a non-finite step: no
    measurement, ``"failed"`` the error's text and ``"step"`` its step. The pre-registered
    rule (docs/results.md) turns it into values when the study is tested
    (:func:`tf_asgan.experiments.statistics.with_failures`)."""
    log.warning("%s/%s/%s seed %d failed: %s", dataset, setting, method, seed, err)
    out = {"dataset": dataset, "setting": setting, "method": method, "seed": seed,
           "failed": str(err), "step": err.step, "train_seconds": seconds,
           "seconds": seconds, "config": config.to_dict(), "measure": measure,
           "draws": randomness.SCHEME, "machine": machine.description(),
           "code": code_version()}
    os.makedirs(os.path.dirname(path), exist_ok=True)
    io.atomic_write_json(path, out, indent=2, sort_keys=True)
    return out


def progress_line(r):
    """One line of a run's result for the study's progress."""
    if r.get("failed"):
        return f"FAILED at step {r['step']}: {r['failed']} ({r['seconds']:.0f} s"
    return (f"FID {r['fid']:.2f}, recall {r['recall']:.3f}, coverage {r['coverage']:.3f}, "
            f"modes {r['modes']}, flipped real {r['flipped_real']:.1%} ({r['seconds']:.0f} s")


def run(study, output, progress=print, results_dir=None):
    """Runs every (dataset, setting, method, seed) of ``study`` into ``output``; returns
    their results. With ``results_dir``, :func:`write_results` updates the CSVs after each
    run (so an interrupted study leaves the values of its finished runs)."""
    study.validate()
    jobs = study.jobs()
    results, start = [], time.time()
    for i, (dataset, setting, method, seed) in enumerate(jobs, 1):
        workdir = os.path.join(output, dataset, setting, method, f"seed{seed}")
        results.append(run_one(study, dataset, method, seed, workdir, setting))
        if results_dir is not None:
            write_results(study, results, results_dir)
        elapsed = time.time() - start
        r = results[-1]
        progress(f"[{i}/{len(jobs)}] {dataset} {setting} {method} seed {seed}: "
                 f"{progress_line(r)}; elapsed {elapsed / 60:.1f} min, about "
                 f"{elapsed / i * (len(jobs) - i) / 60:.1f} min left)")
    return results
