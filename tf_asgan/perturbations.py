"""Perturbations of real images for AS-GAN's second discriminator update.

Each is a pure function with the signature
``fn(x, *, epsilon, input_grad, loss_fn, clip_range, **options) -> x_hat`` where

- ``x``: real images ``[N, H, W, C]`` in model-input units (``[-1, 1]``);
- ``epsilon``: L-infinity radius in the same units (scalar; a tensor is fine);
- ``input_grad``: ``grad_x L_D`` at ``x``, or ``None`` for perturbations that do not
  use it (the AS-GAN step takes it from the backward pass of its first D update);
- ``loss_fn``: ``x -> L_D`` on real images at the current discriminator, for
  attacks that need fresh gradients (the iterative one);
- ``clip_range``: the valid input range, ``(-1, 1)`` by default. Clipping ``x_hat``
  back into it is ours: the paper's Eq. 13 is ``x + eps * sign(grad)`` alone;
- ``seed``: for the random ones, an int ``[2]`` stateless seed
  (:mod:`tf_asgan.randomness`; the train step passes one derived from the run seed and
  the step), or ``None`` to draw from TensorFlow's global generator.

Every function accepts all of these (a perturbation ignores the ones it does not need)
and, beyond them, only its own options (pgd: ``steps``, ``step_size``,
``random_start``). :attr:`Perturbation.options` lists what a caller may set besides the
interface arguments; :func:`check_options` refuses anything else before any graph is
built, so a misspelt option is an error rather than a silent default.

The result is ``stop_gradient``-ed: the discriminator is trained on ``x_hat`` as data.
A new perturbation is a function plus a :data:`PERTURBATIONS` entry.
:func:`attack` applies a registered perturbation to a loss when no gradient is at hand.
"""

import dataclasses
import inspect
import numbers
from typing import Callable

import tensorflow as tf

from tf_asgan import errors, randomness

DEFAULT_CLIP = (-1.0, 1.0)


def _clip(x, clip_range):
    lo, hi = clip_range
    return tf.clip_by_value(x, lo, hi)


def fgsm_perturbation(x, *, epsilon, input_grad, loss_fn=None, clip_range=DEFAULT_CLIP,
                      seed=None):
    """FGSM on reals: AS-GAN's Eq. 13, ``x + eps * sign(grad_x L_D)``, then (ours, not
    part of Eq. 13) clipped to ``clip_range``.

    Ascending ``L_D = -V_m`` lowers D's confidence that ``x`` is real. ``loss_fn`` and
    ``seed`` are accepted for the common interface and not used.
    """
    del loss_fn, seed
    if input_grad is None:
        raise errors.InputError("fgsm_perturbation needs input_grad (grad_x L_D at x).")
    x_hat = x + tf.cast(epsilon, x.dtype) * tf.sign(tf.cast(input_grad, x.dtype))
    return tf.stop_gradient(_clip(x_hat, clip_range))


def gaussian_perturbation(x, *, epsilon, input_grad=None, loss_fn=None,
                          clip_range=DEFAULT_CLIP, seed=None):
    """The paper's ablation (Fig. 3): ``x + eps * sign(n)``, ``n ~ N(0, I)`` (drawn from
    ``seed``, see the module docstring), clipped to ``clip_range`` (ours)."""
    del input_grad, loss_fn
    noise = randomness.normal(tf.shape(x), seed=seed, dtype=x.dtype)
    x_hat = x + tf.cast(epsilon, x.dtype) * tf.sign(noise)
    return tf.stop_gradient(_clip(x_hat, clip_range))


def no_perturbation(x, *, epsilon=None, input_grad=None, loss_fn=None,
                    clip_range=DEFAULT_CLIP, seed=None):
    """``x_hat = x`` (eps = 0): the second D update sees the same real batch again (the
    interface arguments are accepted and ignored)."""
    del epsilon, input_grad, loss_fn, clip_range, seed
    return tf.stop_gradient(tf.identity(x))


def pgd_perturbation(x, *, epsilon, loss_fn, input_grad=None, clip_range=DEFAULT_CLIP,
                     steps=7, step_size=None, random_start=False, seed=None):
    """Iterative L-infinity attack: BIM (Kurakin et al. 2017), PGD with ``random_start``.

    ``x_{t+1} = clip(proj_eps(x_t + alpha * sign(grad L_D(x_t))))`` for ``steps``
    steps, ``proj_eps`` projecting onto ``[x - eps, x + eps]`` and ``clip`` onto
    ``clip_range``. ``alpha = step_size`` (default ``2.5 * eps / steps``, Madry et
    al. 2018). ``random_start`` starts from ``x + U(-eps, eps)`` (drawn from ``seed``,
    see the module docstring). Without a random
    start, a given ``input_grad`` serves the first step and saves one D pass.
    Every other step costs one D forward and backward pass through ``loss_fn``.
    """
    if steps < 1:
        raise errors.InputError(f"pgd steps must be >= 1, got {steps}.")
    if isinstance(step_size, numbers.Real) and not step_size > 0:
        raise errors.InputError(f"pgd step_size must be > 0 (None: 2.5 * epsilon / steps), got "
                                f"{step_size}; a negative step would descend D's loss.")
    eps = tf.cast(epsilon, x.dtype)
    alpha = eps * 2.5 / steps if step_size is None else tf.cast(step_size, x.dtype)
    lower, upper = x - eps, x + eps

    def step(x_t, grad):
        x_next = tf.clip_by_value(x_t + alpha * tf.sign(grad), lower, upper)
        return tf.stop_gradient(_clip(x_next, clip_range))

    def gradient(x_t):
        with tf.GradientTape() as tape:
            tape.watch(x_t)
            loss = loss_fn(x_t)
        return tape.gradient(loss, x_t)

    if random_start:
        x_t = x + randomness.uniform(tf.shape(x), -1.0, 1.0, seed=seed, dtype=x.dtype) * eps
        x_t = tf.stop_gradient(_clip(x_t, clip_range))
        first = gradient(x_t)
    else:
        x_t = x
        first = gradient(x_t) if input_grad is None else tf.cast(input_grad, x.dtype)
    x_t = step(x_t, first)
    for _ in range(steps - 1):
        x_t = step(x_t, gradient(x_t))
    return x_t


# What every caller passes (or leaves at its default) in the common interface: not an
# option a user sets through perturbation_kwargs.
INTERFACE = ("epsilon", "input_grad", "loss_fn", "seed")


@dataclasses.dataclass(frozen=True)
class Perturbation:
    """A registry entry: the function and whether it consumes ``grad_x L_D``."""

    name: str
    fn: Callable[..., tf.Tensor]
    uses_input_grad: bool

    @property
    def options(self):
        """The keyword arguments a caller may set besides :data:`INTERFACE` (e.g.
        ``perturbation_kwargs``), read from the function's signature, in its order."""
        return tuple(name for name, p in inspect.signature(self.fn).parameters.items()
                     if p.kind == p.KEYWORD_ONLY and name not in INTERFACE)


PERTURBATIONS = {
    "fgsm": Perturbation("fgsm", fgsm_perturbation, True),
    "gaussian": Perturbation("gaussian", gaussian_perturbation, False),
    "none": Perturbation("none", no_perturbation, False),
    "pgd": Perturbation("pgd", pgd_perturbation, True),
}


def get(name):
    """Returns the :class:`Perturbation` registered under ``name``."""
    if isinstance(name, Perturbation):
        return name
    if name not in PERTURBATIONS:
        raise errors.InputError(
            f"Unknown perturbation {name!r}; choose one of {sorted(PERTURBATIONS)} "
            "(or perturbation=None / adversarial=False for the baseline GAN).")
    return PERTURBATIONS[name]


def check_options(perturbation, options):
    """``dict(options)`` when every key is one of ``perturbation``'s
    :attr:`~Perturbation.options` (``perturbation``: a name or :class:`Perturbation`).

    Raises:
      InputError: an unknown perturbation, or keys it does not take (named, with the
        keys it does take).
    """
    perturbation = get(perturbation)
    options = dict(options or {})
    parameters = inspect.signature(perturbation.fn).parameters.values()
    if any(p.kind == p.VAR_KEYWORD for p in parameters):
        return options  # a function of the caller's own that takes any keyword
    unknown = sorted(set(options) - set(perturbation.options))
    if unknown:
        valid = ", ".join(perturbation.options) or "none"
        raise errors.InputError(
            f"Unknown option(s) {unknown} for perturbation {perturbation.name!r}; its "
            f"options are: {valid}.")
    return options


def input_gradient(loss_fn, x):
    """``grad_x loss_fn(x)``, the same shape as ``x`` (``loss_fn``: ``x -> scalar``)."""
    x = tf.convert_to_tensor(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = loss_fn(x)
    return tape.gradient(loss, x)


def attack(perturbation, x, loss_fn, *, epsilon, input_grad=None, seed=None, **options):
    """``x_hat``: the perturbation ``perturbation`` (a name or :class:`Perturbation`) of
    ``x`` against ``loss_fn``, computing ``grad_x loss_fn(x)`` when the perturbation uses
    it and ``input_grad`` is not given. The one entry point for attacks on D outside the
    train step (:mod:`tf_asgan.analysis.attacks`).

    Args:
      x: images ``[N, H, W, C]`` in model-input units.
      loss_fn: ``x -> scalar`` loss the attack increases (e.g. the real term of ``L_D``).
      epsilon: L-infinity radius in model-input units.
      seed: the stateless seed of a random perturbation's draws (module docstring).
      **options: the perturbation's own options (pgd: ``steps``, ``step_size`` ...),
        checked by :func:`check_options`.
    """
    perturbation = get(perturbation)
    options = check_options(perturbation, options)
    x = tf.convert_to_tensor(x)
    if perturbation.uses_input_grad and input_grad is None:
        input_grad = input_gradient(loss_fn, x)
    return perturbation.fn(x, epsilon=epsilon, input_grad=input_grad, loss_fn=loss_fn,
                           seed=seed, **options)
