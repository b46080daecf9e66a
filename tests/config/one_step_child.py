"""One training step of one paper flagfile, in a process of its own (not a test module).

Usage: ``python one_step_child.py FLAGFILE WORKDIR`` (run from the repository root, as
the flagfiles' paths are relative to it).

Reads FLAGFILE with ``scripts/train.py``'s flags, trains one step of batch 8 on TFDS's
mock data into WORKDIR (no export, no evaluation, one sample grid) and prints the
result of ``loop.train`` as JSON on its last line. ``test_flagfiles.py`` runs one such
process per setting: TensorFlow keeps part of every full-width graph it traced, and 28
paper-width models in one process would need about 5 GB.
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow_datasets as tfds  # noqa: E402
from absl import flags  # noqa: E402

from helpers import load_script  # noqa: E402
from tf_asgan.training import loop  # noqa: E402


def parse_flagfile(path):
    """The ``TrainConfig`` that ``train.py --flagfile=path`` trains."""
    script = load_script("train")
    values = flags.FlagValues()
    script.define_flags(values)
    values(["train.py", f"--flagfile={path}"])
    return script.config_from_flags(values)


def main(path, workdir):
    config = parse_flagfile(path).replace(
        batch_size=8, epochs=1, steps_per_epoch=1, export=False, sample_every_epochs=1,
        eval_every_epochs=0)
    with tfds.testing.mock_data(num_examples=8):
        result = loop.train(config, workdir, verbose=0)
    print(json.dumps({"step": int(result["step"]),
                      "total_steps": int(result["total_steps"])}))


if __name__ == "__main__":
    main(*sys.argv[1:])
