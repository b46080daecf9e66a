"""The AS-GAN model: a ``keras.Model`` whose ``train_step`` is the paper's Algorithm 1.

One training step, for a batch of ``m`` real images ``x`` in ``[-1, 1]``:

1. D update on ``(x, G(z))``. Its backward pass also yields ``grad_x L_D`` (the
   input is watched on the same tape), so the attack costs no extra D pass (Eq. 12).
2. ``x_hat = perturbation(x)``, for FGSM ``x + eps * sign(grad_x L_D)`` (Eq. 13), with
   ``grad_x`` taken at D *before* step 1's update, then clipped to [-1, 1] (ours).
3. Second D update on ``(x_hat, G(z))`` with the same fake batch (Eq. 14), or on the
   perturbed reals alone (``second_update="real_only"``).
4. G update (Eq. 15), back-propagating through the fake batch generated in step 1
   (one G forward pass per step, as in the DCGAN reference code).

With ``adversarial=False`` (or ``perturbation=None``) steps 2-3 are skipped: the
baseline GAN with exactly one D update, from the same code.
D's regularisers (a gradient penalty, SSGAN's rotation loss) are extra terms of every D
update's loss, on the step's clean batches.
"""

import logging

import tensorflow as tf

from tf_asgan import errors, inputs, methods, networks, randomness, schedules, tracking
from tf_asgan import perturbations as perturbations_lib
from tf_asgan.gan import GAN
from tf_asgan.methods import advas as advas_lib
from tf_asgan.methods import dat as dat_lib
from tf_asgan.regularizers import penalties as penalties_lib
from tf_asgan.regularizers import rotation as rotation_lib
from tf_asgan.utils import distribute

SECOND_UPDATES = ("real_and_fake", "real_only")

log = logging.getLogger(__name__)


class ASGAN(GAN):
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
        ``steps``, ``step_size``, ``random_start``); a key the perturbation does not
        take is refused here (:func:`tf_asgan.perturbations.check_options`).
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
      gradient_penalty: ``None``, "wgan_gp", "r1", a dict or a
        :class:`tf_asgan.regularizers.GradientPenalty` (weight, lazy interval): added to
        D's loss in every D update, steps 1 and 3 alike, on the step's *clean* reals and
        fakes (WGAN-GP interpolates them; R1 takes the reals), also with DAT, whose
        attacked batches only replace the GAN loss's inputs. Lazy (``every=k``): on D
        updates ``n`` with ``n % k == 0``, ``n`` counting every D update of the run
        (``d_steps``, or ``2 * d_steps`` with the second update, per step), times ``k``.
        Any GAN loss. Refused with a D that has batch normalisation. Logs ``gp``, the
        penalty (weighted by lambda or gamma, not by ``k``); ``d_loss`` stays the GAN
        loss alone.
      rotation: ``None``, "quarter", "all", a dict or a
        :class:`tf_asgan.regularizers.RotationLoss`: SSGAN's rotation loss. D gets a
        rotation head (:func:`tf_asgan.networks.rotation_classifier`, trained with D);
        every D update (steps 1 and 3, DAT's) adds ``weight_d`` times the rotation
        cross-entropy of the *clean* reals, with no gradient into them (the attack and
        ``grad_l1`` stay the GAN loss's); step 4 adds ``weight_g`` times the fakes'.
        Refused with AdvAs. Logs ``rotation_d``, ``rotation_g`` (weighted) and
        ``rotation_acc``; ``d_loss`` and ``g_loss`` stay the GAN losses.
      seed: the run seed of the train step's random draws (latents, random
        perturbations): each is a stateless function of the seed, the step, the
        rollback count, the replica and its purpose (:mod:`tf_asgan.randomness`), so a
        resumed run draws what an uninterrupted one does. Default: from Python's
        ``random`` (seeded by ``keras.utils.set_random_seed``).
    """

    def __init__(self, generator, discriminator, *, latent_dim=100,
                 loss="non_saturating", perturbation="fgsm", epsilon=1 / 255,
                 epsilon_unit="input", adversarial=True, second_update="real_and_fake",
                 d_steps=1, perturbation_kwargs=None, track_input_grad=True, dat=None,
                 advas=None, gradient_penalty=None, rotation=None, **kwargs):
        options = dict(perturbation_kwargs or {})
        if "seed" in options:
            raise errors.InputError("perturbation_kwargs must not set 'seed': each step's random "
                                    "draws are seeded from the run seed (ASGAN(seed=...)), the "
                                    "step and the replica (tf_asgan.randomness).")
        if options and perturbation is not None:
            # checked against the named perturbation even for the baseline: a typo is a typo
            perturbations_lib.check_options(perturbation, options)
        adversarial = bool(adversarial) and perturbation is not None
        perturbation = perturbations_lib.get(perturbation) if adversarial else None
        dat = methods.as_option(dat, methods.DAT)
        advas = methods.as_option(advas, methods.AdvAs)
        methods.check_combination(adversarial, dat)
        gradient_penalty = penalties_lib.as_penalty(gradient_penalty)
        penalties_lib.check_discriminator(discriminator, gradient_penalty)
        rotation = rotation_lib.as_rotation(rotation)
        rotation_lib.check_combination(rotation, advas)
        # grad_x L_D at the clean reals: logged (grad_l1) and/or used by the attack.
        needs_input_grad = bool(track_input_grad) or (adversarial
                                                      and perturbation.uses_input_grad)
        names = tracking.metric_names(input_grad=needs_input_grad, adversarial=adversarial,
                                      dat=dat, advas=advas is not None,
                                      gradient_penalty=gradient_penalty is not None)
        if rotation is not None:
            names += list(rotation_lib.METRIC_NAMES)
        super().__init__(generator, discriminator, latent_dim=latent_dim, loss=loss,
                         metric_names=names, rotation_classifier=(
                             None if rotation is None
                             else networks.rotation_classifier(discriminator)), **kwargs)
        self.adversarial, self.perturbation, self.dat, self.advas = (adversarial, perturbation,
                                                                     dat, advas)
        self.track_input_grad = bool(track_input_grad)
        self._needs_input_grad = needs_input_grad
        self.perturbation_kwargs = options
        self.epsilon_schedule, self._epsilon_factor = schedules.as_schedule(epsilon,
                                                                            epsilon_unit)
        self.epsilon_unit = epsilon_unit
        if second_update not in SECOND_UPDATES:
            raise errors.InputError(f"Unknown second_update {second_update!r}; choose one of "
                                    f"{list(SECOND_UPDATES)}.")
        self.second_update = second_update
        if int(d_steps) != d_steps or d_steps < 1:
            raise errors.InputError(f"d_steps must be an integer >= 1, got {d_steps!r}.")
        self.d_steps = int(d_steps)
        self.gradient_penalty = gradient_penalty
        self.rotation = rotation
        # D updates per train step: what a lazy penalty's interval counts
        self.d_updates_per_step = self.d_steps * (2 if adversarial else 1)
        if gradient_penalty is not None:
            log.info("Gradient penalty %s, weight %g, on one D update in %d (every D update "
                     "of the step, on the clean batches); GAN loss %s.", gradient_penalty.kind,
                     gradient_penalty.resolved_weight, gradient_penalty.every,
                     self.gan_loss.name)
        if rotation is not None:
            log.info("SSGAN rotation loss (%s scheme): weight %g in every D update, on the "
                     "clean reals; weight %g in G's update, on the fakes.", rotation.scheme,
                     rotation.weight_d, rotation.weight_g)
        if adversarial:
            log.info("AS-GAN: perturbation=%s, epsilon=%s in %s units (%g in model-input "
                     "units, images in [-1, 1]); second D update on %s.", perturbation.name,
                     self.epsilon_schedule, epsilon_unit,
                     self.epsilon_schedule.max_epsilon * self._epsilon_factor, second_update)

    @property
    def double_backprop(self):
        return self.advas is not None  # AdvAs differentiates D's weight gradient

    def current_epsilon(self):
        """Epsilon at the current step, in model-input units (images in ``[-1, 1]``)."""
        return self.epsilon_schedule(self._step()) * self._epsilon_factor

    # -- Algorithm 1 ------------------------------------------------------------------

    def train_step(self, data):
        self._logged.start_step()
        self.d_wins_monitor.start_step()
        images = inputs.images_of(data)  # (its range is checked in fit's input pipeline)
        reals = tf.split(images, self.d_steps) if self.d_steps > 1 else [images]
        epsilon = self.current_epsilon() if self.adversarial else None
        key = self._step_key()  # every draw: a function of (seed, step, ...) alone
        # AdvAs's norm-ratio weight needs the two parts of G's gradient separately.
        two_parts = self.advas is not None and self.advas.weight == "norm_ratio"
        g_tape = tf.GradientTape(watch_accessed_variables=False, persistent=two_parts)
        for i, x in enumerate(reals):
            z = self.sample_latent(tf.shape(x)[0], randomness.draw_seed(key, "latent", i))
            if i == len(reals) - 1:
                with g_tape:  # the G update back-propagates through this fake batch
                    g_tape.watch([v.value for v in self.generator.trainable_variables])
                    fake = self.generator(z, training=True)
            else:
                fake = self.generator(z, training=True)
            input_grad, d_fake = self.discriminator_update(x, fake, index=i)  # step 1
            if self.adversarial:
                x_hat = self.perturb(x, input_grad, epsilon,  # step 2
                                     randomness.draw_seed(key, "perturbation", i))
                self.adversarial_update(x_hat, d_fake, clean=(x, fake), index=i)  # step 3
        self.generator_update(g_tape, fake, x)  # step 4
        if self.adversarial:
            self._logged.record("epsilon", epsilon)
        self._count_step()
        return self._logged.epoch_logs()

    def discriminator_update(self, x, fake, index=0):
        """Step 1: one D update on ``(x, fake)`` (with DAT: on their attacked versions),
        plus the gradient penalty on the clean ``(x, fake)`` when set (``index``: the D
        iteration within the step, ``0 .. d_steps - 1``).

        With the rotation loss, D's loss also holds its term on the clean reals ``x``.

        Returns ``(grad_x L_D, fakes)``: the input gradient at the pre-update D on the
        clean reals, from the same backward pass as the weight gradients (DAT: as its
        clean pass), ``None`` when nothing needs it; the gradient of ``L_D`` itself, not
        of the replica- or loss-scaled loss. ``fakes`` is the fake batch the step-3
        update should use (DAT's attacked fakes, or ``fake``).
        """
        if self.dat is None:
            loss, (real_logits, fake_logits), grad = self._d_apply(
                [(x, fake)], x if self._needs_input_grad else None,
                penalty=self._penalty(x, fake, index, second=False),
                rotation=self._rotation_d(x))
        else:
            ex = dat_lib.examples(
                self.dat, x, fake, self.discriminator_logits, self.gan_loss,
                real_loss=self.gan_loss.real_term if self._needs_input_grad else None,
                cross_replica_sum=distribute.cross_replica_sum())
            terms = [(x, fake)] if self.dat.loss == "add" else []
            loss, (dat_real_logits, dat_fake_logits), _ = self._d_apply(
                terms + [(ex.real, ex.fake)], penalty=self._penalty(x, fake, index, second=False),
                rotation=self._rotation_d(x))
            for side, clean, attacked, logits in (("real", x, ex.real, dat_real_logits),
                                                  ("fake", fake, ex.fake, dat_fake_logits)):
                if getattr(self.dat, f"attacks_{side}"):
                    self._logged.record(f"D_dat_{side}", tracking.mean_probability(logits))
                    self._logged.record(f"dat_linf_{side}", tracking.mean_linf(attacked - clean))
            real_logits, fake_logits, grad, fake = (ex.real_logits, ex.fake_logits,
                                                    ex.real_input_grad, ex.fake)
        self.d_wins_monitor.observe(real_logits, fake_logits)
        self._logged.record("d_loss", loss)
        self._logged.record("D_real", tracking.mean_probability(real_logits))
        self._logged.record("D_fake", tracking.mean_probability(fake_logits))
        if grad is not None:  # computed exactly when grad_l1 is tracked
            # Batch mean of the per-sample L1 norm ||d l(x_i) / d x_i||_1, l the
            # per-sample real loss: L_D averages l over the m samples, so the mean of
            # m * ||grad_i||_1 over the batch is the sum of |grad|.
            self._logged.record("grad_l1", tf.reduce_sum(tf.abs(grad)))
        return grad, fake

    def perturb(self, x, input_grad, epsilon, seed=None):
        """Step 2: ``x_hat`` from the registered perturbation (``seed``: the stateless
        seed of its random draws, if any)."""
        return self.perturbation.fn(x, epsilon=epsilon, input_grad=input_grad,
                                    loss_fn=self.real_loss_fn(True), seed=seed,
                                    **self.perturbation_kwargs)

    def adversarial_update(self, x_hat, fake, clean=None, index=0):
        """Step 3: the second D update on ``(x_hat, fake)`` or ``x_hat`` alone.

        With a gradient penalty or the rotation loss, ``clean`` is the step's clean
        ``(x, fake)`` they are taken on, and ``index`` the D iteration (as in
        :meth:`discriminator_update`).

        Raises:
          InputError: a gradient penalty or the rotation loss without ``clean``.
        """
        penalty = rotation = None
        if self.gradient_penalty is not None or self.rotation is not None:
            if clean is None:
                raise errors.InputError("adversarial_update needs clean=(x, fake), the batches "
                                        "the gradient penalty and the rotation loss are taken "
                                        "on.")
            penalty = self._penalty(*clean, index, second=True)
            rotation = self._rotation_d(clean[0])
        if self.second_update == "real_only":
            fake = None
        loss, (adv_logits, _), _ = self._d_apply([(x_hat, fake)], penalty=penalty,
                                                 rotation=rotation)
        self._logged.record("d_loss_adv", loss)
        self._logged.record("D_adv", tracking.mean_probability(adv_logits))

    def generator_update(self, g_tape, fake, x=None):
        """Step 4: G update through the current D on the fake batch recorded on ``g_tape``.

        With AdvAs, G's gradient gains ``lambda * grad_theta r~``, ``r~`` the penalty of
        :func:`tf_asgan.methods.advas.penalty` on ``(x, fake)`` (``x``: the step's last
        real batch) differentiated through D's weight gradient (double back-propagation),
        and ``lambda`` the weight of :func:`~tf_asgan.methods.advas.norm_ratio_weight`
        (recomputed here from the whole batch's gradients) or the fixed one.

        With the rotation loss, G's loss also holds ``weight_g`` times the rotation
        cross-entropy of ``fake`` (D's head; only G's weights change).
        """
        variables = self.generator.trainable_variables
        replicas = distribute.num_replicas()
        if self.advas is None:
            with g_tape:
                loss = self.gan_loss.generator(self.discriminator_logits(fake))
                total = loss if self.rotation is None else loss + self._rotation_g(fake)
                scaled = self.g_optimizer.scale_loss(total / replicas)
            grads = g_tape.gradient(scaled, variables)
        else:
            with g_tape:  # everything G's gradient passes through is recorded on it
                loss = self.gan_loss.generator(self.discriminator_logits(fake))
            grads, penalty, lam = advas_lib.generator_gradients(
                self.advas, g_tape, loss, self.discriminator_logits, self.gan_loss, x, fake,
                self.discriminator.trainable_variables, variables, replicas=replicas,
                cross_replica_sum=distribute.cross_replica_sum())
            self._logged.record("advas_penalty", penalty)
            self._logged.record("advas_lambda", lam)
        self.g_optimizer.apply_gradients(zip(grads, variables))
        self._update_ema()  # the EMA of G's weights, if kept (tf_asgan.ema)
        self._logged.record("g_loss", loss)

    def real_loss_fn(self, training):
        """``x -> `` the real term of ``L_D`` at D (the loss the attacks on reals ascend),
        times D's loss scale (float16: as D's own update; else 1). The attacks use the
        gradient's sign only, which the scale keeps, while in float16 the unscaled
        gradient through D underflows to 0 (an attack that would not move)."""
        return lambda x: self.d_optimizer.scale_loss(
            self.gan_loss.real_term(self.discriminator_logits(x, training)))

    # -- internals --------------------------------------------------------------------

    def _penalty(self, x, fake, index, second):
        """The gradient penalty of one D update on the clean ``(x, fake)``: ``None``
        without one, else a function ``() -> `` the term to add to ``L_D`` (lazily
        scaled), which records ``gp``. ``index``: the D iteration; ``second``: step 3."""
        if self.gradient_penalty is None:
            return None
        update = 2 * index + int(second) if self.adversarial else index
        seed = randomness.draw_seed(self._step_key(), "gp_alpha", update)
        run_update = self._step() * self.d_updates_per_step + update

        def term():
            added, value, due = self.gradient_penalty.term(self.discriminator_logits, x, fake,
                                                           update=run_update, seed=seed)
            self._logged.record("gp", value, weight=due)
            return added

        return term

    def _rotation_logits(self, images, training=True):
        """D's rotation logits on ``images`` as float32 ``[N, 4]``."""
        return tf.cast(self.rotation_classifier(images, training=training), tf.float32)

    def _rotation_d(self, x):
        """D's rotation term of one D update on the clean reals ``x``: ``None`` without
        the rotation loss, else a function ``() -> weight_d * L_rot(x)`` that records
        ``rotation_d`` and ``rotation_acc``. No gradient flows into ``x``: the term
        trains D and its head, and leaves ``grad_x L_D`` (the attack, ``grad_l1``) alone."""
        if self.rotation is None:
            return None

        def term():
            ce, acc = rotation_lib.loss(self._rotation_logits, tf.stop_gradient(x),
                                        self.rotation.scheme)
            weighted = self.rotation.weight_d * ce
            self._logged.record("rotation_d", weighted)
            self._logged.record("rotation_acc", acc)
            return weighted

        return term

    def _rotation_g(self, fake):
        """G's rotation term, ``weight_g * L_rot(fake)``, recorded as ``rotation_g``."""
        ce, _ = rotation_lib.loss(self._rotation_logits, fake, self.rotation.scheme)
        weighted = self.rotation.weight_g * ce
        self._logged.record("rotation_g", weighted)
        return weighted

    def _d_apply(self, terms, watch=None, penalty=None, rotation=None):
        """One D update on the sum of ``L_D(real, fake)`` over ``terms`` (``fake=None``:
        real term only), plus ``penalty()`` (:meth:`_penalty`) and ``rotation()``
        (:meth:`_rotation_d`) when given; with a rotation head, it is updated too.

        Returns ``(loss, (real_logits, fake_logits) of the last term, grad)``: ``loss``
        without the penalty and the rotation term; ``grad`` is ``d loss / d watch`` from
        the same backward pass (``None`` without ``watch``, or when ``watch`` does not
        reach the loss; neither extra term reaches it).
        """
        variables = self.d_variables
        # The factor from L_D to the loss actually differentiated.
        scale = self.d_optimizer.scale_loss(tf.constant(1.0)) / distribute.num_replicas()
        with tf.GradientTape() as tape:
            if watch is not None:
                tape.watch(watch)
            loss = 0.0
            for real, fake in terms:
                real_logits = self.discriminator_logits(real)
                if fake is None:
                    fake_logits = None
                    loss += self.gan_loss.real_term(real_logits)
                else:
                    fake_logits = self.discriminator_logits(fake)
                    loss += self.gan_loss.discriminator(real_logits, fake_logits)
            total = loss
            for extra in (penalty, rotation):
                if extra is not None:
                    total += extra()
            scaled = self.d_optimizer.scale_loss(total / distribute.num_replicas())
        sources = variables if watch is None else variables + [watch]
        grads = tape.gradient(scaled, sources)
        self.d_optimizer.apply_gradients(zip(grads[:len(variables)], variables))
        input_grad = None
        if watch is not None and grads[-1] is not None:
            input_grad = grads[-1] / tf.cast(scale, grads[-1].dtype)
        return loss, (real_logits, fake_logits), input_grad

