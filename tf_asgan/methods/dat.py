"""DAT, Direct Adversarial Training: D trained on adversarial examples of
both the real and the generated batch.

Source of the step: the authors' code, a fork of the Mimicry library (GitHub
``iceli1007/DAT-GAN``, ``torch_mimicry/nets/gan/gan.py``, method ``advtrain_step``,
run in place of the ordinary D step). For a batch of ``N`` reals ``x`` and ``N`` fakes
``f`` (detached from G), with D in training mode and ``d`` its logit:

1. targets from the clean batches: ``t_real = mean_i d(x_i)``, ``t_fake = mean_i d(f_i)``;
2. ``f' = clip(f - clip(grad_f |mean_i d(f_i) - t_real|, -1, 1), -1, 1)``: the fakes
   pushed towards the real batch's mean logit;
3. ``x' = clip(x - clip(grad_x |mean_i d(x_i) - t_fake|, -1, 1), -1, 1)``: the reals
   pushed towards the fake batch's mean logit;
4. D's loss is the ordinary GAN loss on ``(x', f')`` only.

The objective is the absolute value of a *batch mean*, so the gradient of sample ``i``
is ``sign(mean_j d(x_j) - t) * grad d(x_i) / N``: one sign for the whole batch and a
``1/N`` factor. The step is therefore small (about one grey level), and the clip of the
step to +-1 per element rarely binds (the clip of the image to [-1, 1] does, where pixels
sit at the range's ends). The authors' code has no epsilon and no
step size (one step, coefficient 1); ``step_size`` here multiplies the step and is 1 by
default.

What is ours:

- ``step_size`` (a multiplier; the authors have none) and ``side`` (attack one side only).
- The clip of the attacked *reals* to [-1, 1] for the plain GAN: the authors' SSGAN and
  InfoMax-GAN files clip them before D's pass, but in their plain GAN's file the clamp
  comes after it and has no effect. We clip them always, as every perturbation here does.
- ``loss="add"``: D's loss on the clean and the attacked batches (the authors': only the
  attacked ones, ``loss="replace"``).
- Under several replicas the batch means and ``N`` are over the *global* batch: the
  gradient of ``|m - t|`` is formed as ``sign(m - t) * grad sum_i d(x_i) / N`` with the
  sign from the cross-replica mean held fixed (equal to the gradient of ``|m - t|``
  wherever ``m != t``). For a D without batch norm the step then equals the
  single-device step on the same batch; with per-replica batch norm the logits
  themselves are per replica, as in any data-parallel step without ``--sync_bn``.
- ``variant="pgd"``: an iterative L-infinity attack (``epsilon``, ``steps``,
  ``step_size`` in model-input units) ascending D's real loss term on the reals and its
  fake term on the fakes. This is our extension, not the authors' method.
"""

import dataclasses
from typing import Callable, NamedTuple, Optional

import tensorflow as tf

from tf_asgan import errors, losses, perturbations, schedules

VARIANTS = ("authors", "pgd")
SIDES = ("both", "real", "fake")
LOSSES = ("replace", "add")
CLIP_RANGE = (-1.0, 1.0)


@dataclasses.dataclass(frozen=True)
class DAT:
    """Direct Adversarial Training options (see the module docstring).

    Attributes:
      variant: "authors" (the published step) or "pgd" (ours: an iterative attack).
      side: "both" (the method as published), "real" or "fake": which samples are attacked.
      loss: "replace" (the authors': D trains on the attacked batches only) or "add"
        (ours: on the clean and the attacked batches).
      step_size: authors: a multiplier of the gradient step (``None``: 1, the published
        step; the authors have none). pgd: the step size in model-input units (``None``:
        ``2.5 * epsilon / steps``, Madry et al.'s rule).
      epsilon: pgd: the L-infinity radius in model-input units (images in [-1, 1]).
      steps: pgd: the number of iterations.
    """

    variant: str = "authors"
    side: str = "both"
    loss: str = "replace"
    step_size: Optional[float] = None
    epsilon: float = 2 / 255
    steps: int = 3

    def validate(self):
        """Returns ``self``; raises ``ValueError`` naming a bad field and its choices."""
        for name, value, allowed in (("variant", self.variant, VARIANTS),
                                     ("side", self.side, SIDES),
                                     ("loss", self.loss, LOSSES)):
            if value not in allowed:
                raise errors.InputError(f"Unknown DAT {name} {value!r}; "
                                        f"choose one of {list(allowed)}.")
        if self.variant == "pgd":
            # the library's ceiling (the whole [-1, 1] range), open at 0: a radius of 0
            # would attack nothing
            if not 0 < self.epsilon <= schedules.MAX_EPSILON:
                raise errors.InputError(f"DAT pgd epsilon must lie in (0, "
                                        f"{schedules.MAX_EPSILON:g}] (model-input units), "
                                        f"got {self.epsilon}.")
            if self.steps < 1:
                raise errors.InputError(f"DAT pgd steps must be >= 1, got {self.steps}.")
        if self.step_size is not None and not self.step_size > 0:
            raise errors.InputError(f"DAT step_size must be > 0 or None (authors: a multiplier, 1 "
                                    f"is the published step; pgd: 2.5 * epsilon / steps), got "
                                    f"{self.step_size}.")
        return self

    @property
    def resolved_step_size(self):
        """The step size used: ``step_size``, or the variant's default when ``None``."""
        if self.step_size is not None:
            return float(self.step_size)
        return 1.0 if self.variant == "authors" else 2.5 * self.epsilon / self.steps

    @property
    def attacks_real(self):
        return self.side in ("both", "real")

    @property
    def attacks_fake(self):
        return self.side in ("both", "fake")


class Examples(NamedTuple):
    """What :func:`examples` returns.

    Attributes:
      real, fake: the batches D trains on, ``[N, H, W, C]`` in ``clip_range`` (a side
        that is not attacked is returned unchanged).
      real_logits, fake_logits: D's clean logits ``[N]`` (float32), from the same pass
        as the attack's first gradient.
      real_input_grad: ``grad_x`` of ``real_loss(real_logits)`` at the clean reals, or
        ``None`` when ``real_loss`` was not given.
    """

    real: tf.Tensor
    fake: tf.Tensor
    real_logits: tf.Tensor
    fake_logits: tf.Tensor
    real_input_grad: Optional[tf.Tensor]


def batch_mean_step(images, logits, target, tape, *, step_size=1.0, clip_range=CLIP_RANGE,
                    cross_replica_sum=None, mean=None):
    """DAT (authors): one step of ``images`` towards the mean logit ``target``.

    ``images' = clip(images - clip(step_size * grad |mean_i d(images_i) - target|, -1, 1),
    clip_range)``, where ``grad`` for sample ``i`` is
    ``sign(mean_j d_j - target) * grad d(images_i) / N``.

    Args:
      images: ``[n, H, W, C]`` in model-input units, watched by ``tape``.
      logits: ``[n]`` float32, ``d(images)`` computed on ``tape`` (persistent if it serves
        several gradients).
      target: a scalar logit, held fixed (no gradient flows into it).
      tape: the ``tf.GradientTape`` that recorded ``logits``.
      step_size: multiplier of the gradient (the authors': 1).
      clip_range: the image range, or ``None`` for no final clip.
      cross_replica_sum: ``v -> sum of v over replicas`` (``None``: one replica). The
        batch is then the global batch of ``N = sum n`` samples.
      mean: ``(mean, N)`` of ``logits`` from :func:`batch_mean` when already computed.

    Returns:
      ``images'``, the shape of ``images``, ``stop_gradient``-ed.
    """
    mean, count = mean if mean is not None else batch_mean(logits, cross_replica_sum)
    sign = tf.sign(mean - tf.stop_gradient(tf.cast(target, tf.float32)))
    # d|m - t| / d images_i = sign(m - t) * d d_i / d images_i / N (m: the global mean).
    # (a vector target's gradient is that of its sum: the tape need not record a sum)
    grad = tape.gradient(logits, images) * tf.cast(sign / count, images.dtype)
    out = images - tf.clip_by_value(step_size * grad, -1.0, 1.0)
    if clip_range is not None:
        out = tf.clip_by_value(out, clip_range[0], clip_range[1])
    return tf.stop_gradient(out)


def batch_mean(values, cross_replica_sum=None):
    """``(mean, N)`` of ``values`` over the (global) batch, without gradient."""
    total = tf.reduce_sum(tf.stop_gradient(tf.cast(values, tf.float32)))
    count = tf.cast(tf.size(values), tf.float32)
    if cross_replica_sum is not None:
        total, count = cross_replica_sum(total), cross_replica_sum(count)
    return total / count, count


def examples(options, real, fake, logits_fn, loss, *, real_loss=None,
             cross_replica_sum=None, clip_range=CLIP_RANGE):
    """The batches D trains on under DAT, at the current D.

    One D pass on each clean batch gives the logits (the authors' targets: each batch is
    pushed towards the other's mean logit) and the first attack gradient.

    Args:
      options: a validated :class:`DAT`.
      real, fake: ``[N, H, W, C]`` images in model-input units (``fake`` detached from G).
      logits_fn: ``images -> [N]`` float32 logits of the current D (training mode, as in
        the authors' code).
      loss: the run's GAN loss, a :class:`tf_asgan.losses.GANLoss` or its name (pgd
        only: the real and fake terms of ``L_D`` are what the attacks ascend).
      real_loss: optional ``real_logits -> scalar``; its input gradient at the clean reals
        is returned (for logging D's clean input gradient, or for AS-GAN's FGSM).
      cross_replica_sum: see :func:`batch_mean_step`.
      clip_range: the image range.

    Returns:
      :class:`Examples`.
    """
    loss = losses.get(loss)
    real = tf.convert_to_tensor(real)
    fake = tf.stop_gradient(tf.convert_to_tensor(fake))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([real, fake])
        real_logits, fake_logits = logits_fn(real), logits_fn(fake)
        if options.variant == "pgd":
            real_term = loss.real_term(real_logits)
            fake_term = loss.fake_term(fake_logits)
        tracked = real_loss(real_logits) if real_loss is not None else None
    real_grad = tape.gradient(tracked, real) if tracked is not None else None
    real_out, fake_out = real, fake
    if options.variant == "authors":
        step = dict(step_size=options.resolved_step_size, clip_range=clip_range,
                    cross_replica_sum=cross_replica_sum)
        # each batch's mean is the other's target and its own step's sign: one reduction
        real_mean = batch_mean(real_logits, cross_replica_sum)
        fake_mean = batch_mean(fake_logits, cross_replica_sum)
        if options.attacks_real:
            real_out = batch_mean_step(real, real_logits, fake_mean[0], tape, mean=real_mean,
                                       **step)
        if options.attacks_fake:
            fake_out = batch_mean_step(fake, fake_logits, real_mean[0], tape, mean=fake_mean,
                                       **step)
    else:
        if options.attacks_real:
            real_out = _pgd(options, real, tape.gradient(real_term, real),
                            lambda x: loss.real_term(logits_fn(x)), clip_range)
        if options.attacks_fake:
            fake_out = _pgd(options, fake, tape.gradient(fake_term, fake),
                            lambda f: loss.fake_term(logits_fn(f)), clip_range)
    del tape
    return Examples(real_out, fake_out, real_logits, fake_logits, real_grad)


def _pgd(options, images, first_grad, loss_fn: Callable, clip_range):
    """DAT (pgd, ours): the L-infinity attack ascending ``loss_fn`` from ``images``."""
    return perturbations.pgd_perturbation(
        images, epsilon=options.epsilon, loss_fn=loss_fn, steps=options.steps,
        step_size=options.resolved_step_size, input_grad=first_grad, clip_range=clip_range)
