"""Precision, recall, density and coverage (tf_asgan.evaluation.fidelity): the math against
an independent brute-force route and known answers, ties, batching, bad input; then the
wiring: the evaluator, evaluate.py's line, train.py's line and the study's summary."""

import numpy as np
import pytest
import tensorflow as tf
from scipy.spatial import cKDTree
from scipy.spatial.distance import cdist

from helpers import array_source, blobs, load_script
from tf_asgan import errors
from tf_asgan.evaluation import evaluator, feature_network, fidelity
from tf_asgan.experiments import study, study_summary

KEYS = ("precision", "recall", "density", "coverage")


def brute_force(real, fake, pr_k=3, dc_k=5):
    """The four metrics from full SciPy distance matrices (direct differences, not the
    expansion), by the papers' definitions: radii are column k of each sorted row of the
    set's own distances (column 0: the point itself)."""
    own_real, own_fake = np.sort(cdist(real, real), axis=1), np.sort(cdist(fake, fake), axis=1)
    cross = cdist(real, fake)  # [N, M]
    r_pr, r_dc, f_pr = own_real[:, pr_k], own_real[:, dc_k], own_fake[:, pr_k]
    return {"precision": np.mean(np.any(cross <= r_pr[:, None], axis=0)),
            "recall": np.mean(np.any(cross <= f_pr[None, :], axis=1)),
            "density": np.sum(cross < r_dc[:, None]) / (dc_k * len(fake)),
            "coverage": np.mean(cross.min(axis=1) < r_dc)}


def gaussians(n, m, dim, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, dim)), 1.3 * rng.standard_normal((m, dim)) + 0.4


def modes(per_mode, which, centres, rng):
    """``per_mode`` points around each of ``centres[which]`` (unit spread)."""
    return np.concatenate([c + rng.standard_normal((per_mode, centres.shape[1]))
                           for c in centres[which]])


# -- the math ------------------------------------------------------------------------------


@pytest.mark.parametrize("n, m, dim, pr_k, dc_k", [(300, 250, 16, 3, 5), (120, 200, 3, 1, 2),
                                                   (90, 40, 64, 7, 4)])
def test_the_four_metrics_equal_a_brute_force_computation(n, m, dim, pr_k, dc_k):
    real, fake = gaussians(n, m, dim, seed=n)
    ours = fidelity.fidelity_metrics(real, fake, precision_recall_k=pr_k,
                                     density_coverage_k=dc_k, batch_size=37)
    expected = brute_force(real, fake, pr_k, dc_k)
    for key in KEYS:  # counts: equal, not close (no pair of this data is near a tie)
        assert ours[key] == pytest.approx(expected[key], rel=1e-12, abs=0), key
    assert 0 < ours["precision"] < 1 and 0 < ours["coverage"] < 1  # not a trivial case
    assert fidelity.precision_recall(real, fake, pr_k) == (ours["precision"], ours["recall"])
    assert fidelity.density_coverage(real, fake, dc_k) == (ours["density"], ours["coverage"])


def test_radii_are_the_kth_neighbour_distances_of_a_kd_tree():
    real, _ = gaussians(400, 1, 10)
    radii = fidelity.squared_radii(real, [1, 3, 5])
    distances, _ = cKDTree(real).query(real, k=6)  # column 0: the point itself
    for k in (1, 3, 5):
        np.testing.assert_allclose(np.sqrt(radii[k]), distances[:, k], rtol=1e-10)


def test_identical_sets_give_one_for_each_metric_exactly():
    # Each point is its own copy at distance 0: precision = recall = coverage = 1. Density:
    # ball i (open, radius NND_5) holds the copy of x_i and the 4 points strictly nearer
    # than its 5th neighbour, so sum_j sum_i [...] = 5 N and density = 5 N / (5 N) = 1
    # exactly when no two distances tie (continuous data).
    real, _ = gaussians(500, 1, 32, seed=3)
    for batch_size in (1000, 64):
        assert fidelity.fidelity_metrics(real, real.copy(), batch_size=batch_size) == {
            "precision": 1.0, "recall": 1.0, "density": 1.0, "coverage": 1.0}


def test_far_apart_sets_give_zero_for_each_metric():
    real, fake = gaussians(200, 150, 8)
    assert fidelity.fidelity_metrics(real, fake + 1e3) == dict.fromkeys(KEYS, 0.0)


def test_a_generator_of_half_the_modes_has_half_the_recall_and_coverage():
    rng = np.random.default_rng(0)
    centres = 100.0 * rng.standard_normal((10, 8))  # modes ~140 apart, unit spread
    real = modes(100, np.arange(10), centres, rng)
    # Exact copies of the real points of modes 0-4: every generated point is a real one
    # (precision 1), half the real points are reached (recall, coverage 1/2) and density
    # is 1 by the argument of the identical sets, restricted to the covered modes.
    copies = real[:500]
    assert fidelity.fidelity_metrics(real, copies) == {
        "precision": 1.0, "recall": 0.5, "density": 1.0, "coverage": 0.5}
    # Fresh draws from modes 0-4, against fresh draws from all 10 (100 per mode each):
    # recall and coverage halve, precision and density stay (the same per-mode
    # distribution). Expected values: coverage 1 - 2^-5 per covered mode with as many
    # samples as real points (Naeem et al. 2020), density 1 in expectation.
    half = fidelity.fidelity_metrics(real, modes(100, np.arange(5), centres, rng))
    full = fidelity.fidelity_metrics(real, modes(100, np.arange(10), centres, rng))
    assert half["coverage"] == pytest.approx(0.5 * (1 - 2 ** -5), abs=0.03)
    assert full["coverage"] == pytest.approx(1 - 2 ** -5, abs=0.03)
    assert half["recall"] <= 0.5 and half["recall"] == pytest.approx(full["recall"] / 2,
                                                                      abs=0.03)
    assert half["precision"] == pytest.approx(full["precision"], abs=0.05)
    assert half["precision"] > 0.8
    for result in (half, full):
        assert result["density"] == pytest.approx(1.0, abs=0.1)


def test_ties_follow_the_reference_codes_le_for_precision_recall_lt_for_density_coverage():
    # four copies of a point (radius 0 for k = 3: its 3 nearest others are its copies) and
    # four far points around another place
    a = np.array([[5.0, -3.0, 2.0]])
    far = 100.0 + np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1.0]])
    real = np.concatenate([np.repeat(a, 4, axis=0), far])
    radii = fidelity.squared_radii(real, [3])[3]
    assert radii[:4].max() < 1e-10 and radii[4:].min() > 0.5  # duplicates: 0 to rounding
    fake = np.repeat(a, 4, axis=0)
    p, r = fidelity.precision_recall(real, fake, k=3)
    assert (p, r) == (1.0, 0.5)  # 0 <= 0: a copy lies in a ball of radius 0
    d, c = fidelity.density_coverage(real, fake, k=3)
    assert (d, c) == (0.0, 0.0)  # 0 < 0 is false: a ball of radius 0 holds nothing


def test_batching_translation_and_scale_do_not_change_the_result():
    real, fake = gaussians(230, 170, 20, seed=5)
    reference = fidelity.fidelity_metrics(real, fake, batch_size=10_000)  # one block
    for batch_size in (1, 3, 64):
        assert fidelity.fidelity_metrics(real, fake, batch_size=batch_size) == reference
    # distances are translation-invariant and scale together; the centring keeps the
    # expansion's rounding small even 1e4 standard deviations away from the origin
    moved = fidelity.fidelity_metrics(1e-3 * real + 10.0, 1e-3 * fake + 10.0)
    assert moved == reference
    as_float32 = fidelity.fidelity_metrics(real.astype(np.float32), fake.astype(np.float32))
    assert as_float32 == brute_force(real.astype(np.float32).astype(np.float64),
                                     fake.astype(np.float32).astype(np.float64))


@pytest.mark.parametrize("call, message", [
    (lambda r, f: fidelity.precision_recall(r, f, k=0), "k must be an integer >= 1"),
    (lambda r, f: fidelity.precision_recall(r, f, k=2.5), "k must be an integer >= 1"),
    (lambda r, f: fidelity.density_coverage(r, f, k=True), "k must be an integer >= 1"),
    (lambda r, f: fidelity.density_coverage(r[:5], f, k=5), "at least k \\+ 1 = 6 real"),
    (lambda r, f: fidelity.precision_recall(r, f[:3], k=3), "at least k \\+ 1 = 4 generated"),
    (lambda r, f: fidelity.precision_recall(r, f[:, :4]), "differ in size: 8 and 4"),
    (lambda r, f: fidelity.precision_recall(r[0], f), "2-D array"),
    (lambda r, f: fidelity.density_coverage(r, np.where(f > 1, np.nan, f)), "NaN"),
    (lambda r, f: fidelity.density_coverage(r, f, batch_size=0), "batch_size"),
])
def test_bad_input_is_refused_with_what_to_do(call, message):
    real, fake = gaussians(20, 20, 8)
    with pytest.raises(errors.InputError, match=message):
        call(real, fake)


def test_density_and_coverage_need_only_one_generated_point():
    real, fake = gaussians(20, 1, 8)
    d, c = fidelity.density_coverage(real, fake, k=5)
    assert (d, c) == (brute_force(real, np.repeat(fake, 6, axis=0))["density"],
                      brute_force(real, np.repeat(fake, 6, axis=0))["coverage"])


# -- the wiring ----------------------------------------------------------------------------


def pooled_network():
    """A cheap feature network: 8x8 average pooling of 32-px images, 48 features."""
    def fn(images):
        features = tf.reshape(tf.nn.avg_pool2d(images, 8, 8, "VALID"), (-1, 48))
        return features[:, :5], features

    return feature_network.FeatureNetwork(name="pooled", fingerprint="pooled-v1", num_classes=5,
                                      feature_dim=48, fn=fn, preprocessing="8x8 mean")


class Replay:
    """A 'generator' that ignores z and returns the given images in order."""

    def __init__(self, images):
        self.images, self.at = images, 0

    def __call__(self, z):
        n = int(z.shape[0])
        self.at += n
        return self.images[self.at - n:self.at]


def test_the_evaluator_reports_them_on_the_kid_subsets_and_reuses_the_real_radii(
        tmp_path, monkeypatch):
    net, real, fake = pooled_network(), blobs(120), blobs(100, seed=1)
    protocol = evaluator.Protocol(num_samples=100, is_splits=2, batch_size=50, kid_samples=90,
                                  precision_recall_k=2, density_coverage_k=4)
    ev = evaluator.Evaluator(net, "folder", 32, protocol, cache_dir=str(tmp_path),
                             source=array_source(real), verbose=False)
    calls, radii = [], fidelity.squared_radii
    monkeypatch.setattr(fidelity, "squared_radii",
                        lambda *a, **k: calls.append(1) or radii(*a, **k))
    result = ev.evaluate(Replay(fake), latent_dim=4)
    again = ev.evaluate(Replay(fake), latent_dim=4)
    assert calls == [1]  # the real radii: once per evaluator
    monkeypatch.undo()
    kept_real = ev.real_statistics()["kid_features"]
    expected = fidelity.fidelity_metrics(kept_real, net(fake[:90])[1],
                                         precision_recall_k=2, density_coverage_k=4)
    assert {k: result["metrics"][k] for k in KEYS} == expected
    assert {k: again["metrics"][k] for k in KEYS} == expected
    assert len(kept_real) == 90 and 0 < expected["recall"] < 1
    p = result["protocol"]
    assert (p["precision_recall_k"], p["density_coverage_k"]) == (2, 4)
    assert p["fidelity_samples"] == {"real": 90, "generated": 90} == p["kid_samples"]
    assert "Kynkaanniemi" in p["fidelity_definition"]


def test_too_few_features_for_k_are_refused_before_any_work(tmp_path):
    with pytest.raises(errors.InputError, match="recall's k = 3"):
        evaluator.Protocol(num_samples=100, kid_samples=3).validate()
    with pytest.raises(errors.InputError, match="density_coverage_k must be >= 1"):
        evaluator.Protocol(density_coverage_k=0).validate()
    ev = evaluator.Evaluator(pooled_network(), "folder", 32,
                             evaluator.Protocol(num_samples=20, is_splits=2),
                             cache_dir=str(tmp_path), source=array_source(blobs(5)),
                             verbose=False)
    with pytest.raises(errors.InputError, match="5 real features .* at least 6 real images"):
        ev.real_statistics()
    assert not list(tmp_path.iterdir())  # nothing computed or cached


def record_of(metrics):
    protocol = {"num_samples": 400, "num_real": 1437, "precision_recall_k": 3,
                "density_coverage_k": 5, "fidelity_samples": {"real": 1437, "generated": 400},
                "network": {"name": "digit_classifier_v1:digits", "num_classes": 10}}
    return {"epoch": 4, "metrics": metrics, "protocol": protocol}


METRICS = {"fid": 12.0, "is": 5.0, "is_std": 0.1, "kid": 3.0, "kid_std": 0.2, "real_is": 9.0,
           "precision": 0.8125, "recall": 0.4375, "density": 1.0625, "coverage": 0.53125}


def test_evaluate_py_and_train_py_print_them():
    line = load_script("evaluate", "script_evaluate_fidelity").summary(
        "eval.json", record_of(METRICS))
    assert ("precision 0.812, recall 0.438 (k=3), density 1.062, coverage 0.531 (k=5)"
            in line)
    assert "on 400 and 1437)" in line
    summary = load_script("train", "script_train_fidelity").summary
    assert ("precision 0.812, recall 0.438, density 1.062, coverage 0.531"
            in summary(record_of(METRICS)))
    old = {k: v for k, v in METRICS.items() if k not in KEYS}  # a record of before
    assert "precision" not in summary(record_of(old))


def test_the_study_summary_has_them():
    config = study.StudyConfig(datasets=("digits",), methods=("baseline", "asgan"),
                               digits_seeds=(0, 1))
    results = [{"dataset": "digits", "method": m, "fid": 10.0 + i, "modes": 10,
                "precision": 0.8, "recall": r, "density": 1.0, "coverage": r + 0.1}
               for m, rs in (("baseline", (0.4, 0.5)), ("asgan", (0.6, 0.8)))
               for i, r in enumerate(rs)]
    table = study_summary.aggregate(results)
    assert table["digits/standard"]["asgan"]["recall"] == (pytest.approx(0.7),
                                                  pytest.approx(np.std([0.6, 0.8], ddof=1)), 2)
    text = study_summary.markdown(config, table, tests=study_summary.comparisons(results))
    header = next(line for line in text.splitlines() if line.startswith("| method |"))
    assert all(f" {key} " in header for key in KEYS)
    row = next(line for line in text.splitlines() if line.startswith("| asgan |"))
    assert "0.700 +- 0.141" in row and "0.800 +- 0.141" in row  # recall, coverage
    assert "p (recall)" in text and "p (coverage)" in text and "Naeem" in text
