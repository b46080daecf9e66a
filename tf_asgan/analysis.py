"""The paper's analyses as tools: what the discriminator and its input gradient look like.

- :func:`robustness` (Fig. 14/15): FGSM and the iterative attack on real and fake
  batches at several epsilons; D's mean probability of "real" and its confidence in the
  right answer before and after; the fraction of decisions flipped.
  :func:`robustness_grid` writes benign and adversarial images with D's probability
  written on each.
- :func:`input_gradient`, :func:`gradient_maps` (Fig. 1): D's input gradient on real
  images, clipped to +-3 standard deviations, mean absolute value over channels.
- :func:`gradient_statistics` (Fig. 5): histogram of the input gradient's entries and
  the per-image L1 norm.
- :func:`read_scalars`, :func:`plot_training_curves` (Fig. 6, 7): D(x), D(x_hat),
  D(G(z)), the losses, epsilon and FID / IS over steps, from a workdir's logs.
- :func:`latent_interpolation` (Fig. 9): from an exported generator.
- :class:`AnalysisCallback`: the robustness and gradient figures logged to TensorBoard
  during training.

Conventions: images in ``[-1, 1]``; epsilons in the same units; D's "loss" on a batch
is the non-saturating loss of its true label (``softplus(-logit)`` for reals,
``softplus(logit)`` for fakes), which an attack increases; a decision is "real" when
the logit is positive. D runs in inference mode (``training=False``).
"""

import glob
import json
import os

import keras
import numpy as np
import tensorflow as tf
from PIL import Image, ImageDraw

from tf_asgan import images as images_lib
from tf_asgan import perturbations

SIDES = ("real", "fake")


def logits(discriminator, x, batch_size=256):
    """D's logits ``[N]`` (float32) on images ``x``, in batches."""
    x = np.asarray(x, np.float32)
    out = [tf.cast(tf.reshape(discriminator(x[i:i + batch_size], training=False), [-1]),
                   tf.float32).numpy() for i in range(0, len(x), batch_size)]
    return np.concatenate(out) if out else np.zeros([0], np.float32)


def _label_loss(discriminator, side):
    sign = -1.0 if side == "real" else 1.0

    def loss_fn(x):
        logit = tf.cast(discriminator(x, training=False), tf.float32)
        # A sum, so each image's gradient is its own loss's (no 1/N).
        return tf.reduce_sum(tf.nn.softplus(sign * logit))

    return loss_fn


def input_gradient(discriminator, x, side="real"):
    """``grad_x`` of D's loss on ``x`` labelled ``side``, per image, ``[N, H, W, C]``."""
    x = tf.convert_to_tensor(np.asarray(x, np.float32))
    loss_fn = _label_loss(discriminator, side)
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = loss_fn(x)
    return tape.gradient(loss, x).numpy()


def attack(discriminator, x, epsilon, side="real", steps=1, step_size=None,
           input_grad=None):
    """Adversarial examples of D: ``x`` moved within the L-infinity ball of radius
    ``epsilon`` (and ``[-1, 1]``) to increase D's loss on ``side``.

    ``steps=1``: FGSM, ``x + eps * sign(grad)``; more: the iterative attack (BIM) with
    ``step_size`` (default ``2.5 * eps / steps``). ``input_grad``: :func:`input_gradient`
    of ``x`` for ``side`` when already computed (it serves the first step).
    """
    if side not in SIDES:
        raise ValueError(f"side must be one of {SIDES}, got {side!r}.")
    x = tf.convert_to_tensor(np.asarray(x, np.float32))
    if input_grad is None:
        input_grad = input_gradient(discriminator, x, side)
    if steps == 1:
        x_adv = perturbations.fgsm_perturbation(x, epsilon=float(epsilon),
                                                input_grad=input_grad)
    else:
        x_adv = perturbations.pgd_perturbation(
            x, epsilon=float(epsilon), loss_fn=_label_loss(discriminator, side),
            input_grad=input_grad, steps=int(steps), step_size=step_size)
    return x_adv.numpy()


def _summary(side, before, after):
    if not (np.isfinite(before).all() and np.isfinite(after).all()):
        nan = float("nan")  # a broken D is not reported as a robust one
        return {k: nan for k in ("D_before", "D_after", "confidence_before",
                                 "confidence_after", "accuracy_before", "accuracy_after",
                                 "flipped")}
    p0, p1 = 1 / (1 + np.exp(-before)), 1 / (1 + np.exp(-after))
    right = (lambda p: p) if side == "real" else (lambda p: 1 - p)
    correct = (lambda logit: logit > 0) if side == "real" else (lambda logit: logit <= 0)
    was_right, is_right = correct(before), correct(after)
    return {"D_before": float(p0.mean()), "D_after": float(p1.mean()),
            "confidence_before": float(right(p0).mean()),
            "confidence_after": float(right(p1).mean()),
            "accuracy_before": float(was_right.mean()),
            "accuracy_after": float(is_right.mean()),
            # Of the decisions D got right, the fraction the attack makes wrong.
            "flipped": float((was_right & ~is_right).sum() / max(1, was_right.sum()))}


def robustness(discriminator, reals, fakes, epsilons, steps=(1,)):
    """D under attack: one record per side, epsilon and number of attack steps.

    Each record: ``side``, ``epsilon``, ``steps``, ``D_before`` / ``D_after`` (mean
    probability of "real"), ``confidence_before`` / ``confidence_after`` (mean
    probability of the true label), ``accuracy_before`` / ``accuracy_after`` (fraction
    classified right: logit > 0 for reals, <= 0 for fakes), ``flipped`` (of the images
    D classified right, the fraction the attack makes it classify wrong). All NaN when
    D's logits are not finite.
    """
    records = []
    for side, x in (("real", reals), ("fake", fakes)):
        if x is None:
            continue
        before = logits(discriminator, x)
        grad = input_gradient(discriminator, x, side)  # the first step of every attack
        for eps in epsilons:
            for k in steps:
                after = logits(discriminator, attack(discriminator, x, eps, side, k,
                                                     input_grad=grad))
                records.append({"side": side, "epsilon": float(eps), "steps": int(k),
                                **_summary(side, before, after)})
    return records


def _label(tile, text, scale):
    tile = Image.fromarray(tile).resize((tile.shape[1] * scale, tile.shape[0] * scale),
                                        Image.NEAREST)
    draw = ImageDraw.Draw(tile)
    draw.rectangle([0, 0, tile.width, 11], fill=(0, 0, 0))
    draw.text((2, 0), text, fill=(255, 255, 0))
    return np.asarray(tile)


def robustness_grid(discriminator, x, epsilon, path, side="real", steps=1, scale=3,
                    columns=8):
    """Writes benign images (top row) above their adversarial versions (bottom row),
    each labelled with D's probability of "real"; returns ``path``."""
    x = np.asarray(x[:columns], np.float32)
    x_adv = attack(discriminator, x, epsilon, side, steps)
    rows = []
    for batch in (x, x_adv):
        probs = 1 / (1 + np.exp(-logits(discriminator, batch)))
        rows.append([_label(tile, f"D={p:.2f}", scale)
                     for tile, p in zip(images_lib.to_uint8(batch), probs)])
    tiles = np.stack(rows[0] + rows[1]).astype(np.float32) / 127.5 - 1.0
    return images_lib.save_grid(tiles, path, columns=len(x))


def gradient_maps(grad, clip_std=3.0):
    """Fig. 1's maps ``[N, H, W]``: each image's gradient clipped to its mean +-
    ``clip_std`` standard deviations, then the mean absolute value over channels."""
    g = np.asarray(grad, np.float64)
    axes = tuple(range(1, g.ndim))
    mean = g.mean(axis=axes, keepdims=True)
    std = g.std(axis=axes, keepdims=True)
    clipped = np.clip(g, mean - clip_std * std, mean + clip_std * std)
    return np.abs(clipped).mean(axis=-1).astype(np.float32)


def save_gradient_maps(x, maps, path, columns=8):
    """Images (top rows) and their gradient maps (each scaled to its maximum, below)."""
    x, maps = np.asarray(x[:columns]), np.asarray(maps[:columns])
    peak = np.maximum(maps.max(axis=(1, 2), keepdims=True), 1e-30)
    shown = np.repeat((maps / peak * 2.0 - 1.0)[..., None], 3, axis=-1)
    return images_lib.save_grid(np.concatenate([x, shown]), path, columns=len(x))


def gradient_statistics(grad, bins=50, value_range=None):
    """Histogram of the gradient's entries and the per-image L1 norms.

    Returns ``{"counts", "edges", "l1_mean", "l1_std", "l1"}`` (lists and floats).
    ``value_range`` defaults to the symmetric range of the largest magnitude.
    """
    g = np.asarray(grad, np.float64)
    finite = g[np.isfinite(g)]  # non-finite entries are left out of the histogram
    if value_range is None:
        top = float(np.abs(finite).max()) if finite.size else 1.0
        value_range = (-(top or 1.0), top or 1.0)
    counts, edges = np.histogram(finite, bins=bins, range=value_range)
    l1 = np.abs(g).reshape(len(g), -1).sum(axis=1)  # NaN for an image with a NaN
    return {"counts": counts.tolist(), "edges": edges.tolist(), "l1": l1.tolist(),
            "l1_mean": float(l1.mean()), "l1_std": float(l1.std())}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}.png"
    fig.savefig(tmp, dpi=100, bbox_inches="tight")
    _pyplot().close(fig)
    os.replace(tmp, path)
    return path


def plot_histograms(named_stats, path, title="D's input gradient on real images"):
    """Overlaid histograms (log counts) of several :func:`gradient_statistics`."""
    plt = _pyplot()
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
    return _save(fig, path)


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
    path = os.path.join(workdir, "metrics.jsonl")
    records = []
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                try:
                    records.append(json.loads(line))
                except ValueError:
                    continue
    return records


def _smooth(values, window):
    if window <= 1 or len(values) < window:
        return values
    kernel = np.ones(window) / window
    return np.convolve(values, kernel, mode="valid")


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
    """Plots the step curves of one or several workdirs (``{label: workdir}`` or one
    path) and, when evaluated, FID and IS over steps; returns ``path``."""
    if isinstance(runs, str):
        runs = {os.path.basename(os.path.normpath(runs)): runs}
    data = {label: read_scalars(os.path.join(w, "tensorboard")) for label, w in runs.items()}
    metrics = {label: read_metrics(w) for label, w in runs.items()}
    panels = [(title, names) for title, names in CURVE_PANELS
              if any(n in d for d in data.values() for n in names)]
    if any(metrics.values()):
        panels.append(("FID (left) / IS (right, dashed)", ("fid", "is")))
    if not panels:
        raise ValueError(f"No step logs found in {list(runs.values())} (tensorboard/).")
    plt = _pyplot()
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
                                    label=f"{label} {name}")
                    continue
                if name not in data[label]:
                    continue
                steps, values = data[label][name]
                values = _smooth(values, smooth)
                ax.plot(steps[len(steps) - len(values):], values,
                        label=f"{label} {name}" if len(runs) > 1 else name, linewidth=1)
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=7, ncol=2)
    axes[-1, 0].set_xlabel("training step")
    fig.tight_layout()
    return _save(fig, path)


def latent_interpolation(generator, path, rows=8, steps=10, seed=0, spherical=False):
    """Fig. 9: ``rows`` straight (or great-circle) paths between random latent pairs of
    an exported generator (a loaded SavedModel), ``steps`` images each; returns ``path``."""
    rng = np.random.default_rng(seed)
    latent_dim = int(generator.latent_dim.numpy())
    ends = rng.standard_normal((2, rows, latent_dim))
    z = images_lib.interpolate_latents(ends[0], ends[1], steps, spherical=spherical)
    path_images = generator.generate(tf.constant(z))["images"].numpy()
    return images_lib.save_grid(path_images, path, steps)


class AnalysisCallback(keras.callbacks.Callback):
    """Logs D's robustness and input-gradient statistics to TensorBoard every N epochs.

    On a fixed batch of real images and a fixed latent batch: ``analysis/flipped_<side>
    _eps<k>`` and ``analysis/confidence_<side>_eps<k>`` for each epsilon (``k`` in
    1/255 units), ``analysis/grad_l1`` and the histogram ``analysis/input_grad``; one
    JSON line per evaluation in ``jsonl_path`` when given.
    """

    def __init__(self, reals, logdir, every_epochs=1, epsilons=(1 / 255, 4 / 255),
                 jsonl_path=None, seed=0):
        super().__init__()
        self.reals = np.asarray(reals, np.float32)
        self.logdir = logdir
        self.every_epochs = max(1, int(every_epochs))
        self.epsilons = tuple(float(e) for e in epsilons)
        self.jsonl_path = jsonl_path
        self.seed = seed
        self.records = []

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every_epochs:
            return
        model = self.model
        z = tf.random.stateless_normal((len(self.reals), model.latent_dim), seed=[self.seed, 0])
        fakes = model.generator(z, training=False).numpy()
        records = robustness(model.discriminator, self.reals, fakes, self.epsilons)
        grad = input_gradient(model.discriminator, self.reals)
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
            from tf_asgan.callbacks import append_line

            append_line(self.jsonl_path, json.dumps(record, sort_keys=True))


def parse_epsilons(text):
    """``"1/255,4/255,0.01"`` -> floats (the flag syntax of ``--epsilon``), each in
    ``(0, 1)`` model-input units (``4`` is refused: write ``4/255``)."""
    from tf_asgan.config import parse_epsilon

    values = [parse_epsilon(t) for t in str(text).split(",") if t.strip()]
    bad = [v for v in values if not 0 < v < 1]
    if bad or not values:
        raise ValueError(f"Epsilons must lie in (0, 1) model-input units, e.g. 4/255; got "
                         f"{text!r}.")
    return values


def analyze(generator, discriminator, reals, out_dir, *, epsilons=(1 / 255, 4 / 255),
            steps=(1,), fakes=None, workdir=None, export_dir=None, seed=0, grid_columns=8,
            extra=None):
    """Runs every analysis on one generator / discriminator pair and writes the figures.

    Writes into ``out_dir``: ``robustness_<side>_eps<k>.png`` (FGSM, ``k`` in 1/255
    units), ``gradient_maps.png``, ``gradient_histogram.png``, ``curves.png`` (with a
    ``workdir``), ``interpolation.png`` (with an ``export_dir``) and ``analysis.json``
    (the robustness records, gradient statistics and ``extra``). Returns the JSON's
    content.
    """
    os.makedirs(out_dir, exist_ok=True)
    reals = np.asarray(reals, np.float32)
    if fakes is None:
        latent_dim = int(generator.inputs[0].shape[-1])
        z = tf.random.stateless_normal((len(reals), latent_dim), seed=[seed, 1])
        fakes = generator(z, training=False).numpy()
    records = robustness(discriminator, reals, fakes, epsilons, steps)
    figures = []
    for eps in epsilons:
        for side, x in (("real", reals), ("fake", fakes)):
            figures.append(robustness_grid(
                discriminator, x, eps,
                os.path.join(out_dir, f"robustness_{side}_eps{eps * 255:g}.png"), side,
                columns=grid_columns))
    grad = input_gradient(discriminator, reals)
    figures.append(save_gradient_maps(reals, gradient_maps(grad),
                                      os.path.join(out_dir, "gradient_maps.png"), grid_columns))
    stats = gradient_statistics(grad)
    figures.append(plot_histograms({"D": stats}, os.path.join(out_dir, "gradient_histogram.png")))
    if workdir and read_scalars(os.path.join(workdir, "tensorboard")):
        figures.append(plot_training_curves(workdir, os.path.join(out_dir, "curves.png")))
    if export_dir and os.path.exists(os.path.join(export_dir, "saved_model.pb")):
        loaded = tf.saved_model.load(export_dir)  # kept in a variable (STACK.md trap 5)
        figures.append(latent_interpolation(loaded, os.path.join(out_dir, "interpolation.png"),
                                            seed=seed))
    result = {"robustness": records, "gradient": stats, "num_real": len(reals),
              "figures": [os.path.basename(f) for f in figures], **(extra or {})}
    tmp = os.path.join(out_dir, f"analysis.json.tmp{os.getpid()}")
    with open(tmp, "w") as f:
        json.dump(result, f, indent=2, sort_keys=True)
    os.replace(tmp, os.path.join(out_dir, "analysis.json"))
    return result


def real_batch(source, n, seed=0):
    """``n`` real images of a :class:`~tf_asgan.data.Source`, a seeded random choice."""
    buffer = max(1, min(source.num_examples or 10_000, 10_000))
    ds = source.images.shuffle(buffer, seed=seed, reshuffle_each_iteration=False).take(n)
    return np.stack(list(ds.as_numpy_iterator()))
