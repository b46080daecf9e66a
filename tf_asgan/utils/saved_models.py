"""Reading a SavedModel from disk with a clear error when it is incomplete.

Used for the exported generator (:mod:`tf_asgan.export`) and for networks the user
supplies (Inception, a classifier: :mod:`tf_asgan.evaluation.classifiers`):
:func:`read_saved_model` names what is missing (``saved_model.pb``, variable shards)
instead of TensorFlow's raw error, and :class:`ExportNotReadableError` reports it.
"""

import os
import re

import tensorflow as tf

from tf_asgan import errors


class ExportNotReadableError(errors.TfAsganError, FileNotFoundError):
    """A SavedModel folder that is missing, incomplete or damaged."""


def missing_variable_files(path):
    """The variable files a SavedModel folder should hold but does not (``[]`` when
    complete, or when the model has no ``variables/`` folder at all)."""
    folder = os.path.join(path, "variables")
    if not os.path.isdir(folder):
        return []
    names = os.listdir(folder)
    missing = [] if "variables.index" in names else ["variables/variables.index"]
    shards = [m for m in (re.match(r"variables\.data-(\d+)-of-(\d+)$", n) for n in names)
              if m]
    total = int(shards[0].group(2)) if shards else 1
    present = {int(m.group(1)) for m in shards}
    return missing + [f"variables/variables.data-{i:05d}-of-{total:05d}"
                      for i in range(total) if i not in present]


def incomplete_message(path, problem):
    """Our message for a SavedModel folder that cannot be used."""
    return (f"The SavedModel at {path} is incomplete or damaged: {problem}. It was probably "
            "copied only in part; copy the whole folder again (saved_model.pb and every "
            "file under variables/), or point to another copy.")


def read_saved_model(path, loader, error):
    """``loader(path)`` once the folder's variable files are all there; a missing file or
    a failed load (a truncated file) raises ``error`` with :func:`incomplete_message`
    instead of TensorFlow's error."""
    missing = missing_variable_files(path)
    if missing:
        raise error(incomplete_message(path, f"missing {', '.join(missing)}"))
    try:
        return loader(path)
    except (tf.errors.OpError, ValueError, OSError, IndexError, KeyError, TypeError) as err:
        # (a truncated variables file surfaces as an IndexError from the checkpoint reader)
        raise error(incomplete_message(
            path, f"it cannot be loaded ({errors.short_message(err)})")) from err
