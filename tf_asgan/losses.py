"""GAN losses as pure functions of discriminator logits, selected by name.

Every discriminator loss takes ``(real_logits, fake_logits=None)`` and returns a
scalar; with ``fake_logits=None`` it returns only the term on real samples, with
``real_logits=None`` only the term on generated ones. A
:class:`GANLoss` also names the two terms of its discriminator loss separately,
``real_term(real_logits)`` and ``fake_term(fake_logits)``, whose sum is the whole loss:
the "real only" reading of AS-GAN's second discriminator update and the attacks on D
use them. Every generator loss takes ``fake_logits``. Logits have any shape (``[N]``
or ``[N, 1]``); losses average over all elements. The arithmetic is TF-GAN's
(``tensorflow_gan.python.losses.losses_impl``, imported through :mod:`tf_asgan.utils._tfgan`),
called with no label smoothing and no loss collection.

Notation: ``d(x)`` is a logit, ``D(x) = sigmoid(d(x))``.
"""

import dataclasses
from typing import Callable, Optional

import tensorflow as tf

from tf_asgan import errors
from tf_asgan.utils import _tfgan

_L = _tfgan.losses_impl()
# TF-GAN defaults to a TF1 loss collection and, for the minimax D loss, to 0.25 label
# smoothing; neither belongs in a TF2 train step.
_COMMON = dict(loss_collection=None, add_summaries=False)


def _weighted(real_logits, fake_logits):
    """``dict`` of TF-GAN's arguments for the terms present: an absent side (``None``)
    gets zero logits of the other's shape and weight 0, so its term is exactly 0."""
    if real_logits is None and fake_logits is None:
        raise errors.InputError("A discriminator loss needs real_logits, fake_logits or both.")
    real_weight, fake_weight = float(real_logits is not None), float(fake_logits is not None)
    if real_logits is None:
        real_logits = tf.zeros_like(fake_logits)
    if fake_logits is None:
        fake_logits = tf.zeros_like(real_logits)
    return dict(real_weights=real_weight, generated_weights=fake_weight,
                **{"discriminator_real_outputs": real_logits,
                   "discriminator_gen_outputs": fake_logits})


def minimax_discriminator_loss(real_logits, fake_logits=None):
    """Goodfellow et al. (2014) D loss, ``-V_m`` of AS-GAN Eq. 5.

    ``L_D = mean softplus(-d(x)) + mean softplus(d(G(z)))
          = -mean log D(x) - mean log(1 - D(G(z)))``.
    Shared by the minimax and the non-saturating GAN: only G's loss differs.
    """
    return _L.minimax_discriminator_loss(label_smoothing=0.0,
                                         **_weighted(real_logits, fake_logits), **_COMMON)


def non_saturating_generator_loss(fake_logits):
    """Non-saturating G loss (AS-GAN section 4): ``mean softplus(-d(G(z)))``."""
    return _L.modified_generator_loss(fake_logits, label_smoothing=0.0, **_COMMON)


def minimax_generator_loss(fake_logits):
    """Minimax G loss: ``mean log(1 - D(G(z))) = -mean softplus(d(G(z)))``.

    TF-GAN's ``minimax_generator_loss`` feeds a logit of 1 as the "real" output and so
    adds the constant ``-log(1 + e^-1)`` to this value (same gradient, wrong value in
    the logs); we negate the fake term of its D loss instead.
    """
    return -_L.minimax_discriminator_loss(
        tf.zeros_like(fake_logits), fake_logits, label_smoothing=0.0,
        real_weights=0.0, **_COMMON)


def hinge_discriminator_loss(real_logits, fake_logits=None):
    """Hinge D loss (Lim & Ye 2017; Miyato et al. 2018).

    ``L_D = mean relu(1 - d(x)) + mean relu(1 + d(G(z)))``.
    """
    return _L.wasserstein_hinge_discriminator_loss(**_weighted(real_logits, fake_logits),
                                                   **_COMMON)


def wasserstein_discriminator_loss(real_logits, fake_logits=None):
    """Wasserstein critic loss (Arjovsky et al. 2017): ``mean d(G(z)) - mean d(x)``.

    No Lipschitz constraint is applied here; add one to D's loss
    (``ASGAN(gradient_penalty="wgan_gp")``, :mod:`tf_asgan.regularizers.penalties`) or
    to its layers (spectral normalization, :mod:`tf_asgan.regularizers.spectral_norm`).
    """
    return _L.wasserstein_discriminator_loss(**_weighted(real_logits, fake_logits),
                                             **_COMMON)


def wasserstein_generator_loss(fake_logits):
    """Wasserstein and hinge G loss: ``-mean d(G(z))``."""
    return _L.wasserstein_generator_loss(fake_logits, **_COMMON)


@dataclasses.dataclass(frozen=True)
class GANLoss:
    """A named pair: ``discriminator(real_logits, fake_logits=None)``, ``generator(fake)``.

    ``real_term`` and ``fake_term`` are the discriminator loss's two terms:
    ``discriminator(r, f) == real_term(r) + fake_term(f)``. Each is a scalar, the mean
    over its batch: for the minimax and non-saturating losses ``mean softplus(-d(x))``
    and ``mean softplus(d(G(z)))``.
    """

    name: str
    discriminator: Callable[[tf.Tensor, Optional[tf.Tensor]], tf.Tensor]
    generator: Callable[[tf.Tensor], tf.Tensor]

    def real_term(self, real_logits):
        """The term of ``L_D`` on real samples (the only one that depends on them)."""
        return self.discriminator(real_logits, None)

    def fake_term(self, fake_logits):
        """The term of ``L_D`` on generated samples (the only one that depends on them)."""
        return self.discriminator(None, fake_logits)


LOSSES = {
    "non_saturating": GANLoss("non_saturating", minimax_discriminator_loss,
                              non_saturating_generator_loss),
    "minimax": GANLoss("minimax", minimax_discriminator_loss, minimax_generator_loss),
    "hinge": GANLoss("hinge", hinge_discriminator_loss, wasserstein_generator_loss),
    "wasserstein": GANLoss("wasserstein", wasserstein_discriminator_loss,
                           wasserstein_generator_loss),
}


def get(name):
    """Returns the :class:`GANLoss` registered under ``name`` (or ``name`` if it is one)."""
    if isinstance(name, GANLoss):
        return name
    if name not in LOSSES:
        raise errors.InputError(
            f"Unknown loss {name!r}; choose one of {sorted(LOSSES)}.")
    return LOSSES[name]
