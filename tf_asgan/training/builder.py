"""Everything a run is made of, built from its configuration: the data source, the
compiled model, its checkpoint, the evaluator and the training callbacks.

Each factory takes the configuration sections it reads (``make_source(config.data, ...)``,
``build_model(config.model, config.method, ...)``), so a call site shows which settings
it depends on, and a script, a test or a study builds exactly what ``train.py`` trains.
"""

import hashlib

import numpy as np
import tensorflow as tf

from tf_asgan import layout, networks, optimizers
from tf_asgan.asgan import ASGAN
from tf_asgan.data import catalog
from tf_asgan.evaluation import classifiers
from tf_asgan.evaluation import evaluator as evaluator_lib
from tf_asgan.training import callbacks, history, monitors
from tf_asgan.utils import distribute

SAMPLE_GRID_SIZE = 64


def make_source(data, resolution, seed):
    """The training :class:`~tf_asgan.data.base.Source` (train split) of the data section
    ``data`` (a :class:`~tf_asgan.config.sections.DataConfig`) at ``resolution`` pixels;
    ``seed`` orders a folder's images."""
    return catalog.source(data.dataset, resolution, data_dir=data.data_dir,
                          image_dir=data.image_dir, download=data.download, seed=seed,
                          bad_images=data.bad_images)


def build_model(model, method, siblings, optim, run, *, jit_compile=None, rotation=None):
    """The compiled :class:`~tf_asgan.ASGAN` of a configuration's sections (in the
    current strategy scope and dtype policy).

    Args:
      model: networks (:class:`~tf_asgan.config.sections.ModelConfig`).
      method: AS-GAN's loss, perturbation and epsilon (``MethodConfig``).
      siblings: DAT and AdvAs (``SiblingsConfig``).
      optim: the optimizers and the seed (``OptimConfig``).
      run: synchronised batch norm, steps per execution, XLA, the convolutions' weight
        gradients (:func:`tf_asgan.networks.route_weight_gradients`) (``RunConfig``).
      jit_compile: overrides ``run.jit_compile`` resolved for the current strategy.
      rotation: SSGAN's rotation loss (``RotationConfig``; ``None``: off).
    """
    g, d = build_networks(model, run)
    if jit_compile is None:
        jit_compile = distribute.resolve_jit(run.jit_compile, tf.distribute.get_strategy())
    gan = ASGAN(g, d, **asgan_kwargs(model, method, siblings, optim, rotation))
    # lr_decay_steps=0 of a linear schedule is resolved by the run (RunDir.lr_decay).
    schedule = dict(schedule=optim.lr_schedule, decay_steps=optim.lr_decay_steps,
                    step=gan.step_counter)
    gan.compile(
        d_optimizer=optimizers.adam(optim.lr_d, optim.beta1_d, optim.beta2_d, **schedule),
        g_optimizer=optimizers.adam(optim.lr_g, optim.beta1_g, optim.beta2_g, **schedule),
        jit_compile=jit_compile, steps_per_execution=run.steps_per_execution)
    return gan


def build_networks(model, run):
    """``(G, D)`` of a configuration's model section (architecture, resolution, batch
    norm, spectral norm, width, channels, latent size) and run section (synchronised
    batch norm; the convolutions' weight-gradient route,
    :func:`tf_asgan.networks.route_weight_gradients`), in the current dtype policy.

    Raises:
      tf_asgan.errors.InputError: spectral norm on a D with batch norm
        (:func:`tf_asgan.networks.check_spectral_norm`).
    """
    g = networks.build_generator(model.architecture, model.resolution,
                                 latent_dim=model.latent_dim, batch_norm=model.bn_g,
                                 sync_bn=run.sync_bn, width=model.width,
                                 channels=model.channels)
    networks.check_spectral_norm(model.spectral_norm, model.bn_d)
    d = networks.build_discriminator(model.architecture, model.resolution,
                                     batch_norm=model.bn_d, sync_bn=run.sync_bn,
                                     width=model.width, spectral_norm=model.spectral_norm,
                                     channels=model.channels)
    for network in (g, d):
        networks.route_weight_gradients(network, run.conv_weight_gradient)
    return g, d


def asgan_kwargs(model, method, siblings, optim, rotation=None):
    """The :class:`~tf_asgan.ASGAN` keyword arguments (besides the networks) of a
    configuration's model, method, siblings and optim sections (and its rotation
    section, ``None``: no rotation loss)."""
    return dict(latent_dim=model.latent_dim, loss=method.loss,
                perturbation=method.perturbation, adversarial=method.adversarial,
                epsilon=method.epsilon_schedule_object(), epsilon_unit=method.epsilon_unit,
                second_update=method.second_update, d_steps=method.d_steps,
                perturbation_kwargs=method.perturbation_kwargs(),
                dat=siblings.dat_object(), advas=siblings.advas_object(), seed=optim.seed,
                ema_decay=optim.ema_decay, ema_start_step=optim.ema_start_step,
                gradient_penalty=method.gradient_penalty_object(),
                rotation=None if rotation is None else rotation.rotation_object())


def model_of(config, jit_compile=None):
    """:func:`build_model` of a whole :class:`~tf_asgan.config.train_config.TrainConfig`
    (the model a run of ``config`` trains)."""
    return build_model(config.model, config.method, config.siblings, config.optim,
                       config.run, jit_compile=jit_compile, rotation=config.rotation)


def checkpoint_for(gan):
    """The ``tf.train.Checkpoint`` of a run: both networks, both optimizers, the run's
    step count (``step``) and rollback count (``rollbacks``), the last two being part
    of every random draw's seed, and the EMA of G's weights when the model keeps one
    (``generator_ema``; see :func:`tf_asgan.training.checkpoints.restore_latest` for
    checkpoints written before they were recorded), and D's rotation classifier with
    SSGAN's rotation loss (``rotation_classifier``: D's trunk and its rotation head)."""
    objects = dict(zip(layout.RUN_OBJECTS, (gan.generator, gan.discriminator,
                                            gan.d_optimizer, gan.g_optimizer)))
    if gan.ema is not None:
        objects[layout.EMA_GENERATOR] = gan.ema.model
    if gan.rotation_classifier is not None:
        objects[layout.ROTATION_CLASSIFIER] = gan.rotation_classifier
    return tf.train.Checkpoint(**objects, **{layout.STEP: gan.step_counter,
                                             layout.ROLLBACKS: gan.rollback_count})


def fixed_latents(seed, latent_dim, n=SAMPLE_GRID_SIZE):
    """The latent batch ``[n, latent_dim]`` of every sample grid of a run (depends on the
    run's seed only)."""
    return np.random.default_rng(seed + 12345).standard_normal(
        (n, latent_dim)).astype(np.float32)


def make_evaluator(evaluation, data, resolution, seed, source=None):
    """The run's :class:`~tf_asgan.evaluation.evaluator.Evaluator`, built (and its real-data
    statistics computed or read) before training, so a missing network or dataset is
    reported before any step.

    Args:
      evaluation: the eval section (:class:`~tf_asgan.config.sections.EvalConfig`).
      data: the data section (which dataset, where it lives).
      resolution: image size in pixels.
      seed: the run's seed (the protocol's).
      source: supplies the real images when the run's own source was given directly
        (used only when ``evaluation.eval_real_split`` is ``"train"``).
    """
    network = classifiers.network_for(evaluation.eval_network, data.dataset,
                                      evaluation.inception_path)
    real = source if (source is not None and evaluation.eval_real_split == "train") else None
    evaluator = evaluator_lib.Evaluator(
        network, data.dataset, resolution, evaluation.protocol(seed),
        cache_dir=evaluation.eval_cache_dir, data_dir=data.data_dir,
        image_dir=data.image_dir, download=data.download, source=real, verbose=False)
    evaluator.real_statistics()
    return evaluator


def make_callbacks(run, checkpoint, writes, *, latents, epochs, eval_every_epochs=0,
                   evaluator=None, timed_checkpoints=True, extra=()):
    """The training callbacks of a run, in the order they must run.

    Args:
      run: the run section (:class:`~tf_asgan.config.sections.RunConfig`: logging,
        samples and checkpoint intervals).
      checkpoint: its ``tf.train.Checkpoint`` (:func:`checkpoint_for`).
      writes: ``name -> path`` of the run directory entries this process writes
        (:meth:`tf_asgan.training.rundir.RunDir.writes`).
      latents: the sample grids' latent batch (:func:`fixed_latents`).
      epochs: the run's last epoch (always evaluated).
      eval_every_epochs: evaluate every this many epochs (with ``evaluator``).
      evaluator: the run's evaluator, or ``None`` (no evaluation).
      timed_checkpoints: honour ``checkpoint_every_minutes`` (off with several workers:
        their clocks differ, so time-based checkpoints would make them disagree).
      extra: the caller's callbacks, last.

    Returns:
      ``(callbacks, manager, evaluate)``: the list for ``fit``, the checkpoint manager
      and the :class:`~tf_asgan.training.callbacks.Evaluate` callback (``None`` without
      evaluator).
    """
    manager = tf.train.CheckpointManager(checkpoint, writes(layout.CHECKPOINTS),
                                         max_to_keep=run.checkpoints_to_keep)
    run_callbacks = [
        callbacks.NonFiniteGuard(run.log_every_steps),
        callbacks.StepLogger(writes(layout.TENSORBOARD), run.log_every_steps),
        monitors.DWinsWarning(run.log_every_steps),
        callbacks.SampleGrid(writes(layout.SAMPLES), latents, run.sample_every_epochs),
        history.EpochHistory(writes(layout.HISTORY)),
        # After the epoch's outputs (and the evaluation): a run stopped before its
        # epoch-end checkpoint redoes the epoch's end and writes them again.
        callbacks.Checkpointer(manager, run.checkpoint_every_steps,
                               run.checkpoint_every_minutes if timed_checkpoints else 0.0),
        *extra,
    ]
    evaluate = None
    if evaluator is not None:
        best = tf.train.CheckpointManager(checkpoint, writes(layout.BEST), max_to_keep=1,
                                          checkpoint_name=layout.BEST)
        evaluate = callbacks.Evaluate(evaluator, eval_every_epochs, epochs,
                                      writes(layout.METRICS), writes(layout.TENSORBOARD),
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

