"""A complete, resumable training run in a working directory.

``<workdir>/`` holds ``config.json`` and ``flags.txt`` (the resolved configuration;
``train.py --flagfile=<workdir>/flags.txt`` repeats the run), ``checkpoints/``
(both networks, both optimizers and the step count, from which the epsilon schedule
and the data position follow), ``tensorboard/`` (every step's metrics and the epoch
means), ``history.csv`` (epoch means), ``samples/epoch_XXXX.png`` (a fixed latent
batch) and, at the end, ``generator/`` (the exported SavedModel).

Calling :func:`train` again with the same configuration on the same workdir resumes
from the last checkpoint, at the same step and data position.
"""

import glob
import hashlib
import logging
import os
import shutil

import keras
import numpy as np
import tensorflow as tf

from tf_asgan import callbacks as callbacks_lib
from tf_asgan import checkpoints, classifiers, data, distribute, evaluation, export, networks
from tf_asgan import config as config_lib
from tf_asgan.asgan import ASGAN

log = logging.getLogger(__name__)
SAMPLE_GRID_SIZE = 64
# What to do with a workdir that already holds a run (train.py --existing_run).
EXISTING_RUN = ("resume", "overwrite", "new")
# The entries of a workdir that belong to its run (what "overwrite" removes).
RUN_ENTRIES = ("config.json", "flags.txt", "checkpoints", "tensorboard", "history.csv",
               "samples", "generator", "metrics.jsonl", "best.json", "best", ".workers")
EXPORT_DIR = "generator"


class ConfigMismatchError(ValueError):
    """The workdir holds a run with a different configuration."""


class ExportConflictError(FileExistsError):
    """The workdir's export path holds something that is not this run's export."""


def _mismatch(config, workdir):
    """The differences between ``config`` and the run stored in ``workdir`` (``{}``
    when there is none or it is the same experiment)."""
    stored = config_lib.load(workdir)
    return {} if stored is None else config.differences(stored)


def resolve_workdir(config, workdir, existing_run="resume", chief=True):
    """The workdir a run of ``config`` writes to, given what ``workdir`` holds.

    A workdir holding no run, or a run of the same experiment (only
    :data:`~tf_asgan.config.MUTABLE_FIELDS` differ), is used as it is: the run starts
    or resumes there. ``existing_run`` decides what happens when it holds a different
    experiment: ``resume`` (the default) refuses with the list of differences; ``new``
    uses the first of ``<workdir>_2``, ``<workdir>_3``, ... that is free or holds this
    same experiment; ``overwrite`` deletes the other run's own entries
    (:data:`RUN_ENTRIES`; other files stay). Either way, running the same command again
    resumes the run instead of starting another one.
    """
    if existing_run not in EXISTING_RUN:
        raise ValueError(f"Unknown existing_run {existing_run!r}; choose one of "
                         f"{list(EXISTING_RUN)}.")
    diff = _mismatch(config, workdir)
    if not diff:
        return workdir
    if existing_run == "resume":
        listed = ", ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in sorted(diff.items()))
        raise ConfigMismatchError(
            f"{workdir} holds a run with a different configuration ({listed}). Use a new "
            "--workdir, start a new run beside it (--existing_run=new), replace it "
            "(--existing_run=overwrite), or repeat the stored run with --flagfile="
            f"{os.path.join(workdir, 'flags.txt')}.")
    if existing_run == "new":
        n = 2
        while _mismatch(config, f"{workdir}_{n}"):
            n += 1
        log.info("%s holds a different experiment; this run goes to %s_%d.", workdir,
                 workdir, n)
        return f"{workdir}_{n}"
    if chief:
        # config.json goes last: a kill part-way leaves a run that is still refused,
        # never old checkpoints under the new configuration.
        entries = [os.path.join(workdir, e) for e in RUN_ENTRIES if e != "config.json"]
        entries += glob.glob(os.path.join(glob.escape(workdir), EXPORT_DIR + "_step*"))
        entries.append(os.path.join(workdir, "config.json"))
        removed = [e for e in entries if os.path.lexists(e)]
        for entry in removed:
            if os.path.isdir(entry) and not os.path.islink(entry):
                shutil.rmtree(entry)
            else:
                os.remove(entry)
        log.warning("--existing_run=overwrite: deleted the previous run in %s (%s).", workdir,
                    ", ".join(os.path.basename(e) for e in removed))
    return workdir


def _check_export_path(path):
    """Refuses, before training, an export path holding something other than an export
    of a tf_asgan run (it would be replaced at the end)."""
    if os.path.lexists(path) and _export_step(path) is False:
        raise ExportConflictError(
            f"{path} exists but is not a tf_asgan export (no readable "
            f"assets.extra/{export.METADATA_FILE}); move it away, or pass --noexport.")


def _keep_previous_export(path, step):
    """An export of an earlier step (a run since extended) is kept beside the new one."""
    old_step = _export_step(path)
    if old_step is False or old_step == step:
        return None
    kept = f"{path}_step{old_step}"
    n = 2
    while os.path.lexists(kept):
        kept, n = f"{path}_step{old_step}_{n}", n + 1
    os.rename(path, kept)
    log.info("The export of step %d is kept as %s.", old_step, kept)
    return kept


def build_model(config, jit_compile=None):
    """The compiled :class:`ASGAN` of ``config`` (in the current strategy scope and
    dtype policy). ``jit_compile`` defaults to ``config.jit_compile`` resolved for the
    current strategy."""
    g = networks.build_generator(config.architecture, config.resolution,
                                 latent_dim=config.latent_dim, batch_norm=config.bn_g,
                                 sync_bn=config.sync_bn, width=config.width)
    d = networks.build_discriminator(config.architecture, config.resolution,
                                     batch_norm=config.bn_d, sync_bn=config.sync_bn,
                                     width=config.width)
    if jit_compile is None:
        jit_compile = distribute.resolve_jit(config.jit_compile, tf.distribute.get_strategy())
    gan = ASGAN(g, d, latent_dim=config.latent_dim, loss=config.loss,
                perturbation=config.perturbation, adversarial=config.adversarial,
                epsilon=config.epsilon_schedule_object(), epsilon_unit=config.epsilon_unit,
                second_update=config.second_update, d_steps=config.d_steps,
                perturbation_kwargs=config.perturbation_kwargs(), dat=config.dat_object(),
                advas=config.advas_object())
    gan.compile(
        d_optimizer=keras.optimizers.Adam(config.lr_d, beta_1=config.beta1_d,
                                          beta_2=config.beta2_d),
        g_optimizer=keras.optimizers.Adam(config.lr_g, beta_1=config.beta1_g,
                                          beta_2=config.beta2_g),
        jit_compile=jit_compile)
    return gan


def checkpoint_for(gan):
    """The ``tf.train.Checkpoint`` of a run: networks, optimizers (and so the step)."""
    return tf.train.Checkpoint(generator=gan.generator, discriminator=gan.discriminator,
                               d_optimizer=gan.d_optimizer, g_optimizer=gan.g_optimizer)


def fixed_latents(config, n=SAMPLE_GRID_SIZE):
    """The latent batch of every sample grid of a run (depends on the seed only)."""
    return np.random.default_rng(config.seed + 12345).standard_normal(
        (n, config.latent_dim)).astype(np.float32)


def train(config, workdir, *, callbacks=(), verbose="auto", source=None, strategy=None,
          existing_run="resume"):
    """Trains (or resumes) the run of ``config`` in ``workdir``.

    Args:
      config: a :class:`~tf_asgan.config.TrainConfig`; validated first.
      workdir: the run directory (created if needed).
      callbacks: extra Keras callbacks.
      verbose: Keras ``fit`` verbosity (progress bars by default).
      source: a :class:`~tf_asgan.data.Source` to use instead of ``config.dataset``.
      strategy: a ``tf.distribute`` strategy (default: ``config.strategy``, see
        :mod:`tf_asgan.distribute`).
      existing_run: what to do when ``workdir`` holds a different experiment:
        ``resume`` refuses, ``overwrite`` replaces it, ``new`` writes to
        ``<workdir>_N`` (see :func:`resolve_workdir`). The same experiment is resumed.

    Reliability: checkpoints every ``checkpoint_every_steps`` steps, every
    ``checkpoint_every_minutes`` minutes and at epoch ends (the last
    ``checkpoints_to_keep`` are kept); a corrupt checkpoint is reported, moved aside and
    the previous one used. A NaN or infinite loss, logged quantity or weight raises
    :class:`~tf_asgan.checkpoints.NonFiniteError` naming the step and the quantities,
    before any checkpoint or export of that step, or, with
    ``on_nonfinite="rollback"``, restores the last good checkpoint and continues with
    fresh random draws (at most ``max_rollbacks`` times).

    Under several workers every worker trains; only the chief writes into ``workdir``
    (the others write into a scratch folder they delete at the end), and every worker
    resumes from the chief's checkpoints.

    Returns:
      A dict: ``step`` (completed steps), ``steps_per_epoch``, ``total_steps``,
      ``export`` (the SavedModel path or ``None``), ``workdir`` (where the run was
      written), ``evaluation`` (the last evaluation record or ``None``), ``chief``,
      ``rollbacks``.
    """
    config.validate()
    strategy = strategy or distribute.make_strategy(config.strategy)
    replicas = strategy.num_replicas_in_sync
    if config.batch_size % (replicas * config.d_steps):
        raise ValueError(f"batch_size={config.batch_size} must be divisible by the "
                         f"{replicas} replicas (times d_steps={config.d_steps}); choose a "
                         "multiple.")
    chief = distribute.is_chief(strategy)
    task_type, task_id = distribute.task(strategy)
    multi_worker = distribute.is_multi_worker(strategy)
    if multi_worker and existing_run == "overwrite":
        raise ValueError("--existing_run=overwrite is refused with several workers (they "
                         "would race the deletion); delete the old run first, or use "
                         "--existing_run=new or another --workdir.")
    workdir = resolve_workdir(config, workdir, existing_run, chief)
    write_dir = workdir if chief else os.path.join(workdir, ".workers",
                                                   f"{task_type}_{task_id}")
    os.makedirs(write_dir, exist_ok=True)
    export_path = os.path.join(write_dir, EXPORT_DIR)
    if chief and config.export:
        _check_export_path(export_path)
    if source is None:
        source = data.source(config.dataset, config.resolution, data_dir=config.data_dir,
                             image_dir=config.image_dir, download=config.download,
                             seed=config.seed, bad_images=config.bad_images)
    evaluator = make_evaluator(config, source) if config.eval_every_epochs else None
    if chief:
        config_lib.save(config, workdir)
    keras.utils.set_random_seed(config.seed)

    jit = distribute.resolve_jit(config.jit_compile, strategy)
    precision = distribute.resolve_precision(config.precision)
    with distribute.precision_policy(precision), strategy.scope():
        gan = build_model(config, jit)
    checkpoint = checkpoint_for(gan)
    checkpoint_dir = os.path.join(workdir, "checkpoints")
    latest = checkpoints.restore_latest(checkpoint, checkpoint_dir, writer=chief)
    if latest:
        log.info("Resumed from %s", latest)
    manager = tf.train.CheckpointManager(checkpoint, os.path.join(write_dir, "checkpoints"),
                                         max_to_keep=config.checkpoints_to_keep)
    step = gan.completed_steps()
    steps_per_epoch = data.epoch_steps(source, config.batch_size, config.steps_per_epoch or None)
    total = config.epochs * steps_per_epoch
    log.info("%s: %d replica(s), global batch %d = %d x %d per replica; XLA %s; %s.",
             distribute.describe(strategy), replicas, config.batch_size, replicas,
             config.batch_size // replicas, "on" if jit else "off", precision)
    log.info("Data: %s; %d steps per epoch of %d images, %d steps in all; %s.",
             source.description, steps_per_epoch, config.batch_size, total,
             "starting" if step == 0 else f"resuming at step {step}")
    if step == 0:  # the initial weights: a rollback target from the first step on
        manager.save(checkpoint_number=0)
    run_callbacks = [
        checkpoints.NonFiniteGuard(),
        # Workers' clocks differ: time-based checkpoints would make them disagree.
        callbacks_lib.Checkpointer(manager, config.checkpoint_every_steps,
                                   0.0 if multi_worker else config.checkpoint_every_minutes),
        callbacks_lib.StepLogger(os.path.join(write_dir, "tensorboard")),
        callbacks_lib.SampleGrid(os.path.join(write_dir, "samples"), fixed_latents(config),
                                 config.sample_every_epochs),
        keras.callbacks.CSVLogger(os.path.join(write_dir, "history.csv"), append=True),
        *callbacks,
    ]
    evaluate = None
    if evaluator is not None:
        best = tf.train.CheckpointManager(checkpoint, os.path.join(write_dir, "best"),
                                          max_to_keep=1, checkpoint_name="best")
        evaluate = callbacks_lib.Evaluate(
            evaluator, config.eval_every_epochs, config.epochs,
            os.path.join(write_dir, "metrics.jsonl"), os.path.join(write_dir, "tensorboard"),
            best)
        # Before the checkpointer: a crash mid-evaluation then repeats the evaluation.
        run_callbacks.insert(1, evaluate)
    rollbacks = 0
    while step < total:
        # A run stopped mid-epoch first finishes that epoch, then continues by epochs.
        epoch, done_in_epoch = divmod(step, steps_per_epoch)
        end = epoch + 1 if done_in_epoch else config.epochs
        # The data order depends on the seed only; the model's random draws (latents,
        # perturbations) continue from seed + step, so a resume does not replay them.
        tf.random.set_seed(config.seed)
        stream, _ = data.training_stream(source, config.batch_size, epochs=end,
                                         seed=config.seed, start_step=step,
                                         steps_per_epoch=config.steps_per_epoch or None,
                                         cache=config.cache)
        if multi_worker:
            options = tf.data.Options()
            options.experimental_distribute.auto_shard_policy = (
                tf.data.experimental.AutoShardPolicy.DATA)
            stream = stream.with_options(options)
        # Workers of a cluster trace identical graphs, so identical seeds would give them
        # identical latents: each worker offsets its seed by its task index.
        # A rollback changes the draws, or it would replay the same non-finite step.
        keras.utils.set_random_seed(config.seed + step + 1_000_003 * task_id
                                    + 7_919 * rollbacks)
        try:
            gan.fit(stream, initial_epoch=epoch, epochs=end,
                    steps_per_epoch=steps_per_epoch - done_in_epoch if done_in_epoch
                    else steps_per_epoch,
                    callbacks=run_callbacks, verbose=verbose)
        except checkpoints.NonFiniteError as err:
            good = tf.train.latest_checkpoint(checkpoint_dir)  # the chief's, on every worker
            if config.on_nonfinite != "rollback" or rollbacks >= config.max_rollbacks:
                hint = ("lower the learning rates or epsilon, or pass --on_nonfinite=rollback "
                        "to continue from it with fresh random draws"
                        if config.on_nonfinite != "rollback" else
                        f"{rollbacks} rollback(s) did not help; lower the learning rates "
                        "or epsilon")
                raise checkpoints.NonFiniteError(
                    err.step, err.quantities, err.where,
                    detail=f"Training stopped; the last good checkpoint is {good}; nothing "
                    f"was exported. To go on, {hint}.") from err
            rollbacks += 1
            good = checkpoints.restore_latest(checkpoint, checkpoint_dir, writer=chief)
            log.warning("%s Rolled back to %s (rollback %d of at most %d).", err, good,
                        rollbacks, config.max_rollbacks)
        step = gan.completed_steps()

    if config.export:
        checkpoints.check_weights(gan, step, what="weights (the generator was not exported)")
        if os.path.exists(export_path) and _export_step(export_path) == step:
            log.info("Export %s is already at step %d.", export_path, step)
        else:
            _keep_previous_export(export_path, step)
            export.export_generator(gan.generator, export_path, latent_dim=config.latent_dim,
                                    metadata=export_metadata(config, step))
            if chief:
                log.info("Exported the generator to %s", export_path)
    else:
        export_path = None
    if not chief:
        shutil.rmtree(write_dir, ignore_errors=True)
        export_path = None
    return {"step": step, "steps_per_epoch": steps_per_epoch, "total_steps": total,
            "export": export_path, "workdir": workdir, "chief": chief,
            "weights_sha1": weights_digest(gan),
            "all_weights_sha1": weights_digest(gan, trainable_only=False),
            "evaluation": evaluate.results[-1] if evaluate and evaluate.results else None,
            "rollbacks": rollbacks}


def make_evaluator(config, source=None):
    """The run's :class:`~tf_asgan.evaluation.Evaluator`, built (and its real-data
    statistics computed or read) before training, so a missing network or dataset is
    reported before any step. ``source`` supplies the real images when the run's own
    source was given directly (it must then be the ``eval_real_split`` split)."""
    network = classifiers.network_for(config.eval_network, config.dataset,
                                      config.inception_path)
    real = source if (source is not None and config.eval_real_split == "train") else None
    evaluator = evaluation.Evaluator(
        network, config.dataset, config.resolution, config.eval_protocol(),
        cache_dir=config.eval_cache_dir, data_dir=config.data_dir, image_dir=config.image_dir,
        download=config.download, source=real, verbose=False)
    evaluator.real_statistics()
    return evaluator


def weights_digest(gan, trainable_only=True):
    """SHA-1 of both networks' trainable weights (or all weights, batch-norm moving
    statistics included), to compare the workers of a distributed run."""
    digest = hashlib.sha1()
    for net in (gan.generator, gan.discriminator):
        for v in (net.trainable_variables if trainable_only else net.variables):
            digest.update(np.ascontiguousarray(
                tf.convert_to_tensor(v.value).numpy()).tobytes())
    return digest.hexdigest()


def export_metadata(config, step):
    """What an export records about its run (``assets.extra/tf_asgan.json``)."""
    return {"step": step, "architecture": config.architecture,
            "resolution": config.resolution, "dataset": config.dataset,
            "adversarial": config.adversarial, "perturbation": config.perturbation,
            "epsilon": config.epsilon, "epsilon_unit": config.epsilon_unit,
            "loss": config.loss, "seed": config.seed, "dat": config.dat,
            "advas_lambda": config.advas_lambda, "advas_weight": config.advas_weight,
            "advas_estimate": config.advas_estimate}


class ExportUnreadableError(OSError):
    """An export's metadata exists but cannot be read (permissions, I/O): neither a
    conflict nor this run's export."""


def _export_step(path):
    """The step recorded with an export (``None`` if it records none), or ``False``
    when ``path`` is not a tf_asgan export (no metadata file, or not JSON).

    Raises:
      ExportUnreadableError: the metadata file exists but reading it failed otherwise.
    """
    try:
        return export.read_metadata(path).get("step")
    except (FileNotFoundError, NotADirectoryError, ValueError, AttributeError):
        return False
    except OSError as err:
        raise ExportUnreadableError(
            f"Cannot read {os.path.join(path, 'assets.extra', export.METADATA_FILE)} "
            f"({err.strerror or err}); fix its permissions or move {path} away, or pass "
            "--noexport.") from err


def _workdir_config(workdir):
    config = config_lib.load(workdir)
    if config is None:
        raise FileNotFoundError(f"{workdir} holds no config.json: not a training workdir.")
    return config


def _restore_from_workdir(ckpt, workdir, checkpoint=None, partial=False):
    """Restores ``ckpt`` from ``checkpoint`` or the workdir's newest readable one (a
    corrupt one is reported and skipped, not moved); returns the prefix."""
    if checkpoint:
        path = checkpoints.restore_one(ckpt, checkpoint, partial=partial)
    else:
        path = checkpoints.restore_latest(ckpt, os.path.join(workdir, "checkpoints"),
                                          writer=False, partial=partial)
    if path is None:
        raise FileNotFoundError(f"{workdir}/checkpoints holds no checkpoint yet.")
    return path


def restore_model(workdir, checkpoint=None):
    """``(gan, config, checkpoint path)``: the whole run of ``workdir`` (both networks
    and optimizers) at its newest readable (or the given) checkpoint."""
    config = _workdir_config(workdir)
    gan = build_model(config, jit_compile=False)
    return gan, config, _restore_from_workdir(checkpoint_for(gan), workdir, checkpoint)


def restore_generator(workdir, checkpoint=None):
    """The generator of the run in ``workdir`` at its latest (or given) checkpoint."""
    config = _workdir_config(workdir)
    g = networks.build_generator(config.architecture, config.resolution,
                                 latent_dim=config.latent_dim, batch_norm=config.bn_g,
                                 width=config.width)
    path = _restore_from_workdir(tf.train.Checkpoint(generator=g), workdir, checkpoint,
                                 partial=True)
    return g, config, path
