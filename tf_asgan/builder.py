"""Everything a run is made of, built from its configuration: the data source, the
compiled model, its checkpoint, the evaluator and the training callbacks.

Each factory takes a :class:`~tf_asgan.config.TrainConfig` (and, for the callbacks, the
run directory's paths) and nothing else, so a script, a test or a study builds exactly
what ``train.py`` trains.
"""

import hashlib

import keras
import numpy as np
import tensorflow as tf

from tf_asgan import callbacks as callbacks_lib
from tf_asgan import checkpoints, classifiers, data, distribute, evaluation, networks
from tf_asgan.asgan import ASGAN

SAMPLE_GRID_SIZE = 64


def make_source(config):
    """The training :class:`~tf_asgan.data.Source` of ``config`` (train split)."""
    return data.source(config.dataset, config.resolution, data_dir=config.data_dir,
                       image_dir=config.image_dir, download=config.download,
                       seed=config.seed, bad_images=config.bad_images)


def build_model(config, jit_compile=None):
    """The compiled :class:`~tf_asgan.ASGAN` of ``config`` (in the current strategy scope
    and dtype policy). ``jit_compile`` defaults to ``config.jit_compile`` resolved for
    the current strategy."""
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
                advas=config.advas_object(), seed=config.seed)
    gan.compile(
        d_optimizer=keras.optimizers.Adam(config.lr_d, beta_1=config.beta1_d,
                                          beta_2=config.beta2_d),
        g_optimizer=keras.optimizers.Adam(config.lr_g, beta_1=config.beta1_g,
                                          beta_2=config.beta2_g),
        jit_compile=jit_compile, steps_per_execution=config.steps_per_execution)
    return gan


def checkpoint_for(gan):
    """The ``tf.train.Checkpoint`` of a run: both networks, both optimizers, the run's
    step count (``step``) and rollback count (``rollbacks``), the last two being part
    of every random draw's seed (see :func:`tf_asgan.checkpoints.restore_latest` for
    checkpoints written before they were recorded)."""
    objects = dict(zip(checkpoints.RUN_OBJECTS, (gan.generator, gan.discriminator,
                                                 gan.d_optimizer, gan.g_optimizer)))
    return tf.train.Checkpoint(**objects, **{checkpoints.STEP: gan.step_counter,
                                             checkpoints.ROLLBACKS: gan.rollback_count})


def fixed_latents(config, n=SAMPLE_GRID_SIZE):
    """The latent batch ``[n, latent_dim]`` of every sample grid of a run (depends on the
    seed only)."""
    return np.random.default_rng(config.seed + 12345).standard_normal(
        (n, config.latent_dim)).astype(np.float32)


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


def make_callbacks(config, checkpoint, writes, *, evaluator=None, timed_checkpoints=True,
                   extra=()):
    """The training callbacks of a run, in the order they must run.

    Args:
      config: the run's configuration.
      checkpoint: its ``tf.train.Checkpoint`` (:func:`checkpoint_for`).
      writes: ``name -> path`` of the run directory entries this process writes
        (:meth:`tf_asgan.rundir.RunDir.writes`).
      evaluator: the run's evaluator, or ``None`` (no evaluation).
      timed_checkpoints: honour ``checkpoint_every_minutes`` (off with several workers:
        their clocks differ, so time-based checkpoints would make them disagree).
      extra: the caller's callbacks, last.

    Returns:
      ``(callbacks, manager, evaluate)``: the list for ``fit``, the checkpoint manager
      and the :class:`~tf_asgan.callbacks.Evaluate` callback (``None`` without evaluator).
    """
    manager = tf.train.CheckpointManager(checkpoint, writes("checkpoints"),
                                         max_to_keep=config.checkpoints_to_keep)
    run_callbacks = [
        callbacks_lib.NonFiniteGuard(config.log_every_steps),
        callbacks_lib.Checkpointer(manager, config.checkpoint_every_steps,
                                   config.checkpoint_every_minutes if timed_checkpoints
                                   else 0.0),
        callbacks_lib.StepLogger(writes("tensorboard"), config.log_every_steps),
        callbacks_lib.SampleGrid(writes("samples"), fixed_latents(config),
                                 config.sample_every_epochs),
        keras.callbacks.CSVLogger(writes("history.csv"), append=True),
        *extra,
    ]
    evaluate = None
    if evaluator is not None:
        best = tf.train.CheckpointManager(checkpoint, writes("best"), max_to_keep=1,
                                          checkpoint_name="best")
        evaluate = callbacks_lib.Evaluate(evaluator, config.eval_every_epochs, config.epochs,
                                          writes("metrics.jsonl"), writes("tensorboard"),
                                          best)
        # Before the checkpointer: a crash mid-evaluation then repeats the evaluation.
        run_callbacks.insert(1, evaluate)
    return run_callbacks, manager, evaluate


def weights_digest(gan, trainable_only=True):
    """SHA-1 (hex) of both networks' trainable weights (or all weights, batch-norm moving
    statistics included), to compare runs and the workers of a distributed run."""
    digest = hashlib.sha1()
    for net in (gan.generator, gan.discriminator):
        for v in (net.trainable_variables if trainable_only else net.variables):
            digest.update(np.ascontiguousarray(
                tf.convert_to_tensor(v.value).numpy()).tobytes())
    return digest.hexdigest()

