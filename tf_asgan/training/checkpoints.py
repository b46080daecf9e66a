"""Checkpoints that survive crashes: atomic writes, and reads that skip corrupt ones.

Writing: ``tf.train.CheckpointManager`` writes a checkpoint's files first and records it
in the ``checkpoint`` state file (itself replaced atomically) only afterwards, so a crash
during a write leaves the state pointing at the previous, complete checkpoint.

Reading: :func:`restore_latest` tries the recorded checkpoints newest first. One that
cannot be read (truncated, checksum mismatch, missing files) is reported, moved into
``<dir>/corrupt/`` by the writer of the directory, and the next older one is tried;
nothing is loaded from a corrupt file, and when every recorded checkpoint is corrupt
:class:`CorruptCheckpointError` says so rather than training from scratch silently.

A write the file system refuses (a full disk or quota, TensorFlow's
``ResourceExhaustedError``): :func:`save` removes the failed checkpoint's unrecorded
files and raises :class:`OutOfSpaceError`, one line naming the last good checkpoint (the
one the run resumes from); :func:`space_reported` does the same for a run's other writes
(sample grids, logs, the export).

Precision: :func:`loss_scaled` tells from a checkpoint's variables whether its run
trained in ``mixed_float16`` (its optimizers scale the loss), so a resumed run can keep
the precision it started in (:func:`tf_asgan.training.rundir.run_precision`).

Numbers: NaN and infinite values are caught before a checkpoint is written
(:class:`tf_asgan.training.callbacks.NonFiniteGuard`,
:func:`tf_asgan.utils.nonfinite.check_numbers`,
and :mod:`tf_asgan.utils.nonfinite` for the checks themselves).
"""

import contextlib
import errno
import glob
import logging
import os
import re
import shutil

import tensorflow as tf
from tensorflow.python.checkpoint import checkpoint_management

from tf_asgan import errors, layout, legacy

log = logging.getLogger(__name__)


def step_of(prefix):
    """The training step in a checkpoint prefix's name (``.../ckpt-120``,
    ``.../best/best-120`` -> 120), or ``None`` when the name carries none."""
    match = re.search(r"-(\d+)$", os.path.basename(os.path.normpath(str(prefix))))
    return int(match.group(1)) if match else None


class CorruptCheckpointError(errors.TfAsganError, RuntimeError):
    """Every recorded checkpoint of a run is unreadable."""


class CheckpointMismatchError(errors.TfAsganError, ValueError):
    """A readable checkpoint of another model (architecture, resolution, width, ...)."""


class OutOfSpaceError(errors.TfAsganError, OSError):
    """A run's file (a checkpoint, a sample grid, a log, the export) could not be
    written for lack of space (full disk, quota); the run's last good checkpoint is
    unchanged."""


# What the file system says when it is full or over quota (the text of ENOSPC / EDQUOT,
# which TensorFlow's file writes pass on inside a ResourceExhaustedError).
_NO_SPACE = ("no space left", "quota exceeded")


def out_of_space(err):
    """Whether ``err`` is a write refused for lack of space: an ``OSError`` with errno
    ``ENOSPC`` or ``EDQUOT``, or TensorFlow's ``ResourceExhaustedError`` of a file write
    ("No space left on device")."""
    if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return isinstance(err, tf.errors.ResourceExhaustedError) and any(
        words in str(err).lower() for words in _NO_SPACE)


def recorded_checkpoints(directory):
    """The checkpoint prefixes recorded in ``directory``'s state file, oldest first."""
    state = tf.train.get_checkpoint_state(directory)
    if state is None:
        return []
    # get_checkpoint_state has already joined relative entries to ``directory``.
    paths = list(state.all_model_checkpoint_paths) or [state.model_checkpoint_path]
    return [p for p in paths if p]


def _quarantine(directory, prefix, remaining):
    """Moves ``prefix``'s files into ``<directory>/corrupt/`` and records ``remaining``."""
    target = os.path.join(directory, layout.CORRUPT)
    os.makedirs(target, exist_ok=True)
    for path in glob.glob(glob.escape(prefix) + ".*"):
        dest = os.path.join(target, os.path.basename(path))
        if os.path.exists(dest):
            os.remove(dest)
        shutil.move(path, dest)
    if remaining:
        # The public tf.compat.v1 wrapper of this function only adds a deprecation warning.
        checkpoint_management.update_checkpoint_state_internal(
            directory, remaining[-1], all_model_checkpoint_paths=remaining,
            save_relative_paths=True)
    # With none left the state file stays as it is: it keeps naming the (moved)
    # checkpoints, so every later start reports them again instead of silently
    # training from scratch.
    return target


def _is_corruption(err):
    """Whether a read error means the checkpoint's files are damaged or missing (not,
    e.g., a permission problem or an unavailable network file system)."""
    if isinstance(err, (tf.errors.DataLossError, tf.errors.NotFoundError,
                        tf.errors.OutOfRangeError, IndexError, FileNotFoundError)):
        return True
    # The checkpoint reader reports a checksum mismatch as a plain OpError.
    text = str(err).lower()
    return type(err) is tf.errors.OpError and any(
        word in text for word in ("checksum", "corrupt", "truncated", "read less bytes"))


def save(manager, number, resumes_from=None):
    """``manager.save(checkpoint_number=number)`` (a ``tf.train.CheckpointManager``);
    returns the new prefix. ``resumes_from``: the directory of the checkpoints the run
    resumes from (default: the manager's).

    The manager records a checkpoint only after its files are complete. When the file
    system refuses the write, the failed checkpoint's files (``<name>-<number>.*`` and
    TensorFlow's ``<name>-<number>_temp/``, never a recorded checkpoint's) are removed,
    which gives back the space they took.

    Raises:
      OutOfSpaceError: the write failed with a ``ResourceExhaustedError`` (every one a
        checkpoint write raises is the file system's) or an out-of-space ``OSError``
        (:func:`out_of_space`); the message names the last good checkpoint.
    """
    try:
        return manager.save(checkpoint_number=number)
    except (tf.errors.ResourceExhaustedError, OSError) as err:
        if not (isinstance(err, tf.errors.ResourceExhaustedError) or out_of_space(err)):
            raise
        _remove_unrecorded(manager.directory, number)
        raise _no_space(err, f"checkpoint {number} into {manager.directory}",
                        resumes_from or manager.directory) from err


@contextlib.contextmanager
def space_reported(directory, what="a file of the run"):
    """Turns an out-of-space error (:func:`out_of_space`) raised inside the ``with``
    block into :class:`OutOfSpaceError` naming ``what`` and the last good checkpoint of
    ``directory`` (the run's checkpoints); any other error passes unchanged."""
    try:
        yield
    except errors.TfAsganError:
        raise
    except (tf.errors.ResourceExhaustedError, OSError) as err:
        if not out_of_space(err):
            raise
        raise _no_space(err, what, directory) from err


def _no_space(err, what, directory):
    return OutOfSpaceError(
        f"Could not write {what} ({type(err).__name__}: {errors.short_message(err)}). The "
        f"last good checkpoint is {last_good(directory)}; free space on that disk (or raise "
        "the quota) and run the same command again to resume from it.")


def last_good(directory):
    """The newest checkpoint recorded in ``directory`` with its step, as words
    (``'/run/checkpoints/ckpt-40 (step 40)'``), or ``'none yet (the run starts again
    from step 0)'``."""
    recorded = recorded_checkpoints(directory)
    if not recorded:
        return "none yet (the run starts again from step 0)"
    step = step_of(recorded[-1])
    return recorded[-1] + ("" if step is None else f" (step {step})")


def _remove_unrecorded(directory, number):
    """Removes what a failed save of checkpoint ``number`` left in ``directory``."""
    recorded = {os.path.basename(p) for p in recorded_checkpoints(directory)}
    pattern = os.path.join(glob.escape(directory), f"*-{number}")
    for path in glob.glob(pattern + ".*") + glob.glob(pattern + "_temp"):
        if os.path.basename(path).split(".")[0].removesuffix("_temp") in recorded:
            continue
        if os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            os.remove(path)


def loss_scaled(directory):
    """Whether the newest readable checkpoint recorded in ``directory`` was written by a
    run whose optimizers scale the loss (``mixed_float16``, see
    :func:`tf_asgan.optimizers.prepare`: a ``LossScaleOptimizer`` saves its Adam as
    ``inner_optimizer``).

    Returns:
      ``True``, ``False`` (``float32`` or ``mixed_bfloat16``: their variables are the
      same), or ``None`` when ``directory`` records no readable checkpoint.
    """
    optimizer = layout.RUN_OBJECTS[-1]  # g_optimizer
    for prefix in reversed(recorded_checkpoints(directory)):
        try:
            names = [name for name, _ in tf.train.list_variables(prefix)]
        except (tf.errors.OpError, ValueError):
            continue  # unreadable: restore_latest reports it
        return any(name.startswith(f"{optimizer}/inner_optimizer/") for name in names)
    return None


def verify(prefix):
    """Reads every tensor of checkpoint ``prefix`` (checking each one's CRC32C).

    Raises a ``tf.errors.OpError`` (``DataLossError``, ``NotFoundError``, ...) or
    ``IndexError`` when a file is missing, truncated or altered. Reading into a
    separate reader leaves the ``tf.train.Checkpoint`` that will restore it untouched:
    a failed ``restore`` would leave a deferred restoration behind.
    """
    reader = tf.train.load_checkpoint(prefix)
    for name in reader.get_variable_to_dtype_map():
        reader.get_tensor(name)


def restore_latest(checkpoint, directory, writer=True, partial=False):
    """Restores the newest readable checkpoint recorded in ``directory``.

    Args:
      checkpoint: a ``tf.train.Checkpoint`` whose objects are all built.
      directory: the checkpoint directory.
      writer: this process owns ``directory`` and may move corrupt checkpoints aside
        (the others of a cluster, and readers such as ``evaluate.py``, only skip them).
      partial: ``checkpoint`` holds only some of the saved objects (e.g. the generator).

    A run checkpoint saved without the run's step count (:data:`layout.STEP`; earlier versions)
    is restored with the count set to the generator optimizer's update count, one
    without the rollback count (:data:`layout.ROLLBACKS`) with that count set to 0, and
    one without the EMA generator (:data:`layout.EMA_GENERATOR`) that ``checkpoint`` holds
    with the EMA set to the restored generator's weights, with a warning
    (:func:`tf_asgan.legacy.restore_older`).

    Returns:
      The restored prefix, or ``None`` when ``directory`` records no checkpoint.

    Raises:
      CorruptCheckpointError: checkpoints are recorded but none is readable.
      CheckpointMismatchError: a readable checkpoint does not match ``checkpoint``'s
        objects (a different architecture): not corruption, so nothing is moved.
    """
    candidates = recorded_checkpoints(directory)
    remaining = list(candidates)
    problems = []
    for prefix in reversed(candidates):
        try:
            verify(prefix)
        except (tf.errors.OpError, ValueError, IndexError, OSError) as err:
            if not _is_corruption(err):
                raise
            reason = f"{type(err).__name__}: {errors.short_message(err)}"
            problems.append(f"{os.path.basename(prefix)} ({reason})")
            remaining.remove(prefix)
            where = _quarantine(directory, prefix, remaining) if writer else None
            log.warning("Checkpoint %s is unreadable (%s)%s; trying the previous one.",
                        prefix, reason, f", moved into {where}" if where else "")
            continue
        return _restore(checkpoint, prefix, partial)
    if candidates:
        raise CorruptCheckpointError(
            f"No readable checkpoint in {directory}: {'; '.join(problems)}. Damaged files "
            f"are kept in {os.path.join(directory, layout.CORRUPT)}. Restore the checkpoints "
            "from a backup, train into another --workdir, or delete "
            f"{directory} to start this run again from step 0.")
    return None


def restore_one(checkpoint, prefix, partial=False):
    """Restores checkpoint ``prefix`` after checking that it is readable.

    Raises:
      CorruptCheckpointError: it is missing, truncated or altered.
    """
    try:
        verify(prefix)
    except (tf.errors.OpError, ValueError, IndexError, OSError) as err:
        raise CorruptCheckpointError(
            f"Checkpoint {prefix} cannot be read ({type(err).__name__}: "
            f"{errors.short_message(err)}); pick another one (they are listed in "
            f"{os.path.join(os.path.dirname(prefix), 'checkpoint')}).") from err
    return _restore(checkpoint, prefix, partial)


def _saved_objects(prefix):
    """The names of the top-level objects saved in checkpoint ``prefix``."""
    return {name.split("/", 1)[0] for name, _ in tf.train.list_variables(prefix)}


def _restore(checkpoint, prefix, partial):
    missing = [] if partial else legacy.missing_objects(_saved_objects(prefix), checkpoint)
    if missing:  # the counts or the EMA generator (tf_asgan.legacy)
        return legacy.restore_older(checkpoint, prefix, missing)
    try:
        status = checkpoint.restore(prefix)
        (status.expect_partial() if partial else status).assert_existing_objects_matched()
    except (ValueError, AssertionError) as err:  # shapes or objects differ: not corruption
        raise CheckpointMismatchError(
            f"Checkpoint {prefix} does not fit the model of the run's config.json "
            f"({errors.short_message(err)}): it was written with another architecture, "
            "resolution, width or latent size. Pass a checkpoint of this run, or the "
            "--workdir it belongs to.") from err
    return prefix


def written_before_counts(directory):
    """Whether the newest checkpoint recorded in ``directory`` lacks the run's step or
    rollback count (an earlier tf_asgan wrote it, :mod:`tf_asgan.legacy`; its random
    draws were other ones)."""
    candidates = recorded_checkpoints(directory)
    if not candidates:
        return False
    try:
        saved = _saved_objects(candidates[-1])
    except (tf.errors.OpError, ValueError):
        return False  # unreadable: restore_latest reports it
    return bool(legacy.missing_counts(saved))
