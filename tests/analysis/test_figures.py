"""The figures read on their own: a title, axis (or row and column) labels, a colour bar
where colour carries a value, a size that shows the detail, and the right values drawn."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tf_asgan import layout
from tf_asgan.analysis import attacks, figures, report

RES = 8
EPS = 8 / 255


def linear_d(seed=0):
    """logit = w . x + c, so D's probabilities before and after FGSM follow by hand."""
    x = keras.Input((RES, RES, 3))
    dense = keras.layers.Dense(1)
    d = keras.Model(x, dense(keras.layers.Flatten()(x)))
    w = np.random.default_rng(seed).normal(0, 0.05, (RES * RES * 3, 1)).astype(np.float32)
    dense.set_weights([w, np.array([0.1], np.float32)])
    return d, w[:, 0], 0.1


def batch(n=8, seed=0):
    return np.random.default_rng(seed).uniform(-0.5, 0.5, (n, RES, RES, 3)).astype(np.float32)


def sigmoid(t):
    return 1 / (1 + np.exp(-t))


def tiles(fig, rows, columns):
    """The image axes of a grid figure, row by row (the colour bar's axes left out)."""
    grid = [ax for ax in fig.axes if ax.get_images()]
    assert len(grid) == rows * columns
    return [grid[r * columns:(r + 1) * columns] for r in range(rows)]


def saved_size(fig, tmp_path, name):
    path = figures.save_figure(fig, str(tmp_path / name))
    with Image.open(path) as image:
        pixels = np.asarray(image.convert("L"))
    # the title band is drawn: dark pixels in the top 40 rows of a white page
    assert (pixels[:40] < 128).any(), name
    return pixels.shape[1], pixels.shape[0]


@pytest.mark.parametrize("side,steps,name", [("real", 1, "FGSM"),
                                             ("fake", 3, "iterative attack (3 steps)")])
def test_robustness_grid_labels_its_rows_attack_epsilon_and_probabilities(tmp_path, side, steps,
                                                                          name):
    d, w, c = linear_d()
    x = batch()
    fig = figures.robustness_figure(d, x, EPS, side, steps=steps)
    rows = tiles(fig, 2, 8)
    clean_label, attacked_label = rows[0][0].get_ylabel(), rows[1][0].get_ylabel()
    assert clean_label == f"clean {side}"
    assert attacked_label.startswith(f"attacked {side}") and name in attacked_label
    assert "8/255" in attacked_label and "8/255" in fig._suptitle.get_text()
    assert [ax.get_title() for ax in rows[0]] == [f"#{i}" for i in range(1, 9)]
    # D's probabilities by hand; the attacked images are the attack's (its own tests)
    x_adv = attacks.attack(d, x, EPS, side, steps)
    for row, images in zip(rows, (x, x_adv)):
        p = sigmoid(images.reshape(8, -1) @ w + c)
        assert [ax.texts[0].get_text() for ax in row] == [f"D={v:.2f}" for v in p]
    # red marks exactly the right decisions the attack flipped
    before, after = (sigmoid(v.reshape(8, -1) @ w + c) for v in (x, x_adv))
    right = (lambda p: p > 0.5) if side == "real" else (lambda p: p <= 0.5)  # noqa: E731
    flipped = right(before) & ~right(after)
    assert [ax.texts[0].get_color() == "red" for ax in rows[1]] == flipped.tolist()
    assert f"{flipped.sum()} of the {right(before).sum()}" in fig._suptitle.get_text()
    width, height = saved_size(fig, tmp_path, "robustness.png")
    assert width >= 8 * 100 and height >= 2 * 100  # each tile at least 100 pixels


def test_gradient_maps_have_one_colour_scale_with_its_bar(tmp_path):
    d, w, c = linear_d(seed=1)
    x = batch(seed=2)
    maps = attacks.gradient_maps(attacks.input_gradient(d, x))
    fig = figures.gradient_maps_figure(x, maps, loss="hinge")
    rows = tiles(fig, 2, 8)
    assert [r[0].get_ylabel() for r in rows] == ["real image", "input gradient"]
    assert [ax.get_title() for ax in rows[0]] == [f"#{i}" for i in range(1, 9)]
    assert "hinge" in fig._suptitle.get_text()
    for ax, m in zip(rows[1], maps):  # each map drawn as it is, on the shared scale
        image = ax.get_images()[0]
        np.testing.assert_allclose(np.asarray(image.get_array()), m, rtol=1e-6)
        assert image.get_clim() == pytest.approx((0.0, float(maps.max())))
    (bar,) = [ax for ax in fig.axes if not ax.get_images()]  # the colour bar's axes
    assert bar.get_ylabel() and bar.get_ylim() == pytest.approx((0.0, float(maps.max())))
    width, height = saved_size(fig, tmp_path, "gradient_maps.png")
    assert width >= 8 * 100 and height >= 2 * 100  # was 272 x 68 with no labels


def write_run(workdir, with_metrics=True):
    with tf.summary.create_file_writer(str(workdir / layout.TENSORBOARD)).as_default():
        for step in range(1, 21):
            for name, value in (("D_real", 0.7), ("D_fake", 0.3), ("d_loss", 1.0 / step),
                                ("g_loss", 2.0), ("epsilon", 2 / 255)):
                tf.summary.scalar("step/" + name, value, step=step)
    if with_metrics:
        with open(workdir / layout.METRICS, "w") as f:
            for step, fid, score in ((10, 50.0, 3.0), (20, 40.0, 3.5)):
                f.write(json.dumps({"step": step, "metrics": {"fid": fid, "is": score}}) + "\n")


def test_every_curve_panel_has_its_labels_and_a_legend_beside_its_lines(tmp_path):
    workdir = tmp_path / "run"
    write_run(workdir)
    fig = figures.training_curves_figure(str(workdir), smooth=1)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["D's probability of real", "Losses", "Attack radius epsilon",
                      "FID (lower is better)", "Inception score (higher is better)"]
    assert "run" in fig._suptitle.get_text()
    fig.canvas.draw()
    for ax in fig.axes:
        assert ax.get_xlabel() == "training step" and ax.get_ylabel(), ax.get_title()
        assert ax.get_xlim() == fig.axes[0].get_xlim()  # one step axis for all panels
        legend = ax.get_legend()
        assert [t.get_text() for t in legend.get_texts()] == [
            line.get_label() for line in ax.get_lines()]
        box, plot = legend.get_window_extent(), ax.get_window_extent()
        assert box.x0 >= plot.x1, ax.get_title()  # beside the panel, never over its lines
    by_title = {ax.get_title(): ax for ax in fig.axes}
    fid = by_title["FID (lower is better)"].get_lines()[0]
    assert fid.get_xdata().tolist() == [10, 20] and fid.get_ydata().tolist() == [50.0, 40.0]
    inception = by_title["Inception score (higher is better)"].get_lines()[0]
    assert inception.get_ydata().tolist() == [3.0, 3.5]
    epsilon = by_title["Attack radius epsilon"].get_lines()[0]  # drawn in 1/255 units
    np.testing.assert_allclose(epsilon.get_ydata(), 2.0, rtol=1e-6)
    width, height = saved_size(fig, tmp_path, "curves.png")
    assert width >= 800 and height >= 5 * 240


def test_histogram_has_title_axis_labels_and_legend():
    stats = attacks.gradient_statistics(np.random.default_rng(0).normal(size=(4, RES, RES, 3)))
    fig = figures.histograms_figure({"AS-GAN": stats})
    (ax,) = fig.axes
    assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel()
    assert ax.get_legend().get_texts()[0].get_text().startswith("AS-GAN")
    figures.pyplot().close(fig)


class LinearGenerator:
    """An exported generator's interface: ``latent_dim`` and ``generate(z)``."""

    def __init__(self, latent_dim=4):
        self.latent_dim = tf.constant(latent_dim)
        self.w = np.random.default_rng(3).normal(0, 0.5, (latent_dim, RES * RES * 3))

    def generate(self, z):
        images = np.tanh(z.numpy() @ self.w).reshape(-1, RES, RES, 3)
        return {"images": tf.constant(images, tf.float32)}


def test_a_labelled_interpolation_names_its_rows_and_positions(tmp_path, monkeypatch):
    kept = {}
    monkeypatch.setattr(figures, "save_figure", lambda fig, path: kept.setdefault("fig", fig))
    g = LinearGenerator()
    figures.latent_interpolation(g, str(tmp_path / "i.png"), rows=2, steps=5, labelled=True)
    fig = kept["fig"]
    rows = tiles(fig, 2, 5)
    assert [r[0].get_ylabel() for r in rows] == ["pair 1", "pair 2"]
    assert [ax.get_title() for ax in rows[0]] == ["t=0.00", "t=0.25", "t=0.50", "t=0.75",
                                                  "t=1.00"]
    assert "Latent interpolation" in fig._suptitle.get_text()
    # the first tile is G at the first latent of the path (the seed's draw)
    ends = np.random.default_rng(0).standard_normal((2, 2, 4))
    expected = np.tanh(ends[0, 0] @ g.w).reshape(RES, RES, 3)
    drawn = np.asarray(rows[0][0].get_images()[0].get_array())
    np.testing.assert_array_equal(drawn, np.uint8(np.clip((expected + 1) * 127.5 + 0.5, 0, 255)))
    figures.pyplot().close(fig)
    # unlabelled (sample.py's): the bare grid, 2-pixel gaps
    path = figures.latent_interpolation(g, str(tmp_path / "bare.png"), rows=2, steps=5)
    assert Image.open(path).size == (5 * (RES + 2) + 2, 2 * (RES + 2) + 2)


def test_analyze_writes_every_figure_at_a_readable_size(tmp_path):
    d, _, _ = linear_d()
    z = keras.Input((4,))
    g = keras.Model(z, keras.layers.Reshape((RES, RES, 3))(
        keras.layers.Dense(RES * RES * 3, activation="tanh")(z)))
    workdir = tmp_path / "run"
    write_run(workdir, with_metrics=False)
    out = tmp_path / "analysis"
    result = report.analyze(g, d, batch(16), str(out), epsilons=[EPS], workdir=str(workdir))
    assert sorted(result["figures"]) == sorted(
        ["robustness_real_eps8.png", "robustness_fake_eps8.png", "gradient_maps.png",
         "gradient_histogram.png", layout.CURVES])
    for name in result["figures"]:
        with Image.open(os.path.join(out, name)) as image:
            assert image.size[0] >= 800 and image.size[1] >= 250, (name, image.size)


def test_grey_images_are_drawn_grey_with_their_own_pixel_values():
    x = np.linspace(-1, 1, 2 * 3 * 3).reshape(2, 3, 3, 1).astype(np.float32)  # MNIST-like
    fig = figures.image_grid_figure([x], ["real"], ["a", "b"], "grey")
    shown = [ax.get_images()[0] for ax in fig.axes if ax.get_images()]
    assert len(shown) == 2
    for img, source in zip(shown, x):
        assert img.get_cmap().name == "gray" and img.get_clim() == (0, 255)
        expected = np.floor((source[..., 0] + 1) * 127.5 + 0.5).astype(np.uint8)
        np.testing.assert_array_equal(np.asarray(img.get_array()), expected)
