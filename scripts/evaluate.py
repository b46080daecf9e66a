"""Evaluates a trained generator and writes the result as JSON.

    python scripts/evaluate.py --workdir=runs/demo
    python scripts/evaluate.py --generator=path/to/generator --output=eval.json

The JSON holds the protocol (samples, real split, IS splits, network) and the metrics.
This version fixes the command line and the file; the metrics themselves (IS, FID, KID
through TF-GAN) are not computed yet and ``metrics`` is empty.
"""

import json
import os
import sys

from absl import app, flags

flags.DEFINE_string("workdir", None, "Training workdir: evaluates <workdir>/generator.")
flags.DEFINE_string("generator", None, "Exported generator (SavedModel directory).")
flags.DEFINE_string("output", None, "JSON file (default: eval.json beside the generator).")
flags.DEFINE_integer("num_samples", 22_400, "Generated samples (paper: 22,400; the field's "
                     "standard: 50,000).")
flags.DEFINE_integer("is_splits", 10, "Inception Score splits.")
flags.DEFINE_string("real_split", "train", "Split of the real data for FID statistics.")
flags.DEFINE_integer("seed", 0, "Seed of the generated samples.")
flags.DEFINE_bool("overwrite", False, "Replace an existing --output file.")
FLAGS = flags.FLAGS


def resolve(workdir, generator):
    """The generator directory of ``--workdir`` xor ``--generator``."""
    if bool(workdir) == bool(generator):
        raise ValueError("Pass exactly one of --workdir (a training run) or --generator "
                         "(an exported SavedModel).")
    path = generator or os.path.join(workdir, "generator")
    if not os.path.isfile(os.path.join(path, "saved_model.pb")):
        hint = (f"export it with scripts/export.py --workdir={workdir}" if workdir
                else "pass the directory that holds saved_model.pb")
        raise ValueError(f"{path} is not an exported generator; {hint}.")
    return path


def report(generator_dir, *, num_samples, is_splits, real_split, seed):
    """The JSON-serialisable evaluation record of ``generator_dir``."""
    meta_path = os.path.join(generator_dir, "assets.extra", "tf_asgan.json")
    run = {}
    if os.path.exists(meta_path):
        with open(meta_path) as f:
            run = json.load(f)
    return {
        "generator": os.path.abspath(generator_dir),
        "run": run,
        "protocol": {"num_samples": num_samples, "is_splits": is_splits,
                     "real_split": real_split, "seed": seed, "network": None},
        "metrics": {},
        "status": "metrics not computed: this version defines the command line only",
    }


def main(argv):
    del argv
    try:
        generator_dir = resolve(FLAGS.workdir, FLAGS.generator)
    except ValueError as err:
        sys.exit(f"evaluate.py: {err}")
    output = FLAGS.output or os.path.join(os.path.dirname(os.path.abspath(generator_dir)),
                                          "eval.json")
    if os.path.exists(output) and not FLAGS.overwrite:
        sys.exit(f"evaluate.py: {output} exists; pass --overwrite or another --output.")
    record = report(generator_dir, num_samples=FLAGS.num_samples, is_splits=FLAGS.is_splits,
                    real_split=FLAGS.real_split, seed=FLAGS.seed)
    with open(output, "w") as f:
        json.dump(record, f, indent=2, sort_keys=True)
    print(f"Wrote {output} ({record['status']})")


if __name__ == "__main__":
    app.run(main)
