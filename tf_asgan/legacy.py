"""What earlier versions of tf_asgan wrote, read by today's code: every migration in one
place.

- Configurations (``config.json``) written before the sibling methods followed their
  sources: :func:`upgrade_config`, and :data:`METHODS_VERSION`, the version of the DAT /
  AdvAs definitions a run trains with.
- Run checkpoints written before the run's step and rollback counts were saved with the
  weights: :func:`missing_counts`, :func:`restore_without_counts`.
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


def restore_without_counts(checkpoint, prefix, missing):
    """Restores a run checkpoint written by an earlier version of tf_asgan, without the
    counts named in ``missing``: every saved object must match; a missing step count is
    the generator optimizer's update count (what it meant then), a missing rollback
    count 0."""
    saved = [name for name in layout.RUN_OBJECTS + (layout.STEP, layout.ROLLBACKS)
             if name not in missing]
    older = tf.train.Checkpoint(**{name: getattr(checkpoint, name) for name in saved})
    older.restore(prefix).assert_existing_objects_matched()
    log.warning("%s was written by an earlier tf_asgan (no %s in it): the run goes on, but "
                "its steps so far drew other random numbers than today's code would, so it "
                "is not bit-identical to a run trained from scratch now.", prefix,
                " or ".join(missing))
    if layout.STEP in missing:
        getattr(checkpoint, layout.STEP).assign(checkpoint.g_optimizer.iterations)
    if layout.ROLLBACKS in missing:
        getattr(checkpoint, layout.ROLLBACKS).assign(0)
    return prefix


def draws_outdated(record):
    """Whether a run record (a dict with ``"draws"``, the random-draw scheme it trained
    with) predates :data:`tf_asgan.randomness.SCHEME`: the same run would now draw other
    random numbers, so its results are not today's."""
    return record.get("draws") != randomness.SCHEME
