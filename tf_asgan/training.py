"""A complete, resumable training run in a run directory (:mod:`tf_asgan.rundir`).

:func:`train` builds the run from its configuration (:mod:`tf_asgan.builder`), restores
its newest checkpoint and fits epoch by epoch until the configured number of steps is
done, then exports the generator. Calling it again with the same configuration on the
same workdir resumes from the last checkpoint, at the same step and data position.

Reliability: checkpoints every ``checkpoint_every_steps`` steps, every
``checkpoint_every_minutes`` minutes and at epoch ends (the last ``checkpoints_to_keep``
are kept); a corrupt checkpoint is reported, moved aside and the previous one used. A
NaN or infinite loss, logged quantity or weight raises
:class:`~tf_asgan.numerics.NonFiniteError` naming the step and the quantities, before
any checkpoint or export of that step, or, with ``on_nonfinite="rollback"``, restores
the last good checkpoint and continues with fresh random draws (at most
``max_rollbacks`` times).

Exact resume: the train step's random draws are stateless functions of the run seed,
the step, the rollback count, the replica and the draw's purpose
(:mod:`tf_asgan.randomness`); the step and rollback counts are checkpointed with the
weights and the data stream restarts at the step's batch. A run killed at any moment
and resumed therefore ends with the weights of an uninterrupted run, bit for bit on the
same machine and software (``tests/test_resume.py``).

Under several workers every worker trains; only the chief writes into the workdir (the
others write into a scratch folder they delete at the end), and every worker resumes
from the chief's checkpoints.
"""

import logging

import keras
import tensorflow as tf

from tf_asgan import builder, checkpoints, data, distribute, numerics
from tf_asgan import callbacks as callbacks_lib
from tf_asgan import config as config_lib
from tf_asgan.rundir import RunDir

log = logging.getLogger(__name__)


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
        ``<workdir>_N`` (see :func:`tf_asgan.rundir.resolve_workdir`). The same
        experiment is resumed.

    Returns:
      A dict: ``step`` (completed steps), ``steps_per_epoch``, ``total_steps``,
      ``export`` (the SavedModel path or ``None``), ``workdir`` (where the run was
      written), ``evaluation`` (the last evaluation record or ``None``), ``chief``,
      ``weights_sha1`` / ``all_weights_sha1`` (:func:`~tf_asgan.builder.weights_digest`),
      ``rollbacks``.

    Raises:
      ValueError: a bad configuration, or a batch not divisible by the replicas.
      tf_asgan.rundir.ConfigMismatchError, tf_asgan.rundir.ExportConflictError: see
        :class:`~tf_asgan.rundir.RunDir`.
      tf_asgan.numerics.NonFiniteError: a non-finite step that is not rolled back (see
        the module docstring).
    """
    config.validate()
    strategy = strategy or distribute.make_strategy(config.strategy)
    source, steps_per_epoch = _checked_source(config, strategy, source)
    task = distribute.task(strategy)
    multi_worker = distribute.is_multi_worker(strategy)
    run = RunDir.resolve(config, workdir, existing_run, chief=distribute.is_chief(strategy),
                         task=task, multi_worker=multi_worker)
    if config.export:
        run.check_export_path()
    evaluator = builder.make_evaluator(config, source) if config.eval_every_epochs else None
    keras.utils.set_random_seed(config.seed)
    jit = distribute.resolve_jit(config.jit_compile, strategy)
    precision = distribute.resolve_precision(config.precision)
    with distribute.precision_policy(precision), strategy.scope():
        gan = builder.build_model(config, jit)
    checkpoint = builder.checkpoint_for(gan)
    latest = checkpoints.restore_latest(checkpoint, run.checkpoints, writer=run.chief)
    if latest:
        log.info("Resumed from %s", latest)
    start = gan.completed_steps()
    _check_resume_position(config, start, steps_per_epoch)
    run.save_config(config)
    fit_callbacks, manager, evaluate = builder.make_callbacks(
        config, checkpoint, run.writes, evaluator=evaluator,
        timed_checkpoints=not multi_worker, extra=callbacks)
    _log_start(config, strategy, source, start, steps_per_epoch, jit, precision)
    if start == 0:  # the initial weights: a rollback target from step 1 on
        manager.save(checkpoint_number=0)
    step, rollbacks = _fit(gan, config, source, steps_per_epoch, fit_callbacks, run,
                           checkpoint, verbose=verbose, multi_worker=multi_worker)
    export_path = None
    if config.export:
        callbacks_lib.check_numbers(gan, step, what="weights (the generator was not exported)")
        export_path = run.export(gan.generator, config, step)
    run.finish()
    return {"step": step, "steps_per_epoch": steps_per_epoch,
            "total_steps": config.epochs * steps_per_epoch,
            "export": export_path if run.chief else None, "workdir": run.path,
            "chief": run.chief, "weights_sha1": builder.weights_digest(gan),
            "all_weights_sha1": builder.weights_digest(gan, trainable_only=False),
            "evaluation": evaluate.results[-1] if evaluate and evaluate.results else None,
            "rollbacks": rollbacks}


def _checked_source(config, strategy, source):
    """``(source, steps_per_epoch)`` after the checks of ``config`` against the strategy
    and the data, before anything is written (raises ``ValueError``)."""
    _check_replicas(config, strategy.num_replicas_in_sync)
    if source is None:
        source = builder.make_source(config)
    steps_per_epoch = data.epoch_steps(source, config.batch_size, config.steps_per_epoch or None)
    config_lib.check_steps_per_execution(config, steps_per_epoch)
    return source, steps_per_epoch


def _check_replicas(config, replicas):
    if config.batch_size % (replicas * config.d_steps):
        raise ValueError(f"batch_size={config.batch_size} must be divisible by the "
                         f"{replicas} replicas (times d_steps={config.d_steps}); choose a "
                         "multiple.")
    if replicas > 1 and config.steps_per_execution > 1:
        # docs/dependencies.md: Keras's multi-step loop fails under several replicas.
        raise ValueError(f"--steps_per_execution={config.steps_per_execution} does not work "
                         f"with {replicas} replicas (Keras 3's multi-step loop fails under "
                         "tf.distribute with several replicas); use 1, or one device.")


def _check_resume_position(config, step, steps_per_epoch):
    """Refuses to resume mid-epoch at a step that ``steps_per_execution`` does not reach
    (possible after changing it): that epoch's checkpoints and logs would miss their steps."""
    k, done = config.steps_per_execution, step % steps_per_epoch
    if done % k:
        raise ValueError(f"The run resumes at step {step}, {done} steps into its epoch: not a "
                         f"multiple of --steps_per_execution={k}. Finish this epoch with the "
                         "value the run had (e.g. --steps_per_execution=1 --epochs=<this "
                         "epoch>), then go on with this one.")


def _log_start(config, strategy, source, step, steps_per_epoch, jit, precision):
    replicas = strategy.num_replicas_in_sync
    log.info("%s: %d replica(s), global batch %d = %d x %d per replica; XLA %s; %s.",
             distribute.describe(strategy), replicas, config.batch_size, replicas,
             config.batch_size // replicas, "on" if jit else "off", precision)
    log.info("Data: %s; %d steps per epoch of %d images, %d steps in all; %s.",
             source.description, steps_per_epoch, config.batch_size,
             config.epochs * steps_per_epoch,
             "starting" if step == 0 else f"resuming at step {step}")


def _stream(config, source, step, end_epoch, multi_worker):
    """The training batches from ``step`` to the end of epoch ``end_epoch``. The data
    order depends on the seed only (TensorFlow's global seed folds into tf.data's)."""
    tf.random.set_seed(config.seed)
    stream, _ = data.training_stream(source, config.batch_size, epochs=end_epoch,
                                     seed=config.seed, start_step=step,
                                     steps_per_epoch=config.steps_per_epoch or None,
                                     cache=config.cache)
    if multi_worker:
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = (
            tf.data.experimental.AutoShardPolicy.DATA)
        stream = stream.with_options(options)
    return stream


def _fit(gan, config, source, steps_per_epoch, fit_callbacks, run, checkpoint, *, verbose,
         multi_worker):
    """Fits until ``config.epochs`` epochs are done; returns ``(step, rollbacks)``
    (``rollbacks``: those of this call).

    A run stopped mid-epoch first finishes that epoch, then continues by epochs. After
    a rollback the model's rollback count is one more than before it, so the steps
    that follow draw other random numbers than those that failed.
    """
    step, rollbacks, total = gan.completed_steps(), 0, config.epochs * steps_per_epoch
    while step < total:
        epoch, done_in_epoch = divmod(step, steps_per_epoch)
        end = epoch + 1 if done_in_epoch else config.epochs
        stream = _stream(config, source, step, end, multi_worker)
        try:
            gan.fit(stream, initial_epoch=epoch, epochs=end,
                    steps_per_epoch=steps_per_epoch - done_in_epoch, callbacks=fit_callbacks,
                    verbose=verbose)
        except numerics.NonFiniteError as err:
            _give_up_or_roll_back(err, config, rollbacks, run)
            rollbacks += 1
            count = int(gan.rollback_count.numpy())
            good = checkpoints.restore_latest(checkpoint, run.checkpoints, writer=run.chief)
            gan.rollback_count.assign(count + 1)
            gan.nonfinite_monitor.reset()
            log.warning("%s Rolled back to %s (rollback %d of at most %d).", err, good,
                        rollbacks, config.max_rollbacks)
        step = gan.completed_steps()
    return step, rollbacks


def _give_up_or_roll_back(err, config, rollbacks, run):
    """Re-raises ``err`` with the way out unless a rollback is allowed."""
    if config.on_nonfinite == "rollback" and rollbacks < config.max_rollbacks:
        return
    good = tf.train.latest_checkpoint(run.checkpoints)  # the chief's, on every worker
    hint = ("lower the learning rates or epsilon, or pass --on_nonfinite=rollback to "
            "continue from it with fresh random draws" if config.on_nonfinite != "rollback"
            else f"{rollbacks} rollback(s) did not help; lower the learning rates or epsilon")
    raise numerics.NonFiniteError(
        err.step, err.quantities, err.where,
        detail=f"Training stopped; the last good checkpoint is {good}; nothing was "
        f"exported. To go on, {hint}.") from err
