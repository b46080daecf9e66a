"""Figures on disk that read on their own: each has a title, axis (or row and column)
labels, a colour bar where colour carries a value, and a size that shows the detail.

- :func:`read_scalars` / :func:`read_metrics`: a workdir's TensorBoard step scalars and
  ``metrics.jsonl`` evaluation records;
- :func:`plot_training_curves` (the paper's Fig. 6, 7): D(x), D(x_hat), D(G(z)), the
  losses, epsilon, the input-gradient norm, FID and IS over steps;
- :func:`plot_histograms` (Fig. 5): overlaid histograms of input gradients;
- :func:`robustness_grid` (Fig. 14/15), :func:`save_gradient_maps` (Fig. 1),
  :func:`latent_interpolation` (Fig. 9): image grids;
- ``*_figure``: the same figures unsaved (``matplotlib.figure.Figure``), to inspect;
- :func:`pyplot`, :func:`save_figure`, :func:`image_grid_figure`, :func:`running_mean`:
  the pieces, for other figures.
"""

import glob
import json
import os

import numpy as np
import tensorflow as tf

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


def histograms_figure(named_stats, title="D's input gradient on real images"):
    """The figure of :func:`plot_histograms` (unsaved); same arguments."""
    fig, ax = pyplot().subplots(figsize=(8, 4.5), layout="constrained")
    for name, stats in named_stats.items():
        edges = np.asarray(stats["edges"])
        ax.stairs(np.maximum(stats["counts"], 0.5), edges,
                  label=f"{name} (mean L1 per image {stats['l1_mean']:.3g})")
    ax.set_yscale("log")
    ax.set_xlabel(r"input-gradient entry $\partial L_D / \partial x$")
    ax.set_ylabel("count (log scale)")
    ax.set_title(f"{title} (paper's Fig. 5)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def plot_histograms(named_stats, path, title="D's input gradient on real images"):
    """Overlaid histograms (log counts) of several
    :func:`tf_asgan.analysis.attacks.gradient_statistics` (``{legend name: stats}``),
    written to ``path`` as a PNG (800 x 450 pixels); returns ``path``."""
    return save_figure(histograms_figure(named_stats, title), path)


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


# (title, y-axis label, {logged name: legend label}) of each step-curve panel.
CURVE_PANELS = (
    ("D's probability of real", "probability of real",
     {"D_real": "D(x), real", "D_adv": r"D($\hat{x}$), attacked real",
      "D_fake": "D(G(z)), fake"}),
    ("Losses", "loss", {"d_loss": "D loss", "d_loss_adv": "D loss on attacked reals",
                        "g_loss": "G loss"}),
    ("Attack radius epsilon", r"$\epsilon \times 255$ (model-input units)",
     {"epsilon": "epsilon"}),
    ("D's input gradient on real images", r"$\|\nabla_x L_D\|_1$ (batch)",
     {"grad_l1": "L1 norm"}),
)
_SCALE = {"epsilon": 255.0}  # drawn in 1/255 units, as the paper states it
# The evaluation panels (paper's Fig. 7): one metric each, from metrics.jsonl.
METRIC_PANELS = (
    ("FID (lower is better)", "FID", "fid"),
    ("Inception score (higher is better)", "IS", "is"),
)


def _curve_panels(data, metrics):
    """The panels with something to draw: ``(title, ylabel, {name: label}, is_metric)``."""
    panels = [(title, ylabel, names, False) for title, ylabel, names in CURVE_PANELS
              if any(n in d for d in data.values() for n in names)]
    panels += [(title, ylabel, {name: ylabel}, True) for title, ylabel, name in METRIC_PANELS
               if any(name in r.get("metrics", {}) for recs in metrics.values() for r in recs)]
    return panels


def training_curves_figure(runs, smooth=10):
    """The figure of :func:`plot_training_curves` (a ``matplotlib.figure.Figure``, not
    yet saved; the caller closes it). Same arguments and errors."""
    if isinstance(runs, str):
        runs = {os.path.basename(os.path.normpath(runs)): runs}
    data = {label: read_scalars(layout.entry(w, layout.TENSORBOARD)) for label, w in runs.items()}
    metrics = {label: read_metrics(w) for label, w in runs.items()}
    panels = _curve_panels(data, metrics)
    if not panels:
        raise errors.InputError(f"No step logs found in {list(runs.values())} (tensorboard/).")
    fig, axes = pyplot().subplots(len(panels), 1, figsize=(8, 2.6 * len(panels)),
                                  squeeze=False, layout="constrained")
    for ax, (title, ylabel, names, is_metric) in zip(axes[:, 0], panels):
        for run, (name, label) in ((r, item) for r in runs for item in names.items()):
            label = f"{run}: {label}" if len(runs) > 1 or is_metric else label
            if is_metric:
                recs = [r for r in metrics[run] if name in r.get("metrics", {})]
                if recs:
                    ax.plot([r["step"] for r in recs], [r["metrics"][name] for r in recs],
                            marker="o", label=label)
            elif name in data[run]:
                steps, values = data[run][name]
                values = running_mean(values, _points(steps, smooth)) * _SCALE.get(name, 1)
                ax.plot(steps[len(steps) - len(values):], values, label=label, linewidth=1)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("training step")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        # beside the plot, never over its lines
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    low = min(ax.get_xlim()[0] for ax in axes[:, 0])  # one step axis for all panels
    high = max(ax.get_xlim()[1] for ax in axes[:, 0])
    for ax in axes[:, 0]:
        ax.set_xlim(low, high)
    smoothing = f"running mean over {smooth} steps" if smooth > 1 else "raw"
    fig.suptitle(f"Training curves of {', '.join(runs)} (step curves: {smoothing})")
    return fig


def plot_training_curves(runs, path, smooth=10):
    """Plots the step curves of one or several workdirs and, when they were evaluated,
    FID and IS over steps (the paper's Fig. 6, 7), as one PNG: one panel per quantity,
    each with its title, axis labels and a legend beside it.

    Args:
      runs: ``{label: workdir}``, or one workdir (labelled with its folder name).
      path: the PNG file written (8 inches wide plus the legends, 2.6 per panel, 100 dpi).
      smooth: running-mean window of the step curves, in training steps (converted to
        logged points: with step logs every 10 steps a window of 100 steps averages 10
        points; 1: raw). FID and IS are drawn as evaluated.

    Returns:
      ``path``.

    Raises:
      InputError (ValueError): no workdir has step logs (``<workdir>/tensorboard``).
    """
    return save_figure(training_curves_figure(runs, smooth), path)


def _tile_inches(image_size):
    """Display size of one grid tile: twice the image's pixels at 100 dpi, between 1 and
    2.56 inches (a 32-pixel image is shown 100 pixels wide; ours)."""
    return float(np.clip(2 * image_size / 100, 1.0, 2.56))


def image_grid_figure(rows, row_labels, column_labels, title, *, corner_texts=None,
                      corner_colors=None, cmap=None, value_label=None, vmax=None):
    """A grid of images with a label on each row and column, as a Figure (unsaved).

    Args:
      rows: a list of ``[C, H, W, 3]`` (or grey ``[C, H, W, 1]``) image batches in
        ``[-1, 1]`` (drawn as colour, or grey, images) or ``[C, H, W]`` maps of values
        (drawn with ``cmap`` from 0 to ``vmax``, one colour bar for all, labelled
        ``value_label``); all with ``C`` columns.
      row_labels, column_labels: one text per row / column (left, top).
      title: the figure's title.
      corner_texts, corner_colors: per row, ``C`` texts (and their colours) drawn in
        each tile's top-left corner, or None for a row without them.

    Returns:
      a ``matplotlib.figure.Figure``, sized so that each tile shows the image's detail
      (:func:`_tile_inches`; nearest-neighbour, no smoothing).
    """
    columns, size = len(rows[0]), max(np.asarray(rows[0]).shape[1:3])
    tile = _tile_inches(size)
    fig, axes = pyplot().subplots(len(rows), columns, squeeze=False, layout="constrained",
                                  figsize=(columns * tile + 1.8, len(rows) * tile + 0.8))
    shown = None
    for r, batch in enumerate(rows):
        batch = np.asarray(batch)
        for c in range(columns):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if batch.ndim == 4 and batch.shape[-1] == 1:  # grey images (MNIST)
                ax.imshow(images_lib.to_uint8(batch[c])[..., 0], cmap="gray", vmin=0,
                          vmax=255, interpolation="nearest")
            elif batch.ndim == 4:
                ax.imshow(images_lib.to_uint8(batch[c]), interpolation="nearest")
            else:
                shown = ax.imshow(batch[c], cmap=cmap, vmin=0.0, vmax=vmax,
                                  interpolation="nearest")
            if corner_texts and corner_texts[r] is not None:
                color = corner_colors[r][c] if corner_colors and corner_colors[r] else "yellow"
                ax.text(0.03, 0.97, corner_texts[r][c], transform=ax.transAxes, ha="left",
                        va="top", fontsize=8, color=color,
                        bbox={"facecolor": "black", "alpha": 0.7, "pad": 1, "linewidth": 0})
        axes[r, 0].set_ylabel(row_labels[r], fontsize=9, rotation=0, ha="right", va="center")
    for c in range(columns):
        axes[0, c].set_title(column_labels[c], fontsize=9)
    if shown is not None:
        fig.colorbar(shown, ax=list(axes[-1, :]), label=value_label, shrink=0.9)
    fig.suptitle(title)
    return fig


def attack_name(epsilon, steps):
    """``"FGSM, eps = 4/255"`` or ``"iterative attack (10 steps), eps = 4/255"``."""
    kind = "FGSM" if steps == 1 else f"iterative attack ({steps} steps)"
    return rf"{kind}, $\epsilon$ = {epsilon * 255:.3g}/255"


def robustness_figure(discriminator, x, epsilon, side="real", steps=1, columns=8,
                      loss="non_saturating"):
    """The figure of :func:`robustness_grid` (unsaved); same arguments."""
    x = np.asarray(x[:columns], np.float32)
    x_adv = attack(discriminator, x, epsilon, side, steps, loss=loss)
    probs = [1 / (1 + np.exp(-logits(discriminator, batch))) for batch in (x, x_adv)]
    right = [(p > 0.5) if side == "real" else (p <= 0.5) for p in probs]
    flipped = right[0] & ~right[1]
    texts = [[f"D={p:.2f}" for p in row] for row in probs]
    colors = [None, ["red" if f else "yellow" for f in flipped]]
    title = (f"D on {side} images before and after the attack ({attack_name(epsilon, steps)}, "
             f"{loss} loss)\nnumbers: D's probability of real; red: a right decision the "
             f"attack flipped ({int(flipped.sum())} of the {int(right[0].sum())} D got right)")
    return image_grid_figure(
        [x, x_adv], [f"clean {side}", f"attacked {side}\n{attack_name(epsilon, steps)}"],
        [f"#{i + 1}" for i in range(len(x))], title, corner_texts=texts, corner_colors=colors)


def robustness_grid(discriminator, x, epsilon, path, side="real", steps=1, columns=8,
                    loss="non_saturating"):
    """Writes the paper's Fig. 14/15 as a PNG: the first ``columns`` images of ``x`` (the
    row "clean") above their adversarial versions (:func:`attack`, the row "attacked",
    named with the attack and epsilon), each with D's probability of real in its corner,
    red where the attack flipped a right decision. Returns ``path``.

    ``x``: ``[N, H, W, 3]`` in ``[-1, 1]``; ``side``: "real" or "fake" (the images' true
    label); ``epsilon``: model-input units; ``steps``: 1 (FGSM) or more (iterative).
    """
    return save_figure(robustness_figure(discriminator, x, epsilon, side, steps, columns,
                                         loss), path)


def gradient_maps_figure(x, maps, columns=8, loss="non_saturating"):
    """The figure of :func:`save_gradient_maps` (unsaved); same arguments."""
    x, maps = np.asarray(x[:columns]), np.asarray(maps[:columns], np.float64)
    finite = maps[np.isfinite(maps)]
    vmax = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
    return image_grid_figure(
        [x, maps], ["real image", "input gradient"], [f"#{i + 1}" for i in range(len(x))],
        f"D's input gradient on real images ({loss} loss; paper's Fig. 1)\nclipped to "
        r"mean $\pm$ 3 std per image, mean |value| over channels, one colour scale",
        cmap="magma", vmax=vmax, value_label=r"$|\partial L_D / \partial x|$")


def save_gradient_maps(x, maps, path, columns=8, loss="non_saturating"):
    """Writes the paper's Fig. 1 as a PNG: real images (top row) above their gradient
    maps (:func:`tf_asgan.analysis.attacks.gradient_maps`, ``[N, H, W]``, >= 0), all
    maps on one colour scale from 0 to the largest value shown, with its colour bar (so
    maps of different images compare). ``loss`` names D's loss in the title. Returns
    ``path``."""
    return save_figure(gradient_maps_figure(x, maps, columns, loss), path)


def latent_interpolation(generator, path, rows=8, steps=10, seed=0, spherical=False,
                         labelled=False):
    """Fig. 9: ``rows`` straight (or great-circle) paths between random latent pairs of
    an exported generator (a loaded SavedModel), ``steps`` images each; returns ``path``.

    ``labelled=False``: the bare image grid (2-pixel gaps); ``True``: a figure with a
    title, each row's pair and each column's position ``t`` along the path.
    """
    rng = np.random.default_rng(seed)
    latent_dim = int(generator.latent_dim.numpy())
    ends = rng.standard_normal((2, rows, latent_dim))
    z = images_lib.interpolate_latents(ends[0], ends[1], steps, spherical=spherical)
    path_images = generator.generate(tf.constant(z))["images"].numpy()
    if not labelled:
        return images_lib.save_grid(path_images, path, steps)
    grid = path_images.reshape(rows, steps, *path_images.shape[1:])
    kind = "great-circle (slerp)" if spherical else "straight (lerp)"
    fig = image_grid_figure(list(grid), [f"pair {r + 1}" for r in range(rows)],
                            [f"t={t:.2f}" for t in np.linspace(0, 1, steps)],
                            f"Latent interpolation: {kind} paths between random latent "
                            f"pairs (seed {seed}; paper's Fig. 9)")
    return save_figure(fig, path)
