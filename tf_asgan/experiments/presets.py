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

:data:`OPTIONS` are the training options the step benchmark
(:mod:`tf_asgan.experiments.benchmark`) adds to any method, each a set of configuration
changes with its *reference*, the row it is compared with: the same method without the
option on the same networks (:func:`reference`). Spectral normalization and the gradient
penalties need a D without batch norm, so theirs is ``nobn_d`` (the method with
``bn_d=False``); the EMA's and the rotation loss's is ``none``.
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


# The benchmark's training options: configuration changes on top of a method's preset.
OPTIONS = {
    "none": {},
    "nobn_d": {"bn_d": False},  # the reference of the options below that need it
    "spectral_norm": {"bn_d": False, "spectral_norm": True},
    "wgan_gp": {"bn_d": False, "gradient_penalty": "wgan_gp"},
    "r1": {"bn_d": False, "gradient_penalty": "r1"},
    # StudioGAN's default decay; the EMA's cost does not depend on it.
    "ema": {"ema_decay": 0.9999},
    "rotation_quarter": {"rotation_loss": "quarter"},
    "rotation_all": {"rotation_loss": "all"},
    # a speed option (tf_asgan.networks.weight_gradients): the same step, other kernels
    "patch_weight_gradient": {"conv_weight_gradient": "patches"},
}
# Options that put a rotation head on D (every architecture but dcgan has one).
ROTATION_OPTIONS = ("rotation_quarter", "rotation_all")


def option(name):
    """The configuration changes of benchmark option ``name`` (:data:`OPTIONS`).

    Raises:
      tf_asgan.errors.InputError: ``name`` is not an option (the message lists them).
    """
    check_options([name])
    return dict(OPTIONS[name])


def reference(name):
    """The option whose row option ``name`` is compared with: ``nobn_d`` for options that
    switch D's batch norm off, ``none`` for the others, ``None`` for ``none`` itself."""
    if name == "none":
        return None
    return "nobn_d" if option(name).get("bn_d") is False and name != "nobn_d" else "none"


def with_references(names):
    """``names`` and the references they need, theirs too (``nobn_d``'s is ``none``), in
    the order of :data:`OPTIONS`."""
    check_options(names)
    wanted = set(names)
    while {reference(n) for n in wanted} - {None} - wanted:
        wanted |= {reference(n) for n in wanted} - {None}
    return tuple(n for n in OPTIONS if n in wanted)


def check_options(names):
    """Refuses (with :class:`tf_asgan.errors.InputError`) any name that is not an option."""
    unknown = [n for n in names if n not in OPTIONS]
    if unknown:
        raise errors.InputError(f"Unknown options {unknown}; choose from {list(OPTIONS)}.")
