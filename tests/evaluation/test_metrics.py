"""The metric math: IS, FID, KID and mode counts against hand values and NumPy/SciPy."""

import numpy as np
import pytest
import tensorflow as tf

from helpers import numpy_kid, scipy_fid
from tf_asgan.evaluation import metrics
from tf_asgan.utils import _tfgan


def _features(rng, n, dim, shift=0.0, scale=1.0):
    mix = rng.normal(size=(dim, dim)) / np.sqrt(dim)
    return (rng.normal(size=(n, dim)) @ mix * scale + shift).astype(np.float32)


def test_running_moments_match_numpy(rng):
    a = _features(rng, 1000, 6, shift=50.0)
    moments = metrics.RunningMoments(6)
    for chunk in np.array_split(a, 7):
        moments.update(chunk)
    assert moments.count == 1000
    np.testing.assert_allclose(moments.mean, a.astype(np.float64).mean(0), rtol=1e-12)
    np.testing.assert_allclose(moments.covariance, np.cov(a.astype(np.float64), rowvar=False),
                               rtol=1e-9, atol=1e-12)


def test_running_moments_errors():
    moments = metrics.RunningMoments(3)
    with pytest.raises(ValueError, match="No activations"):
        _ = moments.mean
    with pytest.raises(ValueError, match="size 3"):
        moments.update(np.zeros((2, 4)))
    moments.update(np.zeros((1, 3)))
    with pytest.raises(ValueError, match="at least 2"):
        _ = moments.covariance


def test_fid_of_a_set_against_itself_is_zero(rng):
    a = _features(rng, 500, 16)
    m = metrics.RunningMoments(16)
    m.update(a)
    assert abs(metrics.frechet_distance(m.mean, m.covariance, m.mean, m.covariance)) < 1e-6


def test_fid_matches_scipy_and_tfgan(rng):
    a = _features(rng, 800, 32)
    b = _features(rng, 600, 32, shift=0.3, scale=1.5)
    ma, mb = metrics.RunningMoments(32), metrics.RunningMoments(32)
    for chunk in np.array_split(a, 5):
        ma.update(chunk)
    mb.update(b)
    ours = metrics.frechet_distance(ma.mean, ma.covariance, mb.mean, mb.covariance)
    independent = scipy_fid(a, b)
    assert independent > 1.0  # the sets differ, so the comparison means something
    assert ours == pytest.approx(independent, rel=1e-3)
    tfgan = _tfgan.eval_module().classifier_metrics
    whole = float(tfgan.frechet_classifier_distance_from_activations(
        tf.constant(a, tf.float64), tf.constant(b, tf.float64)))
    assert ours == pytest.approx(whole, rel=1e-6)


def test_fid_of_shifted_identical_gaussians_is_the_squared_shift():
    cov = np.diag([1.0, 2.0, 3.0])
    assert metrics.frechet_distance([0, 0, 0], cov, [1, 2, 0], cov) == pytest.approx(5.0, abs=1e-6)
    # Different variances, same mean: sum of (sqrt(s1) - sqrt(s2))^2 on the diagonal.
    fid = metrics.frechet_distance([0, 0], np.diag([1.0, 4.0]), [0, 0], np.diag([4.0, 9.0]))
    assert fid == pytest.approx((1 - 2) ** 2 + (2 - 3) ** 2, abs=1e-6)


def test_inception_score_hand_values():
    assert metrics.inception_score(np.zeros((50, 7))) == pytest.approx(1.0, abs=1e-9)
    for n in (1, 4, 10):
        onehot = np.repeat(np.eye(n) * 60.0, 5, axis=0)  # n classes, each used equally
        onehot = np.pad(onehot, ((0, 0), (0, 3)), constant_values=-60.0)
        assert metrics.inception_score(onehot) == pytest.approx(n, rel=1e-6)
    # Two classes used 3:1 with certainty: IS = exp(H(p_y)).
    logits = np.array([[30.0, -30.0]] * 3 + [[-30.0, 30.0]])
    h = -(0.75 * np.log(0.75) + 0.25 * np.log(0.25))
    assert metrics.inception_score(logits) == pytest.approx(np.exp(h), rel=1e-6)


def test_split_score_streams_like_the_whole_splits(rng):
    logits = rng.normal(size=(103, 9)) * 3
    score = metrics.SplitScore(103, 4)
    for chunk in np.array_split(logits, 9):
        score.update(chunk)
    expected = [metrics.inception_score(part) for part in np.array_split(logits, 4)]
    mean, std = score.result()
    assert mean == pytest.approx(np.mean(expected), rel=1e-12)
    assert std == pytest.approx(np.std(expected), rel=1e-12)
    assert std > 0


def test_split_score_errors():
    with pytest.raises(ValueError, match="IS splits"):
        metrics.SplitScore(5, 10)
    score = metrics.SplitScore(10, 2)
    score.update(np.zeros((6, 3)))
    with pytest.raises(ValueError, match="1 of 2"):
        score.result()
    with pytest.raises(ValueError, match="More logits"):
        score.update(np.zeros((5, 3)))


def test_kid_matches_numpy_with_one_block_per_pair(rng):
    a = _features(rng, 300, 8)
    b = _features(rng, 300, 8, shift=0.5)
    # Block 300 with 300 samples -> lowered to two blocks of 150; compare block by block.
    kid, std = metrics.kernel_distance(a, b, block=300)
    blocks = [numpy_kid(a[i:i + 150], b[i:i + 150]) for i in (0, 150)]
    assert kid == pytest.approx(np.mean(blocks), rel=1e-3)
    assert np.isfinite(std) and std > 0
    # One big block equals the whole-set estimator.
    tfgan = _tfgan.eval_module().classifier_metrics
    whole, _ = tfgan.kernel_classifier_distance_and_std_from_activations(
        tf.constant(a, tf.float64), tf.constant(b, tf.float64), max_block_size=300)
    assert float(whole) == pytest.approx(numpy_kid(a, b), rel=1e-3)


def test_kid_of_identical_distributions_is_near_zero(rng):
    a = _features(rng, 2000, 8)
    b = _features(np.random.default_rng(1), 2000, 8)
    far = _features(rng, 2000, 8, shift=1.0)
    near, _ = metrics.kernel_distance(a[:1000], a[1000:])
    assert abs(near) < 0.05 * metrics.kernel_distance(a, far)[0]
    assert metrics.kernel_distance(a, b)[0] > 0


def test_kid_block_size():
    assert metrics.kid_block_size(50_000, 50_000) == 1000
    assert metrics.kid_block_size(1437, 500) == 719
    assert metrics.kid_block_size(3, 3) == 3  # one block: 2 + 1 would leave a block of 1
    assert metrics.kid_block_size(15, 10_000) == 1429  # 7 blocks, each >= 2 of the 15
    with pytest.raises(ValueError, match="at least 2 feature vectors"):
        metrics.kid_block_size(1, 10_000)


def _tfgan_blocks(n, blocks):
    """TF-GAN's consecutive block sizes for ``n`` samples in ``blocks`` blocks."""
    base, extra = divmod(n, blocks)
    sizes = [base] * (blocks - extra) + [base + 1] * extra
    return np.split(np.arange(n), np.cumsum(sizes)[:-1])


@pytest.mark.slow
@pytest.mark.parametrize("n_real", [4, 15, 19, 40])
def test_kid_is_finite_with_a_small_real_set(n_real):
    rng = np.random.default_rng(0)
    a = rng.normal(0.5, 1.0, (n_real, 16))
    b = rng.normal(0.0, 1.0, (10_000, 16))
    kid, std = metrics.kernel_distance(a, b)
    size = metrics.kid_block_size(n_real, 10_000)
    blocks = -(-10_000 // size)
    assert blocks >= 2 and all(len(i) >= 2 for i in _tfgan_blocks(n_real, blocks))
    # By NumPy: the mean of the unbiased MMD^2 over the same block pairs ...
    by_block = [numpy_kid(a[i], b[j]) for i, j in zip(_tfgan_blocks(n_real, blocks),
                                                      _tfgan_blocks(10_000, blocks))]
    assert kid == pytest.approx(np.mean(by_block), rel=1e-6)
    assert std == pytest.approx(np.std(by_block, ddof=1) / np.sqrt(blocks), rel=1e-3)
    # ... which estimates the whole-set MMD^2 (about 0.85 here).
    assert kid == pytest.approx(numpy_kid(a, b), abs=4 * std + 0.05)


def test_kid_with_two_or_three_samples_is_finite_and_warns_about_its_error():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(3, 8)), rng.normal(size=(500, 8))
    with pytest.warns(UserWarning, match="standard error is NaN"):
        kid, std = metrics.kernel_distance(a, b)
    assert kid == pytest.approx(numpy_kid(a, b), rel=1e-6) and np.isnan(std)


def test_mode_statistics_on_constructed_inputs():
    uniform = np.arange(1000).repeat(3)
    assert metrics.mode_statistics(uniform, 1000) == {"modes": 1000, "modes_kl": 0.0}
    one = metrics.mode_statistics(np.full(50, 7), 1000)
    assert one["modes"] == 1 and one["modes_kl"] == pytest.approx(np.log(1000))
    half = metrics.mode_statistics(np.arange(500).repeat(2), 1000)  # 500 modes, evenly
    assert half["modes"] == 500 and half["modes_kl"] == pytest.approx(np.log(2))
    skew = metrics.mode_statistics([0, 0, 0, 1], 2)
    assert skew["modes_kl"] == pytest.approx(0.75 * np.log(1.5) + 0.25 * np.log(0.5))
    with pytest.raises(ValueError, match=r"\[0, 10\)"):
        metrics.mode_statistics([10], 10)
