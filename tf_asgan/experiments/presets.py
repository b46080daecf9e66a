"""The methods compared by the study, the step benchmark and the docs: one table.

Each preset is a set of :class:`~tf_asgan.config.train_config.TrainConfig` changes from
the defaults (the baseline GAN is the same model with ``adversarial=False``), so a
preset trains through ``scripts/train.py`` exactly as it runs in an experiment:
``python scripts/train.py --flagfile=... --noadversarial --dat=authors`` is ``dat``.

- As their sources define them (docs/methods.md): ``baseline``, ``asgan`` (the paper's
  Algorithm 1, Eq. 14: D's second update on the perturbed reals and the same fakes),
  ``dat`` (the DAT authors' one-step attack on both sides), ``advas`` (AdvAs's
  published weight and unbiased estimate).
- Options of ours: ``asgan_real_only`` (the second update on the perturbed reals
  alone), ``dat_pgd`` (an iterative DAT attack), ``advas_fixed_biased`` (AdvAs with a
  fixed weight and one full-batch estimate: one generator backward pass instead of two).
"""

from tf_asgan import errors

PRESETS = {
    "baseline": {"adversarial": False},
    "asgan": {"adversarial": True, "second_update": "real_and_fake"},
    "dat": {"adversarial": False, "dat": "authors"},
    "advas": {"adversarial": False, "advas_lambda": 1.0},
    "asgan_real_only": {"adversarial": True, "second_update": "real_only"},
    "dat_pgd": {"adversarial": False, "dat": "pgd", "dat_pgd_steps": 3},
    "advas_fixed_biased": {"adversarial": False, "advas_lambda": 1.0, "advas_weight": "fixed",
                           "advas_estimate": "biased"},
}
# The methods as their sources define them: the default comparison.
AS_PUBLISHED = ("baseline", "asgan", "dat", "advas")


def preset(name):
    """The configuration changes of preset ``name``.

    Raises:
      tf_asgan.errors.InputError: ``name`` is not a preset (the message lists them).
    """
    if name not in PRESETS:
        raise errors.InputError(f"Unknown method {name!r}; choose from {list(PRESETS)}.")
    return dict(PRESETS[name])


def check(names):
    """Refuses (with :class:`tf_asgan.errors.InputError`) any name that is not a preset."""
    unknown = [n for n in names if n not in PRESETS]
    if unknown:
        raise errors.InputError(f"Unknown methods {unknown}; choose from {list(PRESETS)}.")
