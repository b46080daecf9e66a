"""A complete, resumable training run in a run directory (:mod:`tf_asgan.training.rundir`).

:func:`train` builds the run from its configuration (:mod:`tf_asgan.training.builder`), restores
its newest checkpoint and fits epoch by epoch until the configured number of steps is
done, then exports the generator. Calling it again with the same configuration on the
same workdir resumes from the last checkpoint, at the same step and data position.

Reliability: checkpoints every ``checkpoint_every_steps`` steps, every
``checkpoint_every_minutes`` minutes and at epoch ends (the last ``checkpoints_to_keep``
are kept); a corrupt checkpoint is reported, moved aside and the previous one used. A
NaN or infinite loss, logged quantity or weight raises
:class:`~tf_asgan.utils.nonfinite.NonFiniteError` naming the step and the quantities, before
any checkpoint or export of that step, or, with ``on_nonfinite="rollback"``, restores
the last good checkpoint and continues with fresh random draws (at most
``max_rollbacks`` times).

Exact resume: the train step's random draws are stateless functions of the run seed,
the step, the rollback count, the replica and the draw's purpose
(:mod:`tf_asgan.randomness`); the step and rollback counts are checkpointed with the
weights and the data stream restarts at the step's batch. A run killed at any moment
and resumed therefore ends with the weights of an uninterrupted run, bit for bit on the
same machine and software (``tests/test_resume.py``). A resumed run trains in the
precision it started in, whatever ``--precision=auto`` means on this machine
(:meth:`~tf_asgan.training.rundir.RunDir.precision`).

Stops: the outputs of an epoch (sample grid, ``history.csv`` row, evaluation) are
written before its epoch-end checkpoint, so a run stopped before that checkpoint
writes them when the resumed run finishes the epoch. Ctrl-C raises
:class:`TrainingInterrupted` and a full disk
:class:`~tf_asgan.training.checkpoints.OutOfSpaceError`, each one line naming the
checkpoint the run resumes from.

What a researcher watches: at the start the chief writes the first real images the run
is fed (``samples/real.png``, kept on resume), a progress line shows the run's step,
total and time to finish (:mod:`tf_asgan.training.progress`), and D winning outright for
a stretch of steps is warned about once (:mod:`tf_asgan.training.monitors`). A finished
run invoked again returns its last recorded evaluation.

Under several workers every worker trains; only the chief writes into the workdir (the
others write into a scratch folder they delete at the end), and every worker resumes
from the chief's checkpoints.
"""

import logging

import keras
import tensorflow as tf

from tf_asgan import layout
from tf_asgan.config import checks
from tf_asgan.data import stream as stream_lib
from tf_asgan.training import builder, checkpoints, monitors, progress
from tf_asgan.training import callbacks as callbacks_lib
from tf_asgan.training.rundir import RunDir
from tf_asgan.utils import distribute, nonfinite

log = logging.getLogger(__name__)


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) during training; the message says where the run resumes. Still
    a ``KeyboardInterrupt`` (not a :class:`~tf_asgan.errors.TfAsganError`), so
    ``except Exception`` does not swallow it (ours). No checkpoint is written on the
    way out: the run resumes from its last one, as after a kill."""


def train(config, workdir, *, callbacks=(), verbose="auto", source=None, strategy=None,
          existing_run="resume"):
    """Trains (or resumes) the run of ``config`` in ``workdir``.

    Args:
      config: a :class:`~tf_asgan.config.train_config.TrainConfig`; validated first.
      workdir: the run directory (created if needed).
      callbacks: extra Keras callbacks.
      verbose: ``"auto"`` (default): one progress line with the run's step, total and
        ETA (:mod:`tf_asgan.training.progress`; plain lines when stdout is not a
        terminal); ``0``: silent; ``1``, ``2``: Keras's own ``fit`` output. Only the
        chief shows progress.
      source: a :class:`~tf_asgan.data.base.Source` to use instead of ``config.data.dataset``.
      strategy: a ``tf.distribute`` strategy (default: ``config.run.strategy``, see
        :mod:`tf_asgan.utils.distribute`).
      existing_run: what to do when ``workdir`` holds a different experiment:
        ``resume`` refuses, ``overwrite`` replaces it, ``new`` writes to
        ``<workdir>_N`` (see :func:`tf_asgan.training.rundir.resolve_workdir`). The same
        experiment is resumed.

    Returns:
      A dict: ``step`` (completed steps), ``steps_per_epoch``, ``total_steps``,
      ``export`` (the SavedModel path or ``None``), ``workdir`` (where the run was
      written), ``evaluation`` (the last evaluation record of this call or, when it
      evaluated nothing, e.g. a finished run invoked again, the last one recorded in
      ``metrics.jsonl``; ``None`` without any), ``chief``,
      ``weights_sha1`` / ``all_weights_sha1`` (:func:`~tf_asgan.training.builder.weights_digest`),
      ``rollbacks``.

    Raises:
      ValueError: a bad configuration, or a batch not divisible by the replicas.
      tf_asgan.training.rundir.ConfigMismatchError, tf_asgan.training.rundir.ExportConflictError:
        see :class:`~tf_asgan.training.rundir.RunDir`.
      tf_asgan.utils.nonfinite.NonFiniteError: a non-finite step that is not rolled back (see
        the module docstring).
      tf_asgan.training.checkpoints.OutOfSpaceError: a checkpoint, log, sample grid or the
        export could not be written for lack of space (naming the last good checkpoint).
      TrainingInterrupted: Ctrl-C during training (naming the checkpoint it resumes from).
    """
    config.validate()
    strategy = strategy or distribute.make_strategy(config.run.strategy)
    source, steps_per_epoch = _checked_source(config, strategy, source)
    task = distribute.task(strategy)
    multi_worker = distribute.is_multi_worker(strategy)
    run = RunDir.resolve(config, workdir, existing_run, chief=distribute.is_chief(strategy),
                         task=task, multi_worker=multi_worker)
    if config.run.export:
        run.check_export_path()
    evaluator = (builder.make_evaluator(config.eval, config.data, config.model.resolution,
                                        config.optim.seed, source)
                 if config.eval.eval_every_epochs else None)
    keras.utils.set_random_seed(config.optim.seed)
    jit = distribute.resolve_jit(config.run.jit_compile, strategy)
    total_steps = config.optim.epochs * steps_per_epoch
    config, precision = run.precision(config)  # a resumed run keeps its own
    config = run.lr_decay(config, total_steps)  # and its schedule
    with distribute.precision_policy(precision), strategy.scope():
        gan = builder.model_of(config, jit)
    checkpoint = builder.checkpoint_for(gan)
    latest = checkpoints.restore_latest(checkpoint, run.checkpoints, writer=run.chief)
    if latest:
        log.info("Resumed from %s", latest)
    start = gan.completed_steps()
    checks.check_resume_position(config.run, start, steps_per_epoch)
    run.save_config(config, trains=start < total_steps)
    fit_callbacks, manager, evaluate = builder.make_callbacks(
        config.run, checkpoint, run.writes,
        latents=builder.fixed_latents(config.optim.seed, config.model.latent_dim),
        epochs=config.optim.epochs, eval_every_epochs=config.eval.eval_every_epochs,
        evaluator=evaluator,
        timed_checkpoints=not multi_worker, extra=callbacks)
    shown, verbose = progress.for_verbosity(verbose if run.chief else 0, total_steps,
                                            config.optim.epochs)
    fit_callbacks.extend(shown)
    _log_start(config, strategy, source, start, steps_per_epoch, jit, precision)
    if run.chief:
        _write_real_grid(run, config.optim, source)
    if start == 0:  # the initial weights: a rollback target from step 1 on
        checkpoints.save(manager, 0)
    step, rollbacks = _fit(gan, config.optim, config.run, source, steps_per_epoch,
                           fit_callbacks, run, checkpoint, verbose=verbose,
                           multi_worker=multi_worker)
    export_path = _export(run, gan, config, step) if config.run.export else None
    run.finish()
    return {"step": step, "steps_per_epoch": steps_per_epoch,
            "total_steps": total_steps,
            "export": export_path if run.chief else None, "workdir": run.path,
            "chief": run.chief, "weights_sha1": builder.weights_digest(gan),
            "all_weights_sha1": builder.weights_digest(gan, trainable_only=False),
            "evaluation": (evaluate.results[-1] if evaluate and evaluate.results
                           else callbacks_lib.last_evaluation(run.writes(layout.METRICS))),
            "rollbacks": rollbacks}


def _write_real_grid(run, optim, source):
    """``samples/real.png``: the first images the model is fed (kept on resume)."""
    real_grid = layout.entry(run.writes(layout.SAMPLES), layout.REAL_GRID)
    with checkpoints.space_reported(run.checkpoints, real_grid):
        monitors.write_real_grid(_stream(optim, source, 0, 1, False), real_grid,
                                 n=builder.SAMPLE_GRID_SIZE)


def _export(run, gan, config, step):
    """Exports the generator (its EMA if kept) after checking the weights are finite;
    returns the SavedModel path."""
    nonfinite.check_numbers(gan, step, what="weights (the generator was not exported)")
    with checkpoints.space_reported(run.checkpoints, f"the export {run.export_path}"):
        return run.export(gan.eval_generator, config, step)


def _checked_source(config, strategy, source):
    """``(source, steps_per_epoch)`` after the checks of ``config`` against the strategy
    and the data, before anything is written (raises ``ValueError``)."""
    checks.check_replicas(config.optim, config.method, config.run,
                          strategy.num_replicas_in_sync)
    if source is None:
        source = builder.make_source(config.data, config.model.resolution, config.optim.seed)
    steps_per_epoch = stream_lib.epoch_steps(source, config.optim.batch_size,
                                             config.optim.steps_per_epoch or None)
    checks.check_steps_per_execution(config.run, steps_per_epoch)
    return source, steps_per_epoch


def _log_start(config, strategy, source, step, steps_per_epoch, jit, precision):
    optim, replicas = config.optim, strategy.num_replicas_in_sync
    log.info("%s: %d replica(s), global batch %d = %d x %d per replica; XLA %s; %s%s.",
             distribute.describe(strategy), replicas, optim.batch_size, replicas,
             optim.batch_size // replicas, "on" if jit else "off",
             distribute.precision_reason(config.run.precision, precision),
             _weight_gradient_note(config.run.conv_weight_gradient))
    log.info("Data: %s; %d steps per epoch of %d images, %d steps in all; %s.",
             source.description, steps_per_epoch, optim.batch_size,
             optim.epochs * steps_per_epoch,
             "starting" if step == 0 else f"resuming at step {step}")


def _weight_gradient_note(route):
    """What the start line adds for ``--conv_weight_gradient`` (nothing for the default)."""
    return "" if route == "kernel" else (
        "; convolution weight gradients by patches (--conv_weight_gradient=patches)")


def _stream(optim, source, step, end_epoch, multi_worker):
    """The training batches from ``step`` to the end of epoch ``end_epoch``. The data
    order depends on the seed only (TensorFlow's global seed folds into tf.data's)."""
    tf.random.set_seed(optim.seed)
    stream, _ = stream_lib.training_stream(source, optim.batch_size, epochs=end_epoch,
                                           seed=optim.seed, start_step=step,
                                           steps_per_epoch=optim.steps_per_epoch or None,
                                           cache=optim.cache)
    if multi_worker:
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = (
            tf.data.experimental.AutoShardPolicy.DATA)
        stream = stream.with_options(options)
    return stream


def _fit(gan, optim, run_config, source, steps_per_epoch, fit_callbacks, run, checkpoint, *,
         verbose, multi_worker):
    """Fits until ``optim.epochs`` epochs are done (``run``: the :class:`RunDir`,
    ``run_config``: the run section); returns ``(step, rollbacks)``
    (``rollbacks``: those of this call).

    A run stopped mid-epoch first finishes that epoch, then continues by epochs. After
    a rollback the model's rollback count is one more than before it, so the steps
    that follow draw other random numbers than those that failed.
    """
    step, rollbacks, total = gan.completed_steps(), 0, optim.epochs * steps_per_epoch
    while step < total:
        epoch, done_in_epoch = divmod(step, steps_per_epoch)
        end = epoch + 1 if done_in_epoch else optim.epochs
        stream = _stream(optim, source, step, end, multi_worker)
        try:
            with checkpoints.space_reported(run.checkpoints):
                gan.fit(stream, initial_epoch=epoch, epochs=end,
                        steps_per_epoch=steps_per_epoch - done_in_epoch,
                        callbacks=fit_callbacks, verbose=verbose)
        except KeyboardInterrupt:
            raise TrainingInterrupted(
                f"Interrupted at step {gan.completed_steps()}. Run the same command again to "
                f"resume {run.path} from its last checkpoint, "
                f"{checkpoints.last_good(run.checkpoints)}.") from None
        except nonfinite.NonFiniteError as err:
            _give_up_or_roll_back(err, run_config, rollbacks, run)
            rollbacks += 1
            count = int(gan.rollback_count.numpy())
            good = checkpoints.restore_latest(checkpoint, run.checkpoints, writer=run.chief)
            gan.rollback_count.assign(count + 1)
            gan.nonfinite_monitor.reset()
            log.warning("%s Rolled back to %s (rollback %d of at most %d).", err, good,
                        rollbacks, run_config.max_rollbacks)
        step = gan.completed_steps()
    return step, rollbacks


def _give_up_or_roll_back(err, run_config, rollbacks, run):
    """Re-raises ``err`` with the way out unless a rollback is allowed."""
    if run_config.on_nonfinite == "rollback" and rollbacks < run_config.max_rollbacks:
        return
    good = tf.train.latest_checkpoint(run.checkpoints)  # the chief's, on every worker
    hint = ("lower the learning rates or epsilon, or pass --on_nonfinite=rollback to "
            "continue from it with fresh random draws" if run_config.on_nonfinite != "rollback"
            else f"{rollbacks} rollback(s) did not help; lower the learning rates or epsilon")
    raise nonfinite.NonFiniteError(
        err.step, err.quantities, err.where,
        detail=f"Training stopped; the last good checkpoint is {good}; nothing was "
        f"exported. To go on, {hint}.") from err
