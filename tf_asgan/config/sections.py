"""The sections of :class:`tf_asgan.config.train_config.TrainConfig`: the data, the networks,
the method (AS-GAN's loss, perturbation and epsilon), the sibling methods (DAT, AdvAs), the
optimisation, the run (scale, outputs, bad numbers) and the evaluation.

Each field's help is its ``scripts/train.py`` flag's help; see :mod:`tf_asgan.config.fields`.
"""

import dataclasses
from typing import Optional

from tf_asgan import errors, losses, methods, networks, optimizers, perturbations, schedules
from tf_asgan.asgan import SECOND_UPDATES
from tf_asgan.config import checks
from tf_asgan.config.fields import Section, option
from tf_asgan.data import catalog, folders
from tf_asgan.evaluation import classifiers, evaluator
from tf_asgan.regularizers import penalties
from tf_asgan.utils import distribute

NONFINITE_ACTIONS = ("stop", "rollback")


@dataclasses.dataclass(frozen=True)
class DataConfig(Section):
    """The training data."""

    dataset: str = option(
        "digits", "Training data: a TFDS name, digits / stacked_digits (embedded, no "
        "download) or folder (with --image_dir).", choices=catalog.DATASETS)
    data_dir: Optional[str] = option(
        None, "TFDS data directory (default: the TFDS default, ~/tensorflow_datasets).",
        mutable=True)
    image_dir: Optional[str] = option(
        None, "Folder of PNG/JPEG/BMP/GIF/WebP images (searched recursively) for "
        "--dataset=folder.")
    download: bool = option(
        False, "Let TFDS download a missing dataset (off: fail at once with instructions).",
        mutable=True)
    bad_images: str = option(
        "skip", "Unreadable or truncated files in --image_dir: skip (counted and named in "
        "the log) or fail (stop before training, listing them).", choices=folders.BAD_IMAGES,
        mutable=True)

    def check(self):
        if self.dataset == catalog.FOLDER and not self.image_dir:
            raise errors.InputError("--dataset=folder needs --image_dir=PATH.")
        if self.bad_images not in folders.BAD_IMAGES:
            raise errors.InputError(f"bad_images must be {' or '.join(folders.BAD_IMAGES)}, got "
                                    f"{self.bad_images!r}.")


@dataclasses.dataclass(frozen=True)
class ModelConfig(Section):
    """The generator and the discriminator."""

    architecture: str = option(
        "dcgan", "Generator and discriminator family (Appendix G of the paper).",
        choices=networks.ARCHITECTURES)
    resolution: int = option(32, "Image size in pixels (dcgan: 32, 64, 128; resnet: 32, 64).")
    latent_dim: int = option(100, "Size of the latent z ~ N(0, I).", minimum=1)
    bn_g: bool = option(True, "Batch normalisation in the generator (Table 2 switches it off).")
    bn_d: bool = option(
        True, "Batch normalisation in the discriminator (Table 2 switches it off).")
    width: float = option(
        1.0, "Multiplier of every layer's channel count (1: the paper's networks; e.g. 0.25 "
        "for CPU studies).")
    spectral_norm: bool = option(
        False, "Spectral normalization of every convolution and linear layer of the "
        "discriminator (Miyato et al. 2018, SN-GAN; one power iteration per D call in "
        "training mode, as PyTorch's spectral_norm). Needs --nobn_d.")

    def check(self):
        networks.check_spectral_norm(self.spectral_norm, self.bn_d)
        supported = networks.supported_resolutions(self.architecture)
        if self.resolution not in supported:
            raise errors.InputError(f"Architecture {self.architecture!r} supports resolutions "
                                    f"{list(supported)}, not {self.resolution}; set --resolution.")
        if not self.width > 0:
            raise errors.InputError("width must be > 0 (1: the paper's networks), "
                                    f"got {self.width}.")


@dataclasses.dataclass(frozen=True)
class OptimConfig(Section):
    """Adam (the paper's defaults), the batches and the epochs."""

    lr_d: float = option(2e-4, "Discriminator learning rate (Adam).")
    lr_g: float = option(2e-4, "Generator learning rate (Adam).")
    beta1_d: float = option(0.5, "Adam beta1 of the discriminator.")
    beta2_d: float = option(0.999, "Adam beta2 of the discriminator.")
    beta1_g: float = option(0.5, "Adam beta1 of the generator.")
    beta2_g: float = option(0.999, "Adam beta2 of the generator.")
    lr_schedule: str = option(
        "constant", "Learning rate of both networks as a function of the train step t (G "
        "updates done, each with its d_steps D updates): constant; linear: lr * max(0, 1 - "
        "t / lr_decay_steps), decay to 0 as Mimicry's 'linear' and the SN-GAN / WGAN-GP code "
        "bases do.", choices=optimizers.LR_SCHEDULES)
    lr_decay_steps: int = option(
        0, "Train steps of --lr_schedule=linear (the rate is 0 from this step on; 0: the run's "
        "total steps when it starts, recorded in config.json, so a later larger --epochs "
        "does not change the schedule).", minimum=0)
    ema_decay: float = option(
        0.0, "Exponential moving average of G's weights, w_ema <- d * w_ema + (1 - d) * w "
        "after each G update, batch-norm statistics copied from G (0: off; StudioGAN's "
        "default 0.9999). When on, sample grids, evaluation and the export use it.")
    ema_start_step: int = option(
        0, "First train step whose EMA update averages; before it the EMA copies G "
        "(StudioGAN's start step).", minimum=0)
    batch_size: int = option(64, "Global batch size (split across replicas).", minimum=1)
    epochs: int = option(20, "Training epochs (may be raised to extend a finished run).",
                         minimum=1, mutable=True)
    steps_per_epoch: int = option(0, "Steps per epoch (0: one pass over the data).",
                                  minimum=0)
    cache: bool = option(
        True, "Keep the decoded images in memory (turn off for LSUN and ImageNet).",
        mutable=True)
    seed: int = option(0, "Seed of the initial weights, the data order and the latents.")

    def check(self):
        for name in ("lr_d", "lr_g"):
            if not getattr(self, name) > 0:
                raise errors.InputError(f"{name} must be > 0, got {getattr(self, name)}.")
        for name in ("beta1_d", "beta2_d", "beta1_g", "beta2_g"):
            if not 0 <= getattr(self, name) < 1:
                raise errors.InputError(f"{name} must lie in [0, 1), got {getattr(self, name)}.")
        if self.lr_decay_steps and self.lr_schedule != "linear":
            raise errors.InputError(f"lr_decay_steps={self.lr_decay_steps} is only used by "
                                    "--lr_schedule=linear; set that or drop lr_decay_steps.")
        if not 0 <= self.ema_decay < 1:
            raise errors.InputError(f"ema_decay must lie in [0, 1) (0: no EMA of G), got "
                                    f"{self.ema_decay}.")
        if self.ema_start_step and not self.ema_decay:
            raise errors.InputError("ema_start_step needs an EMA of G: set --ema_decay (e.g. "
                                    "0.9999), or drop ema_start_step.")


@dataclasses.dataclass(frozen=True)
class RunConfig(Section):
    """Scale and speed (:mod:`tf_asgan.utils.distribute` states the "auto" rules), the outputs,
    and what a NaN does (:mod:`tf_asgan.training.checkpoints`)."""

    strategy: str = option(
        "auto", "tf.distribute strategy: auto (multi_worker when TF_CONFIG lists several "
        "tasks, mirrored with several GPUs, else one_device), one_device, mirrored (all "
        "local GPUs), multi_worker (MultiWorkerMirroredStrategy from TF_CONFIG).",
        choices=distribute.STRATEGIES)
    sync_bn: bool = option(
        False, "Synchronized batch norm: statistics over the global batch, not per replica.")
    precision: str = option(
        "auto", "auto (mixed_float16 on GPUs with compute capability >= 7.0, else float32), "
        "float32, mixed_float16 (with loss scaling), mixed_bfloat16.",
        choices=distribute.PRECISIONS)
    jit_compile: str = option(
        "auto", "XLA: auto (on with one replica when a GPU is visible; off on a CPU and "
        "with several replicas), on, off.",
        choices=distribute.SWITCHES)
    steps_per_execution: int = option(
        1, "Train steps per call into the device (Keras steps_per_execution): fewer host "
        "round trips, which matters on GPUs. Must divide the steps per epoch, "
        "--checkpoint_every_steps and --log_every_steps.", minimum=1, mutable=True)
    log_every_steps: int = option(
        10, "Log the step values to TensorBoard (step/*) and check them for NaN every N "
        "steps (1: every step; each costs a device read).", minimum=1, mutable=True)
    sample_every_epochs: int = option(1, "Write a sample grid every N epochs.", minimum=1,
                                      mutable=True)
    checkpoint_every_steps: int = option(
        0, "Also checkpoint every N steps (0: at epoch ends only).", minimum=0, mutable=True)
    checkpoint_every_minutes: float = option(
        10.0, "Also checkpoint when this many minutes passed since the last checkpoint (0: "
        "off); bounds the work a kill loses.", mutable=True)
    checkpoints_to_keep: int = option(3, "Checkpoints kept in <workdir>/checkpoints.",
                                      minimum=1, mutable=True)
    export: bool = option(
        True, "Export the generator as a SavedModel to <workdir>/generator at the end.",
        mutable=True)
    on_nonfinite: str = option(
        "stop", "A NaN / infinite loss or weight: stop (naming the step and the quantity; "
        "the last good checkpoint is kept, nothing exported) or rollback (restore the last "
        "good checkpoint and continue with fresh random draws, at most --max_rollbacks "
        "times).", choices=NONFINITE_ACTIONS, mutable=True)
    max_rollbacks: int = option(
        3, "Most rollbacks of --on_nonfinite=rollback before stopping.", mutable=True)

    def __post_init__(self):
        super().__post_init__()
        if isinstance(self.jit_compile, bool):  # the flag's values are auto / on / off
            object.__setattr__(self, "jit_compile", "on" if self.jit_compile else "off")

    def check(self):
        if self.max_rollbacks < 0 or self.checkpoint_every_minutes < 0:
            raise errors.InputError("max_rollbacks and checkpoint_every_minutes must be >= 0.")
        checks.check_intervals(self)
        if self.on_nonfinite not in NONFINITE_ACTIONS:
            raise errors.InputError(f"on_nonfinite must be one of {list(NONFINITE_ACTIONS)}, got "
                                    f"{self.on_nonfinite!r}.")
        if self.jit_compile not in distribute.SWITCHES:
            raise errors.InputError(f"jit_compile must be one of {list(distribute.SWITCHES)}, got "
                                    f"{self.jit_compile!r}.")


@dataclasses.dataclass(frozen=True)
class EvalConfig(Section):
    """The IS / FID / KID evaluations during training (see :mod:`tf_asgan.evaluation.evaluator`)."""

    eval_every_epochs: int = option(
        0, "Compute IS / FID / KID every N epochs and after the last one (0: never); writes "
        "<workdir>/metrics.jsonl, eval/* in TensorBoard and keeps the best-FID checkpoint in "
        "<workdir>/best.", minimum=0, mutable=True)
    eval_num_samples: int = option(
        22_400, "Generated samples per evaluation (paper: 22,400; standard: 50,000).",
        mutable=True)
    eval_network: str = option(
        "auto", "Classifier for the metrics: inception (TF-GAN's Inception, see "
        "--inception_path), digits (the project's digit classifier, for digits / "
        "stacked_digits), auto (digits for those, else inception).",
        choices=classifiers.NETWORKS, mutable=True)
    inception_path: Optional[str] = option(
        None, "Local SavedModel directory of TF-Hub tfgan/eval/inception/1 (else the TF-Hub "
        "cache, else tfhub.dev).", mutable=True)
    is_splits: int = option(10, "Inception Score splits.", mutable=True)
    eval_real_split: str = option(
        "train", "Split of the real data the FID / KID statistics come from.", mutable=True)
    eval_num_real: int = option(
        50_000, "Real images for the statistics (0 or more than the split: all).",
        mutable=True)
    eval_cache_dir: Optional[str] = option(
        None, "Cache of real-data statistics (default $TF_ASGAN_CACHE/stats, "
        "~/.cache/tf_asgan/stats).", mutable=True)

    def protocol(self, seed):
        """The :class:`~tf_asgan.evaluation.evaluator.Protocol` of the evaluations (latents from
        ``seed``, the run's seed)."""
        return evaluator.Protocol(num_samples=self.eval_num_samples, is_splits=self.is_splits,
                                  real_split=self.eval_real_split,
                                  num_real=self.eval_num_real, seed=seed)


# A sanity cap on flag and config.json values, a policy and not a limit of the method:
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
