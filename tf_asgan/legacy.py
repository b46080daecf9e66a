"""What earlier versions of tf_asgan wrote, read by today's code: every migration in one
place.

- Configurations (``config.json``) written before the sibling methods followed their
  sources: :func:`upgrade_config`, and :data:`METHODS_VERSION`, the version of the DAT /
  AdvAs definitions a run trains with.
- Run checkpoints written before the run's step and rollback counts were saved with the
  weights (:func:`missing_counts`), or without the EMA of G's weights that the model now
  keeps: :func:`missing_objects`, :func:`restore_older`.
- Runs trained with an earlier random-draw scheme (:data:`tf_asgan.randomness.SCHEME`):
  :func:`draws_outdated`.
- Option values that were removed: :data:`REMOVED_CHOICES`, whose messages say what
  replaced them.
"""

import logging

import tensorflow as tf

from tf_asgan import layout, randomness

log = logging.getLogger(__name__)

# The version of the DAT / AdvAs definitions a run trains with. 1: before they followed
# their sources (a squared, summed DAT objective; AdvAs with a fixed or uncapped weight and
# a one-batch estimate); 2: as in docs/methods.md. A run of another version is a
# different experiment: it is not resumed under today's code.
METHODS_VERSION = 2

# option -> {removed value: what to use instead}
REMOVED_CHOICES = {
    "advas_weight": {"relative": "'relative' was removed: it had no cap; norm_ratio is the "
                                 "published rule"},
}


def upgrade_config(values):
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


def missing_counts(saved_objects):
    """The run counts (:data:`tf_asgan.layout.STEP`, :data:`~tf_asgan.layout.ROLLBACKS`)
    absent from a checkpoint whose top-level object names are ``saved_objects``: ``[]``
    for today's checkpoints; an earlier tf_asgan wrote one that lacks them."""
    return [name for name in (layout.STEP, layout.ROLLBACKS) if name not in saved_objects]


def missing_objects(saved_objects, checkpoint):
    """The objects of ``checkpoint`` (a run's ``tf.train.Checkpoint``) that were added to
    run checkpoints later (the counts, the EMA generator :data:`tf_asgan.layout.EMA_GENERATOR`)
    and are absent from a checkpoint whose top-level object names are ``saved_objects``."""
    later = (layout.STEP, layout.ROLLBACKS, layout.EMA_GENERATOR)
    return [name for name in later if hasattr(checkpoint, name) and name not in saved_objects]


def restore_older(checkpoint, prefix, missing):
    """Restores a run checkpoint written without the objects named in ``missing``
    (:func:`missing_objects`): every saved object must match; a missing step count is
    the generator optimizer's update count (what it meant then), a missing rollback
    count 0, a missing EMA generator a copy of the restored generator (the EMA starts
    again from G's weights, with a warning)."""
    names = [name for name in layout.RUN_OBJECTS + (layout.STEP, layout.ROLLBACKS,
                                                    layout.EMA_GENERATOR)
             if hasattr(checkpoint, name) and name not in missing]
    older = tf.train.Checkpoint(**{name: getattr(checkpoint, name) for name in names})
    older.restore(prefix).assert_existing_objects_matched()
    counts = [name for name in missing if name in (layout.STEP, layout.ROLLBACKS)]
    if counts:
        log.warning("%s was written by an earlier tf_asgan (no %s in it): the run goes on, "
                    "but its steps so far drew other random numbers than today's code would, "
                    "so it is not bit-identical to a run trained from scratch now.", prefix,
                    " or ".join(counts))
    if layout.STEP in missing:
        getattr(checkpoint, layout.STEP).assign(checkpoint.g_optimizer.iterations)
    if layout.ROLLBACKS in missing:
        getattr(checkpoint, layout.ROLLBACKS).assign(0)
    if layout.EMA_GENERATOR in missing:
        ema = getattr(checkpoint, layout.EMA_GENERATOR)
        ema.set_weights(getattr(checkpoint, layout.RUN_OBJECTS[0]).get_weights())
        log.warning("%s holds no EMA of G's weights: the EMA starts from the generator's "
                    "weights at this checkpoint (its average of the earlier steps is lost).",
                    prefix)
    return prefix


def draws_outdated(record):
    """Whether a run record (a dict with ``"draws"``, the random-draw scheme it trained
    with) predates :data:`tf_asgan.randomness.SCHEME`: the same run would now draw other
    random numbers, so its results are not today's."""
    return record.get("draws") != randomness.SCHEME
