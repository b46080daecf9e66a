"""The metric math: IS, FID, KID and mode counts against hand values and NumPy/SciPy."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from helpers import numpy_kid, scipy_fid
from tf_asgan import errors
from tf_asgan.evaluation import digit_network, metrics
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


def _moments(features):
    moments = metrics.RunningMoments(features.shape[1])
    for chunk in np.array_split(features, 3):
        moments.update(chunk)
    return moments.mean, moments.covariance


def _fid(a, b):
    return metrics.frechet_distance(*_moments(a), *_moments(b))


def _eig_trace_sqrt(c1, c2):
    """Independent route: the eigenvalues of the non-symmetric ``C1 C2`` (LAPACK geev)."""
    return float(np.sum(np.sqrt(np.clip(np.linalg.eigvals(c1 @ c2).real, 0, None))))


def _data_trace_sqrt(a, b):
    """Independent route from the features: ``Tr (C1 C2)^(1/2)`` is the sum of the singular
    values of ``A_c B_c^T / sqrt((n1 - 1)(n2 - 1))`` (centred features), i.e. of ``R1 R2^T``
    with ``A_c = Q1 R1`` and ``B_c = Q2 R2``; well conditioned also when the covariances are
    singular (fewer samples than features)."""
    r1, r2 = (np.linalg.qr(x - x.mean(0), mode="r") for x in (a, b))
    return float(np.linalg.svd(r1 @ r2.T, compute_uv=False).sum()
                 / np.sqrt((len(a) - 1) * (len(b) - 1)))


def test_fid_of_identical_tiny_gaussians_is_zero(rng):
    cov = 1e-6 * np.eye(16)
    assert metrics.frechet_distance(np.zeros(16), cov, np.zeros(16), cov) <= 1e-12 * 32e-6
    a = _features(rng, 300, 16, scale=1e-4)
    mean, cov = _moments(a)
    assert metrics.frechet_distance(mean, cov, mean, cov) <= 1e-12 * 2 * np.trace(cov)


@pytest.mark.parametrize("dim,n", [(16, 1000), (64, 500), (64, 40), (128, 100)])
@pytest.mark.parametrize("scale", [1e-6, 1e-3, 1.0, 1e3])
def test_trace_sqrt_product_matches_independent_routes(dim, n, scale):
    rng = np.random.default_rng(dim + n)
    a = _features(rng, n, dim, scale=scale).astype(np.float64)
    b = _features(rng, n + 7, dim, shift=0.1 * scale, scale=1.3 * scale).astype(np.float64)
    (_, c1), (_, c2) = _moments(a), _moments(b)
    ours = metrics.trace_sqrt_product(c1, c2)
    bound = 1e-10 * (np.trace(c1) + np.trace(c2))
    assert abs(ours - _data_trace_sqrt(a, b)) < bound
    if n > dim:  # full rank: eig(C1 C2) is well conditioned too
        assert abs(ours - _eig_trace_sqrt(c1, c2)) < bound


def test_trace_sqrt_product_of_known_matrices():
    # Commuting covariances: Tr (C1 C2)^(1/2) = sum sqrt(a_i b_i).
    q, _ = np.linalg.qr(np.random.default_rng(3).normal(size=(16, 16)))
    a, b = np.geomspace(1e-9, 1e-3, 16), np.geomspace(1e-4, 1e-8, 16)
    c1, c2 = (q * a) @ q.T, (q * b) @ q.T
    assert metrics.trace_sqrt_product(c1, c2) == pytest.approx(np.sum(np.sqrt(a * b)),
                                                                rel=1e-10)
    # Rank 1 against rank 1: Tr (u u^T v v^T)^(1/2) = |u . v|.
    u, v = np.arange(1.0, 6.0) * 1e-4, np.linspace(-1.0, 2.0, 5) * 1e-4
    assert metrics.trace_sqrt_product(np.outer(u, u), np.outer(v, v)) == pytest.approx(
        abs(u @ v), rel=1e-10)


@pytest.fixture(scope="module")
def digit_features():
    """Features of the digit classifier's network for the held-out digits and for noisy
    copies (fixed weights: the arithmetic under test does not depend on training)."""
    keras.utils.set_random_seed(0)
    network = digit_network.build_digit_classifier()
    digits, _ = digit_network.digit_data("test")
    noise = np.random.default_rng(1).normal(0, 0.3, digits.shape)
    noisy = np.clip(digits + noise, -1, 1).astype(np.float32)
    return tuple(np.asarray(network(x, training=False)[1], np.float64) for x in (digits, noisy))


@pytest.mark.parametrize("k", [1e-3, 1e-6, 7.3, 1e3])
def test_fid_is_scale_equivariant(rng, digit_features, k):
    real, fake = digit_features
    user = _features(rng, 400, 24, scale=1e-2).astype(np.float64)
    user[:, :4] = 0.5  # constant features, as a user network may have (singular C)
    other = _features(rng, 300, 24, shift=2e-3, scale=1.2e-2).astype(np.float64)
    for a, b in ((real, fake), (user, other)):
        fid = _fid(a, b)
        scaled = _fid(k * a, k * b)
        trace = np.trace(np.cov(a, rowvar=False)) + np.trace(np.cov(b, rowvar=False))
        assert fid > 1e-3 * trace  # the sets differ
        assert abs(scaled - k ** 2 * fid) < 1e-10 * k ** 2 * trace
        assert scaled == pytest.approx(k ** 2 * fid, rel=1e-6)


def test_fid_refuses_inputs_that_are_not_moments():
    with pytest.raises(errors.InputError, match=r"cov2 of shape \(3, 3\)"):
        metrics.frechet_distance(np.zeros(3), np.eye(3), np.zeros(3), np.eye(4))
    with pytest.raises(errors.InputError, match="NaN or infinite"):
        metrics.frechet_distance(np.zeros(2), np.eye(2), [0.0, np.nan], np.eye(2))
    with pytest.raises(errors.InputError, match="vector"):
        metrics.frechet_distance(np.zeros((2, 2)), np.eye(2), np.zeros(2), np.eye(2))


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
