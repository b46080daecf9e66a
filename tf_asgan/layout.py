"""The layout of a run directory: every file and folder name a run writes, in one place.

A run's workdir (``scripts/train.py --workdir``) holds::

    config.json      the resolved configuration (CONFIG), and flags.txt (FLAGS), the same
                     as a flagfile
    checkpoints/     tf.train.CheckpointManager's checkpoints (CHECKPOINTS); unreadable
                     ones are moved into checkpoints/corrupt/ (CORRUPT)
    tensorboard/     step and epoch logs (TENSORBOARD); history.csv, epoch means (HISTORY)
    samples/         one sample grid per epoch (SAMPLES) and the real training images
                     the run is fed first (REAL_GRID)
    metrics.jsonl    one evaluation per line (METRICS); best.json and best/ for the
                     best-FID checkpoint (BEST_RECORD, BEST)
    generator/       the exported generator (EXPORT; kept older exports
                     generator_step<N>/), its run record in assets.extra/tf_asgan.json
                     (EXPORT_ASSETS, EXPORT_METADATA)
    analysis/        scripts/analyze.py's figures and analysis.json (ANALYSIS)
    .workers/<task>/ scratch space of non-chief workers (WORKERS), deleted at the end

and a run checkpoint holds the objects :data:`RUN_OBJECTS`, the run's step and
rollback counts (:data:`STEP`, :data:`ROLLBACKS`) and, with an EMA of G's weights, that
generator (:data:`EMA_GENERATOR`) and, with SSGAN's rotation loss, D's rotation
classifier (:data:`ROTATION_CLASSIFIER`). Every module and script asks this one
for a name instead of spelling it.
"""

import os

CONFIG = "config.json"
FLAGS = "flags.txt"
CHECKPOINTS = "checkpoints"
CORRUPT = "corrupt"  # inside CHECKPOINTS
TENSORBOARD = "tensorboard"
HISTORY = "history.csv"
SAMPLES = "samples"
REAL_GRID = "real.png"  # inside SAMPLES
METRICS = "metrics.jsonl"
BEST = "best"
BEST_RECORD = "best.json"
EXPORT = "generator"
KEPT_EXPORT_SUFFIX = "_step"  # an older export kept beside EXPORT: generator_step<N>
EXPORT_ASSETS = "assets.extra"  # inside an export
EXPORT_METADATA = "tf_asgan.json"  # inside EXPORT_ASSETS
WORKERS = ".workers"
ANALYSIS = "analysis"
ANALYSIS_RECORD = "analysis.json"  # inside ANALYSIS
CURVES = "curves.png"  # inside ANALYSIS

# The entries of a workdir that belong to its run (what --existing_run=overwrite removes;
# CONFIG last, so a run killed part-way through removal is still refused).
RUN_ENTRIES = (FLAGS, CHECKPOINTS, TENSORBOARD, HISTORY, SAMPLES, EXPORT, METRICS,
               BEST_RECORD, BEST, WORKERS, CONFIG)

# What a run checkpoint holds (tf_asgan.training.builder.checkpoint_for): these objects,
# and the run's step and rollback counts under STEP and ROLLBACKS (added later: older
# checkpoints lack them, tf_asgan.legacy).
RUN_OBJECTS = ("generator", "discriminator", "d_optimizer", "g_optimizer")
STEP = "step"
ROLLBACKS = "rollbacks"
# ... and, in a run with an EMA of G's weights (--ema_decay), that averaged generator
# (added later: older checkpoints lack it, tf_asgan.legacy).
EMA_GENERATOR = "generator_ema"
# ... and, with SSGAN's rotation loss (--rotation_loss), D's rotation classifier (D's
# trunk and its rotation head).
ROTATION_CLASSIFIER = "rotation_classifier"


def entry(workdir, name):
    """The path of run entry ``name`` (one of this module's names) in ``workdir``."""
    return os.path.join(workdir, name)
