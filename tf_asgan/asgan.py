"""The AS-GAN model: a ``keras.Model`` whose ``train_step`` is the paper's Algorithm 1.

One training step, for a batch of ``m`` real images ``x`` in ``[-1, 1]``:

1. D update on ``(x, G(z))``. Its backward pass also yields ``grad_x L_D`` (the
   input is watched on the same tape), so the attack costs no extra D pass (Eq. 12).
2. ``x_hat = perturbation(x)``, for FGSM ``clip(x + eps * sign(grad_x L_D), -1, 1)``,
   with ``grad_x`` taken at D *before* step 1's update (Eq. 13).
3. Second D update on ``(x_hat, G(z))`` with the same fake batch (Eq. 14), or on the
   perturbed reals alone (``second_update="real_only"``).
4. G update (Eq. 15), back-propagating through the fake batch generated in step 1
   (one G forward pass per step, as in the DCGAN reference code).

With ``adversarial=False`` (or ``perturbation=None``) steps 2-3 are skipped: the
baseline GAN with exactly one D update, from the same code.
"""

import dataclasses
import logging
import numbers

import keras
import numpy as np
import tensorflow as tf

from tf_asgan import images as images_lib
from tf_asgan import losses as losses_lib
from tf_asgan import methods, schedules
from tf_asgan import perturbations as perturbations_lib
from tf_asgan.methods import advas as advas_lib
from tf_asgan.methods import dat as dat_lib

SECOND_UPDATES = ("real_and_fake", "real_only")
# Largest epsilon accepted, in input units: the whole [-1, 1] range.
MAX_EPSILON = 2.0

log = logging.getLogger(__name__)


def _images(data):
    """The image batch of a ``fit`` element: an image tensor or an ``(image, label)`` tuple."""
    if isinstance(data, (tuple, list)):
        data = data[0]
    if isinstance(data, dict):
        raise ValueError("ASGAN.fit expects image batches or (image, label) tuples, "
                         "not dicts.")
    return tf.cast(data, tf.float32)


def _check_range(images):
    """``images``, after a check that they lie in [-1, 1]: uint8 data not rescaled would
    train a different model without any error. (Data in [0, 1] lies in the range and
    cannot be told apart.) Used in ``fit``'s input pipeline, not in the train step: XLA
    would compile it away there, and extra ops before the step's unseeded random draws
    would change their seeds."""
    lowest, highest = tf.reduce_min(images), tf.reduce_max(images)
    ok = tf.logical_and(lowest >= -1.0 - images_lib.RANGE_SLACK,
                        highest <= 1.0 + images_lib.RANGE_SLACK)
    check = tf.debugging.Assert(ok, [
        "ASGAN trains on images in [-1, 1]; this batch spans [min, max] =", lowest, highest,
        "- scale uint8 images with x / 127.5 - 1 (tf_asgan.data sources already do)."])
    with tf.control_dependencies([check]):
        return tf.identity(images)


def _range_checked_element(*element):
    """A ``fit`` element (images, or a tuple starting with them) with the images checked."""
    if isinstance(element[0], dict):
        return element if len(element) > 1 else element[0]
    checked = (_check_range(tf.cast(element[0], tf.float32)),) + element[1:]
    return checked if len(checked) > 1 else checked[0]


def _range_checked(x):
    """``fit``'s ``x`` with its images checked to lie in [-1, 1] before any step: arrays
    at once (``ValueError``), a ``tf.data.Dataset`` as it is read (outside XLA)."""
    if isinstance(x, tf.data.Dataset):
        return x.map(_range_checked_element)
    if isinstance(x, (np.ndarray, tf.Tensor)) and np.size(x):
        low, high = float(np.min(x)), float(np.max(x))
        if not images_lib.in_model_range(low, high):
            raise ValueError(f"ASGAN trains on images in [-1, 1]; these span [{low:g}, "
                             f"{high:g}]. Scale uint8 images with x / 127.5 - 1.")
    return x


def _loss_scaled(optimizer):
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        return optimizer
    return keras.optimizers.LossScaleOptimizer(optimizer)


def _mean_probability(logits):
    return tf.reduce_mean(tf.sigmoid(logits))


class ASGAN(keras.Model):
    """Adversarial symmetric GAN (and the vanilla baseline with ``adversarial=False``).

    Args:
      generator: ``keras.Model`` ``[N, latent_dim] -> [N, H, W, C]`` images in ``[-1, 1]``.
      discriminator: ``keras.Model`` ``[N, H, W, C] -> [N]`` or ``[N, 1]`` logits.
      latent_dim: size of ``z ~ N(0, I)``.
      loss: name in :data:`tf_asgan.losses.LOSSES` ("non_saturating", the paper's;
        "minimax", "hinge", "wasserstein") or a :class:`~tf_asgan.losses.GANLoss`.
      perturbation: name in :data:`tf_asgan.perturbations.PERTURBATIONS` ("fgsm", the
        paper's; "gaussian", "none", "pgd"), or ``None`` for the baseline.
      epsilon: the attack radius: a float, or a :class:`~tf_asgan.schedules.EpsilonSchedule`
        of the generator-step count. Default ``1/255`` in input units.
      epsilon_unit: "input" (model-input units, images in ``[-1, 1]``; the default and
        what is logged) or "pixel" (fractions of the ``[0, 1]`` range: ``k/255`` means
        ``k`` grey levels, ``2k/255`` in input units).
      adversarial: ``False`` trains the baseline GAN (one D update per step).
      second_update: "real_and_fake" (Eq. 14: ``L_D(x_hat, z)``) or "real_only" (only
        the real term of ``L_D`` on ``x_hat``).
      d_steps: D iterations per G update. Each train step then consumes a batch of
        ``d_steps * m`` images, split into ``d_steps`` sub-batches of ``m``, one per D
        iteration (each with fresh ``z``); G is updated once, on ``m`` samples.
      perturbation_kwargs: extra options of the perturbation (e.g. for "pgd":
        ``steps``, ``step_size``, ``random_start``).
      track_input_grad: compute ``grad_x L_D`` in step 1 even for the baseline and
        perturbations that do not need it, to log its L1 norm (``grad_l1``).
      dat: a :class:`tf_asgan.methods.DAT` (or a dict of its fields): Direct
        Adversarial Training (:mod:`tf_asgan.methods.dat`) in every D update of step 1.
        With ``adversarial=True`` only ``side="fake"`` is accepted (AS-GAN attacks the
        reals), and step 3 then uses the attacked fakes. G's update is unchanged.
      advas: a :class:`tf_asgan.methods.AdvAs` (or a dict): the Adversary's Assistant
        (:mod:`tf_asgan.methods.advas`), ``lambda * r~`` (``r~`` an estimate of
        ``||grad_phi L_D||^2``) added to G's loss in step 4; logs ``advas_penalty``
        (``r~``) and ``advas_lambda`` (the weight used in the step).
    """

    def __init__(self, generator, discriminator, *, latent_dim=100,
                 loss="non_saturating", perturbation="fgsm", epsilon=1 / 255,
                 epsilon_unit="input", adversarial=True, second_update="real_and_fake",
                 d_steps=1, perturbation_kwargs=None, track_input_grad=True, dat=None,
                 advas=None, **kwargs):
        super().__init__(**kwargs)
        self.generator = generator
        self.discriminator = discriminator
        self.latent_dim = int(latent_dim)
        self.gan_loss = losses_lib.get(loss)
        self.adversarial = bool(adversarial) and perturbation is not None
        self.perturbation = perturbations_lib.get(perturbation) if self.adversarial else None
        self.perturbation_kwargs = dict(perturbation_kwargs or {})
        if not isinstance(epsilon, schedules.EpsilonSchedule):
            epsilon = schedules.Constant(epsilon)
        self.epsilon_schedule = epsilon
        self.epsilon_unit = epsilon_unit
        self._epsilon_factor = schedules.to_input_units(1.0, epsilon_unit)
        if second_update not in SECOND_UPDATES:
            raise ValueError(f"Unknown second_update {second_update!r}; choose one of "
                             f"{list(SECOND_UPDATES)}.")
        self.second_update = second_update
        if int(d_steps) != d_steps or d_steps < 1:
            raise ValueError(f"d_steps must be an integer >= 1, got {d_steps!r}.")
        self.d_steps = int(d_steps)
        self.track_input_grad = bool(track_input_grad)
        # grad_x L_D at the clean reals: logged (grad_l1) and/or used by the attack.
        self._needs_input_grad = self.track_input_grad or (
            self.adversarial and self.perturbation.uses_input_grad)
        self.dat = _option(dat, methods.DAT)
        self.advas = _option(advas, methods.AdvAs)
        methods.check_combination(self.adversarial, self.dat)
        self._check_networks()
        max_eps = self.epsilon_schedule.max_epsilon * self._epsilon_factor
        if max_eps > MAX_EPSILON:
            raise ValueError(
                f"epsilon {self.epsilon_schedule.max_epsilon} ({epsilon_unit} units) is "
                f"{max_eps:g} in input units, beyond the whole [-1, 1] image range; the "
                "paper uses 1/255 in input units (epsilon_unit='input').")
        if self.adversarial:
            log.info("AS-GAN: perturbation=%s, epsilon=%s in %s units (%g in model-input "
                     "units, images in [-1, 1]); second D update on %s.",
                     self.perturbation.name, self.epsilon_schedule, epsilon_unit, max_eps,
                     self.second_update)
        self._trackers = self._make_trackers()
        # The same quantities for the last step alone (per-step logging callbacks).
        self._step_trackers = self._make_trackers()
        # Sub-models are built functional models; marking the wrapper built stops
        # `fit` from symbolically calling it on an image batch (STACK.md trap 4).
        self.built = True

    def _check_networks(self):
        for name, net in (("generator", self.generator), ("discriminator", self.discriminator)):
            if not isinstance(net, keras.Model) or not net.built:
                raise ValueError(f"{name} must be a built keras.Model (e.g. from "
                                 "tf_asgan.networks.build_{name}).")
        g_in = self.generator.inputs[0].shape if self.generator.inputs else None
        if g_in is not None and g_in[-1] is not None and g_in[-1] != self.latent_dim:
            raise ValueError(f"latent_dim={self.latent_dim} but the generator takes "
                             f"inputs of size {g_in[-1]}; pass latent_dim={g_in[-1]}.")
        g_out = self.generator.outputs[0].shape if self.generator.outputs else None
        d_in = self.discriminator.inputs[0].shape if self.discriminator.inputs else None
        if g_out is not None and d_in is not None and tuple(g_out[1:]) != tuple(d_in[1:]):
            raise ValueError(f"The generator makes images of shape {tuple(g_out[1:])} but "
                             f"the discriminator takes {tuple(d_in[1:])}; build both for "
                             "the same resolution.")

    def _make_trackers(self):
        names = ["d_loss", "g_loss", "D_real", "D_fake"]
        if self._needs_input_grad:
            names.append("grad_l1")
        if self.adversarial:
            names += ["d_loss_adv", "D_adv", "epsilon"]
        if self.dat is not None:
            names += [f"{key}_{side}" for side in ("real", "fake")
                      if getattr(self.dat, f"attacks_{side}") for key in ("D_dat", "dat_linf")]
        if self.advas is not None:
            names += ["advas_penalty", "advas_lambda"]
        return {name: keras.metrics.Mean(name=name) for name in names}

    @property
    def metrics(self):
        # Listed here so that `fit` resets them at the start of every epoch.
        return list(self._trackers.values())

    def step_logs(self):
        """The logged quantities of the last train step alone (``fit`` logs epoch means)."""
        return {name: m.result() for name, m in self._step_trackers.items()}

    def _record(self, name, value):
        self._trackers[name].update_state(value)
        self._step_trackers[name].update_state(value)

    def compile(self, d_optimizer=None, g_optimizer=None, **kwargs):
        """Configures training.

        Args:
          d_optimizer, g_optimizer: Keras optimizers. Default: the paper's
            Adam(2e-4, beta_1=0.5, beta_2=0.999). When either network computes in
            float16 (``mixed_float16`` policy), each is wrapped in a
            ``keras.optimizers.LossScaleOptimizer`` unless it already is one.
          **kwargs: passed to ``keras.Model.compile`` (``jit_compile``, ``run_eagerly``,
            ``steps_per_execution``).
        """
        super().compile(**kwargs)
        self.d_optimizer = d_optimizer or keras.optimizers.Adam(2e-4, beta_1=0.5, beta_2=0.999)
        self.g_optimizer = g_optimizer or keras.optimizers.Adam(2e-4, beta_1=0.5, beta_2=0.999)
        if self._uses_float16():
            # float16 gradients underflow without loss scaling.
            self.d_optimizer = _loss_scaled(self.d_optimizer)
            self.g_optimizer = _loss_scaled(self.g_optimizer)
        if self.advas is not None and self._uses_float16():
            raise ValueError("AdvAs (double back-propagation) is not supported with float16 "
                             "networks; use float32 or mixed_bfloat16.")
        if self.d_optimizer is self.g_optimizer:
            raise ValueError("d_optimizer and g_optimizer must be distinct optimizer objects.")
        # Built here (in the caller's strategy scope), not lazily inside the step.
        self.d_optimizer.build(self.discriminator.trainable_variables)
        self.g_optimizer.build(self.generator.trainable_variables)

    def _uses_float16(self):
        return any(layer.compute_dtype == "float16"
                   for net in (self.generator, self.discriminator) for layer in net.layers)

    def fit(self, x=None, *args, **kwargs):
        """``keras.Model.fit``, with the training images checked to lie in [-1, 1]
        (``tf.data`` datasets as they are read, arrays at once)."""
        return super().fit(_range_checked(x), *args, **kwargs)

    # -- public helpers ---------------------------------------------------------------

    def call(self, z, training=False):
        """``G(z)``: images in ``[-1, 1]``."""
        return self.generator(z, training=training)

    def sample_latent(self, n):
        """``n`` latent vectors ``z ~ N(0, I)``, shape ``[n, latent_dim]``."""
        return tf.random.normal((n, self.latent_dim))

    def generate(self, n_or_z, training=False):
        """Images ``[N, H, W, C]`` in ``[-1, 1]`` from a count ``n`` or a latent batch ``z``."""
        z = self.sample_latent(n_or_z) if isinstance(n_or_z, numbers.Integral) else n_or_z
        return self.generator(z, training=training)

    def completed_steps(self):
        """Training steps done so far (G updates), as a Python int (any strategy); 0
        before :meth:`compile`."""
        return int(tf.convert_to_tensor(self._step()).numpy())

    def current_epsilon(self):
        """Epsilon at the current step, in model-input units (images in ``[-1, 1]``)."""
        return self.epsilon_schedule(self._step()) * self._epsilon_factor

    def adversarial_real(self, x, epsilon=None, training=False):
        """The step-2 perturbation of real images ``x`` at the current discriminator.

        Args:
          x: images ``[N, H, W, C]`` in ``[-1, 1]``.
          epsilon: radius in model-input units; default :meth:`current_epsilon`.
          training: run D in training mode (BatchNorm on batch statistics), as in the
            train step; D's moving statistics are restored afterwards.

        Returns:
          ``x_hat``, the same shape as ``x``.
        """
        perturbation = self.perturbation or perturbations_lib.get("fgsm")
        x = _check_range(_images(x))
        eps = self.current_epsilon() if epsilon is None else tf.cast(epsilon, tf.float32)
        saved = [tf.identity(v) for v in self.discriminator.non_trainable_variables]
        loss_fn = self._real_loss_fn(training)
        grad = None
        if perturbation.uses_input_grad:
            with tf.GradientTape() as tape:
                tape.watch(x)
                loss = loss_fn(x)
            grad = tape.gradient(loss, x)
        x_hat = perturbation.fn(x, epsilon=eps, input_grad=grad, loss_fn=loss_fn,
                                **self.perturbation_kwargs)
        for var, value in zip(self.discriminator.non_trainable_variables, saved):
            var.assign(value)
        return x_hat

    # -- Algorithm 1 ------------------------------------------------------------------

    def train_step(self, data):
        for tracker in self._step_trackers.values():
            tracker.reset_state()
        images = _images(data)  # (its range is checked in fit's input pipeline)
        reals = tf.split(images, self.d_steps) if self.d_steps > 1 else [images]
        epsilon = self.current_epsilon() if self.adversarial else None
        # AdvAs's norm-ratio weight needs the two parts of G's gradient separately.
        two_parts = self.advas is not None and self.advas.weight == "norm_ratio"
        g_tape = tf.GradientTape(watch_accessed_variables=False, persistent=two_parts)
        for i, x in enumerate(reals):
            z = self.sample_latent(tf.shape(x)[0])
            if i == len(reals) - 1:
                with g_tape:  # the G update back-propagates through this fake batch
                    g_tape.watch([v.value for v in self.generator.trainable_variables])
                    fake = self.generator(z, training=True)
            else:
                fake = self.generator(z, training=True)
            input_grad, d_fake = self.discriminator_update(x, fake)  # step 1
            if self.adversarial:
                x_hat = self.perturb(x, input_grad, epsilon)  # step 2
                self.adversarial_update(x_hat, d_fake)  # step 3
        self.generator_update(g_tape, fake, x)  # step 4
        if self.adversarial:
            self._record("epsilon", epsilon)
        logs = {m.name: m.result() for m in self.metrics}
        if isinstance(tf.distribute.get_strategy(), tf.distribute.MultiWorkerMirroredStrategy):
            # Keras reduces the step logs across workers along axis 0, which scalars lack
            # (tensorflow issue 72388, STACK.md trap 4); it returns scalars again.
            logs = {name: tf.reshape(value, [1]) for name, value in logs.items()}
        return logs

    def discriminator_update(self, x, fake):
        """Step 1: one D update on ``(x, fake)`` (with DAT: on their attacked versions).

        Returns ``(grad_x L_D, fakes)``: the input gradient at the pre-update D on the
        clean reals, from the same backward pass as the weight gradients (DAT: as its
        clean pass), ``None`` when nothing needs it; the gradient of ``L_D`` itself, not
        of the replica- or loss-scaled loss. ``fakes`` is the fake batch the step-3
        update should use (DAT's attacked fakes, or ``fake``).
        """
        if self.dat is None:
            loss, (real_logits, fake_logits), grad = self._d_apply(
                [(x, fake)], x if self._needs_input_grad else None)
        else:
            ex = dat_lib.examples(
                self.dat, x, fake, self._logits, self.gan_loss.discriminator,
                real_loss=self._real_term if self._needs_input_grad else None,
                cross_replica_sum=_cross_replica_sum())
            terms = [(x, fake)] if self.dat.loss == "add" else []
            loss, (dat_real_logits, dat_fake_logits), _ = self._d_apply(
                terms + [(ex.real, ex.fake)])
            for side, clean, attacked, logits in (("real", x, ex.real, dat_real_logits),
                                                   ("fake", fake, ex.fake, dat_fake_logits)):
                if getattr(self.dat, f"attacks_{side}"):
                    self._record(f"D_dat_{side}", _mean_probability(logits))
                    self._record(f"dat_linf_{side}", _linf(attacked - clean))
            real_logits, fake_logits, grad, fake = (ex.real_logits, ex.fake_logits,
                                                    ex.real_input_grad, ex.fake)
        self._record("d_loss", loss)
        self._record("D_real", _mean_probability(real_logits))
        self._record("D_fake", _mean_probability(fake_logits))
        if grad is not None:  # computed exactly when grad_l1 is tracked
            # Batch mean of the per-sample L1 norm ||d l(x_i) / d x_i||_1, l the
            # per-sample real loss: L_D averages l over the m samples, so the mean of
            # m * ||grad_i||_1 over the batch is the sum of |grad|.
            self._record("grad_l1", tf.reduce_sum(tf.abs(grad)))
        return grad, fake

    def dat_examples(self, x, fake):
        """DAT's attacked ``(reals, fakes)`` at the current D (unattacked sides unchanged)
        and D's clean ``(real_logits, fake_logits)``: :func:`tf_asgan.methods.dat.examples`
        with this model's D and loss."""
        ex = dat_lib.examples(self.dat, x, fake, self._logits, self.gan_loss.discriminator,
                              cross_replica_sum=_cross_replica_sum())
        return ex.real, ex.fake, ex.real_logits, ex.fake_logits

    def perturb(self, x, input_grad, epsilon):
        """Step 2: ``x_hat`` from the registered perturbation."""
        return self.perturbation.fn(x, epsilon=epsilon, input_grad=input_grad,
                                    loss_fn=self._real_loss_fn(True),
                                    **self.perturbation_kwargs)

    def adversarial_update(self, x_hat, fake):
        """Step 3: the second D update on ``(x_hat, fake)`` or ``x_hat`` alone."""
        if self.second_update == "real_only":
            fake = None
        loss, (adv_logits, _), _ = self._d_apply([(x_hat, fake)])
        self._record("d_loss_adv", loss)
        self._record("D_adv", _mean_probability(adv_logits))

    def generator_update(self, g_tape, fake, x=None):
        """Step 4: G update through the current D on the fake batch recorded on ``g_tape``.

        With AdvAs, G's gradient gains ``lambda * grad_theta r~``, ``r~`` the penalty of
        :func:`tf_asgan.methods.advas.penalty` on ``(x, fake)`` (``x``: the step's last
        real batch) differentiated through D's weight gradient (double back-propagation),
        and ``lambda`` the weight of :func:`~tf_asgan.methods.advas.norm_ratio_weight`
        (recomputed here from the whole batch's gradients) or the fixed one.
        """
        variables = self.generator.trainable_variables
        replicas = self._replicas()
        if self.advas is None:
            with g_tape:
                loss = self.gan_loss.generator(self._logits(fake))
                scaled = self.g_optimizer.scale_loss(loss / replicas)
            grads = g_tape.gradient(scaled, variables)
        else:
            loss, penalty, lam, grads = self._advas_gradients(g_tape, fake, x)
            self._record("advas_penalty", penalty)
            self._record("advas_lambda", lam)
        self.g_optimizer.apply_gradients(zip(grads, variables))
        self._record("g_loss", loss)

    def _advas_gradients(self, g_tape, fake, x):
        """``(L_G, r~, lambda, grads)`` of the AdvAs G update (``g_tape`` persistent)."""
        variables = self.generator.trainable_variables
        replicas = self._replicas()
        fixed = self.advas.weight == "fixed"
        with g_tape:  # everything G's gradient passes through is recorded on it
            loss = self.gan_loss.generator(self._logits(fake))
            penalty = advas_lib.penalty(self._logits, self.gan_loss.discriminator, x, fake,
                                        self.discriminator.trainable_variables,
                                        self.advas.estimate)
            lam = tf.constant(self.advas.lam, tf.float32)
            if fixed:
                total_loss = (loss + lam * penalty) / replicas
            else:
                g_part, p_part = loss / replicas, penalty / replicas
        if fixed:
            return loss, penalty, lam, g_tape.gradient(total_loss, variables)
        g_grads = g_tape.gradient(g_part, variables)
        p_grads = g_tape.gradient(p_part, variables)
        p_grads = [tf.zeros_like(g) if p is None else p for g, p in zip(g_grads, p_grads)]
        total = _cross_replica_sum() or (lambda v: v)  # the whole batch's gradients
        lam = advas_lib.norm_ratio_weight(total(g_grads), total(p_grads), self.advas.lam)
        return loss, penalty, lam, [g + lam * p for g, p in zip(g_grads, p_grads)]

    # -- internals --------------------------------------------------------------------

    def _step(self):
        """Completed training steps (= G updates); drives the epsilon schedule. 0 before
        :meth:`compile` (no optimizer, no step yet)."""
        optimizer = getattr(self, "g_optimizer", None)
        if optimizer is None:
            return tf.constant(0, tf.int64)
        return optimizer.iterations

    @staticmethod
    def _replicas():
        # Keras 3 optimizers sum gradients over replicas (STACK.md trap 4).
        return tf.distribute.get_strategy().num_replicas_in_sync

    def _logits(self, images, training=True):
        logits = self.discriminator(images, training=training)
        return tf.cast(tf.reshape(logits, [-1]), tf.float32)

    def _real_loss_fn(self, training):
        return lambda x: self._real_term(self._logits(x, training))

    def _real_term(self, real_logits):
        """The real term of ``L_D`` (its only term that depends on the reals)."""
        return self.gan_loss.discriminator(real_logits, None)

    def _d_apply(self, terms, watch=None):
        """One D update on the sum of ``L_D(real, fake)`` over ``terms`` (``fake=None``:
        real term only).

        Returns ``(loss, (real_logits, fake_logits) of the last term, grad)``; ``grad``
        is ``d loss / d watch`` from the same backward pass (``None`` without ``watch``,
        or when ``watch`` does not reach the loss).
        """
        variables = self.discriminator.trainable_variables
        # The factor from L_D to the loss actually differentiated.
        scale = self.d_optimizer.scale_loss(tf.constant(1.0)) / self._replicas()
        with tf.GradientTape() as tape:
            if watch is not None:
                tape.watch(watch)
            loss = 0.0
            for real, fake in terms:
                real_logits = self._logits(real)
                fake_logits = None if fake is None else self._logits(fake)
                loss += self.gan_loss.discriminator(real_logits, fake_logits)
            scaled = self.d_optimizer.scale_loss(loss / self._replicas())
        sources = variables if watch is None else variables + [watch]
        grads = tape.gradient(scaled, sources)
        self.d_optimizer.apply_gradients(zip(grads[:len(variables)], variables))
        input_grad = None
        if watch is not None and grads[-1] is not None:
            input_grad = grads[-1] / tf.cast(scale, grads[-1].dtype)
        return loss, (real_logits, fake_logits), input_grad


def _option(value, cls):
    """``None``, an instance of ``cls``, or a dict of its fields -> a validated instance."""
    if value is None:
        return None
    if isinstance(value, dict):
        unknown = sorted(set(value) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(f"Unknown {cls.__name__} option(s) {unknown}; the options are "
                             f"{[f.name for f in dataclasses.fields(cls)]}.")
        value = cls(**value)
    if not isinstance(value, cls):
        raise ValueError(f"Expected a tf_asgan.methods.{cls.__name__} or a dict, got "
                         f"{type(value).__name__}.")
    return value.validate()


def _cross_replica_sum():
    """``v -> sum of v over the replicas`` in a replica context of several, else ``None``."""
    if tf.distribute.get_strategy().num_replicas_in_sync == 1:
        return None
    context = tf.distribute.get_replica_context()
    return lambda v: context.all_reduce(tf.distribute.ReduceOp.SUM, v)


def _linf(delta):
    """Mean over the batch of each sample's L-infinity norm."""
    return tf.reduce_mean(tf.reduce_max(tf.abs(tf.reshape(delta, (tf.shape(delta)[0], -1))),
                                        axis=1))
