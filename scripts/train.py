"""Trains (or resumes) an AS-GAN run.

With no flags it runs the embedded default: AS-DCGAN on scikit-learn's digits at 32 px
(flags/demo.flags), about 7 minutes on 2 CPU cores, writing into runs/demo. A paper
setting is one flagfile away (run from the repository root)::

    python scripts/train.py --flagfile=flags/table1/cifar10_dcgan_as.flags

The workdir receives the resolved flags (``flags.txt``: ``--flagfile=<workdir>/flags.txt``
repeats the run), TensorBoard logs, a sample grid per epoch, checkpoints and, at the
end, the exported generator. Running the same command again resumes the run.
"""

import logging
import os
import sys
import typing

from absl import app, flags
from absl import logging as absl_logging

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO_FLAGFILE = os.path.join(REPO_ROOT, "flags", "demo.flags")

# Help for every field of tf_asgan.config.TrainConfig: the flags are those fields.
HELP = {
    "dataset": "Training data: a TFDS name, digits / stacked_digits (embedded, no download) "
               "or folder (with --image_dir).",
    "data_dir": "TFDS data directory (default: the TFDS default, ~/tensorflow_datasets).",
    "image_dir": "Folder of PNG/JPEG/BMP/GIF/WebP images (searched recursively) for "
                 "--dataset=folder.",
    "download": "Let TFDS download a missing dataset (off: fail at once with instructions).",
    "bad_images": "Unreadable or truncated files in --image_dir: skip (counted and named in "
                  "the log) or fail (stop before training, listing them).",
    "architecture": "Generator and discriminator family (Appendix G of the paper).",
    "resolution": "Image size in pixels (dcgan: 32, 64, 128; resnet: 32, 64).",
    "latent_dim": "Size of the latent z ~ N(0, I).",
    "bn_g": "Batch normalisation in the generator (Table 2 switches it off).",
    "bn_d": "Batch normalisation in the discriminator (Table 2 switches it off).",
    "width": "Multiplier of every layer's channel count (1: the paper's networks; e.g. "
             "0.25 for CPU studies).",
    "loss": "GAN loss (TF-GAN's functions).",
    "adversarial": "AS-GAN: the second D update on perturbed reals. --noadversarial: baseline.",
    "perturbation": "How the real batch is perturbed: fgsm (the paper's), gaussian (the "
                    "Fig. 3 ablation), none (eps = 0: D updated twice), pgd.",
    "epsilon": "Attack radius, e.g. 1/255 or 0.0039; see --epsilon_unit.",
    "epsilon_unit": "input: units of D's input (images in [-1, 1]; the paper's reading); "
                    "pixel: fractions of [0, 1] (k/255 = k grey levels).",
    "epsilon_schedule": "constant; delayed (0 before --epsilon_start_step); linear (0 until "
                        "--epsilon_start_step, then a ramp of --epsilon_ramp_steps).",
    "epsilon_start_step": "First generator step at which epsilon is nonzero.",
    "epsilon_ramp_steps": "Length of the linear ramp, in generator steps.",
    "second_update": "real_and_fake: Eq. 14, D loss on (x_hat, the same fakes); real_only: "
                     "only the real term on x_hat.",
    "d_steps": "Discriminator iterations per generator update.",
    "pgd_steps": "Iterations of --perturbation=pgd.",
    "pgd_step_size": "PGD step size (0: 2.5 * epsilon / pgd_steps).",
    "pgd_random_start": "Start PGD from a uniform point of the epsilon ball.",
    "dat": "DAT (Direct Adversarial Training): none; authors (the published step: each "
           "batch pushed towards the other's mean logit by one gradient step of "
           "|batch mean logit - target|); pgd (ours, not the authors': an L-infinity attack).",
    "dat_side": "Which samples DAT attacks: both, real or fake (with AS-GAN: fake only).",
    "dat_loss": "replace: D trains on the attacked batches only (the authors'); add: on "
                "the clean and the attacked batches.",
    "dat_step_size": "DAT authors: multiplier of the gradient step (1: the published step; "
                     "the authors have no step size). DAT pgd (ours): see dat_pgd_step_size.",
    "dat_epsilon": "DAT pgd: L-infinity radius in model-input units, e.g. 2/255.",
    "dat_pgd_steps": "DAT pgd: iterations.",
    "dat_pgd_step_size": "DAT pgd: step size (0: 2.5 * dat_epsilon / dat_pgd_steps).",
    "advas_lambda": "AdvAs (0: off). With --advas_weight=norm_ratio a multiplier of the "
                    "published weight (1: as published); with fixed, the weight itself.",
    "advas_weight": "AdvAs weight of the penalty: norm_ratio (published: min(1, ||grad L_G|| "
                    "/ ||grad penalty||), recomputed every G step) or fixed (ours).",
    "advas_estimate": "AdvAs estimate of ||grad_phi L_D||^2: unbiased (published: dot product "
                      "of two half-batch gradients) or biased (ours: one full-batch norm).",
    "lr_d": "Discriminator learning rate (Adam).",
    "lr_g": "Generator learning rate (Adam).",
    "beta1_d": "Adam beta1 of the discriminator.",
    "beta2_d": "Adam beta2 of the discriminator.",
    "beta1_g": "Adam beta1 of the generator.",
    "beta2_g": "Adam beta2 of the generator.",
    "batch_size": "Global batch size (split across replicas).",
    "epochs": "Training epochs (may be raised to extend a finished run).",
    "steps_per_epoch": "Steps per epoch (0: one pass over the data).",
    "cache": "Keep the decoded images in memory (turn off for LSUN and ImageNet).",
    "seed": "Seed of the initial weights, the data order and the latents.",
    "strategy": "tf.distribute strategy: auto (multi_worker when TF_CONFIG lists several "
                "tasks, mirrored with several GPUs, else one_device), one_device, mirrored "
                "(all local GPUs), multi_worker (MultiWorkerMirroredStrategy from TF_CONFIG).",
    "sync_bn": "Synchronized batch norm: statistics over the global batch, not per replica.",
    "precision": "auto (mixed_float16 on GPUs with compute capability >= 7.0, else "
                 "float32), float32, mixed_float16 (with loss scaling), mixed_bfloat16.",
    "jit_compile": "XLA: auto (on with one replica, off with several), on, off.",
    "sample_every_epochs": "Write a sample grid every N epochs.",
    "checkpoint_every_steps": "Also checkpoint every N steps (0: at epoch ends only).",
    "checkpoint_every_minutes": "Also checkpoint when this many minutes passed since the "
                                "last checkpoint (0: off); bounds the work a kill loses.",
    "checkpoints_to_keep": "Checkpoints kept in <workdir>/checkpoints.",
    "on_nonfinite": "A NaN / infinite loss or weight: stop (naming the step and the "
                    "quantity; the last good checkpoint is kept, nothing exported) or "
                    "rollback (restore the last good checkpoint and continue with fresh "
                    "random draws, at most --max_rollbacks times).",
    "max_rollbacks": "Most rollbacks of --on_nonfinite=rollback before stopping.",
    "export": "Export the generator as a SavedModel to <workdir>/generator at the end.",
    "eval_every_epochs": "Compute IS / FID / KID every N epochs and after the last one "
                         "(0: never); writes <workdir>/metrics.jsonl, eval/* in TensorBoard "
                         "and keeps the best-FID checkpoint in <workdir>/best.",
    "eval_num_samples": "Generated samples per evaluation (paper: 22,400; standard: 50,000).",
    "eval_network": "Classifier for the metrics: inception (TF-GAN's Inception, see "
                    "--inception_path), digits (the project's digit classifier, for "
                    "digits / stacked_digits), auto (digits for those, else inception).",
    "inception_path": "Local SavedModel directory of TF-Hub tfgan/eval/inception/1 (else "
                      "the TF-Hub cache, else tfhub.dev).",
    "is_splits": "Inception Score splits.",
    "eval_real_split": "Split of the real data the FID / KID statistics come from.",
    "eval_num_real": "Real images for the statistics (0 or more than the split: all).",
    "eval_cache_dir": "Cache of real-data statistics (default $TF_ASGAN_CACHE/stats, "
                      "~/.cache/tf_asgan/stats).",
}


def _choices():
    from tf_asgan import (
        classifiers,
        data,
        distribute,
        losses,
        methods,
        networks,
        perturbations,
        schedules,
    )
    from tf_asgan import config as config_lib

    return {
        "dataset": list(data.DATASETS),
        "architecture": list(networks.ARCHITECTURES),
        "loss": list(losses.LOSSES),
        "perturbation": list(perturbations.PERTURBATIONS),
        "epsilon_unit": list(schedules.UNITS),
        "epsilon_schedule": list(schedules.SCHEDULES),
        "second_update": ["real_and_fake", "real_only"],
        "eval_network": list(classifiers.NETWORKS),
        "dat": ["none", *methods.DAT_VARIANTS],
        "dat_side": list(methods.DAT_SIDES),
        "dat_loss": list(methods.DAT_LOSSES),
        "advas_weight": list(methods.ADVAS_WEIGHTS),
        "advas_estimate": list(methods.ADVAS_ESTIMATES),
        "strategy": list(distribute.STRATEGIES),
        "precision": list(distribute.PRECISIONS),
        "jit_compile": list(distribute.SWITCHES),
        "bad_images": ["skip", "fail"],
        "on_nonfinite": list(config_lib.NONFINITE_ACTIONS),
    }


def define_flags(flag_values=flags.FLAGS):
    """Defines ``--workdir`` and one flag per ``TrainConfig`` field on ``flag_values``."""
    from tf_asgan import config as config_lib
    from tf_asgan.config import TrainConfig

    choices = _choices()
    flags.DEFINE_string("workdir", "runs/demo", "Run directory (created; resumed if it holds "
                        "a run).", flag_values=flag_values)
    flags.DEFINE_enum("existing_run", "resume", ["resume", "overwrite", "new"],
                      "When --workdir holds a different experiment: resume (refuse, listing "
                      "the differences), overwrite (delete that run first), new (use the "
                      "first <workdir>_2, <workdir>_3, ... that is free or holds this same "
                      "experiment). The same experiment is always resumed, so re-running a "
                      "command continues its run.", flag_values=flag_values)
    hints = typing.get_type_hints(TrainConfig)
    for field in config_lib.flag_fields():
        name, default, kind = field.name, field.default, hints[field.name]
        help_text = HELP[name]
        if name in choices:
            flags.DEFINE_enum(name, default, choices[name], help_text, flag_values=flag_values)
        elif name in ("epsilon", "dat_epsilon"):  # fractions like 1/255 are accepted
            flags.DEFINE_string(name, {"epsilon": "1/255", "dat_epsilon": "2/255"}[name],
                                help_text, flag_values=flag_values)
        elif kind is bool:
            flags.DEFINE_bool(name, default, help_text, flag_values=flag_values)
        elif kind is int:
            flags.DEFINE_integer(name, default, help_text, flag_values=flag_values)
        elif kind is float:
            flags.DEFINE_float(name, default, help_text, flag_values=flag_values)
        else:
            flags.DEFINE_string(name, default, help_text, flag_values=flag_values)


def config_from_flags(flag_values=flags.FLAGS):
    """The validated ``TrainConfig`` of the parsed flags."""
    from tf_asgan import config as config_lib
    from tf_asgan.config import TrainConfig

    values = {f.name: flag_values[f.name].value for f in config_lib.flag_fields()}
    return TrainConfig(**values).validate()


def with_default_flagfile(argv):
    """``argv`` with the demo flagfile prepended when no flags are given at all."""
    if len(argv) == 1:
        return argv[:1] + [f"--flagfile={DEMO_FLAGFILE}"]
    return argv


def main(argv):
    del argv
    from tf_asgan import training

    # Our progress at INFO; TensorFlow's own INFO chatter (SavedModel writing) hidden.
    absl_logging.set_verbosity(absl_logging.WARNING)
    logging.getLogger("tf_asgan").setLevel(logging.INFO)
    try:
        config = config_from_flags()
    except ValueError as err:
        sys.exit(f"train.py: {err}")
    from tf_asgan import checkpoints

    try:
        result = training.train(config, flags.FLAGS.workdir,
                                existing_run=flags.FLAGS.existing_run)
    except (training.ConfigMismatchError, FileNotFoundError, FileExistsError, ValueError,
            training.ExportUnreadableError, checkpoints.NonFiniteError,
            checkpoints.CorruptCheckpointError) as err:
        sys.exit(f"train.py: {err}")
    print(f"Done: {result['step']} steps in {result['workdir']}; samples in "
          f"{os.path.join(result['workdir'], 'samples')}"
          + (f"; generator exported to {result['export']}" if result["export"] else "")
          + f"; weights sha1 {result['weights_sha1'][:12]} (with batch-norm statistics "
          f"{result['all_weights_sha1'][:12]})")
    if result["evaluation"]:
        print(summary(result["evaluation"]))


def summary(record):
    """One readable line of an evaluation record."""
    m, p = record["metrics"], record["protocol"]
    parts = [f"FID {m['fid']:.2f}", f"IS {m['is']:.2f} +- {m['is_std']:.2f} (real data "
             f"{m['real_is']:.2f})", f"KID {m['kid']:.4g} +- {m['kid_std']:.2g}"]
    if "modes" in m:
        parts.append(f"modes {m['modes']}/{p['network']['num_classes']} (real data "
                     f"{m['real_modes']}), KL {m['modes_kl']:.3f}")
    return (f"Epoch {record['epoch']}: " + ", ".join(parts)
            + f" [{p['num_samples']} samples, {p['network']['name']}]")


if __name__ == "__main__":
    define_flags()
    app.run(main, argv=with_default_flagfile(sys.argv))
