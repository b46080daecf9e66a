"""AS-GAN's sibling methods, as options of :class:`tf_asgan.ASGAN`: DAT and AdvAs.

Each method is a module of pure functions that take D (a logits function) as an
argument; ``ASGAN`` composes them the way it composes losses and perturbations.

- :mod:`tf_asgan.methods.dat`: Direct Adversarial Training (the authors' code), D trained
  on adversarial examples of both batches; options in :class:`DAT`.
- :mod:`tf_asgan.methods.advas`: the Adversary's Assistant (the published algorithm), a
  penalty in G's loss with its norm-ratio weight; options in :class:`AdvAs`.

``docs/methods.md`` describes both, with what is the authors' and what is ours.
"""

from tf_asgan import errors
from tf_asgan.methods import advas, dat
from tf_asgan.methods.advas import AdvAs
from tf_asgan.methods.dat import DAT
from tf_asgan.utils import options

DAT_VARIANTS = dat.VARIANTS
DAT_SIDES = dat.SIDES
DAT_LOSSES = dat.LOSSES
ADVAS_WEIGHTS = advas.WEIGHTS
ADVAS_ESTIMATES = advas.ESTIMATES

__all__ = ["DAT", "AdvAs", "advas", "dat", "as_option", "check_combination", "DAT_VARIANTS",
           "DAT_SIDES", "DAT_LOSSES", "ADVAS_WEIGHTS", "ADVAS_ESTIMATES"]


def check_combination(adversarial, dat_options):
    """Rejects DAT attacking the reals together with AS-GAN (which attacks them already).

    Raises:
      ValueError: ``adversarial`` and a DAT whose ``side`` includes the reals.
    """
    if dat_options is not None and adversarial and dat_options.attacks_real:
        raise errors.InputError(
            f"DAT with side={dat_options.side!r} attacks the real batch, which AS-GAN "
            "(adversarial=True) already does. Combine them with DAT side='fake' (AS-GAN on "
            "the reals, DAT on the fakes), or use DAT alone with adversarial=False.")


def as_option(value, cls):
    """``None``, a ``cls`` (:class:`DAT` or :class:`AdvAs`) or a dict of its fields ->
    ``None`` or a validated ``cls`` (:func:`tf_asgan.utils.options.as_option`).

    Raises:
      InputError: unknown dict keys (naming the options), another type, or a bad field.
    """
    return options.as_option(value, cls, what=cls.__name__, argument=cls.__name__.lower(),
                             public=f"tf_asgan.methods.{cls.__name__}")
