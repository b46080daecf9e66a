"""AdvAs, the Adversary's Assistant: a penalty in the *generator's* loss that
pushes G towards points where the current D is at its optimum.

Source: the first author's presentation of the IJCNN 2021 paper (GitHub
``ammunk/my-website``, ``presentations/advas/advas.html``, with its Algorithm 1 figure);
no code was published. With ``theta`` the generator's parameters and ``phi`` the
discriminator's:

- ``L_gen^AdvAs = L_gen + lambda * r`` with ``r = ||grad_phi L_adv||_2^2``, ``L_adv``
  D's loss on the current real and fake batches. ``r`` reaches ``theta`` by double
  back-propagation (through D's weight gradient, which depends on the fakes).
- ``r`` is estimated without bias as ``r~ = X . X'``, the dot product of two independent
  estimates of ``grad_phi L_adv``; here ``X`` from the first half of the real and fake
  batches and ``X'`` from the second half (:func:`penalty`, ``estimate="unbiased"``).
  The squared norm of one minibatch estimate (``estimate="biased"``) is too large by the
  minibatch variance of the gradient. ``r~`` can be negative.
- ``lambda`` is recomputed at every G step as
  ``min(1, ||grad_theta L_gen||_2 / ||grad_theta r~||_2)`` ("Removing the hyperparameter
  lambda" in the presentation; :func:`norm_ratio_weight`): the penalty's gradient is
  never larger than the generator's own.

The derivation takes ``L_gen = -L_adv`` (minimax or Wasserstein losses); the experiments
shown were WGAN-GP on MNIST and StyleGAN on CelebA. With the non-saturating generator
loss (this package's default) we apply the method by analogy: ``L_adv`` is the run's D
loss, ``L_gen`` the run's G loss (ours).

Ours: with ``weight="norm_ratio"``, :attr:`AdvAs.lam` multiplies the published weight
(1: as published); ``weight="fixed"`` (a constant ``lambda = lam``) and
``estimate="biased"`` are kept as named options.
"""

import dataclasses

import tensorflow as tf

from tf_asgan import errors, legacy

WEIGHTS = ("norm_ratio", "fixed")
ESTIMATES = ("unbiased", "biased")


@dataclasses.dataclass(frozen=True)
class AdvAs:
    """AdvAs options (see the module docstring).

    Attributes:
      lam: ``weight="norm_ratio"``: a multiplier of the published weight
        ``min(1, ||grad L_gen|| / ||grad r~||)`` (1: as published; ours otherwise).
        ``weight="fixed"``: the constant weight ``lambda``.
      weight: "norm_ratio" (published) or "fixed" (ours).
      estimate: "unbiased" (published: two half-batch gradient estimates) or "biased"
        (ours: the squared norm of one full-batch estimate).
    """

    lam: float = 1.0
    weight: str = "norm_ratio"
    estimate: str = "unbiased"

    def validate(self):
        """Returns ``self``; raises ``ValueError`` naming a bad field and its choices."""
        if not self.lam > 0:
            raise errors.InputError(f"AdvAs lambda must be > 0, got {self.lam} (leave AdvAs off "
                                    "instead of setting it to 0).")
        if self.weight not in WEIGHTS:
            removed = legacy.REMOVED_CHOICES["advas_weight"]
            extra = f" ({removed[self.weight]})" if self.weight in removed else ""
            raise errors.InputError(f"Unknown AdvAs weight {self.weight!r}; choose one of "
                                    f"{list(WEIGHTS)}{extra}.")
        if self.estimate not in ESTIMATES:
            raise errors.InputError(f"Unknown AdvAs estimate {self.estimate!r}; choose one of "
                                    f"{list(ESTIMATES)}.")
        return self


def loss_gradient(logits_fn, discriminator_loss, real, fake, d_variables):
    """``grad_phi L_D(real, fake)``: a list like ``d_variables`` (``None`` -> zeros).

    Computed on an inner tape, so an enclosing tape that records (the G tape) can
    differentiate the result again (double back-propagation).
    """
    with tf.GradientTape() as tape:
        loss = discriminator_loss(logits_fn(real), logits_fn(fake))
    grads = tape.gradient(loss, d_variables)
    return [tf.zeros_like(v) if g is None else tf.cast(g, tf.float32)
            for g, v in zip(grads, d_variables)]


def penalty(logits_fn, discriminator_loss, real, fake, d_variables, estimate="unbiased"):
    """The AdvAs penalty ``r ~ ||grad_phi L_D||_2^2`` at the current D.

    Args:
      logits_fn: ``images -> [n]`` float32 logits of the current D.
      discriminator_loss: ``(real_logits, fake_logits) -> L_D``, the run's D loss.
      real: ``[N, H, W, C]`` real images; ``fake``: ``[N, H, W, C]`` fakes (attached to
        G when the result is to be differentiated with respect to G).
      d_variables: D's trainable variables (``phi``).
      estimate: "unbiased": ``X . X'`` with ``X`` from the first ``N // 2`` reals and
        fakes and ``X'`` from the rest (needs ``N >= 2``); "biased": ``||X||^2`` with
        ``X`` from the whole batch.

    Returns:
      A float32 scalar (the unbiased estimate can be negative).

    Raises:
      ValueError: for an unknown ``estimate``, or a batch of fewer than 2 samples when
        the size is known while tracing (``InvalidArgumentError`` with the same message
        when it is known only when the step runs).
    """
    if estimate == "biased":
        grads = loss_gradient(logits_fn, discriminator_loss, real, fake, d_variables)
        return tf.add_n([tf.reduce_sum(tf.square(g)) for g in grads])
    if estimate != "unbiased":
        raise errors.InputError(f"Unknown AdvAs estimate {estimate!r}; choose one of "
                                f"{list(ESTIMATES)}.")
    n = real.shape[0]
    message = ("The unbiased AdvAs estimate needs at least 2 samples per replica (two "
               "halves); raise the batch size or use estimate='biased'.")
    if n is not None and n < 2:
        raise errors.InputError(f"{message} Got a batch of {n}.")
    checks = [] if n is not None else [
        tf.debugging.assert_greater_equal(tf.shape(real)[0], 2, message=message)]
    with tf.control_dependencies(checks):
        real = tf.identity(real)
    halves = []
    for images in (real, fake):
        size = tf.shape(images)[0]
        halves.append(tf.split(images, [size // 2, size - size // 2]))
    first = loss_gradient(logits_fn, discriminator_loss, halves[0][0], halves[1][0],
                          d_variables)
    second = loss_gradient(logits_fn, discriminator_loss, halves[0][1], halves[1][1],
                           d_variables)
    return tf.add_n([tf.reduce_sum(a * b) for a, b in zip(first, second)])


def global_norm(grads):
    """``sqrt(sum ||g||^2)`` over a list of gradients (``None`` entries count as zero)."""
    return tf.sqrt(tf.add_n([tf.reduce_sum(tf.square(tf.cast(g, tf.float32)))
                             for g in grads if g is not None]))


def norm_ratio_weight(generator_grads, penalty_grads, lam=1.0):
    """The published weight ``min(1, ||grad_theta L_gen|| / ||grad_theta r~||)`` times
    ``lam``.

    Args:
      generator_grads: ``grad_theta L_gen``, a list of tensors (the whole batch's: under
        several replicas, already summed over them).
      penalty_grads: ``grad_theta r~``, a list of the same structure.
      lam: :attr:`AdvAs.lam`, a multiplier (1: as published; ours).

    Returns:
      A float32 scalar in ``[0, lam]``, without gradient; ``lam`` when the penalty's
      gradient is zero.
    """
    g_norm = global_norm(generator_grads)
    p_norm = global_norm(penalty_grads)
    ratio = tf.math.divide_no_nan(g_norm, p_norm)
    weight = tf.where(p_norm > 0, tf.minimum(1.0, ratio), 1.0)
    return tf.stop_gradient(lam * weight)


def generator_gradients(options, tape, loss, logits_fn, gan_loss, real, fake, d_variables,
                        variables, *, replicas=1, cross_replica_sum=None):
    """G's AdvAs gradient ``grad_theta (L_gen + lambda * r~)``, ``r~`` and ``lambda``.

    Args:
      options: an :class:`AdvAs`.
      tape: the G tape that recorded ``fake`` and ``loss`` (persistent for
        ``weight="norm_ratio"``, which takes the two parts' gradients separately);
        the penalty is recorded on it here.
      loss: ``L_gen`` on this replica's fakes.
      logits_fn, real, fake, d_variables: as in :func:`penalty`; ``gan_loss``: the run's
        :class:`tf_asgan.losses.GANLoss` (its D loss is ``L_adv``).
      variables: G's trainable variables (``theta``).
      replicas: replicas in sync; each part is divided by it (Keras sums the replicas'
        gradients).
      cross_replica_sum: ``v -> sum over replicas`` (``None``: one replica). The
        norm-ratio weight is computed from the whole batch's gradients.

    Returns:
      ``(grads, r~, lambda)``: a list like ``variables``, the penalty and the weight used
      (the fixed one, or :func:`norm_ratio_weight`), float32 scalars.
    """
    with tape:
        penalty_value = penalty(logits_fn, gan_loss.discriminator, real, fake, d_variables,
                                options.estimate)
    lam = tf.constant(options.lam, tf.float32)
    if options.weight == "fixed":
        with tape:
            total = (loss + lam * penalty_value) / replicas
        return tape.gradient(total, variables), penalty_value, lam
    with tape:
        g_part, p_part = loss / replicas, penalty_value / replicas
    g_grads = tape.gradient(g_part, variables)
    p_grads = tape.gradient(p_part, variables)
    p_grads = [tf.zeros_like(g) if p is None else p for g, p in zip(g_grads, p_grads)]
    total = cross_replica_sum or (lambda v: v)
    lam = norm_ratio_weight(total(g_grads), total(p_grads), options.lam)
    return [g + lam * p for g, p in zip(g_grads, p_grads)], penalty_value, lam
