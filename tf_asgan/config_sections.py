"""The sections of :class:`tf_asgan.config.TrainConfig` other than the method's: the data,
the networks, the optimisation, the run (scale, outputs, bad numbers) and the evaluation.

Each field's help is its ``scripts/train.py`` flag's help; see :mod:`tf_asgan.config_fields`.
"""

import dataclasses
from typing import Optional

from tf_asgan import classifiers, data, distribute, evaluation, networks
from tf_asgan.config_fields import Section, option

NONFINITE_ACTIONS = ("stop", "rollback")


@dataclasses.dataclass(frozen=True)
class DataConfig(Section):
    """The training data."""

    dataset: str = option(
        "digits", "Training data: a TFDS name, digits / stacked_digits (embedded, no "
        "download) or folder (with --image_dir).", choices=data.DATASETS)
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
        "the log) or fail (stop before training, listing them).", choices=data.BAD_IMAGES,
        mutable=True)

    def check(self):
        if self.dataset == data.FOLDER and not self.image_dir:
            raise ValueError("--dataset=folder needs --image_dir=PATH.")
        if self.bad_images not in data.BAD_IMAGES:
            raise ValueError(f"bad_images must be {' or '.join(data.BAD_IMAGES)}, got "
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

    def check(self):
        supported = networks.supported_resolutions(self.architecture)
        if self.resolution not in supported:
            raise ValueError(f"Architecture {self.architecture!r} supports resolutions "
                             f"{list(supported)}, not {self.resolution}; set --resolution.")
        if not self.width > 0:
            raise ValueError(f"width must be > 0 (1: the paper's networks), got {self.width}.")


@dataclasses.dataclass(frozen=True)
class OptimConfig(Section):
    """Adam (the paper's defaults), the batches and the epochs."""

    lr_d: float = option(2e-4, "Discriminator learning rate (Adam).")
    lr_g: float = option(2e-4, "Generator learning rate (Adam).")
    beta1_d: float = option(0.5, "Adam beta1 of the discriminator.")
    beta2_d: float = option(0.999, "Adam beta2 of the discriminator.")
    beta1_g: float = option(0.5, "Adam beta1 of the generator.")
    beta2_g: float = option(0.999, "Adam beta2 of the generator.")
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
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}.")
        for name in ("beta1_d", "beta2_d", "beta1_g", "beta2_g"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name} must lie in [0, 1), got {getattr(self, name)}.")


@dataclasses.dataclass(frozen=True)
class RunConfig(Section):
    """Scale and speed (:mod:`tf_asgan.distribute` states the "auto" rules), the outputs,
    and what a NaN does (:mod:`tf_asgan.checkpoints`)."""

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
        "auto", "XLA: auto (on with one replica, off with several), on, off.",
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
            raise ValueError("max_rollbacks and checkpoint_every_minutes must be >= 0.")
        k = self.steps_per_execution
        for name in ("checkpoint_every_steps", "log_every_steps"):
            if k >= 1 and getattr(self, name) % k:
                raise ValueError(
                    f"--{name}={getattr(self, name)} is not a multiple of "
                    f"--steps_per_execution={k}: callbacks run only between executions, so "
                    f"it could not land on its steps. Choose a multiple of {k}.")
        if self.on_nonfinite not in NONFINITE_ACTIONS:
            raise ValueError(f"on_nonfinite must be one of {list(NONFINITE_ACTIONS)}, got "
                             f"{self.on_nonfinite!r}.")
        if self.jit_compile not in distribute.SWITCHES:
            raise ValueError(f"jit_compile must be one of {list(distribute.SWITCHES)}, got "
                             f"{self.jit_compile!r}.")


@dataclasses.dataclass(frozen=True)
class EvalConfig(Section):
    """The IS / FID / KID evaluations during training (see :mod:`tf_asgan.evaluation`)."""

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
        """The :class:`~tf_asgan.evaluation.Protocol` of the evaluations (latents from
        ``seed``, the run's seed)."""
        return evaluation.Protocol(num_samples=self.eval_num_samples, is_splits=self.is_splits,
                                   real_split=self.eval_real_split,
                                   num_real=self.eval_num_real, seed=seed)
