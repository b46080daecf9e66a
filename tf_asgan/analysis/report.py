"""All of the paper's analyses of one run, on disk or during training.

:func:`analyze` writes, for a trained generator and discriminator, the robustness table
and grids (Fig. 14/15), the input-gradient maps and statistics (Fig. 1, 5), the training
curves (Fig. 6, 7) and a latent interpolation (Fig. 9), plus ``analysis.json`` with the
numbers. :class:`AnalysisCallback` logs the robustness and gradient figures to
TensorBoard every few epochs while training.
"""

import json
import os

import keras
import numpy as np
import tensorflow as tf

from tf_asgan import layout
from tf_asgan.analysis.attacks import (
    gradient_maps,
    gradient_statistics,
    input_gradient,
    robustness,
)
from tf_asgan.analysis.figures import (
    latent_interpolation,
    plot_histograms,
    plot_training_curves,
    read_scalars,
    robustness_grid,
    save_gradient_maps,
)
from tf_asgan.utils import io


class AnalysisCallback(keras.callbacks.Callback):
    """Logs D's robustness and input-gradient statistics to TensorBoard every N epochs.

    On a fixed batch of real images and a fixed latent batch: ``analysis/flipped_<side>
    _eps<k>`` and ``analysis/confidence_<side>_eps<k>`` for each epsilon (``k`` in
    1/255 units), ``analysis/grad_l1`` and the histogram ``analysis/input_grad``; one
    JSON line per evaluation in ``jsonl_path`` when given. ``loss``: the GAN loss the
    attacks and gradients use (:func:`side_loss`); default: the model's (``gan_loss``),
    else non-saturating.
    """

    def __init__(self, reals, logdir, every_epochs=1, epsilons=(1 / 255, 4 / 255),
                 jsonl_path=None, seed=0, loss=None):
        super().__init__()
        self.reals = np.asarray(reals, np.float32)
        self.logdir = logdir
        self.every_epochs = max(1, int(every_epochs))
        self.epsilons = tuple(float(e) for e in epsilons)
        self.jsonl_path = jsonl_path
        self.seed = seed
        self.loss = loss
        self.records = []

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every_epochs:
            return
        model = self.model
        z = tf.random.stateless_normal((len(self.reals), model.latent_dim), seed=[self.seed, 0])
        fakes = model.generator(z, training=False).numpy()
        loss = self.loss or getattr(model, "gan_loss", "non_saturating")
        records = robustness(model.discriminator, self.reals, fakes, self.epsilons, loss=loss)
        grad = input_gradient(model.discriminator, self.reals, loss=loss)
        stats = gradient_statistics(grad)
        step = model.completed_steps()
        with tf.summary.create_file_writer(self.logdir).as_default(step=step):
            for r in records:
                key = f"{r['side']}_eps{r['epsilon'] * 255:g}"
                tf.summary.scalar(f"analysis/flipped_{key}", r["flipped"])
                tf.summary.scalar(f"analysis/confidence_{key}", r["confidence_after"])
            tf.summary.scalar("analysis/grad_l1", stats["l1_mean"])
            tf.summary.histogram("analysis/input_grad", grad)
        record = {"epoch": epoch + 1, "step": step, "robustness": records,
                  "grad_l1": stats["l1_mean"]}
        self.records.append(record)
        if self.jsonl_path:
            io.append_line(self.jsonl_path, json.dumps(record, sort_keys=True))


def analyze(generator, discriminator, reals, out_dir, *, epsilons=(1 / 255, 4 / 255),
            steps=(1,), fakes=None, workdir=None, export_dir=None, seed=0, grid_columns=8,
            extra=None, loss="non_saturating"):
    """Runs every analysis on one generator / discriminator pair and writes the figures.

    Writes into ``out_dir``: ``robustness_<side>_eps<k>.png`` (FGSM, ``k`` in 1/255
    units), ``gradient_maps.png``, ``gradient_histogram.png``, ``curves.png`` (with a
    ``workdir``), ``interpolation.png`` (with an ``export_dir``) and ``analysis.json``
    (the robustness records, gradient statistics and ``extra``); each figure has a
    title and labelled axes, rows and columns (:mod:`tf_asgan.analysis.figures`). The
    attacks and gradients use the GAN loss ``loss`` (:func:`side_loss`). Returns the
    JSON's content.
    """
    os.makedirs(out_dir, exist_ok=True)
    reals = np.asarray(reals, np.float32)
    if fakes is None:
        latent_dim = int(generator.inputs[0].shape[-1])
        z = tf.random.stateless_normal((len(reals), latent_dim), seed=[seed, 1])
        fakes = generator(z, training=False).numpy()
    records = robustness(discriminator, reals, fakes, epsilons, steps, loss)
    figures = []
    for eps in epsilons:
        for side, x in (("real", reals), ("fake", fakes)):
            figures.append(robustness_grid(
                discriminator, x, eps,
                os.path.join(out_dir, f"robustness_{side}_eps{eps * 255:g}.png"), side,
                columns=grid_columns, loss=loss))
    grad = input_gradient(discriminator, reals, loss=loss)
    figures.append(save_gradient_maps(reals, gradient_maps(grad),
                                      os.path.join(out_dir, "gradient_maps.png"), grid_columns,
                                      loss=loss))
    stats = gradient_statistics(grad)
    figures.append(plot_histograms({"D": stats}, os.path.join(out_dir, "gradient_histogram.png")))
    if workdir and read_scalars(layout.entry(workdir, layout.TENSORBOARD)):
        figures.append(plot_training_curves(workdir, os.path.join(out_dir, layout.CURVES)))
    if export_dir and os.path.exists(os.path.join(export_dir, "saved_model.pb")):
        # kept in a variable while used: docs/dependencies.md#keep-a-loaded-savedmodel-referenced
        loaded = tf.saved_model.load(export_dir)
        figures.append(latent_interpolation(loaded, os.path.join(out_dir, "interpolation.png"),
                                            seed=seed, labelled=True))
    result = {"robustness": records, "gradient": stats, "num_real": len(reals),
              "figures": [os.path.basename(f) for f in figures], **(extra or {})}
    io.atomic_write_json(os.path.join(out_dir, layout.ANALYSIS_RECORD), result, indent=2,
                         sort_keys=True)
    return result
