"""The paper's analyses of a trained run: D's robustness, its input gradient, curves.

    python scripts/analyze.py --workdir=runs/demo

writes into ``<workdir>/analysis/`` (or ``--output``): FGSM robustness grids of real and
fake images with D's probability of "real" on each (Fig. 14/15), gradient maps (Fig. 1),
the gradient histogram (Fig. 5), training curves (Fig. 6/7), a latent interpolation of
the export (Fig. 9) and ``analysis.json`` (D's confidence before / after each attack,
the fraction of D's right decisions flipped and how many there were, the gradient
statistics). The attacks increase the run's own GAN loss (its ``loss`` setting) on the
attacked side.
"""

import os
import sys

from absl import app, flags
from absl import logging as absl_logging

from tf_asgan import errors, layout
from tf_asgan.analysis import attacks, report
from tf_asgan.training import builder, rundir

flags.DEFINE_string("workdir", None, "A training workdir.")
flags.DEFINE_string("checkpoint", None, "A checkpoint prefix (default: the newest readable).")
flags.DEFINE_string("epsilons", "1/255,2/255,4/255,8/255",
                    "Attack radii, comma-separated, in model-input units (images in [-1, 1]).")
flags.DEFINE_list("attack_steps", ["1", "10"], "Attack iterations: 1 is FGSM, more the "
                  "iterative attack (step 2.5 * eps / steps).")
flags.DEFINE_integer("num", 256, "Real (and fake) images to attack.")
flags.DEFINE_integer("seed", 0, "Seed of the image choice and the latents.")
flags.DEFINE_string("output", None, "Output folder (default <workdir>/analysis).")
flags.DEFINE_bool("overwrite", False, "Replace the files of an existing output folder.")
flags.mark_flag_as_required("workdir")
FLAGS = flags.FLAGS


@errors.on_interrupt(
    "analyze.py",
    "Interrupted; the output folder may hold some of the figures "
    "(each complete) but no analysis record. Run the same command "
    "again with --overwrite.")
def main(argv):
    del argv
    absl_logging.set_verbosity(absl_logging.WARNING)

    out_dir = FLAGS.output or layout.entry(FLAGS.workdir, layout.ANALYSIS)
    if os.path.exists(os.path.join(out_dir, layout.ANALYSIS_RECORD)) and not FLAGS.overwrite:
        sys.exit(f"analyze.py: {out_dir} already holds an analysis; pass --overwrite or "
                 "another --output.")
    try:
        epsilons = attacks.parse_epsilons(FLAGS.epsilons)
        steps = [int(s) for s in FLAGS.attack_steps]
        if min(steps) < 1 or FLAGS.num < 1:
            raise errors.InputError("--attack_steps and --num must be >= 1.")
        gan, config, ckpt = rundir.restore_model(FLAGS.workdir, FLAGS.checkpoint)
        source = builder.make_source(config.data, config.model.resolution, config.optim.seed)
        reals = attacks.real_batch(source, FLAGS.num, FLAGS.seed)  # may meet bad images
        result = report.analyze(gan.generator, gan.discriminator, reals, out_dir,
                                epsilons=epsilons, steps=steps, workdir=FLAGS.workdir,
                                export_dir=layout.entry(FLAGS.workdir, layout.EXPORT),
                                seed=FLAGS.seed, extra={"checkpoint": ckpt},
                                loss=config.method.loss)
    except (errors.TfAsganError, OSError) as err:  # OSError: the output folder
        sys.exit(f"analyze.py: {err}")
    print(f"Analysed {ckpt} on {len(reals)} real and fake images; wrote {out_dir}")
    for r in result["robustness"]:
        print(f"  {r['side']:4s} eps {r['epsilon'] * 255:g}/255, {r['steps']} step(s): D "
              f"{r['D_before']:.3f} -> {r['D_after']:.3f}, flipped {r['flipped']:.1%} of "
              f"the {r['right']} D classified right")
    print(f"  input-gradient L1 per image: {result['gradient']['l1_mean']:.4g}")


if __name__ == "__main__":
    app.run(main)
