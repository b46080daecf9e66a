"""Sample-quality metrics on classifier outputs: IS and KID by TF-GAN's functions, FID ours.

Inception Score, FID and KID all take the outputs of a classifier network (Inception
for natural images, the project's digit classifier for the embedded data): ``logits``
for IS and the mode histogram, penultimate activations (``pool_3``) for FID and KID.
Activations arrive in batches and go into running sums (:class:`RunningMoments`), so
memory does not grow with the number of samples; IS is computed split by split
(:class:`SplitScore`); only the KID subset keeps activations.

IS and KID are TF-GAN's functions (through :mod:`tf_asgan.utils._tfgan`); FID is
TF-GAN's formula with our own square-root trace:

- IS ``= exp(E_x KL(p(y|x) || p(y)))``, ``classifier_score_from_logits``, per split, then
  the mean and standard deviation over splits;
- FID ``= |m1 - m2|^2 + Tr(C1 + C2 - 2 (C1 C2)^(1/2))`` with unbiased covariances
  (Heusel et al., NeurIPS 2017), on the streamed moments. ``Tr (C1 C2)^(1/2)`` is computed
  by :func:`trace_sqrt_product`, which supersedes TF-GAN's function of that name: TF-GAN
  leaves singular values below an absolute 1e-10 un-rooted, so its FID is not
  scale-equivariant (two identical Gaussians of covariance ``1e-6 I_16`` gave 3.2e-5,
  not 0). Ours satisfies ``FID(kA, kB) = k^2 FID(A, B)`` to float64 rounding; at the
  usual feature scales it agrees with TF-GAN's ``frechet_classifier_distance`` to about
  1e-6 relative;
- KID: ``kernel_classifier_distance_and_std_from_activations`` (cubic polynomial kernel,
  block estimator, with its standard error).
"""

import warnings

import numpy as np
import tensorflow as tf

from tf_asgan import errors
from tf_asgan.utils import _tfgan

DEFAULT_KID_BLOCK = 1000


def _classifier_metrics():
    return _tfgan.eval_module().classifier_metrics


class RunningMoments:
    """Mean and unbiased covariance of activation batches, accumulated in float64."""

    def __init__(self, dim):
        self.dim = int(dim)
        self.count = 0
        self._sum = np.zeros(self.dim, np.float64)
        self._outer = np.zeros((self.dim, self.dim), np.float64)
        self._shift = None  # the first batch's mean: keeps the sums well conditioned

    def update(self, activations):
        a = np.asarray(activations, np.float64).reshape(len(activations), -1)
        if a.shape[1] != self.dim:
            raise errors.InputError(f"Expected activations of size {self.dim}, got {a.shape[1]}.")
        if not len(a):
            return
        if self._shift is None:
            self._shift = a.mean(axis=0)
        a = a - self._shift
        self.count += len(a)
        self._sum += a.sum(axis=0)
        self._outer += a.T @ a

    @property
    def mean(self):
        self._check()
        return self._shift + self._sum / self.count

    @property
    def covariance(self):
        self._check()
        if self.count < 2:
            raise errors.InputError("A covariance needs at least 2 samples.")
        centred = self._sum / self.count
        return (self._outer - self.count * np.outer(centred, centred)) / (self.count - 1)

    def _check(self):
        if not self.count:
            raise errors.InputError("No activations were accumulated.")


def _as_float64(values, shape, what):
    array = np.asarray(values, np.float64)
    if array.shape != shape:
        raise errors.InputError(f"FID: expected {what} of shape {shape}, got {array.shape}.")
    if not np.all(np.isfinite(array)):
        raise errors.InputError(f"FID: {what} holds NaN or infinite values; the features it "
                                "was computed from are not finite.")
    return array


def _symmetric_eigenvalues(matrix, vectors=False):
    """Eigenvalues (and vectors) of the symmetric part of ``matrix``, with those within
    rounding of 0 set to 0: below ``n * eps * max|eigenvalue|``, the rank tolerance of
    ``numpy.linalg.matrix_rank`` (Press et al., *Numerical Recipes*, 3rd ed., 2007, 2.6).
    Relative, so scaling the matrix scales the result."""
    matrix = (matrix + matrix.T) / 2.0
    w, v = np.linalg.eigh(matrix) if vectors else (np.linalg.eigvalsh(matrix), None)
    tol = len(w) * np.finfo(np.float64).eps * np.max(np.abs(w), initial=0.0)
    return np.where(w > tol, w, 0.0), v


def trace_sqrt_product(cov1, cov2):
    """``Tr (C1 C2)^(1/2)`` of two ``[F, F]`` covariance matrices (symmetric, positive
    semi-definite), float64.

    ``C1 C2`` is similar to the symmetric ``S C2 S`` with ``S = C1^(1/2)``, so the trace is
    ``sum_i sqrt(lambda_i(S C2 S))`` (the route of TF-GAN's ``trace_sqrt_product``). Both
    square roots come from symmetric eigendecompositions (``numpy.linalg.eigh``), with
    eigenvalues within rounding of 0 (negative ones included) counted as 0; the cut-off is
    relative to the largest eigenvalue, so ``Tr (k^2 C1 k^2 C2)^(1/2) = k^2 Tr (C1 C2)^(1/2)``
    to rounding, for any feature scale ``k`` (ours; TF-GAN cuts at an absolute 1e-10).

    Accuracy (tested): within 1e-10 of ``Tr C1 + Tr C2`` (1e-12 or better in our cases) of
    two independent routes, the eigenvalues of the non-symmetric ``C1 C2`` and the
    singular values of the centred features' product, at feature scales from 1e-6 to 1e3,
    rank-deficient covariances (fewer samples than features) included.

    Raises:
      numpy.linalg.LinAlgError: only if LAPACK's ``eigh`` does not converge (finite
        input: not seen in practice).
    """
    w1, v1 = _symmetric_eigenvalues(cov1, vectors=True)
    root1 = (v1 * np.sqrt(w1)) @ v1.T
    w, _ = _symmetric_eigenvalues(root1 @ cov2 @ root1)
    return float(np.sum(np.sqrt(w)))


def frechet_distance(mean1, cov1, mean2, cov2):
    """FID between two Gaussians: ``|m1 - m2|^2 + Tr(C1 + C2 - 2 (C1 C2)^(1/2))``, float64.

    Args:
      mean1, mean2: ``[F]`` feature means.
      cov1, cov2: ``[F, F]`` feature covariances (symmetric, positive semi-definite).

    Returns:
      The distance, ``>= 0``, in squared feature units: features scaled by ``k`` give
      ``k^2`` times the distance. The square-root trace is :func:`trace_sqrt_product`
      (ours, not TF-GAN's: see the module's docstring); a result below 0 by rounding is 0.

    Raises:
      InputError: for shapes that do not match or non-finite values.
    """
    if np.ndim(mean1) != 1:
        raise errors.InputError(f"FID: mean1 must be a vector [F], got shape {np.shape(mean1)}.")
    dim = np.shape(mean1)[0]
    m1, m2 = (_as_float64(m, (dim,), name) for m, name in ((mean1, "mean1"), (mean2, "mean2")))
    c1, c2 = (_as_float64(c, (dim, dim), name) for c, name in ((cov1, "cov1"), (cov2, "cov2")))
    fid = (np.sum((m1 - m2) ** 2) + np.trace(c1) + np.trace(c2)
           - 2.0 * trace_sqrt_product(c1, c2))
    return max(float(fid), 0.0)


def inception_score(logits):
    """TF-GAN's ``classifier_score_from_logits`` of one set of logits ``[N, classes]``."""
    logits = np.asarray(logits)
    if logits.ndim != 2 or not len(logits):
        raise errors.InputError(f"Expected logits [N, classes] with N > 0, got {logits.shape}.")
    return float(_classifier_metrics().classifier_score_from_logits(
        tf.constant(logits, tf.float64)))


def split_sizes(n, splits):
    """Sizes of ``splits`` consecutive parts of ``n`` samples (as ``np.array_split``)."""
    if splits < 1 or n < splits:
        raise errors.InputError(f"Cannot split {n} samples into {splits} IS splits; lower "
                                "--is_splits or raise the number of samples.")
    return [len(part) for part in np.array_split(np.arange(n), splits)]


class SplitScore:
    """The Inception Score over consecutive splits, with one split of logits in memory.

    Feed logits in order with :meth:`update`; each split is scored by TF-GAN once it is
    complete. :meth:`result` is ``(mean, std)`` over the splits (the usual report).
    """

    def __init__(self, total, splits):
        self._sizes = split_sizes(total, splits)
        self._buffer = []
        self._buffered = 0
        self.scores = []

    def update(self, logits):
        logits = np.asarray(logits, np.float64)
        while len(logits):
            if len(self.scores) == len(self._sizes):
                raise errors.InputError("More logits than the declared total.")
            need = self._sizes[len(self.scores)] - self._buffered
            take, logits = logits[:need], logits[need:]
            self._buffer.append(take)
            self._buffered += len(take)
            if self._buffered == self._sizes[len(self.scores)]:
                self.scores.append(inception_score(np.concatenate(self._buffer)))
                self._buffer, self._buffered = [], 0

    def result(self):
        if len(self.scores) != len(self._sizes):
            raise errors.InputError(f"Only {len(self.scores)} of {len(self._sizes)} splits are "
                                    "complete.")
        return float(np.mean(self.scores)), float(np.std(self.scores))


def kid_block_size(n1, n2, block=DEFAULT_KID_BLOCK):
    """The ``max_block_size`` to give TF-GAN's block KID estimator for sets of ``n1`` and
    ``n2`` features.

    TF-GAN splits both sets into ``ceil(max(n1, n2) / size)`` consecutive blocks and
    averages the unbiased MMD^2 of each block pair; a block with fewer than 2 samples of
    either set makes the result NaN, and a single block makes its standard error NaN.
    So (ours): at most ``block`` samples of the larger set per block, at least 2 blocks
    where possible, and never more blocks than ``min(n1, n2) // 2``, so that every block
    holds at least 2 samples of each set.

    Raises:
      ValueError: when either set has fewer than 2 samples (no unbiased MMD^2 exists).
    """
    small, large = sorted((int(n1), int(n2)))
    if small < 2:
        raise errors.InputError(f"KID needs at least 2 feature vectors in each set, got {n1} and "
                                f"{n2}; use more real images (eval_num_real) or samples.")
    blocks = min(max(2, -(-large // block)), small // 2)
    return -(-large // max(blocks, 1))


def kernel_distance(activations1, activations2, block=DEFAULT_KID_BLOCK):
    """KID and its standard error (TF-GAN's block estimator), in float64.

    Args:
      activations1, activations2: ``[n1, F]`` and ``[n2, F]`` features, each ``n >= 2``,
        in random order (blocks are consecutive).
      block: the largest number of samples of the larger set in one block.

    Returns:
      ``(kid, std)``: the mean over blocks of the unbiased MMD^2 with the cubic polynomial
      kernel ``(x . y / F + 1)^3``, and the standard error of that mean; ``std`` is NaN
      (with a warning) when the smaller set has fewer than 4 samples (one block only).

    Raises:
      ValueError: when either set has fewer than 2 samples.
    """
    a1 = tf.constant(np.asarray(activations1, np.float64))
    a2 = tf.constant(np.asarray(activations2, np.float64))
    size = kid_block_size(len(activations1), len(activations2), block)
    kid, std = _classifier_metrics().kernel_classifier_distance_and_std_from_activations(
        a1, a2, max_block_size=size)
    if not np.isfinite(float(std)):
        warnings.warn(f"KID's standard error is NaN: with {min(len(a1), len(a2))} samples in "
                      "the smaller set there is only one block of at least 2 samples.",
                      stacklevel=2)
    return float(kid), float(std)


def mode_statistics(classes, num_modes):
    """Modes covered and ``KL(histogram || uniform)`` of predicted classes.

    Args:
      classes: integer class (mode) of each sample.
      num_modes: number of modes (10 for digits, 1,000 for stacked digits).

    Returns:
      ``{"modes": distinct modes hit, "modes_kl": sum_k p_k log(p_k * num_modes)}``
      (natural log; ``0 log 0 = 0``; 0 when every mode is hit equally often).
    """
    classes = np.asarray(classes, np.int64).ravel()
    if not len(classes):
        raise errors.InputError("No samples to count modes on.")
    if classes.min() < 0 or classes.max() >= num_modes:
        raise errors.InputError(f"Classes must lie in [0, {num_modes}).")
    counts = np.bincount(classes, minlength=num_modes)
    p = counts / counts.sum()
    nz = p > 0
    return {"modes": int(nz.sum()), "modes_kl": float(np.sum(p[nz] * np.log(p[nz] * num_modes)))}
