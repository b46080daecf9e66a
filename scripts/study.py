"""Baseline DCGAN vs AS-DCGAN (and DAT, AdvAs) on the embedded digits, on a CPU.

    python scripts/study.py                       # about 70 minutes on 2 CPU cores
    python scripts/study.py --digits_seeds=0,1,2,3,4 --steps=3000 --width=0.5   # larger

    python scripts/study.py --datasets=stacked_digits --settings=standard,no_bn_d \
        --methods=baseline,asgan --seeds=0,1,2 --results=docs/results   # settings

Writes ``<output>/summary.md`` (mean +- std over seeds of FID, modes and their KL, D's
FGSM flip rates, the input-gradient L1 norm and the spread of the losses),
``study.json``, ``fid.png`` and ``curves_<dataset>_<setting>.png``; each run stays in
``<output>/<dataset>/<setting>/<method>/seed<k>/``, and running the command again
continues an interrupted study. Every per-seed value goes to ``<results>/<dataset>.csv``
(``setting, method, seed, metric, value``; ``<dataset>.json`` beside it records the
settings and the code version), updated after each run; ``scripts/study_stats.py`` tests
them.
"""

import os
import sys

from absl import app, flags
from absl import logging as absl_logging

from tf_asgan import errors
from tf_asgan.experiments import study, study_settings, study_summary
from tf_asgan.schedules import parse_epsilon

flags.DEFINE_list("datasets", ["stacked_digits", "digits"], "Datasets (embedded).")
flags.DEFINE_list("methods", ["baseline", "asgan", "dat", "advas"],
                  "Methods: baseline, asgan, dat, advas (the sources' DAT and AdvAs), "
                  "dat_pgd (our iterative DAT), the other presets, and the paper's Fig. 3 "
                  "ablation: " + ", ".join(study_settings.ABLATION) + ".")
flags.DEFINE_list("settings", ["standard"], "Settings (configuration changes on top of "
                  "the standard run, the paper's Table 2 rows): "
                  + ", ".join(study_settings.SETTINGS) + ".")
flags.DEFINE_list("seeds", ["0", "1", "2", "3", "4"],
                  "Seeds on stacked_digits (each method runs once per seed).")
flags.DEFINE_list("digits_seeds", ["0", "1", "2"], "Seeds on digits.")
flags.DEFINE_integer("steps", 800, "Training steps per run (the same for every method).")
flags.DEFINE_integer("steps_per_epoch", 100, "Steps per epoch (digits: at most 22).")
flags.DEFINE_integer("batch_size", 64, "Batch size.")
flags.DEFINE_float("width", 0.25, "DCGAN channel multiplier (1: the paper's networks).")
flags.DEFINE_string("epsilon", "1/255", "AS-GAN's epsilon (input units).")
flags.DEFINE_integer("eval_num_samples", 10_000, "Generated samples for FID and modes.")
flags.DEFINE_integer("analysis_num", 256, "Real and fake images attacked with FGSM.")
flags.DEFINE_string("attack_epsilon", "4/255", "FGSM radius of the robustness columns.")
flags.DEFINE_string("output", "runs/study", "Output folder.")
flags.DEFINE_string("results", "", "Folder of the per-seed CSVs (<dataset>.csv and .json); "
                    "empty: the output folder.")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    absl_logging.set_verbosity(absl_logging.WARNING)

    try:
        config = study.StudyConfig(
            datasets=tuple(FLAGS.datasets), methods=tuple(FLAGS.methods),
            settings=tuple(FLAGS.settings),
            seeds=tuple(int(s) for s in FLAGS.seeds),
            digits_seeds=tuple(int(s) for s in FLAGS.digits_seeds), steps=FLAGS.steps,
            steps_per_epoch=FLAGS.steps_per_epoch, batch_size=FLAGS.batch_size,
            width=FLAGS.width, epsilon=parse_epsilon(FLAGS.epsilon),
            eval_num_samples=FLAGS.eval_num_samples, analysis_num=FLAGS.analysis_num,
            attack_epsilon=parse_epsilon(FLAGS.attack_epsilon)).validate()
        for d, c, m, s in config.jobs():  # every run's configuration, before any training
            config.train_config(d, m, s, c)
    except (errors.TfAsganError, ValueError) as err:  # ValueError: a seed that is no integer
        sys.exit(f"study.py: {err}")
    command = "python scripts/study.py " + " ".join(sys.argv[1:])
    try:
        os.makedirs(FLAGS.output, exist_ok=True)
        results = study.run(config, FLAGS.output, results_dir=FLAGS.results or FLAGS.output)
        summary = study_summary.summarize(config, results, FLAGS.output, command.strip())
    except (errors.TfAsganError, OSError) as err:  # OSError: the output folder
        sys.exit(f"study.py: {err} (running the same command again continues the study)")
    except KeyboardInterrupt as err:  # Ctrl-C: one line (a run's says where it resumes)
        errors.exit_interrupted("study.py", f"{err or 'Interrupted.'} Running the same "
                                "command again continues the study.")
    print(summary)
    print(f"Wrote {FLAGS.output}/summary.md, study.json, fid.png, curves_*.png and "
          f"{FLAGS.results or FLAGS.output}/<dataset>.csv, .json")


if __name__ == "__main__":
    app.run(main)
