"""AS-GAN under reduced precision: a trained D's response to FGSM, PGD, the Gaussian
control and DAT's step in bfloat16 and float16, against float32
(:mod:`tf_asgan.experiments.precision_agreement`).

    python scripts/precision_agreement.py --workdir=runs/demo
    python scripts/precision_agreement.py --workdir=runs/demo --batches=8 --timing_repeats=0

Reads the run's newest checkpoint; writes ``<output>/precision_agreement.json`` and
``<output>/precision_agreement.md`` (the table: per quantity and precision, the mean and
95th percentile of the relative difference from float32; the fraction of perturbed
pixels whose perturbation rounds to 0 at D's input; the cost of the candidate fix).
"""

import os
import sys

from absl import app, flags

from tf_asgan import errors
from tf_asgan.experiments import precision_agreement as pa
from tf_asgan.utils import io

flags.DEFINE_string("workdir", None, "A training run's workdir (its newest checkpoint).")
flags.DEFINE_integer("batch_size", 64, "Images per batch (D's batch-norm batch).")
flags.DEFINE_integer("batches", 4, "Batches of reals and fakes.")
flags.DEFINE_integer("seed", 0, "Seed of the images' order, the latents, the Gaussian "
                     "control's and WGAN-GP's draws and the penalties' D.")
flags.DEFINE_integer("timing_repeats", 20, "Timed D forward+backward passes per variant "
                     "(0: no timing).")
flags.DEFINE_bool("penalties", True, "Also WGAN-GP and R1 on a D without batch norm.")
flags.DEFINE_string("output", None, "Output folder (default: <workdir>/precision).")
flags.mark_flag_as_required("workdir")
FLAGS = flags.FLAGS


def measure():
    if FLAGS.batches < 1 or FLAGS.batch_size < 2:
        raise errors.InputError("--batches must be >= 1 and --batch_size >= 2 (batch norm "
                                "needs a batch).")
    inputs, info = pa.from_run(FLAGS.workdir, batch_size=FLAGS.batch_size,
                               batches=FLAGS.batches, seed=FLAGS.seed)
    if not FLAGS.penalties:
        inputs["penalty_d"] = None
    report = pa.measure(**inputs, seed=FLAGS.seed, timing_repeats=FLAGS.timing_repeats)
    report["grid_zero_fraction"] = pa.grid_zero_fractions(
        [e / 255 for e in pa.EPSILONS_OVER_255])
    output = FLAGS.output or os.path.join(FLAGS.workdir, "precision")
    os.makedirs(output, exist_ok=True)
    saved = {k: v for k, v in report.items() if k != "records"}
    saved["grid_zero_fraction"] = {f"{e * 255:g}/255": f
                                   for e, f in report["grid_zero_fraction"].items()}
    io.atomic_write_json(os.path.join(output, "precision_agreement.json"),
                         dict(saved, info=info), indent=2)
    text = pa.markdown(report, info)
    io.atomic_write_text(os.path.join(output, "precision_agreement.md"), text + "\n")
    return text, output


@errors.on_interrupt("precision_agreement.py", "Interrupted; nothing was written.")
def main(argv):
    del argv
    try:
        text, output = measure()
    except (errors.TfAsganError, OSError) as err:  # no run, no checkpoint, a bad flag
        sys.exit(f"precision_agreement.py: {err}")
    print(text)
    print(f"Wrote {output}/precision_agreement.json and precision_agreement.md")


if __name__ == "__main__":
    app.run(main)
