"""Figures on disk: matplotlib set up for files, training curves read back from a
workdir's logs, and gradient histograms.

- :func:`read_scalars` / :func:`read_metrics`: a workdir's TensorBoard step scalars and
  ``metrics.jsonl`` evaluation records;
- :func:`plot_training_curves` (the paper's Fig. 6, 7): D(x), D(x_hat), D(G(z)), the
  losses, epsilon and FID / IS over steps;
- :func:`plot_histograms` (Fig. 5): overlaid histograms of input gradients;
- :func:`pyplot`, :func:`save_figure`, :func:`running_mean`: the pieces, for other figures.
"""

import glob
import json
import os

import numpy as np
import tensorflow as tf
from PIL import Image, ImageDraw

from tf_asgan import errors, layout
from tf_asgan.analysis.attacks import attack, logits
from tf_asgan.utils import images as images_lib
from tf_asgan.utils import io


def pyplot():
    """``matplotlib.pyplot`` on the file-only ``Agg`` backend (imported on first use)."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path):
    """Writes the figure ``fig`` to ``path`` as a PNG (100 dpi, tight bounding box) in one
    rename, closes it, and returns ``path``; the folder is created if needed."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    try:
        with io.atomic_path(path, suffix=".png") as tmp:
            fig.savefig(tmp, dpi=100, bbox_inches="tight")
    finally:
        pyplot().close(fig)
    return path


def plot_histograms(named_stats, path, title="D's input gradient on real images"):
    """Overlaid histograms (log counts) of several
    :func:`tf_asgan.analysis.attacks.gradient_statistics`."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for name, stats in named_stats.items():
        edges = np.asarray(stats["edges"])
        ax.stairs(np.maximum(stats["counts"], 0.5), edges,
                  label=f"{name} (L1 {stats['l1_mean']:.3g})")
    ax.set_yscale("log")
    ax.set_xlabel("gradient entry")
    ax.set_ylabel("count")
    ax.set_title(title)
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def read_scalars(logdir, prefix="step/"):
    """``{name: (steps, values)}`` of the scalars named ``prefix*`` in the TensorBoard
    event files below ``logdir`` (later writes of a step, after a resume, win)."""
    series = {}
    for path in sorted(glob.glob(os.path.join(logdir, "**", "events.out.tfevents.*"),
                                 recursive=True)):
        try:
            for record in tf.data.TFRecordDataset(path):
                event = tf.compat.v1.Event.FromString(record.numpy())
                for value in event.summary.value:
                    if not value.tag.startswith(prefix):
                        continue
                    if value.HasField("tensor"):
                        array = tf.make_ndarray(value.tensor)
                        if array.size != 1:  # a histogram, not a scalar
                            continue
                        number = float(array.reshape(()))
                    else:
                        number = float(value.simple_value)
                    series.setdefault(value.tag[len(prefix):], {})[event.step] = number
        except tf.errors.DataLossError:  # the last record of a killed run: keep the rest
            continue
    return {name: (np.array(sorted(by_step)), np.array([by_step[s] for s in sorted(by_step)]))
            for name, by_step in series.items()}


def read_metrics(workdir):
    """The evaluation records of ``<workdir>/metrics.jsonl`` (complete lines only)."""
    path = layout.entry(workdir, layout.METRICS)
    records = []
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                try:
                    records.append(json.loads(line))
                except ValueError:
                    continue
    return records


def running_mean(values, window):
    """The running mean of ``values`` over ``window`` points (``len - window + 1`` values),
    or ``values`` unchanged when ``window <= 1`` or there are fewer points than that."""
    if window <= 1 or len(values) < window:
        return values
    kernel = np.ones(window) / window
    return np.convolve(values, kernel, mode="valid")


def _points(steps, window):
    """How many logged points span ``window`` training steps (at least 1)."""
    spacing = float(np.median(np.diff(steps))) if len(steps) > 1 else 1.0
    return max(1, int(round(window / max(spacing, 1.0))))


CURVE_PANELS = (
    ("D's probability of real", ("D_real", "D_adv", "D_fake")),
    ("losses", ("d_loss", "d_loss_adv", "g_loss")),
    ("epsilon", ("epsilon",)),
    ("input-gradient L1", ("grad_l1",)),
)


def _twin(ax):
    if not hasattr(ax, "_tf_asgan_twin"):
        ax._tf_asgan_twin = ax.twinx()
    return ax._tf_asgan_twin


def plot_training_curves(runs, path, smooth=10):
    """Plots the step curves of one or several workdirs and, when they were evaluated,
    FID and IS over steps, as one PNG.

    Args:
      runs: ``{label: workdir}``, or one workdir (labelled with its folder name).
      path: the PNG file written.
      smooth: running-mean window of the step curves, in training steps (converted to
        logged points: with step logs every 10 steps a window of 100 steps averages 10
        points; 1: raw).

    Returns:
      ``path``.

    Raises:
      ValueError: no workdir has step logs (``<workdir>/tensorboard``).
    """
    if isinstance(runs, str):
        runs = {os.path.basename(os.path.normpath(runs)): runs}
    data = {label: read_scalars(layout.entry(w, layout.TENSORBOARD)) for label, w in runs.items()}
    metrics = {label: read_metrics(w) for label, w in runs.items()}
    panels = [(title, names) for title, names in CURVE_PANELS
              if any(n in d for d in data.values() for n in names)]
    if any(metrics.values()):
        panels.append(("FID (left) / IS (right, dashed)", ("fid", "is")))
    if not panels:
        raise errors.InputError(f"No step logs found in {list(runs.values())} (tensorboard/).")
    plt = pyplot()
    fig, axes = plt.subplots(len(panels), 1, figsize=(7, 2.4 * len(panels)), squeeze=False)
    for ax, (title, names) in zip(axes[:, 0], panels):
        for label in runs:
            for name in names:
                if title.startswith("FID"):
                    recs = metrics[label]
                    if recs:
                        target = ax if name == "fid" else _twin(ax)
                        target.plot([r["step"] for r in recs],
                                    [r["metrics"][name] for r in recs], marker="o",
                                    linestyle="-" if name == "fid" else "--",
                                    label=f"{label} FID" if name == "fid"
                                    else f"{label} IS (right axis)")
                    continue
                if name not in data[label]:
                    continue
                steps, values = data[label][name]
                values = running_mean(values, _points(steps, smooth))
                ax.plot(steps[len(steps) - len(values):], values,
                        label=f"{label} {name}" if len(runs) > 1 else name, linewidth=1)
        ax.set_title(title, fontsize=10)
        # one legend for both y axes: the twin's lines (IS) are listed too
        handles, labels = ax.get_legend_handles_labels()
        if hasattr(ax, "_tf_asgan_twin"):
            more = ax._tf_asgan_twin.get_legend_handles_labels()
            handles, labels = handles + more[0], labels + more[1]
        ax.legend(handles, labels, fontsize=7, ncol=2)
    axes[-1, 0].set_xlabel("training step")
    fig.tight_layout()
    return save_figure(fig, path)


def _label(tile, text, scale):
    tile = Image.fromarray(tile).resize((tile.shape[1] * scale, tile.shape[0] * scale),
                                        Image.NEAREST)
    draw = ImageDraw.Draw(tile)
    draw.rectangle([0, 0, tile.width, 11], fill=(0, 0, 0))
    draw.text((2, 0), text, fill=(255, 255, 0))
    return np.asarray(tile)


def robustness_grid(discriminator, x, epsilon, path, side="real", steps=1, scale=3,
                    columns=8, loss="non_saturating"):
    """Writes the first ``columns`` images of ``x`` (top row) above their adversarial
    versions (:func:`attack`, bottom row) as a PNG, each tile ``scale`` times enlarged
    and labelled with D's probability of "real"; returns ``path``."""
    x = np.asarray(x[:columns], np.float32)
    x_adv = attack(discriminator, x, epsilon, side, steps, loss=loss)
    rows = []
    for batch in (x, x_adv):
        probs = 1 / (1 + np.exp(-logits(discriminator, batch)))
        rows.append([_label(tile, f"D={p:.2f}", scale)
                     for tile, p in zip(images_lib.to_uint8(batch), probs)])
    tiles = np.stack(rows[0] + rows[1]).astype(np.float32) / 127.5 - 1.0
    return images_lib.save_grid(tiles, path, columns=len(x))


def save_gradient_maps(x, maps, path, columns=8):
    """Images (top rows) and their gradient maps (each scaled to its maximum, below)."""
    x, maps = np.asarray(x[:columns]), np.asarray(maps[:columns])
    peak = np.maximum(maps.max(axis=(1, 2), keepdims=True), 1e-30)
    shown = np.repeat((maps / peak * 2.0 - 1.0)[..., None], 3, axis=-1)
    return images_lib.save_grid(np.concatenate([x, shown]), path, columns=len(x))


def latent_interpolation(generator, path, rows=8, steps=10, seed=0, spherical=False):
    """Fig. 9: ``rows`` straight (or great-circle) paths between random latent pairs of
    an exported generator (a loaded SavedModel), ``steps`` images each; returns ``path``."""
    rng = np.random.default_rng(seed)
    latent_dim = int(generator.latent_dim.numpy())
    ends = rng.standard_normal((2, rows, latent_dim))
    z = images_lib.interpolate_latents(ends[0], ends[1], steps, spherical=spherical)
    path_images = generator.generate(tf.constant(z))["images"].numpy()
    return images_lib.save_grid(path_images, path, steps)
