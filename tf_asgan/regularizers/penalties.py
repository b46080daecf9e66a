"""Gradient penalties of D: WGAN-GP and R1, as pure functions of a logits function.

Each takes ``d_logits_fn``, ``images -> [N]`` logits of the current D (what
:class:`tf_asgan.ASGAN` passes is its ``_logits``, D in training mode, float32
whatever D's compute dtype), and returns the *per-sample* penalty, a float32 ``[N]``
whose batch mean is the term added to D's loss. Its units are those of the squared
input gradient of a logit, images in model-input units ([-1, 1]).

- WGAN-GP (Gulrajani et al. 2017, "Improved Training of Wasserstein GANs", Algorithm 1,
  lines 4-7): ``x_hat = alpha * x + (1 - alpha) * G(z)`` with ``alpha ~ U[0, 1]`` drawn
  per sample, and the penalty ``lambda * (||grad_x_hat D(x_hat)||_2 - 1)^2``,
  ``lambda = 10`` in every experiment of the paper. Checked against the authors' code
  (``igul222/improved_wgan_training``, ``gan_mnist.py`` and ``gan_cifar_resnet.py``:
  ``alpha`` of shape ``[BATCH_SIZE, 1]`` on flattened images,
  ``slopes = sqrt(sum(square(gradients)))`` per sample, ``LAMBDA * mean((slopes - 1)^2)``
  added to the critic's cost; the code writes ``x_hat = x + alpha * (G(z) - x)``, the
  same distribution of ``x_hat`` as Algorithm 1's form, which we follow).
- R1 (Mescheder et al. 2018, "Which Training Methods for GANs do actually Converge?",
  eq. 9): ``R1 = gamma / 2 * E_x~p_data[||grad_x D(x)||^2]`` on the real batch only.
  Checked against stylegan2-ada-pytorch (``training/loss.py``: ``r1_grads`` of
  ``real_logits.sum()``, ``r1_penalty = r1_grads.square().sum([1,2,3])``,
  ``loss_Dr1 = r1_penalty * (r1_gamma / 2)``, ``r1_gamma=10`` by default) and the
  authors' ``LMescheder/GAN_stability`` (``gan_training/train.py``,
  ``compute_grad2``; note that it multiplies ``||grad||^2`` by ``reg_param`` without
  the 1/2 of eq. 9, so its default ``reg_param: 10`` is ``gamma = 20`` in eq. 9's
  terms; we follow eq. 9).
- Lazy regularisation (Karras et al. 2020, "Analyzing and Improving the Image Quality
  of StyleGAN", sec. 3.1; stylegan2-ada-pytorch ``training/training_loop.py``, the
  ``Dreg`` phase with ``interval=reg_interval``, and ``loss.py``, whose ``gain`` is that
  interval): the penalty is computed on one D update in ``every`` and multiplied by
  ``every``. :func:`lazy_term`.

The input gradient is that of ``sum_i d(x_i)``, i.e. each sample's own
``grad_x d(x_i)`` for a D without batch statistics (the sum, as in both reference
codes, not the mean: no ``1/N`` that would shrink it). It is taken on a tape of its own
inside the caller's tape, so the caller can differentiate the penalty with respect to
D's weights (double back-propagation). No gradient flows into ``reals``, ``fakes`` or
``alpha``: the penalty is a function of D's weights only.

Mixed precision: with ``mixed_float16`` the gradient is formed in D's compute dtype,
without loss scaling, and cast to float32 before the norms. It needs none: it is the
gradient of a sum of logits (per sample, not divided by the batch), as large as D's
per-sample input gradient that :mod:`tf_asgan.perturbations` also takes unscaled. The
penalty's own gradient with respect to D's weights is loss-scaled with ``L_D``, of which
the caller makes it a part.

What is ours: the ``1e-12`` inside WGAN-GP's square root (the authors' code has none),
so that a zero gradient gives a penalty of ``lambda`` and a zero weight gradient
instead of NaN; lazy WGAN-GP (StyleGAN2 applies laziness to R1); the lazy term added
to the D update of the step it falls on (StyleGAN2 runs it as an optimizer step of its
own with Adam's learning rate and betas adjusted by ``k / (k + 1)``).
"""

import dataclasses
from typing import Optional

import keras
import tensorflow as tf

from tf_asgan import errors, randomness
from tf_asgan.utils import options

KINDS = ("wgan_gp", "r1")
OFF = "none"
# The papers' weights: WGAN-GP's lambda (Gulrajani et al. 2017, all experiments) and
# R1's gamma (stylegan2-ada-pytorch's StyleGAN2Loss default, applied as gamma / 2).
DEFAULT_WEIGHTS = {"wgan_gp": 10.0, "r1": 10.0}
# Ours: keeps the square root's gradient finite at a zero input gradient.
NORM_EPSILON = 1e-12


def input_gradients(d_logits_fn, images):
    """``grad_x d(x_i)`` of every sample: float32, the shape of ``images`` ``[N, ...]``.

    The gradient of ``sum_i d(x_i)`` (module docstring); a D whose output does not
    depend on ``images`` gives zeros.
    """
    images = tf.stop_gradient(tf.convert_to_tensor(images))
    with tf.GradientTape(watch_accessed_variables=False) as tape:
        tape.watch(images)
        total = tf.reduce_sum(tf.cast(d_logits_fn(images), tf.float32))
    grad = tape.gradient(total, images)
    return tf.zeros_like(images, tf.float32) if grad is None else tf.cast(grad, tf.float32)


def _squared_norms(grad):
    """``||g_i||_2^2`` per sample of ``grad`` ``[N, ...]`` -> ``[N]``."""
    return tf.reduce_sum(tf.reshape(tf.square(grad), [tf.shape(grad)[0], -1]), axis=1)


def interpolates(reals, fakes, alpha):
    """WGAN-GP's ``x_hat = alpha * x + (1 - alpha) * G(z)``, the dtype of ``reals``.

    Args:
      reals, fakes: ``[N, H, W, C]`` (any rank >= 1, the same shape).
      alpha: a scalar, or ``[N]`` (one per sample), in [0, 1].

    Raises:
      InputError: shapes that differ, when known while tracing.
    """
    reals = tf.convert_to_tensor(reals)
    fakes = tf.cast(fakes, reals.dtype)
    if reals.shape.is_fully_defined() and fakes.shape.is_fully_defined() \
            and reals.shape != fakes.shape:
        raise errors.InputError(f"WGAN-GP interpolates reals and fakes of one shape; got "
                                f"{reals.shape} and {fakes.shape}.")
    alpha = tf.cast(alpha, reals.dtype)
    if alpha.shape.rank == 1:
        alpha = tf.reshape(alpha, [-1] + [1] * (reals.shape.rank - 1))
    return tf.stop_gradient(alpha * reals + (1.0 - alpha) * fakes)


def draw_alpha(n, seed=None):
    """WGAN-GP's ``alpha ~ U[0, 1)``, one per sample: float32 ``[n]``, stateless from
    ``seed`` (an int ``[2]``, e.g. ``randomness.draw_seed(key, "gp_alpha", i)``) or from
    TensorFlow's global generator when ``seed`` is ``None``."""
    return randomness.uniform([n], 0.0, 1.0, seed=seed)


def wgan_gp(d_logits_fn, reals, fakes, alpha, weight=DEFAULT_WEIGHTS["wgan_gp"]):
    """WGAN-GP's penalty per sample, ``weight * (||grad_x_hat d(x_hat_i)||_2 - 1)^2``.

    Args:
      d_logits_fn: ``images -> [N]`` logits of the current D.
      reals, fakes: ``[N, H, W, C]`` in model-input units.
      alpha: ``[N]`` per-sample weights in [0, 1] (:func:`draw_alpha`) or a scalar.
      weight: ``lambda`` (the paper's 10).

    Returns:
      float32 ``[N]``, >= 0; its mean is the term of the critic's loss.
    """
    grad = input_gradients(d_logits_fn, interpolates(reals, fakes, alpha))
    slopes = tf.sqrt(_squared_norms(grad) + NORM_EPSILON)
    return tf.cast(weight, tf.float32) * tf.square(slopes - 1.0)


def r1(d_logits_fn, reals, gamma=DEFAULT_WEIGHTS["r1"]):
    """R1 per sample, ``gamma / 2 * ||grad_x d(x_i)||_2^2`` (eq. 9 of Mescheder et al.).

    Args:
      d_logits_fn: ``images -> [N]`` logits of the current D.
      reals: ``[N, H, W, C]`` real images in model-input units.
      gamma: the weight (default 10, see :data:`DEFAULT_WEIGHTS`).

    Returns:
      float32 ``[N]``, >= 0; its mean is the term of D's loss.
    """
    grad = input_gradients(d_logits_fn, reals)
    return tf.cast(gamma, tf.float32) / 2.0 * _squared_norms(grad)


def lazy_term(penalty_fn, update, every):
    """Lazy regularisation: ``penalty_fn()`` on the D updates whose index ``update`` is a
    multiple of ``every``, multiplied by ``every`` (StyleGAN2; module docstring).

    Args:
      penalty_fn: ``() -> scalar`` penalty (the batch mean); called only when due.
      update: the D update's index in the run (int scalar tensor, 0-based).
      every: ``k >= 1`` (1: every update, no condition in the graph).

    Returns:
      ``(term, value, due)``: what to add to D's loss (``every * value``, or 0), the
      penalty itself (0 when not computed) and 1.0 / 0.0, whether it was computed
      (float32 scalars).
    """
    if every == 1:
        value = tf.cast(penalty_fn(), tf.float32)
        return value, value, tf.constant(1.0)
    due = tf.equal(tf.math.floormod(tf.cast(update, tf.int64), int(every)), 0)
    value = tf.cond(due, lambda: tf.cast(penalty_fn(), tf.float32), lambda: tf.constant(0.0))
    return float(every) * value, value, tf.cast(due, tf.float32)


@dataclasses.dataclass(frozen=True)
class GradientPenalty:
    """A gradient penalty of D's loss (see the module docstring).

    Attributes:
      kind: "wgan_gp" or "r1".
      weight: WGAN-GP's ``lambda`` or R1's ``gamma``; ``None``: the paper's
        (:data:`DEFAULT_WEIGHTS`, 10 for both).
      every: lazy regularisation, the penalty on one D update in ``every`` (scaled by
        ``every``); 1: on every D update.
    """

    kind: str = "wgan_gp"
    weight: Optional[float] = None
    every: int = 1

    def validate(self):
        """Returns ``self``; raises :class:`~tf_asgan.errors.InputError` naming a bad field."""
        if self.kind not in KINDS:
            raise errors.InputError(f"Unknown gradient penalty {self.kind!r}; choose one of "
                                    f"{list(KINDS)} (or none / gradient_penalty=None).")
        if self.weight is not None and not self.weight > 0:
            raise errors.InputError(f"The {self.kind} weight must be > 0 (None: the paper's "
                                    f"{DEFAULT_WEIGHTS[self.kind]:g}), got {self.weight}.")
        if int(self.every) != self.every or self.every < 1:
            raise errors.InputError(f"The gradient penalty's every (lazy interval) must be an "
                                    f"integer >= 1 (1: every D update), got {self.every!r}.")
        return self

    @property
    def resolved_weight(self):
        """The weight used: ``weight``, or the paper's when ``None``."""
        return DEFAULT_WEIGHTS[self.kind] if self.weight is None else float(self.weight)

    def mean(self, d_logits_fn, reals, fakes=None, seed=None):
        """The batch mean of the per-sample penalty (float32 scalar). WGAN-GP draws its
        ``alpha`` from ``seed`` (:func:`draw_alpha`) and needs ``fakes``; R1 ignores both."""
        if self.kind == "r1":
            return tf.reduce_mean(r1(d_logits_fn, reals, self.resolved_weight))
        if fakes is None:
            raise errors.InputError("WGAN-GP needs the fake batch to interpolate with.")
        alpha = draw_alpha(tf.shape(reals)[0], seed)
        return tf.reduce_mean(wgan_gp(d_logits_fn, reals, fakes, alpha, self.resolved_weight))

    def term(self, d_logits_fn, reals, fakes, *, update, seed=None):
        """:func:`lazy_term` of :meth:`mean`: ``(term, value, due)`` of D update ``update``."""
        return lazy_term(lambda: self.mean(d_logits_fn, reals, fakes, seed), update,
                         int(self.every))


def as_penalty(value):
    """``None``, ``"none"``, a kind name, a dict of :class:`GradientPenalty`'s fields or a
    :class:`GradientPenalty` -> ``None`` or a validated :class:`GradientPenalty`
    (:func:`tf_asgan.utils.options.as_option`).

    Raises:
      InputError: unknown dict keys (naming the fields), another type, or a bad field.
    """
    return options.as_option(value, GradientPenalty, what="gradient penalty",
                             argument="gradient_penalty",
                             public="tf_asgan.regularizers.GradientPenalty",
                             name_field="kind", names=KINDS, off=OFF)


def batch_norm_layers(model):
    """The names of the ``BatchNormalization`` layers in ``model`` and in the models it
    nests (``.layers``, recursively)."""
    names = []
    for layer in getattr(model, "layers", ()):
        if isinstance(layer, keras.layers.BatchNormalization):
            names.append(layer.name)
        names += batch_norm_layers(layer)
    return names


def check_discriminator(discriminator, penalty):
    """Refuses a gradient penalty on a D with batch normalisation.

    Both penalties are defined per sample (``grad_x D(x_i)``); batch normalisation in
    training mode makes each logit a function of the whole batch, so the penalised
    gradient is no longer that of ``D(x_i)``. Gulrajani et al. (sec. 4) say so and drop
    batch normalisation from the critic (layer normalisation or none); the R1 code bases
    cited above have none in D either.

    Raises:
      InputError: ``penalty`` set and ``discriminator`` has batch normalisation layers.
    """
    if penalty is None:
        return
    found = batch_norm_layers(discriminator)
    if found:
        more = ", ..." if len(found) > 3 else ""
        raise batch_norm_error(penalty.kind, f" ({', '.join(found[:3])}{more})")


def batch_norm_error(kind, layers=""):
    """The :class:`~tf_asgan.errors.InputError` of penalty ``kind`` on a D with batch
    normalisation (``layers``: the names, as text, or empty)."""
    return errors.InputError(
        f"The {kind} gradient penalty is per sample, but the discriminator has batch "
        f"normalisation{layers}, which mixes the samples of a batch (Gulrajani et al. 2017, "
        "sec. 4). Build D without it (--nobn_d; batch_norm=False) or drop the penalty.")
