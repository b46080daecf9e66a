"""The analysis tools on constructed discriminators, and the study end to end."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from helpers import generated_source, is_png, run_script, small_config
from tf_asgan import losses, schedules
from tf_asgan.analysis import attacks, figures, report
from tf_asgan.experiments import study
from tf_asgan.training import loop

RES = 8


def linear_d(seed=0):
    """logit = w . x + c (a Dense layer on the flattened image)."""
    x = keras.Input((RES, RES, 3))
    dense = keras.layers.Dense(1)
    d = keras.Model(x, dense(keras.layers.Flatten()(x)))
    rng = np.random.default_rng(seed)
    w = rng.normal(0, 0.05, (RES * RES * 3, 1)).astype(np.float32)
    dense.set_weights([w, np.array([0.1], np.float32)])
    return d, w[:, 0], 0.1


def saturated_d():
    """logit = 3 * clip(10 * mean(x), -1, 1): constant wherever |mean(x)| > 0.1."""
    x = keras.Input((RES, RES, 3))
    mean = keras.layers.Lambda(lambda t: tf.reduce_mean(t, axis=[1, 2, 3])[:, None])(x)
    return keras.Model(x, keras.layers.Lambda(lambda m: 3.0 * tf.clip_by_value(10 * m, -1, 1))(
        mean))


def images(n, low, high, seed=0):
    return np.random.default_rng(seed).uniform(low, high, (n, RES, RES, 3)).astype(np.float32)


@pytest.mark.parametrize("steps", [1, 10])
def test_a_discriminator_constant_near_the_data_flips_nothing(steps):
    d = saturated_d()
    reals, fakes = images(32, 0.3, 0.9), images(32, -0.9, -0.3, seed=1)
    records = attacks.robustness(d, reals, fakes, [4 / 255, 16 / 255], steps=(steps,))
    assert len(records) == 4
    for r in records:
        assert r["flipped"] == 0.0
        assert r["D_after"] == pytest.approx(r["D_before"], abs=1e-7)
        assert r["confidence_before"] == pytest.approx(1 / (1 + np.exp(-3.0)), rel=1e-6)


@pytest.mark.parametrize("steps", [1, 10])
def test_a_linear_discriminator_flips_as_computed(steps):
    d, w, c = linear_d()
    reals, fakes = images(200, -0.5, 0.5), images(200, -0.5, 0.5, seed=2)
    eps = 4 / 255
    records = {r["side"]: r for r in attacks.robustness(d, reals, fakes, [eps], (steps,))}
    # By hand: the attack moves every pixel by eps against (reals) or along (fakes)
    # sign(w), so the logit moves by exactly eps * ||w||_1.
    shift = eps * np.abs(w).sum()
    for side, x, sign in (("real", reals, -1.0), ("fake", fakes, 1.0)):
        before = x.reshape(len(x), -1) @ w + c
        after = before + sign * shift
        r = records[side]
        right = (lambda t: t > 0) if side == "real" else (lambda t: t <= 0)  # noqa: E731
        was_right, is_right = right(before), right(after)
        assert r["accuracy_before"] == pytest.approx(was_right.mean(), abs=1e-9)
        assert r["right"] == was_right.sum() > 0  # the denominator of flipped, counted
        assert r["accuracy_after"] == pytest.approx(is_right.mean(), abs=1e-9)
        assert r["flipped"] == pytest.approx((was_right & ~is_right).sum() / was_right.sum(),
                                             abs=1e-9)
        assert 0.05 < r["flipped"] < 0.95  # the case is not trivial
        assert r["D_after"] == pytest.approx(np.mean(1 / (1 + np.exp(-after))), rel=1e-4)
        p_true = (1 / (1 + np.exp(-after))) if side == "real" else 1 / (1 + np.exp(after))
        assert r["confidence_after"] == pytest.approx(p_true.mean(), rel=1e-4)
        assert r["confidence_after"] < r["confidence_before"]


@pytest.mark.parametrize("steps", [1, 5])
def test_an_attack_under_the_hinge_loss_increases_its_terms(steps):
    d, w, c = linear_d(seed=5)
    hinge = losses.get("hinge")
    x = images(64, -0.2, 0.2, seed=6)  # logits near 0: every hinge term is active
    for side, term in (("real", hinge.real_term), ("fake", hinge.fake_term)):
        before = float(term(tf.constant(attacks.logits(d, x))))
        x_adv = attacks.attack(d, x, 4 / 255, side, steps, loss="hinge")
        after = float(term(tf.constant(attacks.logits(d, x_adv))))
        assert np.abs(x_adv - x).max() <= 4 / 255 + 1e-6
        # by hand: a linear D's logit moves by eps * ||w||_1 against (real) / along (fake)
        shift = 4 / 255 * np.abs(w).sum()
        assert after == pytest.approx(before + shift, rel=1e-4)
    with pytest.raises(ValueError, match="Unknown loss"):
        attacks.attack(d, x, 4 / 255, "real", loss="nope")


def test_input_gradient_maps_and_histogram_match_a_direct_computation():
    d, w, c = linear_d(seed=3)
    x = images(6, -0.5, 0.5, seed=4)
    logit = x.reshape(6, -1) @ w + c
    # d/dx softplus(-(w.x + c)) = -sigmoid(-(w.x + c)) * w
    direct = (-(1 / (1 + np.exp(logit)))[:, None] * w[None, :]).reshape(x.shape)
    grad = attacks.input_gradient(d, x)
    np.testing.assert_allclose(grad, direct, rtol=1e-5, atol=1e-9)

    maps = attacks.gradient_maps(grad)
    for i in range(6):
        g = direct[i].astype(np.float64)
        lo, hi = g.mean() - 3 * g.std(), g.mean() + 3 * g.std()
        expected = np.abs(np.clip(g, lo, hi)).mean(axis=-1)
        np.testing.assert_allclose(maps[i], expected, rtol=1e-5, atol=1e-9)
    # The clipping bites: an outlier entry is cut to 3 standard deviations.
    spiky = np.zeros((1, 4, 4, 3))
    spiky[0, 0, 0, 0] = 100.0
    bound = spiky.mean() + 3 * spiky.std()
    assert attacks.gradient_maps(spiky)[0, 0, 0] == pytest.approx(bound / 3)

    stats = attacks.gradient_statistics(grad, bins=20)
    top = np.abs(direct).max()
    counts, edges = np.histogram(direct.ravel(), bins=20, range=(-top, top))
    assert stats["counts"] == counts.tolist() and sum(stats["counts"]) == direct.size
    np.testing.assert_allclose(stats["edges"], edges, rtol=1e-5)
    np.testing.assert_allclose(stats["l1"], np.abs(direct).reshape(6, -1).sum(1), rtol=1e-5)


def test_a_discriminator_that_gets_nothing_right_has_no_flipped_fraction():
    # logits -3 on the reals and +3 on the fakes: every decision is wrong before the attack
    d = saturated_d()
    reals, fakes = images(16, -0.9, -0.3), images(16, 0.3, 0.9, seed=1)
    with pytest.warns(RuntimeWarning, match="none of the 16 real images right"):
        records = attacks.robustness(d, reals, fakes, [4 / 255])
    for r in records:
        assert r["right"] == 0 and r["accuracy_before"] == 0.0
        assert np.isnan(r["flipped"])  # undefined, not "0% flipped" (fully robust)
    json.dumps(records)  # still serialisable


def test_non_finite_values_are_reported_not_hidden():
    d, _, _ = linear_d()
    d.layers[-1].kernel.assign(np.full((RES * RES * 3, 1), np.nan, np.float32))
    reals = images(8, -0.5, 0.5)
    for r in attacks.robustness(d, reals, reals, [4 / 255]):
        assert np.isnan(r["flipped"]) and np.isnan(r["D_before"])  # not "0% flipped"
        assert np.isnan(r["right"])
    grad = np.ones((2, 4, 4, 3))
    grad[0, 0, 0, 0] = np.nan
    stats = attacks.gradient_statistics(grad, bins=4)
    assert sum(stats["counts"]) == grad.size - 1 and stats["edges"][-1] == 1.0
    assert np.isnan(stats["l1"][0]) and stats["l1"][1] == 48.0
    with pytest.raises(ValueError, match="4/255"):
        attacks.parse_epsilons("1/255,4")


def test_analysis_epsilons_lie_below_half_the_library_ceiling():
    assert attacks.MAX_ATTACK_EPSILON == 1.0 == schedules.MAX_EPSILON / 2
    below = float(np.nextafter(1.0, 0.0))
    assert attacks.parse_epsilons(f"1/255,{below!r}") == [1 / 255, below]
    for text in ("1", "255/255", "0", "1/255,-1/255"):
        with pytest.raises(ValueError, match="must lie in \\(0, 1\\) model-input units"):
            attacks.parse_epsilons(text)
    study.StudyConfig(attack_epsilon=below).validate()
    with pytest.raises(ValueError, match="attack_epsilon must lie in \\(0, 1\\)"):
        study.StudyConfig(attack_epsilon=1.0).validate()




@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("run"))
    config = small_config(epochs=2, checkpoint_every_steps=0)
    reals = np.stack(list(generated_source(16).images.as_numpy_iterator()))
    callback = report.AnalysisCallback(reals, os.path.join(workdir, "tensorboard"),
                                       jsonl_path=os.path.join(workdir, "analysis.jsonl"))
    loop.train(config, workdir, verbose=0, source=generated_source(),
               callbacks=[callback])
    return workdir, reals, callback


@pytest.mark.slow
def test_curves_read_back_every_step_and_plot(trained_run, tmp_path):
    workdir, _, _ = trained_run
    scalars = figures.read_scalars(os.path.join(workdir, "tensorboard"))
    for name in ("d_loss", "g_loss", "D_real", "D_fake", "D_adv", "epsilon"):
        steps, values = scalars[name]
        assert steps.tolist() == [1, 2, 3, 4, 5, 6] and np.isfinite(values).all()
    np.testing.assert_allclose(scalars["epsilon"][1], 1 / 255, rtol=1e-6)
    assert is_png(figures.plot_training_curves(workdir, str(tmp_path / "curves.png")))
    with pytest.raises(ValueError, match="No step logs"):
        figures.plot_training_curves(str(tmp_path), str(tmp_path / "none.png"))


def test_the_callback_logs_robustness_and_gradients_to_tensorboard(trained_run):
    workdir, _, callback = trained_run
    logged = figures.read_scalars(os.path.join(workdir, "tensorboard"), prefix="analysis/")
    assert logged["grad_l1"][0].tolist() == [3, 6]  # after each epoch
    assert {"flipped_real_eps1", "flipped_fake_eps4", "confidence_real_eps4"} <= set(logged)
    np.testing.assert_allclose(logged["grad_l1"][1], [r["grad_l1"] for r in callback.records],
                               rtol=1e-6)
    with open(os.path.join(workdir, "analysis.jsonl")) as f:
        lines = [json.loads(line) for line in f]
    assert [r["step"] for r in lines] == [3, 6] and len(lines[0]["robustness"]) == 4


@pytest.mark.slow
def test_analyze_script_writes_every_figure_and_keeps_an_existing_analysis(trained_run):
    workdir, _, _ = trained_run
    proc = run_script("analyze.py", f"--workdir={workdir}", "--epsilons=2/255,8/255",
                      "--attack_steps=1,3", "--num=16")
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = os.path.join(workdir, "analysis")
    with open(os.path.join(out, "analysis.json")) as f:
        result = json.load(f)
    assert len(result["robustness"]) == 2 * 2 * 2 and result["checkpoint"].endswith("ckpt-6")
    for name in ("robustness_real_eps2.png", "robustness_fake_eps8.png", "gradient_maps.png",
                 "gradient_histogram.png", "curves.png", "interpolation.png"):
        assert is_png(os.path.join(out, name)), name
    assert "real eps 8/255, 3 step(s)" in proc.stdout
    proc = run_script("analyze.py", f"--workdir={workdir}")
    assert proc.returncode != 0 and "already holds an analysis" in proc.stderr








