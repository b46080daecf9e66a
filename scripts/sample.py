"""Samples an exported generator: a grid and a latent interpolation (the paper's Fig. 9).

    python scripts/sample.py --generator=runs/demo/generator --seed=0

Writes ``<out_dir>/grid_seed<seed>.png`` (``--num`` samples) and
``<out_dir>/interpolation_seed<seed>.png`` (one row per pair of random latents, ``--steps``
images from one end to the other), RGB PNGs, or 8-bit grey ones for a one-channel
generator (MNIST, Fashion-MNIST: the export's images are ``[N, H, W, 1]``, kept as they
are). The export itself loads without tf_asgan
(``tf.saved_model.load``); this script uses tf_asgan for the grid and the interpolation.
"""

import os
import sys

import tensorflow as tf
from absl import app, flags

from tf_asgan import errors, export
from tf_asgan.analysis import figures
from tf_asgan.utils import images

flags.DEFINE_string("generator", None, "Exported generator (SavedModel directory).")
flags.DEFINE_string("out_dir", None, "Output folder (default: <generator>/../exported_samples).")
flags.DEFINE_integer("seed", 0, "Seed of the latents (same seed, same images).")
flags.DEFINE_integer("num", 64, "Images in the grid.")
flags.DEFINE_integer("columns", 8, "Grid columns.")
flags.DEFINE_integer("rows", 8, "Interpolation rows (pairs of latents).")
flags.DEFINE_integer("steps", 10, "Images per interpolation row, both ends included.")
flags.DEFINE_bool("spherical", False, "Interpolate along the great circle instead of a line.")
flags.DEFINE_bool("overwrite", False, "Replace existing PNGs of the same seed.")
flags.mark_flag_as_required("generator")
FLAGS = flags.FLAGS


def write(generator_dir, out_dir, *, seed=0, num=64, columns=8, rows=8, steps=10,
          spherical=False, overwrite=False):
    """Writes the grid and interpolation PNGs; returns their paths.

    The generator is checked first: a wrong ``generator_dir`` is named as such, even
    when the default output folder already holds PNGs.

    Raises:
      tf_asgan.utils.saved_models.ExportNotReadableError: ``generator_dir`` is not a
        complete SavedModel.
      tf_asgan.errors.ExistsError: a PNG exists and ``overwrite`` is false.
    """
    grid_path = os.path.join(out_dir, f"grid_seed{seed}.png")
    interp_path = os.path.join(out_dir, f"interpolation_seed{seed}.png")
    g = export.load(generator_dir)  # kept in a variable before use
    for path in (grid_path, interp_path):
        if os.path.exists(path) and not overwrite:
            raise errors.ExistsError(f"{path} exists; pass --overwrite or another --seed.")
    samples = g.sample(tf.constant(num, tf.int32), tf.constant(seed, tf.int32))["images"]
    images.save_grid(samples.numpy(), grid_path, columns)

    figures.latent_interpolation(g, interp_path, rows=rows, steps=steps, seed=seed,
                                 spherical=spherical)
    return grid_path, interp_path


@errors.on_interrupt(
    "sample.py",
    "Interrupted; the output folder may hold some of the images (each "
    "complete). Run the same command again with --overwrite.")
def main(argv):
    del argv
    out_dir = FLAGS.out_dir or os.path.join(
        os.path.dirname(os.path.abspath(FLAGS.generator)), "exported_samples")
    for name, least in (("num", 1), ("columns", 1), ("rows", 1), ("steps", 2)):
        if FLAGS[name].value < least:
            sys.exit(f"sample.py: --{name} must be >= {least}, got {FLAGS[name].value}.")
    try:
        paths = write(FLAGS.generator, out_dir, seed=FLAGS.seed, num=FLAGS.num,
                      columns=FLAGS.columns, rows=FLAGS.rows, steps=FLAGS.steps,
                      spherical=FLAGS.spherical, overwrite=FLAGS.overwrite)
    except (errors.TfAsganError, OSError) as err:  # a half-copied export; the output folder
        sys.exit(f"sample.py: {err}")
    print("Wrote " + " and ".join(paths))


if __name__ == "__main__":
    app.run(main)
