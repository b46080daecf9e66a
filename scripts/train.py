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

from absl import app, flags
from absl import logging as absl_logging

from tf_asgan import errors, layout
from tf_asgan.config import train_config
from tf_asgan.training import loop, rundir

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO_FLAGFILE = os.path.join(REPO_ROOT, "flags", "demo.flags")
# A field's type -> how its flag is defined (anything else: a string flag).
_DEFINE = {bool: flags.DEFINE_bool, int: flags.DEFINE_integer, float: flags.DEFINE_float}


def define_flags(flag_values=flags.FLAGS):
    """Defines ``--workdir``, ``--existing_run`` and one flag per ``TrainConfig`` field
    (name, help, choices and default from the field) on ``flag_values``."""
    flags.DEFINE_string("workdir", "runs/demo", "Run directory (created; resumed if it holds "
                        "a run).", flag_values=flag_values)
    flags.DEFINE_enum("existing_run", "resume", list(rundir.EXISTING_RUN),
                      "When --workdir holds a different experiment: resume (refuse, listing "
                      "the differences), overwrite (delete that run first), new (use the "
                      "first <workdir>_2, <workdir>_3, ... that is free or holds this same "
                      "experiment). The same experiment is always resumed, so re-running a "
                      "command continues its run.", flag_values=flag_values)
    for field in train_config.flag_fields():
        meta = field.metadata
        if meta["choices"] is not None:
            flags.DEFINE_enum(field.name, field.default, list(meta["choices"]), meta["help"],
                              flag_values=flag_values)
        elif meta["fraction"] is not None:  # a string: fractions like 1/255 are accepted
            flags.DEFINE_string(field.name, meta["fraction"], meta["help"],
                                flag_values=flag_values)
        else:
            define = _DEFINE.get(field.type, flags.DEFINE_string)
            define(field.name, field.default, meta["help"], flag_values=flag_values)


def config_from_flags(flag_values=flags.FLAGS):
    """The validated ``TrainConfig`` of the parsed flags."""
    values = {f.name: flag_values[f.name].value for f in train_config.flag_fields()}
    return train_config.TrainConfig(**values).validate()


def with_default_flagfile(argv):
    """``argv`` with the demo flagfile prepended when no flags are given at all."""
    if len(argv) == 1:
        return argv[:1] + [f"--flagfile={DEMO_FLAGFILE}"]
    return argv


def main(argv):
    del argv
    # Our progress at INFO; TensorFlow's own INFO chatter (SavedModel writing) hidden.
    absl_logging.set_verbosity(absl_logging.WARNING)
    logging.getLogger("tf_asgan").setLevel(logging.INFO)
    try:
        config = config_from_flags()
    except errors.TfAsganError as err:
        sys.exit(f"train.py: {err}")
    try:
        result = loop.train(config, flags.FLAGS.workdir,
                            existing_run=flags.FLAGS.existing_run)
    except errors.TfAsganError as err:
        sys.exit(f"train.py: {err}")
    print(f"Done: {result['step']} steps in {result['workdir']}; samples in "
          f"{layout.entry(result['workdir'], layout.SAMPLES)}"
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
