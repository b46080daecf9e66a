"""Exports the generator of a training run (a checkpoint) as a SavedModel.

    python scripts/export.py --workdir=runs/demo [--checkpoint=PATH] [--output=DIR]

The SavedModel loads without tf_asgan (``tf.saved_model.load``, Keras' ``TFSMLayer``, and
TF1's session-based loader of ``saved_model_cli run`` and TF Serving); see
``tf_asgan/export.py`` for its signatures. A checkpoint of another model (a run of
another width, say) is refused in one line.
"""

import os
import sys

from absl import app, flags
from absl import logging as absl_logging

from tf_asgan import errors, export, layout
from tf_asgan.training import checkpoints, rundir

flags.DEFINE_string("workdir", None, "Training workdir (holds config.json and checkpoints/).")
flags.DEFINE_string("checkpoint", None, "Checkpoint prefix (default: the latest of the run).")
flags.DEFINE_string("output", None, "SavedModel directory (default: <workdir>/generator).")
flags.DEFINE_bool("overwrite", False, "Replace an existing export at --output.")
flags.mark_flag_as_required("workdir")
FLAGS = flags.FLAGS


@errors.on_interrupt(
    "export.py",
    "Interrupted; nothing was exported (an export is written whole or "
    "not at all). Run the same command again.")
def main(argv):
    del argv
    absl_logging.set_verbosity(absl_logging.WARNING)

    try:
        generator, config, path = rundir.restore_generator(FLAGS.workdir, FLAGS.checkpoint)
    except errors.TfAsganError as err:
        sys.exit(f"export.py: {err}")
    output = FLAGS.output or layout.entry(FLAGS.workdir, layout.EXPORT)
    meta = rundir.export_metadata(config, checkpoints.step_of(path))
    meta["checkpoint"] = os.path.abspath(path)
    try:
        export.export_generator(generator, output, latent_dim=config.model.latent_dim,
                                metadata=meta, overwrite=FLAGS.overwrite)
    except errors.TfAsganError as err:
        sys.exit(f"export.py: {err}")
    except OSError as err:  # the output folder cannot be written (permissions, disk)
        sys.exit(f"export.py: cannot write {output} ({err.strerror or err}); pass another "
                 "--output, or free the disk / fix the folder's permissions.")
    print(f"Exported {path} to {output}")


if __name__ == "__main__":
    app.run(main)
