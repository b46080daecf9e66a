"""The method's sections of :class:`tf_asgan.config.train_config.TrainConfig`: AS-GAN (the
GAN loss, the perturbation, epsilon and its schedule, the second D update, the gradient
penalty) and the sibling methods (DAT, AdvAs).

Each field's help is its ``scripts/train.py`` flag's help; see :mod:`tf_asgan.config.fields`.
"""

import dataclasses

from tf_asgan import errors, losses, methods, perturbations, schedules
from tf_asgan.asgan import SECOND_UPDATES
from tf_asgan.config.fields import Section, option
from tf_asgan.regularizers import penalties

# epsilons (AS-GAN's and DAT's, in input units, images in [-1, 1]) above an eighth of
# the library's ceiling tf_asgan.schedules.MAX_EPSILON (the whole range), i.e. above
# 0.25, about 32 grey levels of change per pixel, are refused. That is no longer a small
# perturbation, and the usual slip, --epsilon=1 meaning 1/255, lands far above it. The
# library itself (ASGAN(epsilon=...), methods.DAT) accepts up to MAX_EPSILON.
MAX_CONFIG_EPSILON = schedules.MAX_EPSILON / 8
DAT_OFF = "none"


def _check_step_size(name, value):
    if value < 0:
        raise errors.InputError(f"{name} must be >= 0 (0: the default 2.5 * epsilon / steps), got "
                                f"{value}; a negative step would run the attack the wrong way.")


@dataclasses.dataclass(frozen=True)
class MethodConfig(Section):
    """AS-GAN: the GAN loss and the second D update on perturbed reals."""

    loss: str = option("non_saturating", "GAN loss (TF-GAN's functions).",
                       choices=losses.LOSSES)
    adversarial: bool = option(
        True, "AS-GAN: the second D update on perturbed reals. --noadversarial: baseline.")
    perturbation: str = option(
        "fgsm", "How the real batch is perturbed: fgsm (the paper's), gaussian (the Fig. 3 "
        "ablation), none (eps = 0: D updated twice), pgd.", choices=perturbations.PERTURBATIONS)
    epsilon: float = option(1 / 255, "Attack radius, e.g. 1/255 or 0.0039; see --epsilon_unit.",
                            fraction="1/255")
    epsilon_unit: str = option(
        "input", "input: units of D's input (images in [-1, 1]; ours: this project reads "
        "the paper's epsilon in these units); pixel: fractions of [0, 1] (k/255 = k grey "
        "levels).", choices=schedules.UNITS)
    epsilon_schedule: str = option(
        "constant", "constant; delayed (0 before --epsilon_start_step); linear (0 until "
        "--epsilon_start_step, then a ramp of --epsilon_ramp_steps).",
        choices=schedules.SCHEDULES)
    epsilon_start_step: int = option(0, "First generator step at which epsilon is nonzero.")
    epsilon_ramp_steps: int = option(1, "Length of the linear ramp, in generator steps.")
    second_update: str = option(
        "real_and_fake", "real_and_fake: Eq. 14, D loss on (x_hat, the same fakes); "
        "real_only: only the real term on x_hat.", choices=SECOND_UPDATES)
    d_steps: int = option(
        1, "Discriminator iterations per generator update. They split each train step's "
        "--batch_size images into d_steps parts, one per D iteration (G is updated once, on "
        "batch_size / d_steps samples): Mimicry's 'batch 64, n_dis 5' (five real batches of "
        "64 per G step) is --batch_size=320 --d_steps=5.", minimum=1)
    pgd_steps: int = option(7, "Iterations of --perturbation=pgd.", minimum=1)
    pgd_step_size: float = option(0.0, "PGD step size (0: 2.5 * epsilon / pgd_steps).")
    pgd_random_start: bool = option(
        False, "Start PGD from a uniform point of the epsilon ball.")
    gradient_penalty: str = option(
        penalties.OFF, "Gradient penalty of D, in every D update (AS-GAN's second one too), "
        "on the clean batches: none; wgan_gp (Gulrajani et al. 2017: lambda * (||grad "
        "D(x_hat)|| - 1)^2, x_hat between a real and a fake); r1 (Mescheder et al. 2018: "
        "gamma / 2 * ||grad D(x)||^2 on reals). Any --loss; needs --nobn_d.",
        choices=(penalties.OFF, *penalties.KINDS))
    gp_weight: float = option(
        0.0, "Weight of --gradient_penalty: WGAN-GP's lambda or R1's gamma (0: the "
        "papers' 10 for both; R1's gamma is usually tuned per dataset).")
    gp_every: int = option(
        1, "Lazy regularisation (StyleGAN2): the penalty on one D update in N, scaled by N "
        "(1: on every D update).", minimum=1)

    def check(self):
        losses.get(self.loss)
        perturbations.get(self.perturbation)  # checked even for the baseline: a typo is a typo
        schedules.get(self.epsilon_schedule, 0.0, **self._schedule_kwargs())  # eps: below
        eps = schedules.to_input_units(self.epsilon, self.epsilon_unit)
        if not 0.0 <= eps <= MAX_CONFIG_EPSILON:
            raise errors.InputError(
                f"epsilon={self.epsilon:g} ({self.epsilon_unit} units) is {eps:g} in input "
                f"units (images in [-1, 1]); it must lie in [0, {MAX_CONFIG_EPSILON:g}]. The "
                "paper uses 1/255, i.e. --epsilon=1/255; its Fig. 3 ablation goes up to 4/255.")
        _check_step_size("pgd_step_size", self.pgd_step_size)
        if self.gp_weight < 0:
            raise errors.InputError(f"gp_weight must be >= 0 (0: the paper's weight, 10), got "
                                    f"{self.gp_weight}.")
        self.gradient_penalty_object()

    def gradient_penalty_object(self):
        """The :class:`~tf_asgan.regularizers.penalties.GradientPenalty` of the run, or
        ``None``."""
        if self.gradient_penalty == penalties.OFF:
            return None
        return penalties.as_penalty(penalties.GradientPenalty(
            kind=self.gradient_penalty, weight=self.gp_weight or None, every=self.gp_every))

    def _schedule_kwargs(self):
        if self.epsilon_schedule == "delayed":
            return {"start_step": self.epsilon_start_step}
        if self.epsilon_schedule == "linear":
            return {"start_step": self.epsilon_start_step, "ramp_steps": self.epsilon_ramp_steps}
        return {}

    def epsilon_schedule_object(self):
        """The :class:`~tf_asgan.schedules.EpsilonSchedule` of ``epsilon``."""
        return schedules.get(self.epsilon_schedule, self.epsilon, **self._schedule_kwargs())

    def perturbation_kwargs(self):
        """The keyword arguments of the perturbation (PGD's options; else none)."""
        if self.perturbation != "pgd":
            return {}
        return {"steps": self.pgd_steps, "step_size": self.pgd_step_size or None,
                "random_start": self.pgd_random_start}


@dataclasses.dataclass(frozen=True)
class SiblingsConfig(Section):
    """The sibling methods (:mod:`tf_asgan.methods`): DAT and AdvAs."""

    dat: str = option(
        DAT_OFF, "DAT (Direct Adversarial Training): none; authors (the published step: each "
        "batch pushed towards the other's mean logit by one gradient step of |batch mean "
        "logit - target|); pgd (ours, not the authors': an L-infinity attack).",
        choices=(DAT_OFF, *methods.DAT_VARIANTS))
    dat_side: str = option(
        "both", "Which samples DAT attacks: both, real or fake (with AS-GAN: fake only).",
        choices=methods.DAT_SIDES)
    dat_loss: str = option(
        "replace", "replace: D trains on the attacked batches only (the authors'); add: on "
        "the clean and the attacked batches.", choices=methods.DAT_LOSSES)
    dat_step_size: float = option(
        1.0, "DAT authors: multiplier of the gradient step (1: the published step; the "
        "authors have no step size). DAT pgd (ours): see dat_pgd_step_size.")
    dat_epsilon: float = option(
        2 / 255, "DAT pgd: L-infinity radius in model-input units, e.g. 2/255.",
        fraction="2/255")
    dat_pgd_steps: int = option(3, "DAT pgd: iterations.")
    dat_pgd_step_size: float = option(
        0.0, "DAT pgd: step size (0: 2.5 * dat_epsilon / dat_pgd_steps).")
    advas_lambda: float = option(
        0.0, "AdvAs (0: off). With --advas_weight=norm_ratio a multiplier of the published "
        "weight (1: as published); with fixed, the weight itself.")
    advas_weight: str = option(
        "norm_ratio", "AdvAs weight of the penalty: norm_ratio (published: min(1, ||grad "
        "L_G|| / ||grad penalty||), recomputed every G step) or fixed (ours).",
        choices=methods.ADVAS_WEIGHTS)
    advas_estimate: str = option(
        "unbiased", "AdvAs estimate of ||grad_phi L_D||^2: unbiased (published: dot product "
        "of two half-batch gradients) or biased (ours: one full-batch norm).",
        choices=methods.ADVAS_ESTIMATES)

    def check(self):
        if not 0.0 < self.dat_epsilon <= MAX_CONFIG_EPSILON:
            raise errors.InputError(f"dat_epsilon={self.dat_epsilon:g} must lie in "
                                    f"(0, {MAX_CONFIG_EPSILON:g}] (input units); DAT's usual "
                                    "value is 2/255.")
        _check_step_size("dat_pgd_step_size", self.dat_pgd_step_size)
        if self.dat not in (DAT_OFF,) + methods.DAT_VARIANTS:
            raise errors.InputError(f"Unknown dat {self.dat!r}; choose none or one of "
                                    f"{list(methods.DAT_VARIANTS)}.")
        if self.advas_lambda < 0:
            raise errors.InputError(f"advas_lambda must be >= 0 (0: AdvAs off), got "
                                    f"{self.advas_lambda}.")
        for sibling in (self.dat_object(), self.advas_object()):
            if sibling is not None:
                sibling.validate()

    def dat_object(self):
        """The :class:`~tf_asgan.methods.DAT` of the run, or ``None``."""
        if self.dat == DAT_OFF:
            return None
        return methods.DAT(variant=self.dat, side=self.dat_side, loss=self.dat_loss,
                           step_size=self.dat_step_size if self.dat == "authors"
                           else self.dat_pgd_step_size or None,
                           epsilon=self.dat_epsilon, steps=self.dat_pgd_steps)

    def advas_object(self):
        """The :class:`~tf_asgan.methods.AdvAs` of the run, or ``None``."""
        if not self.advas_lambda:
            return None
        return methods.AdvAs(lam=self.advas_lambda, weight=self.advas_weight,
                             estimate=self.advas_estimate)
