"""The seeds' sibling methods, as options of :class:`tf_asgan.ASGAN`: DAT and AdvAs.

**DAT** (Direct Adversarial Training; seed 002): D is trained on adversarial examples
of both the real and the generated batch.

- ``variant="authors"`` (the authors' code): the real batch is pushed towards the fake
  batch's mean logit and the fake batch towards the real batch's, one gradient step
  each on the squared distance ``(d(x') - t)^2``, every element of the step clipped to
  +-1: ``x' = x - clip(step_size * grad_x (d(x) - t)^2, -1, 1)`` with ``t`` the other
  batch's mean logit (held fixed). We then clip ``x'`` to the image range [-1, 1], as
  for every perturbation in this package.
- ``variant="pgd"``: the L-infinity iterative attack of :mod:`tf_asgan.perturbations`
  (``epsilon``, ``steps``, ``step_size`` in model-input units), maximising D's loss:
  on the reals its real term, on the fakes its fake term.

``loss="replace"`` (the authors') trains D on ``L_D(x', G(z)')`` instead of the clean
loss; ``loss="add"`` on ``L_D(x, G(z)) + L_D(x', G(z)')``. ``side`` limits the attack to
``"real"`` or ``"fake"`` samples (``"both"``: the method as published). With AS-GAN
(``adversarial=True``), only ``side="fake"`` is allowed: AS-GAN attacks the reals.

**AdvAs** (the Adversary's Assistant; seed 003): the generator loss gains
``lambda * ||grad_theta L_D(x, G(z))||^2``, the squared norm of the gradient of D's loss
with respect to D's parameters at the current D, on the step's last real batch and
fake batch; its gradient reaches G by double back-propagation. ``scale="fixed"`` uses
``lambda`` as given; ``scale="relative"`` rescales it every step so that the penalty's
gradient has ``lambda`` times the norm of the generator loss's own gradient (an option
the AdvAs authors describe; unverified against their code, see PAPER.md).
"""

import dataclasses

import tensorflow as tf

from tf_asgan import perturbations

DAT_VARIANTS = ("authors", "pgd")
DAT_SIDES = ("both", "real", "fake")
DAT_LOSSES = ("replace", "add")
ADVAS_SCALES = ("fixed", "relative")


@dataclasses.dataclass(frozen=True)
class DAT:
    """Direct Adversarial Training options (see the module docstring).

    Attributes:
      variant: "authors" or "pgd".
      side: "both", "real" or "fake": which samples are attacked.
      loss: "replace" (the clean D loss is replaced) or "add".
      step_size: authors: the multiplier of the gradient step (1: the authors');
        pgd: the step size in model-input units (0: ``2.5 * epsilon / steps``).
      epsilon: pgd: the L-infinity radius in model-input units (images in [-1, 1]).
      steps: pgd: the number of iterations.
    """

    variant: str = "authors"
    side: str = "both"
    loss: str = "replace"
    step_size: float = 1.0
    epsilon: float = 2 / 255
    steps: int = 3

    def validate(self):
        for name, value, allowed in (("variant", self.variant, DAT_VARIANTS),
                                     ("side", self.side, DAT_SIDES),
                                     ("loss", self.loss, DAT_LOSSES)):
            if value not in allowed:
                raise ValueError(f"Unknown DAT {name} {value!r}; choose one of {list(allowed)}.")
        if self.variant == "pgd":
            if not 0 < self.epsilon <= 2:
                raise ValueError(f"DAT pgd epsilon must lie in (0, 2] (model-input units), "
                                 f"got {self.epsilon}.")
            if self.steps < 1:
                raise ValueError(f"DAT pgd steps must be >= 1, got {self.steps}.")
        if self.step_size < 0 or (self.variant == "authors" and self.step_size == 0):
            raise ValueError(f"DAT step_size must be > 0, got {self.step_size}.")
        return self

    @property
    def attacks_real(self):
        return self.side in ("both", "real")

    @property
    def attacks_fake(self):
        return self.side in ("both", "fake")


@dataclasses.dataclass(frozen=True)
class AdvAs:
    """AdvAs options: ``lam`` (lambda > 0) and ``scale`` ("fixed" or "relative")."""

    lam: float = 1.0
    scale: str = "fixed"

    def validate(self):
        if not self.lam > 0:
            raise ValueError(f"AdvAs lambda must be > 0, got {self.lam} (leave AdvAs off "
                             "instead of setting it to 0).")
        if self.scale not in ADVAS_SCALES:
            raise ValueError(f"Unknown AdvAs scale {self.scale!r}; choose one of "
                             f"{list(ADVAS_SCALES)}.")
        return self


def check_combination(adversarial, dat):
    """Rejects DAT attacking the reals together with AS-GAN (which attacks them already)."""
    if dat is not None and adversarial and dat.attacks_real:
        raise ValueError(
            f"DAT with side={dat.side!r} attacks the real batch, which AS-GAN "
            "(adversarial=True) already does. Combine them with DAT side='fake' (AS-GAN on "
            "the reals, DAT on the fakes), or use DAT alone with adversarial=False.")


def clipped_step(x, grad, step_size=1.0, clip_range=(-1.0, 1.0)):
    """``clip(x - clip(step_size * grad, -1, 1), range)``: DAT's (authors') step."""
    out = x - tf.clip_by_value(step_size * grad, -1.0, 1.0)
    if clip_range is not None:
        out = tf.clip_by_value(out, clip_range[0], clip_range[1])
    return tf.stop_gradient(out)


def towards_logit(x, logits_fn, target, step_size=1.0, clip_range=(-1.0, 1.0)):
    """DAT (authors): one gradient step of ``x`` towards the logit ``target``.

    ``x' = clip(x - clip(step_size * grad_x sum_i (d(x_i) - target)^2, -1, 1), range)``;
    the sum makes each sample's step its own gradient (not divided by the batch size).
    ``target`` is held fixed (no gradient flows into it).
    """
    target = tf.stop_gradient(tf.cast(target, tf.float32))
    with tf.GradientTape() as tape:
        tape.watch(x)
        distance = tf.reduce_sum(tf.square(logits_fn(x) - target))
    return clipped_step(x, tape.gradient(distance, x), step_size, clip_range)


def dat_pgd(x, loss_fn, epsilon, steps, step_size=0.0, input_grad=None):
    """DAT (pgd): the L-infinity attack maximising ``loss_fn`` (a term of D's loss)."""
    return perturbations.pgd_perturbation(x, epsilon=epsilon, loss_fn=loss_fn, steps=steps,
                                          step_size=step_size or None, input_grad=input_grad)


def squared_grad_norm(grads):
    """``sum ||g||^2`` over a list of gradients (``None`` entries count as zero)."""
    return tf.add_n([tf.reduce_sum(tf.square(tf.cast(g, tf.float32)))
                     for g in grads if g is not None])


def global_norm(grads):
    return tf.sqrt(squared_grad_norm(grads))
