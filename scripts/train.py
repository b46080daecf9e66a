"""Trains (or resumes) an AS-GAN run.

With no flags it runs the embedded default: AS-DCGAN on scikit-learn's digits at 32 px
(flags/demo.flags), about 7 minutes on 2 CPU cores, writing into runs/demo. A paper
setting is one flagfile away (from any directory: a flagfile path is looked for in the
current directory, then in the repository, see :mod:`tf_asgan.config.flagfiles`)::

    python scripts/train.py --flagfile=flags/table1/cifar10_dcgan_as.flags

The workdir receives the resolved flags (``flags.txt``, with the workdir:
``--flagfile=<workdir>/flags.txt`` repeats the run), TensorBoard logs, a sample grid per
epoch, checkpoints and, at the end, the exported generator. Running the same command
again resumes the run. On a workdir that holds a run, a flag not given (neither on the
command line nor in a flagfile given there) keeps the run's recorded value, so
``--workdir=runs/demo --epochs=30`` extends the demo as it was configured;
``--existing_run=new`` and ``overwrite`` start from the flags given and the defaults. A
flag written on the command line wins over a flagfile's value of it.
"""

import logging
import os
import sys

from absl import app, flags
from absl import logging as absl_logging

from tf_asgan import errors, layout
from tf_asgan.config import flagfiles, train_config
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


def given_flags(flag_values=flags.FLAGS):
    """``{field: value}`` of the configuration flags given, on the command line or in a
    flagfile given there (absl marks them ``present``)."""
    return {f.name: flag_values[f.name].value for f in train_config.flag_fields()
            if flag_values[f.name].present}


def config_from_flags(flag_values=flags.FLAGS, recorded=None):
    """The validated ``TrainConfig`` of the parsed flags.

    Args:
      flag_values: the parsed flags.
      recorded: the configuration a workdir's run recorded (``config.json``), or
        ``None``. With it, a flag not given keeps the recorded value; without it, the
        flag's default.

    Raises:
      tf_asgan.errors.InputError: a bad value (naming the field and the fix).
    """
    if recorded is None:
        values = {f.name: flag_values[f.name].value for f in train_config.flag_fields()}
    else:
        values = {**recorded.to_dict(), **given_flags(flag_values)}
    return train_config.TrainConfig(**values).validate()


def recorded_config(workdir, existing_run):
    """The configuration the run in ``workdir`` recorded, when it is to be continued
    (``--existing_run=resume``); ``None`` otherwise or when it holds no run."""
    return train_config.load(workdir) if existing_run == "resume" else None


def with_default_flagfile(argv):
    """``argv`` with the demo flagfile prepended when no flags are given at all."""
    if len(argv) == 1:
        return argv[:1] + [f"--flagfile={DEMO_FLAGFILE}"]
    return argv


def command_line(argv):
    """``argv`` as absl should parse it: the demo flagfile when no flags are given, every
    flagfile read from the current directory or the repository, the command line's own
    flags last (:func:`tf_asgan.config.flagfiles.expand`)."""
    return flagfiles.expand(with_default_flagfile(argv), REPO_ROOT)


def main(argv):
    del argv
    # Our progress at INFO; TensorFlow's own INFO chatter (SavedModel writing) hidden.
    absl_logging.set_verbosity(absl_logging.WARNING)
    logging.getLogger("tf_asgan").setLevel(logging.INFO)
    try:
        config = config_from_flags(
            recorded=recorded_config(flags.FLAGS.workdir, flags.FLAGS.existing_run))
    except errors.TfAsganError as err:
        sys.exit(f"train.py: {err}")
    try:
        result = loop.train(config, flags.FLAGS.workdir,
                            existing_run=flags.FLAGS.existing_run)
    except errors.TfAsganError as err:
        sys.exit(f"train.py: {err}")
    except OSError as err:  # a file the run reads or writes (a full disk, a permission)
        sys.exit(f"train.py: {err}. Fix that (free space, permissions) and run the same "
                 "command again: the run resumes from its last checkpoint.")
    except KeyboardInterrupt as err:  # Ctrl-C: where the run resumes, in one line
        errors.exit_interrupted("train.py", str(err) or "Interrupted. Run the same command "
                                "again to resume the run from its last checkpoint.")
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
             f"{m['real_is']:.2f})" if "is" in m else "no IS (the network has no logits)",
             f"KID {m['kid']:.4g} +- {m['kid_std']:.2g}"]
    if "precision" in m:  # (records of earlier versions lack them)
        parts.append(f"precision {m['precision']:.3f}, recall {m['recall']:.3f}, density "
                     f"{m['density']:.3f}, coverage {m['coverage']:.3f}")
    if "modes" in m:
        parts.append(f"modes {m['modes']}/{p['network']['num_classes']} (real data "
                     f"{m['real_modes']}), KL {m['modes_kl']:.3f}")
    return (f"Epoch {record['epoch']}: " + ", ".join(parts)
            + f" [{p['num_samples']} samples, {p['network']['name']}]")


if __name__ == "__main__":
    define_flags()
    try:
        ARGV = command_line(sys.argv)
    except errors.TfAsganError as err:
        sys.exit(f"train.py: {err}")
    app.run(main, argv=ARGV)
