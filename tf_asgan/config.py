"""The training configuration: one plain object, validated before any work starts.

The absl flags of ``scripts/train.py`` have exactly these names, so a run's resolved
configuration is also a flagfile (:func:`to_flagfile`) that repeats it.
"""

import dataclasses
import json
import os
from fractions import Fraction
from typing import Optional

from tf_asgan import data, distribute, losses, methods, networks, perturbations, schedules
from tf_asgan.asgan import MAX_EPSILON, SECOND_UPDATES

# Epsilons above this (in input units, images in [-1, 1]) are refused by the configuration:
# 32 grey levels of change per pixel is no longer a small perturbation, and the usual
# slip, --epsilon=1 meaning 1/255, lands far above it. The library itself allows up to
# tf_asgan.asgan.MAX_EPSILON.
MAX_CONFIG_EPSILON = 0.25
NONFINITE_ACTIONS = ("stop", "rollback")
# The version of the DAT / AdvAs definitions a run trains with. 1: before they followed
# their sources (a squared, summed DAT objective; AdvAs with a fixed or uncapped weight and
# a one-batch estimate); 2: as in docs/methods.md. A run of another version is a
# different experiment: it is not resumed under today's code.
METHODS_VERSION = 2

# Fields that may change between the runs of one workdir (where data lives, how
# long to train, what to write); any other difference is a different experiment.
MUTABLE_FIELDS = ("data_dir", "download", "cache", "epochs", "sample_every_epochs",
                  "checkpoint_every_steps", "checkpoint_every_minutes", "checkpoints_to_keep",
                  "export", "on_nonfinite", "max_rollbacks", "bad_images",
                  "eval_every_epochs", "eval_num_samples", "eval_network", "inception_path",
                  "is_splits", "eval_real_split", "eval_num_real", "eval_cache_dir")


def parse_epsilon(value):
    """``0.5``, ``"1/255"`` or ``"0.5/255"`` -> float."""
    try:
        if isinstance(value, str) and "/" in value:
            num, den = value.split("/", 1)
            return float(Fraction(num.strip())) / float(Fraction(den.strip()))
        return float(value)
    except (ValueError, ZeroDivisionError):
        raise ValueError(f"An epsilon must be a number or a fraction like 1/255, got "
                         f"{value!r}.") from None


@dataclasses.dataclass
class TrainConfig:
    """Everything a training run depends on. Defaults: the embedded demo (AS-DCGAN, digits)."""

    # data
    dataset: str = "digits"
    data_dir: Optional[str] = None
    image_dir: Optional[str] = None
    download: bool = False
    bad_images: str = "skip"  # unreadable files of an image folder: skip (and count) or fail
    # networks
    architecture: str = "dcgan"
    resolution: int = 32
    latent_dim: int = 100
    bn_g: bool = True
    bn_d: bool = True
    width: float = 1.0  # channel multiplier (1: the paper's networks)
    # method
    loss: str = "non_saturating"
    adversarial: bool = True
    perturbation: str = "fgsm"
    epsilon: float = 1 / 255
    epsilon_unit: str = "input"
    epsilon_schedule: str = "constant"
    epsilon_start_step: int = 0
    epsilon_ramp_steps: int = 1
    second_update: str = "real_and_fake"
    d_steps: int = 1
    pgd_steps: int = 7
    pgd_step_size: float = 0.0  # 0: 2.5 * epsilon / pgd_steps
    pgd_random_start: bool = False
    # the sibling methods (tf_asgan.methods)
    dat: str = "none"  # none, authors, pgd
    dat_side: str = "both"
    dat_loss: str = "replace"
    dat_step_size: float = 1.0  # authors: a multiplier of the step (the authors have none)
    dat_epsilon: float = 2 / 255  # pgd, model-input units
    dat_pgd_steps: int = 3
    dat_pgd_step_size: float = 0.0  # 0: 2.5 * dat_epsilon / dat_pgd_steps
    advas_lambda: float = 0.0  # 0: AdvAs off; norm_ratio: multiplier (1: published)
    advas_weight: str = "norm_ratio"  # norm_ratio (published), fixed
    advas_estimate: str = "unbiased"  # unbiased (published, two halves), biased
    # optimisation (Adam, the paper's defaults)
    lr_d: float = 2e-4
    lr_g: float = 2e-4
    beta1_d: float = 0.5
    beta2_d: float = 0.999
    beta1_g: float = 0.5
    beta2_g: float = 0.999
    batch_size: int = 64
    epochs: int = 20
    steps_per_epoch: int = 0  # 0: one pass over the data
    cache: bool = True  # keep the decoded images in memory (off for LSUN / ImageNet)
    seed: int = 0
    # scale and speed (tf_asgan.distribute states the "auto" rules)
    strategy: str = "auto"  # auto, one_device, mirrored, multi_worker
    sync_bn: bool = False
    precision: str = "auto"  # auto, float32, mixed_float16, mixed_bfloat16
    jit_compile: str = "auto"  # auto, on, off
    # outputs
    sample_every_epochs: int = 1
    checkpoint_every_steps: int = 0  # 0: at epoch ends only
    checkpoint_every_minutes: float = 10.0  # 0: no time-based checkpoints
    checkpoints_to_keep: int = 3
    export: bool = True
    # bad numbers (tf_asgan.checkpoints)
    on_nonfinite: str = "stop"  # stop, rollback (to the last good checkpoint)
    max_rollbacks: int = 3
    # evaluation (IS / FID / KID; see tf_asgan.evaluation)
    eval_every_epochs: int = 0  # 0: never (the last epoch is always evaluated otherwise)
    eval_num_samples: int = 22_400
    eval_network: str = "auto"  # auto: digits for the embedded data, else inception
    inception_path: Optional[str] = None
    is_splits: int = 10
    eval_real_split: str = "train"
    eval_num_real: int = 50_000
    eval_cache_dir: Optional[str] = None
    # recorded, not chosen: no flag (see METHODS_VERSION)
    methods_version: int = dataclasses.field(default=METHODS_VERSION, metadata={"flag": False})

    def __post_init__(self):
        self.epsilon = parse_epsilon(self.epsilon)
        self.dat_epsilon = parse_epsilon(self.dat_epsilon)
        if isinstance(self.jit_compile, bool):  # the flag's values are auto / on / off
            self.jit_compile = "on" if self.jit_compile else "off"

    def validate(self):
        """Raises ``ValueError`` naming the first bad field and how to fix it."""
        if self.dataset not in data.DATASETS:
            raise ValueError(f"Unknown dataset {self.dataset!r}; choose one of "
                             f"{list(data.DATASETS)}.")
        if self.dataset == data.FOLDER and not self.image_dir:
            raise ValueError("--dataset=folder needs --image_dir=PATH.")
        supported = networks.supported_resolutions(self.architecture)
        if self.resolution not in supported:
            raise ValueError(f"Architecture {self.architecture!r} supports resolutions "
                             f"{list(supported)}, not {self.resolution}; set --resolution.")
        if not self.width > 0:
            raise ValueError(f"width must be > 0 (1: the paper's networks), got {self.width}.")
        losses.get(self.loss)
        perturbations.get(self.perturbation)  # checked even for the baseline: a typo is a typo
        schedules.get(self.epsilon_schedule, 0.0, **self._schedule_kwargs())
        eps = schedules.to_input_units(self.epsilon, self.epsilon_unit)
        limit = min(MAX_EPSILON, MAX_CONFIG_EPSILON)
        if not 0.0 <= eps <= limit:
            raise ValueError(f"epsilon={self.epsilon:g} ({self.epsilon_unit} units) is {eps:g} "
                             f"in input units (images in [-1, 1]); it must lie in [0, {limit}]. "
                             "The paper uses 1/255, i.e. --epsilon=1/255; its Fig. 3 ablation "
                             "goes up to 4/255.")
        if not 0.0 < self.dat_epsilon <= limit:
            raise ValueError(f"dat_epsilon={self.dat_epsilon:g} must lie in (0, {limit}] "
                             "(input units); DAT's usual value is 2/255.")
        for name in ("pgd_step_size", "dat_pgd_step_size"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0 (0: the default 2.5 * epsilon / "
                                 f"steps), got {getattr(self, name)}; a negative step would "
                                 "run the attack the wrong way.")
        if self.bad_images not in ("skip", "fail"):
            raise ValueError(f"bad_images must be skip or fail, got {self.bad_images!r}.")
        if self.on_nonfinite not in NONFINITE_ACTIONS:
            raise ValueError(f"on_nonfinite must be one of {list(NONFINITE_ACTIONS)}, got "
                             f"{self.on_nonfinite!r}.")
        if self.max_rollbacks < 0 or self.checkpoint_every_minutes < 0:
            raise ValueError("max_rollbacks and checkpoint_every_minutes must be >= 0.")
        for name, allowed in (("strategy", distribute.STRATEGIES),
                              ("precision", distribute.PRECISIONS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"Unknown {name} {getattr(self, name)!r}; choose one of "
                                 f"{list(allowed)}.")
        if self.jit_compile not in distribute.SWITCHES:
            raise ValueError(f"jit_compile must be one of {list(distribute.SWITCHES)}, got "
                             f"{self.jit_compile!r}.")
        if self.dat not in ("none",) + methods.DAT_VARIANTS:
            raise ValueError(f"Unknown dat {self.dat!r}; choose none or one of "
                             f"{list(methods.DAT_VARIANTS)}.")
        if self.advas_lambda < 0:
            raise ValueError(f"advas_lambda must be >= 0 (0: AdvAs off), got "
                             f"{self.advas_lambda}.")
        if self.methods_version != METHODS_VERSION:
            raise ValueError(
                f"methods_version={self.methods_version}: this configuration was trained "
                f"with tf_asgan's earlier DAT / AdvAs definitions (today's: "
                f"{METHODS_VERSION}, docs/methods.md); it can be evaluated or exported, "
                "not trained further. Start a new run.")
        dat, advas = self.dat_object(), self.advas_object()
        if advas is not None:
            advas.validate()
            if advas.estimate == "unbiased" and self.batch_size // self.d_steps < 2:
                raise ValueError("The unbiased AdvAs estimate splits each D batch into two "
                                 "halves: batch_size / d_steps must be >= 2 (and >= 2 per "
                                 "replica, which the train step checks).")
        if dat is not None:
            dat.validate()
            methods.check_combination(self.adversarial, dat)
        if self.second_update not in SECOND_UPDATES:
            raise ValueError(f"Unknown second_update {self.second_update!r}; choose one of "
                             f"{list(SECOND_UPDATES)}.")
        for name in ("latent_dim", "batch_size", "epochs", "d_steps", "pgd_steps",
                     "sample_every_epochs", "checkpoints_to_keep"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}.")
        for name in ("lr_d", "lr_g"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}.")
        for name in ("beta1_d", "beta2_d", "beta1_g", "beta2_g"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name} must lie in [0, 1), got {getattr(self, name)}.")
        if self.batch_size % self.d_steps:
            raise ValueError(f"batch_size={self.batch_size} must be divisible by "
                             f"d_steps={self.d_steps} (each D iteration takes a slice).")
        if self.eval_every_epochs < 0:
            raise ValueError(f"eval_every_epochs must be >= 0, got {self.eval_every_epochs}.")
        if self.eval_every_epochs:
            self.eval_protocol().validate()
        if self.steps_per_epoch < 0 or self.checkpoint_every_steps < 0:
            raise ValueError("steps_per_epoch and checkpoint_every_steps must be >= 0.")
        return self

    def _schedule_kwargs(self):
        if self.epsilon_schedule == "delayed":
            return {"start_step": self.epsilon_start_step}
        if self.epsilon_schedule == "linear":
            return {"start_step": self.epsilon_start_step, "ramp_steps": self.epsilon_ramp_steps}
        return {}

    def epsilon_schedule_object(self):
        return schedules.get(self.epsilon_schedule, self.epsilon, **self._schedule_kwargs())

    def perturbation_kwargs(self):
        if self.perturbation != "pgd":
            return {}
        return {"steps": self.pgd_steps, "step_size": self.pgd_step_size or None,
                "random_start": self.pgd_random_start}

    def eval_protocol(self):
        """The :class:`~tf_asgan.evaluation.Protocol` of the run's evaluations."""
        from tf_asgan.evaluation import Protocol

        return Protocol(num_samples=self.eval_num_samples, is_splits=self.is_splits,
                        real_split=self.eval_real_split, num_real=self.eval_num_real,
                        seed=self.seed)

    def dat_object(self):
        """The :class:`~tf_asgan.methods.DAT` of the run, or ``None``."""
        if self.dat == "none":
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

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values):
        values = _upgrade(values)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"Unknown configuration fields {unknown}.")
        return cls(**values)

    def differences(self, other):
        """Fields (other than :data:`MUTABLE_FIELDS`) whose values differ from ``other``'s."""
        a, b = self.to_dict(), other.to_dict()
        return {k: (b[k], a[k]) for k in a if k not in MUTABLE_FIELDS and a[k] != b[k]}


def _upgrade(values):
    """A stored configuration of an older version, in today's fields (same experiment).

    Before the sibling methods followed their sources (``methods_version`` 1), AdvAs had
    ``advas_scale`` (fixed or relative) and always the one-batch (biased) estimate, and
    DAT another objective. A run that used either keeps ``methods_version=1``, so it is
    read (evaluation, export) but not resumed as today's method; a run that used
    neither is the same experiment as today's.
    """
    values = dict(values)
    if "advas_scale" in values:  # stored by every run of version 1
        scale = values.pop("advas_scale")
        advas = values.get("advas_lambda", 0.0) > 0
        if advas:
            values["advas_weight"], values["advas_estimate"] = scale, "biased"
        if advas or values.get("dat", "none") != "none":
            values["methods_version"] = 1  # trained with the version-1 definitions
    return values


def flag_fields():
    """The :class:`TrainConfig` fields that are command-line flags (all but recorded ones)."""
    return [f for f in dataclasses.fields(TrainConfig) if f.metadata.get("flag", True)]


def to_flagfile(config):
    """The configuration as absl flag lines (``--name=value``), one per flag field."""
    lines = []
    names = {f.name for f in flag_fields()}
    for key, value in config.to_dict().items():
        if value is None or key not in names:
            continue
        if isinstance(value, bool):
            lines.append(f"--{key}" if value else f"--no{key}")
        elif isinstance(value, float):
            lines.append(f"--{key}={value!r}")
        else:
            lines.append(f"--{key}={value}")
    return "\n".join(lines) + "\n"


def save(config, workdir):
    """Writes ``config.json`` and ``flags.txt`` into ``workdir`` (each atomically)."""
    for name, text in (("config.json", json.dumps(config.to_dict(), indent=2, sort_keys=True)),
                       ("flags.txt", to_flagfile(config))):
        path = os.path.join(workdir, name)
        with open(path + ".tmp", "w") as f:
            f.write(text)
        os.replace(path + ".tmp", path)


def load(workdir):
    """The configuration stored in ``workdir``, or ``None``."""
    path = os.path.join(workdir, "config.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return TrainConfig.from_dict(json.load(f))
