"""Fidelity and diversity apart: precision, recall, density and coverage of feature sets.

FID mixes sample quality and mode coverage into one number. These four metrics separate
them, from the k-nearest-neighbour balls of the real and the generated features
(``NND_k(x)``: the distance from ``x`` to its k-th nearest neighbour in its own set, ``x``
itself excluded). For real features ``X = {x_i}`` (N of them) and generated ``Y = {y_j}``
(M of them):

- **precision** (Kynkaanniemi et al., "Improved Precision and Recall Metric for Assessing
  Generative Models", NeurIPS 2019, Eq. 1-3; k = 3): the fraction of generated points
  inside the real manifold, ``(1/M) sum_j [exists i: |y_j - x_i| <= NND_k(x_i)]``;
- **recall** (ibid.): the fraction of real points inside the generated manifold,
  ``(1/N) sum_i [exists j: |x_i - y_j| <= NND_k(y_j)]``: the share of the real data's
  modes the generator reaches;
- **density** (Naeem et al., "Reliable Fidelity and Diversity Metrics for Generative
  Models", ICML 2020, Eq. 3-4; k = 5): ``1/(kM) sum_j sum_i [|y_j - x_i| < NND_k(x_i)]``,
  how many real balls contain each generated point, over k; about 1 when both sets come
  from one distribution, above 1 where samples crowd into dense real regions;
- **coverage** (ibid.): ``(1/N) sum_i [exists j: |x_i - y_j| < NND_k(x_i)]``, the
  fraction of real balls holding at least one generated point; unlike recall it uses only
  real balls, so a few outlying samples cannot inflate it.

Ties follow the authors' reference code: ``<=`` for precision and recall
(kynkaat/improved-precision-and-recall-metric ``ManifoldEstimator.evaluate``;
NVlabs/stylegan2-ada-pytorch ``metrics/precision_recall.py``), strict ``<`` for density
and coverage (clovaai/generative-evaluation-prdc ``compute_density``,
``compute_coverage``): a point on a ball's boundary is inside it for precision and
recall, outside for density and coverage. So a ball of radius 0 (a point with at least
k exact duplicates in its set) contains its duplicates for precision / recall and
nothing for density / coverage, and the k-th neighbour itself, on the boundary of its
point's ball, counts for precision / recall but not for density / coverage. The radius
is the (k+1)-th smallest distance of a point's row including the point itself, as both
reference codes take it; with the self-distance set to exactly 0 that is the k-th
nearest *other* point, duplicates counted as neighbours at distance 0.

Numerics (ours): squared distances by the expansion ``|a|^2 + |b|^2 - 2 a.b`` (one
matrix product per block, as the reference codes) in float64, on features centred on the
real features' mean (distances do not change; the cancellation in the expansion does,
Inception features being all positive). The expansion's rounding error is at most
``(D + 2) eps (|a|^2 + |b|^2)`` (to first order: the dot-product bound of Higham,
"Accuracy and Stability of Numerical Algorithms", 2nd ed. 2002, Eq. 3.5, for the dot
product and the two norms, plus the two additions); negative results are clipped to 0.
A distance and a radius closer than twice their two bounds cannot be told apart by this
computation, and which way rounding tips them depends on the block shapes (the matrix
product sums in another order): two copies of a point at the k-th neighbour's distance
would then count in one batch size and not in another. So (ours) such a pair is a tie,
on the boundary: ``d <= r + t`` for precision / recall, ``d < r - t`` for density /
coverage, with ``t = 2 (D + 2) eps (2 |p|^2 + max |x|^2 + max |y|^2)`` for the ball's
centre ``p``. The result is that of exact arithmetic whenever the distances it turns on
differ by more than ``t`` (relative ``~1e-12`` for Inception features), and exact ties
(copies, duplicates) are decided by the rules above whatever the batch size: identical
sets give precision = recall = coverage = density = 1 exactly. Float64 rather than
float32: float32's bound is 2^29 times larger, so ``t`` would swallow genuinely
different distances; float64 costs about 3x the time (measured: 4 to 10 s per 10,000 x
10,000 block of 2,048-dim features on 2 shared cores).

Memory: distances are computed ``batch_size`` rows at a time against a whole set and
never kept, so the peak on top of the inputs is one float64 copy of one set
(``8 N D`` bytes: 164 MB for 10,000 x 2,048) plus about ``10 * batch_size * max(N, M)``
bytes for a block (100 MB at the default 1,000 rows and 10,000 points); a 10,000 x 10,000
distance matrix (800 MB) never exists.
"""

import numbers

import numpy as np

from tf_asgan import errors

PRECISION_RECALL_K = 3  # Kynkaanniemi et al. 2019: the paper's k and their code's default
DENSITY_COVERAGE_K = 5  # Naeem et al. 2020, their recommended k (with 10,000 samples)
DEFAULT_BATCH_SIZE = 1000  # rows of distances per block (see the module docstring)
# Distances and radii within this many times their rounding bounds are ties (ours).
_TIE_FACTOR = 2.0


def _features(values, name):
    """``values`` as a finite 2-D float array ``[N, D]`` (no copy when it already is one)."""
    array = np.asarray(values)
    if array.ndim != 2 or array.shape[1] < 1:
        raise errors.InputError(f"{name} must be a 2-D array [N, D] of feature vectors, got "
                                f"shape {array.shape}.")
    if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
        raise errors.InputError(f"{name} must hold real numbers, got dtype {array.dtype}.")
    if not np.all(np.isfinite(array)):
        raise errors.InputError(f"{name} holds NaN or infinite values; the features it was "
                                "computed from are not finite.")
    return array


def _check_k(k, n, name, what):
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
        raise errors.InputError(f"{what}: k must be an integer >= 1, got {k!r}.")
    if n < k + 1:
        raise errors.InputError(
            f"{what} with k={k} needs at least k + 1 = {k + 1} {name}feature vectors (the "
            f"k-th nearest neighbour of each, itself excluded), got {n}; use more samples "
            "or a smaller k.")
    return int(k)


def _check_batch_size(batch_size):
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) \
            or batch_size < 1:
        raise errors.InputError(f"batch_size must be an integer >= 1, got {batch_size!r}.")
    return int(batch_size)


class _Centred:
    """A feature set as float64 rows minus ``centre``, with squared norms; rows are
    converted block by block (``rows``) or all at once (``all``)."""

    def __init__(self, features, centre):
        self.features = features
        self.centre = centre
        self._all = None
        self._norms = None

    def rows(self, start, stop):
        return np.asarray(self.features[start:stop], np.float64) - self.centre

    def all(self):
        if self._all is None:
            self._all = self.rows(0, len(self.features))
        return self._all

    def norms(self):
        if self._norms is None:
            self._norms = _squared_norms(self.all())
        return self._norms


def _squared_norms(rows):
    return np.einsum("ij,ij->i", rows, rows)


def _squared_distances(rows, rows_norms, cols, cols_norms):
    """``[B, M]`` squared distances of ``rows [B, D]`` to ``cols [M, D]`` (float64, centred)
    by the expansion, clipped at 0."""
    d = rows @ cols.T
    d *= -2.0
    d += rows_norms[:, None]
    d += cols_norms[None, :]
    np.maximum(d, 0.0, out=d)
    return d


def _tie_tolerance(norms, largest, dim):
    """``t`` of each ball centre of squared norm ``norms`` (module docstring), ``largest``
    the sum of the largest squared norms of the two sets."""
    return _TIE_FACTOR * (dim + 2) * np.finfo(np.float64).eps * (2.0 * norms + largest)


def _centre_of(real):
    return np.mean(real, axis=0, dtype=np.float64)  # summed in float64, no float64 copy


def _radii(points, ks, batch_size):
    """``{k: [N]}`` squared k-NN radii of a :class:`_Centred` set among itself."""
    cols, norms = points.all(), points.norms()
    n = len(cols)
    radii = {k: np.empty(n) for k in ks}
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        # rows converted afresh, as in the cross pass: the same bits for the same points
        # (and no ``a @ a.T``, which NumPy computes by another routine, SYRK)
        rows = points.rows(start, stop)
        d = _squared_distances(rows, _squared_norms(rows), cols, norms)
        d[np.arange(stop - start), np.arange(start, stop)] = 0.0  # itself: exactly 0
        # index k of the sorted row: the k-th smallest after the point's own 0
        d.partition(ks, axis=1)  # in place
        for k in ks:
            radii[k][start:stop] = d[:, k]
    return radii


def squared_radii(features, ks, *, centre=None, batch_size=DEFAULT_BATCH_SIZE):
    """Squared k-nearest-neighbour radii ``NND_k(x)^2`` of each point among its own set.

    Args:
      features: ``[N, D]`` features, ``N >= max(ks) + 1``.
      ks: the neighbourhood sizes, each >= 1.
      centre: ``[D]`` subtracted before the distances (rounding only; default the
        features' mean, what :func:`fidelity_metrics` uses for the real set).
      batch_size: rows of distances per block.

    Returns:
      ``{k: [N] float64}``: the squared distance to the k-th nearest other point
      (duplicates count, at a computed distance within rounding of 0).

    Raises:
      InputError: for a bad shape, non-finite values, a k < 1 or too few points.
    """
    features = _features(features, "features")
    ks = sorted({_check_k(k, len(features), "", "k-nearest-neighbour radii") for k in ks})
    batch_size = _check_batch_size(batch_size)
    centre = _centre_of(features) if centre is None else np.asarray(centre, np.float64)
    return _radii(_Centred(features, centre), ks, batch_size)


def fidelity_metrics(real_features, fake_features, *, precision_recall_k=PRECISION_RECALL_K,
                     density_coverage_k=DENSITY_COVERAGE_K, batch_size=DEFAULT_BATCH_SIZE,
                     real_radii=None):
    """Precision, recall, density and coverage in one pass over the real-fake distances.

    Args:
      real_features: ``[N, D]`` real features, ``N > max(k)``.
      fake_features: ``[M, D]`` generated features, ``M > precision_recall_k``.
      precision_recall_k, density_coverage_k: the neighbourhood sizes (3 and 5, the
        papers'); ``None`` skips that pair.
      batch_size: rows of distances per block (memory: module docstring).
      real_radii: :func:`squared_radii` of ``real_features`` for those ks (default
        centre), when already computed: an evaluator reuses them for every generator.

    Returns:
      ``{"precision", "recall"}`` and / or ``{"density", "coverage"}`` as floats:
      precision, recall and coverage in [0, 1], density in [0, N / k].

    Raises:
      InputError: for bad shapes, non-finite values, a bad k or too few points.
    """
    real = _features(real_features, "real_features")
    fake = _features(fake_features, "fake_features")
    if real.shape[1] != fake.shape[1]:
        raise errors.InputError(f"real and fake features differ in size: {real.shape[1]} and "
                                f"{fake.shape[1]}; they must come from the same network.")
    batch_size = _check_batch_size(batch_size)
    pr_k, dc_k = precision_recall_k, density_coverage_k
    if pr_k is None and dc_k is None:
        raise errors.InputError("Nothing to compute: both ks are None.")
    ks = [k for k in (pr_k, dc_k) if k is not None]
    for k in ks:
        _check_k(k, len(real), "real ", "precision / recall / density / coverage")
    if pr_k is not None:
        _check_k(pr_k, len(fake), "generated ", "recall")
    if real_radii is None or any(k not in real_radii for k in ks):
        real_radii = squared_radii(real, ks, batch_size=batch_size)
    centre = _centre_of(real)
    points = _Centred(fake, centre)  # one float64 copy, for its radii and the cross pass
    fake_radii = _radii(points, [pr_k], batch_size) if pr_k is not None else {}
    counts = _cross_pass(_Centred(real, centre), points, real_radii, fake_radii, pr_k, dc_k,
                         batch_size)
    out = {}
    if pr_k is not None:
        out.update(precision=float(counts["in_real"].mean()),
                   recall=float(counts["in_fake"].mean()))
    if dc_k is not None:
        out.update(density=float(counts["inside"].sum() / (dc_k * len(fake))),
                   coverage=float(counts["covered"].mean()))
    return out


def _cross_pass(real, fake, real_radii, fake_radii, pr_k, dc_k, batch_size):
    """Per-point indicators and counts from the real-fake distances, ``batch_size`` real
    rows at a time; ``real``, ``fake``: :class:`_Centred` sets, radii squared."""
    n = len(real.features)
    cols, norms = fake.all(), fake.norms()
    real_norms_max = max(float(_squared_norms(real.rows(start, start + batch_size)).max())
                         for start in range(0, n, batch_size))
    largest, dim = real_norms_max + float(norms.max()), cols.shape[1]
    if pr_k is not None:
        fake_limit = fake_radii[pr_k] + _tie_tolerance(norms, largest, dim)  # ties: inside
    in_real = np.zeros(len(cols), bool)  # precision: y_j inside some real ball (<=)
    in_fake = np.zeros(n, bool)  # recall: x_i inside some generated ball (<=)
    inside = np.zeros(len(cols), np.int64)  # density: real balls holding y_j (<)
    covered = np.zeros(n, bool)  # coverage: a y_j inside x_i's ball (<)
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        rows = real.rows(start, stop)
        rows_norms = _squared_norms(rows)
        d = _squared_distances(rows, rows_norms, cols, norms)
        tolerance = _tie_tolerance(rows_norms, largest, dim)
        if pr_k is not None:
            limit = real_radii[pr_k][start:stop] + tolerance  # ties: inside
            in_real |= np.any(d <= limit[:, None], axis=0)
            in_fake[start:stop] = np.any(d <= fake_limit[None, :], axis=1)
        if dc_k is not None:
            limit = real_radii[dc_k][start:stop] - tolerance  # ties: outside
            inside += np.count_nonzero(d < limit[:, None], axis=0)
            covered[start:stop] = d.min(axis=1) < limit
    return {"in_real": in_real, "in_fake": in_fake, "inside": inside, "covered": covered}


def precision_recall(real_features, fake_features, k=PRECISION_RECALL_K, *,
                     batch_size=DEFAULT_BATCH_SIZE):
    """Improved precision and recall (Kynkaanniemi et al. 2019, Eq. 1-3), ``(p, r)``.

    Args:
      real_features: ``[N, D]``, fake_features: ``[M, D]`` features of one network,
        ``N, M >= k + 1``.
      k: neighbourhood size (3: the paper's).
      batch_size: rows of distances per block.

    Returns:
      ``(precision, recall)``, each in [0, 1]: the fraction of generated points within
      ``NND_k`` of some real point (``<=``), and of real points within ``NND_k`` of
      some generated point. See the module docstring for ties and numerics.

    Raises:
      InputError: for bad shapes, non-finite values, ``k < 1`` or fewer than k + 1
        points in either set.
    """
    out = fidelity_metrics(real_features, fake_features, precision_recall_k=k,
                           density_coverage_k=None, batch_size=batch_size)
    return out["precision"], out["recall"]


def density_coverage(real_features, fake_features, k=DENSITY_COVERAGE_K, *,
                     batch_size=DEFAULT_BATCH_SIZE):
    """Density and coverage (Naeem et al. 2020, Eq. 3-4), ``(density, coverage)``.

    Args:
      real_features: ``[N, D]`` (``N >= k + 1``), fake_features: ``[M, D]`` (``M >= 1``)
        features of one network.
      k: neighbourhood size (5: the paper's).
      batch_size: rows of distances per block.

    Returns:
      ``(density, coverage)``: density in [0, N / k] (1 in expectation when both sets
      come from one distribution), coverage in [0, 1]. Balls are open (``<``), as in the
      authors' code. See the module docstring for ties and numerics.

    Raises:
      InputError: for bad shapes, non-finite values, ``k < 1`` or fewer than k + 1 real
        points.
    """
    out = fidelity_metrics(real_features, fake_features, precision_recall_k=None,
                           density_coverage_k=k, batch_size=batch_size)
    return out["density"], out["coverage"]
