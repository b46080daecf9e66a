"""A two-network GAN as a ``keras.Model``: what every training method here shares.

:class:`GAN` holds the generator, the discriminator, the GAN loss and the two
optimizers; it checks ``fit``'s images (:mod:`tf_asgan.inputs`), samples latents and
images, counts completed steps (G updates), keeps the EMA of G's weights when asked
(:mod:`tf_asgan.ema`) and reports the logged quantities (:mod:`tf_asgan.tracking`).
Its subclass :class:`tf_asgan.ASGAN` defines the train step.
"""

import numbers
import random

import keras
import tensorflow as tf

from tf_asgan import ema as ema_lib
from tf_asgan import inputs, networks, optimizers, randomness, tracking
from tf_asgan import losses as losses_lib
from tf_asgan.utils import nonfinite


class GAN(keras.Model):
    """Base class of the GAN models (no train step of its own).

    Args:
      generator: ``keras.Model`` ``[N, latent_dim] -> [N, H, W, C]`` images in ``[-1, 1]``.
      discriminator: ``keras.Model`` ``[N, H, W, C] -> [N]`` or ``[N, 1]`` logits.
      latent_dim: size of ``z ~ N(0, I)``.
      loss: name in :data:`tf_asgan.losses.LOSSES` or a :class:`~tf_asgan.losses.GANLoss`.
      metric_names: the quantities the train step logs (:func:`tracking.metric_names`).
      seed: the run seed of the train step's random draws, an int; every draw is a
        stateless function of it, the step, the rollback count, the replica and the
        draw's purpose (:mod:`tf_asgan.randomness`). Default: drawn from Python's
        ``random`` module (which ``keras.utils.set_random_seed`` seeds).
      ema_decay: keep an exponential moving average of G's weights
        (:class:`tf_asgan.ema.GeneratorEMA`, updated after each G update) with this
        decay per train step, in (0, 1); ``0`` (default): none. When kept, it is the
        :attr:`eval_generator` (sample grids, evaluation, export).
      ema_start_step: the first train step whose EMA update averages; before it the
        EMA copies G.
      rotation_classifier: D's rotation classifier ``[N, H, W, C] -> [N, 4]`` sharing
        D's trunk (:func:`tf_asgan.networks.rotation_classifier`; SSGAN), or ``None``.
        Its own variables (the head) are trained with D's (:attr:`d_variables`) and
        checkpointed with the run.

    Raises:
      ValueError: networks that are not built Keras models or do not fit together
        (:func:`tf_asgan.networks.check_pair`), an unknown loss, or a bad EMA option.
    """

    def __init__(self, generator, discriminator, *, latent_dim, loss, metric_names,
                 seed=None, ema_decay=0.0, ema_start_step=0, rotation_classifier=None,
                 **kwargs):
        super().__init__(**kwargs)
        self.generator = generator
        self.discriminator = discriminator
        self.latent_dim = int(latent_dim)
        self.gan_loss = losses_lib.get(loss)
        networks.check_pair(generator, discriminator, self.latent_dim)
        self.rotation_classifier = rotation_classifier
        # The EMA of G's weights (its variables in the caller's strategy scope), or None.
        self.ema = (ema_lib.GeneratorEMA(generator, ema_decay, ema_start_step)
                    if ema_decay else None)
        # Train steps done, i.e. batches consumed: the run's own count (checkpointed with
        # the weights). An optimizer's count misses the updates a loss scaler skips.
        self.step_counter = keras.Variable(0, dtype="int64", trainable=False,
                                           aggregation="only_first_replica",
                                           name="completed_steps")
        # How many times the run went back to a checkpoint after a non-finite step
        # (checkpointed too): part of every draw's seed, so a rolled-back step draws anew.
        self.rollback_count = keras.Variable(0, dtype="int64", trainable=False,
                                             aggregation="only_first_replica",
                                             name="rollbacks")
        self.seed = random.randrange(2**31) if seed is None else int(seed)
        self._logged = tracking.StepMetrics(metric_names)
        self.nonfinite_monitor = nonfinite.NonFiniteMonitor(metric_names)
        # D winning outright for a stretch of steps (training/monitors.py warns)
        self.d_wins_monitor = tracking.DWinsMonitor(self.gan_loss.name)
        # Sub-models are built functional models; marking the wrapper built stops `fit`
        # from symbolically calling it on an image batch (docs/dependencies.md).
        self.built = True

    @property
    def metrics(self):
        # Listed here so that `fit` resets them at the start of every epoch.
        return self._logged.epoch_metrics

    def step_logs(self):
        """The logged quantities of the last train step alone (``fit`` logs epoch means)."""
        return self._logged.step_results()

    @property
    def double_backprop(self):
        """Whether G's update differentiates D's weight gradient (subclasses say)."""
        return False

    @property
    def d_variables(self):
        """What D's optimizer trains: D's trainable variables, then, with a rotation
        classifier, the ones of its variables D does not have (the rotation head)."""
        own = self.discriminator.trainable_variables
        if self.rotation_classifier is None:
            return own
        seen = {id(v) for v in own}
        return own + [v for v in self.rotation_classifier.trainable_variables
                      if id(v) not in seen]

    def compile(self, d_optimizer=None, g_optimizer=None, **kwargs):
        """Configures training.

        Args:
          d_optimizer, g_optimizer: Keras optimizers. Default: the paper's
            Adam(2e-4, beta_1=0.5, beta_2=0.999). When either network computes in
            float16 (``mixed_float16`` policy), each is wrapped in a
            ``keras.optimizers.LossScaleOptimizer`` unless it already is one.
          **kwargs: passed to ``keras.Model.compile`` (``jit_compile``, ``run_eagerly``,
            ``steps_per_execution``).

        Raises:
          ValueError: see :func:`tf_asgan.optimizers.prepare`.
        """
        super().compile(**kwargs)
        self.d_optimizer, self.g_optimizer = optimizers.prepare(
            d_optimizer, g_optimizer, self.discriminator, self.generator,
            double_backprop=self.double_backprop, d_variables=self.d_variables)

    def fit(self, x=None, *args, **kwargs):
        """``keras.Model.fit``, with the training images checked to lie in [-1, 1]
        (``tf.data`` datasets as they are read, arrays at once)."""
        return super().fit(inputs.range_checked(x), *args, **kwargs)

    def call(self, z, training=False):
        """``G(z)``: images in ``[-1, 1]``."""
        return self.generator(z, training=training)

    def sample_latent(self, n, seed=None):
        """``n`` latent vectors ``z ~ N(0, I)``, shape ``[n, latent_dim]``, drawn from
        ``seed`` (an int ``[2]`` stateless seed) or, by default, from TensorFlow's global
        generator."""
        return randomness.normal((n, self.latent_dim), seed=seed)

    def generate(self, n_or_z, training=False):
        """Images ``[N, H, W, C]`` in ``[-1, 1]`` from a count ``n`` or a latent batch ``z``."""
        z = self.sample_latent(n_or_z) if isinstance(n_or_z, numbers.Integral) else n_or_z
        return self.generator(z, training=training)

    @property
    def eval_generator(self):
        """The generator of sample grids, evaluations and exports: the EMA of G's
        weights (:attr:`ema`) when the model keeps one, else G."""
        return self.generator if self.ema is None else self.ema.model

    @property
    def eval_generator_kind(self):
        """Which one :attr:`eval_generator` is, as records name it: ``"ema"`` or ``"raw"``."""
        return ema_lib.RAW if self.ema is None else ema_lib.EMA

    def _update_ema(self):
        """Ends a G update: the EMA's update of this train step (nothing without EMA)."""
        if self.ema is not None:
            self.ema.update(self._step())

    def completed_steps(self):
        """Train steps done so far (batches consumed, whether or not a loss scaler
        skipped an update), as a Python int (any strategy)."""
        return int(self._step().numpy())

    def _step(self):
        """Train steps done so far as an int64 tensor: what the epsilon schedule, the
        data position and the checkpoint numbers follow. A subclass's ``train_step``
        ends with :meth:`_count_step`."""
        return tf.convert_to_tensor(self.step_counter)

    def _step_key(self):
        """The seed of this train step's draws on this replica (read before
        :meth:`_count_step`); :func:`tf_asgan.randomness.draw_seed` derives each draw's."""
        return randomness.step_key(self.seed, self._step(), self.rollback_count)

    def _count_step(self):
        """Ends a train step: records it in :attr:`nonfinite_monitor` if its logged values
        are the first non-finite ones, updates :attr:`d_wins_monitor`, and adds it to
        :attr:`step_counter` (once per step, whatever the number of replicas)."""
        self.nonfinite_monitor.update(self._step(), self._logged.step_results())
        self.d_wins_monitor.end_step(self._step())
        self.step_counter.assign_add(1)

    def check_finite(self):
        """Raises :class:`~tf_asgan.utils.nonfinite.NonFiniteError` if a train step since the
        last check logged a NaN or infinite value, naming the first such step (1-based)
        and its non-finite quantities."""
        self.nonfinite_monitor.check()

    def discriminator_logits(self, images, training=True):
        """D's logits on ``images`` ``[N, H, W, C]`` as float32 ``[N]`` (whatever D's
        compute dtype), D in training mode unless ``training=False``."""
        logits = self.discriminator(images, training=training)
        return tf.cast(tf.reshape(logits, [-1]), tf.float32)
