"""Evaluating a generator: IS, FID, KID, precision, recall, density and coverage (and modes
for digits) under a stated protocol.

    network = tf_asgan.evaluation.classifiers.inception(path)  # or network_for(name, dataset)
    evaluator = Evaluator(network, "cifar10", 32, Protocol(num_samples=50_000))
    result = evaluator.evaluate(generator)                  # {"metrics", "protocol"}

Every result carries its :class:`Protocol` (generated samples, real split and how
many real images, IS splits, KID subset and block, the ks of the nearest-neighbour
metrics, seed) and the network that measured it. Precision / recall (k = 3) and density /
coverage (k = 5) (:mod:`~tf_asgan.evaluation.fidelity`) compare the same features as KID:
the KID subsets of both sides (the real one cached with the statistics), so no further
features are kept or stored. Real-data statistics (the features' mean and covariance, the real IS,
a KID subset of features) are computed once per dataset / split / resolution /
network / protocol and cached in an ``.npz`` file with that metadata; a file whose
metadata differs, or that cannot be read, is recomputed (with a warning), never used.

Generated images are produced and classified batch by batch and their features go
into running sums, so memory does not grow with the number of samples.
"""

import dataclasses
import logging
import os
import time
import warnings

import keras
import numpy as np
import tensorflow as tf

from tf_asgan import errors
from tf_asgan.data import catalog
from tf_asgan.evaluation import fidelity, metrics, real_stats
from tf_asgan.utils import images as images_lib
from tf_asgan.utils import io

log = logging.getLogger(__name__)
# Shuffle buffer for real sets that cannot list their examples (TFDS); a folder is drawn
# from a full permutation whatever this is.
REAL_SHUFFLE_BUFFER = 10_000


@dataclasses.dataclass(frozen=True)
class Protocol:
    """How a generator is evaluated. Written into every result.

    Attributes:
      num_samples: generated samples (the paper: 22,400; the field's standard: 50,000).
      is_splits: Inception Score splits (10: the standard).
      real_split: the split whose statistics FID / KID compare with.
      num_real: real images used (the first ``num_real`` of the split after a fixed
        shuffle; 0 or more than the split: all of it).
      kid_samples: features kept per side for KID and for precision / recall / density /
        coverage (both are quadratic in it; 10,000 is the sample size Naeem et al. 2020
        recommend k = 5 for).
      kid_block: KID block size (lowered to give at least two blocks).
      precision_recall_k: k of precision and recall (Kynkaanniemi et al. 2019: 3).
      density_coverage_k: k of density and coverage (Naeem et al. 2020: 5).
      batch_size: images per generator / network call.
      seed: seed of the generated latents.
    """

    num_samples: int = 22_400
    is_splits: int = 10
    real_split: str = "train"
    num_real: int = 50_000
    kid_samples: int = 10_000
    kid_block: int = metrics.DEFAULT_KID_BLOCK
    batch_size: int = 100
    seed: int = 0
    precision_recall_k: int = fidelity.PRECISION_RECALL_K
    density_coverage_k: int = fidelity.DENSITY_COVERAGE_K

    def validate(self):
        for name in ("num_samples", "is_splits", "kid_samples", "kid_block", "batch_size",
                     "precision_recall_k", "density_coverage_k"):
            if getattr(self, name) < 1:
                raise errors.InputError(f"Evaluation {name} must be >= 1, "
                                        f"got {getattr(self, name)}.")
        if self.num_real < 0:
            raise errors.InputError(f"Evaluation num_real must be >= 0, got {self.num_real}.")
        if self.num_samples < max(2, self.is_splits):
            raise errors.InputError(f"num_samples={self.num_samples} is too few for "
                                    f"{self.is_splits} IS splits and a covariance.")
        kept, k = min(self.num_samples, self.kid_samples), self.precision_recall_k
        if kept <= k:
            raise errors.InputError(
                f"{kept} generated features (the fewer of num_samples and kid_samples) are "
                f"too few for recall's k = {k} nearest neighbours among them (k + 1 needed); "
                f"raise both to at least {k + 1}.")
        return self

    @property
    def largest_k(self):
        return max(self.precision_recall_k, self.density_coverage_k)

    def to_dict(self):
        return dataclasses.asdict(self)


def _progress(total, label, verbose):
    if not verbose:
        return None
    print(label)
    return keras.utils.Progbar(total, unit_name="image")


def _accumulate(batches, network, total, *, is_splits, kid_samples, label, verbose,
                count_modes):
    """Runs ``network`` over image batches; returns moments, IS, the KID subset, modes."""
    moments = metrics.RunningMoments(network.feature_dim)
    # a network without logits (num_classes 0) gives no IS: NaN here, absent in results
    score = metrics.SplitScore(total, is_splits) if network.num_classes else None
    kept, kept_n, classes = [], 0, []
    bar = _progress(total, label, verbose)
    seen = 0
    for images in batches:
        images = images[:total - seen]
        if not len(images):
            break
        logits, features = network(images)
        moments.update(features)
        if score is not None:
            score.update(logits)
        if kept_n < kid_samples:
            kept.append(features[:kid_samples - kept_n].astype(np.float32))
            kept_n += len(kept[-1])
        if count_modes:
            classes.append(np.argmax(logits, axis=1))
        seen += len(images)
        if bar:
            bar.update(seen)
        if seen >= total:
            break
    if seen < total:
        raise errors.InputError(f"{label}: only {seen} images arrived, {total} were expected.")
    is_mean, is_std = score.result() if score is not None else (float("nan"), float("nan"))
    return {"moments": moments, "is": is_mean, "is_std": is_std,
            "kid_features": np.concatenate(kept),
            "classes": np.concatenate(classes) if count_modes else None}


class Evaluator:
    """IS / FID / KID of generators against one dataset, under one :class:`Protocol`.

    Args:
      network: a :class:`~tf_asgan.evaluation.feature_network.FeatureNetwork`.
      dataset: a name of :data:`tf_asgan.data.catalog.DATASETS` (the real data).
      resolution: the generator's resolution (real images are prepared at it, as for
        training, so both sides see the same preprocessing).
      protocol: a :class:`Protocol`.
      cache_dir: where real-data statistics are cached (default
        ``<TF_ASGAN_CACHE>/stats``).
      data_dir, image_dir, download: as for :func:`tf_asgan.data.catalog.source`.
      source: a :class:`~tf_asgan.data.base.Source` of real images to use instead.
      verbose: progress bars.
    """

    def __init__(self, network, dataset, resolution, protocol=None, *, cache_dir=None,
                 data_dir=None, image_dir=None, download=False, source=None, verbose=True):
        self.network = network
        self.dataset = dataset
        self.resolution = int(resolution)
        self.protocol = (protocol or Protocol()).validate()
        self.cache_dir = cache_dir or os.path.join(io.cache_root(), "stats")
        self._source_args = dict(data_dir=data_dir, image_dir=image_dir, download=download)
        self._source = source
        self.verbose = verbose
        self._real = None
        self._real_radii = None  # of the real KID subset, for every generator evaluated

    def _real_source(self):
        if self._source is None:
            self._source = catalog.source(self.dataset, self.resolution,
                                          split=self.protocol.real_split, **self._source_args)
        return self._source

    def real_statistics(self):
        """The real split's statistics: from the cache when valid, else computed and cached."""
        if self._real is not None:
            return self._real
        src = self._real_source()
        available = src.num_examples
        if available < 2:
            raise errors.InputError(f"{src.description} holds {available} images; FID needs >= 2.")
        num_real = min(self.protocol.num_real or available, available)
        self._check_real_count(min(num_real, self.protocol.kid_samples))
        expected = real_stats.stats_metadata(self.network, self.dataset, self.resolution,
                                             self.protocol, num_real, src)
        path = real_stats.stats_path(self.cache_dir, self.dataset,
                                     self.protocol.real_split, self.resolution, expected,
                                     self._source_args.get("image_dir"))
        stats = real_stats.read_stats(path, expected)
        if stats is None:
            stats = self._compute_real(src, num_real, expected)
            real_stats.write_stats(path, stats)
            log.info("Cached real-data statistics in %s", path)
        else:
            log.info("Real-data statistics from the cache %s", path)
        stats["path"] = path
        self._real = stats
        return stats

    def _check_real_count(self, kept):
        k = self.protocol.largest_k
        if kept <= k:
            raise errors.InputError(
                f"{kept} real features (the fewer of the real images used and kid_samples) "
                f"are too few for k = {k} nearest neighbours (precision / recall / density / "
                f"coverage need k + 1); use at least {k + 1} real images.")

    def _fidelity(self, real, fake_features):
        """Precision, recall, density and coverage of the KID subsets; the real radii are
        computed once per evaluator (in memory: 8 bytes per real feature and k)."""
        p = self.protocol
        if self._real_radii is None:
            self._real_radii = fidelity.squared_radii(
                real["kid_features"], [p.precision_recall_k, p.density_coverage_k])
        return fidelity.fidelity_metrics(
            real["kid_features"], fake_features, precision_recall_k=p.precision_recall_k,
            density_coverage_k=p.density_coverage_k, real_radii=self._real_radii)

    def _compute_real(self, src, num_real, metadata):
        start = time.time()
        # the subset and the KID subset: a uniform draw where the source lists its files
        images = src.in_random_order(real_stats.REAL_SHUFFLE_SEED, REAL_SHUFFLE_BUFFER)
        batches = (b.numpy() for b in images.take(num_real).batch(self.protocol.batch_size))
        acc = _accumulate(batches, self.network, num_real,
                          is_splits=metadata["real_is_splits"],
                          kid_samples=self.protocol.kid_samples,
                          label=f"Real data: {num_real} images of {src.description}",
                          verbose=self.verbose, count_modes=self.network.count_modes)
        log.info("Real-data statistics: %d images in %.1f s", num_real, time.time() - start)
        return {"metadata": metadata, "mean": acc["moments"].mean,
                "covariance": acc["moments"].covariance, "kid_features": acc["kid_features"],
                "is": acc["is"], "is_std": acc["is_std"], "classes": acc["classes"]}

    def evaluate(self, generator, latent_dim=None):
        """Metrics of ``generator`` under the protocol.

        Args:
          generator: a Keras generator (``z -> images``), an exported SavedModel (its
            ``generate`` function), or any callable ``z [N, latent_dim] -> images
            [N, H, W, 3]`` in ``[-1, 1]``.
          latent_dim: the latent size (read from the generator when it says).

        Returns:
          ``{"metrics": {...}, "protocol": {...}, "seconds": ...}`` with metrics ``is``,
          ``is_std``, ``fid``, ``kid``, ``kid_std``, ``precision``, ``recall``,
          ``density``, ``coverage`` (:mod:`~tf_asgan.evaluation.fidelity`, on the KID
          subsets), the real data's ``real_is``, and for digit networks ``modes``,
          ``modes_kl`` (and ``real_modes``).
        """
        start = time.time()
        real = self.real_statistics()
        generate, latent_dim = _generator_fn(generator, latent_dim)
        p = self.protocol
        rng = np.random.default_rng(p.seed)

        lowest = []  # of every batch: a generator of [0, 1] images stays in range

        def batches():
            done = 0
            while done < p.num_samples:
                n = min(p.batch_size, p.num_samples - done)
                z = rng.standard_normal((n, latent_dim)).astype(np.float32)
                images = np.asarray(generate(tf.constant(z)))
                if images.shape[1:3] != (self.resolution, self.resolution):
                    raise errors.InputError(f"The generator makes {images.shape[1:3]} images; the "
                                            f"evaluator expects {self.resolution} px.")
                if not np.all(np.isfinite(images)):
                    raise errors.InputError("The generator made non-finite values (NaN or "
                                            "infinity); no metric of them would mean anything.")
                low, high = float(images.min()), float(images.max())
                if not images_lib.in_model_range(low, high):
                    raise errors.InputError(
                        f"The generator's images span [{low:g}, {high:g}], but the evaluator "
                        "takes images in [-1, 1] (a tanh output); clipping would report the "
                        "metrics of other images. Rescale them (for [0, 255]: x / 127.5 - 1;"
                        " for [0, 1]: 2 x - 1).")
                lowest.append(low)
                done += n
                yield images

        fake = _accumulate(batches(), self.network, p.num_samples, is_splits=p.is_splits,
                           kid_samples=p.kid_samples, label=f"Generated: {p.num_samples} "
                           f"images, {self.network.name}", verbose=self.verbose,
                           count_modes=self.network.count_modes)
        if min(lowest) >= 0:
            warnings.warn(f"Every generated value of the {p.num_samples} samples is >= 0: "
                          "does the generator make images in [0, 1]? The evaluator takes "
                          "[-1, 1] (rescale with 2 x - 1); these metrics are of [0, 1] "
                          "images.", stacklevel=2)
        kid, kid_std = metrics.kernel_distance(real["kid_features"], fake["kid_features"],
                                               p.kid_block)
        values = {
            "is": fake["is"], "is_std": fake["is_std"],
            "fid": metrics.frechet_distance(real["mean"], real["covariance"],
                                            fake["moments"].mean, fake["moments"].covariance),
            "kid": kid, "kid_std": kid_std,
            **self._fidelity(real, fake["kid_features"]),
            "real_is": real["is"],
        }
        if not self.network.num_classes:
            for name in ("is", "is_std", "real_is"):
                del values[name]
            warnings.warn(f"{self.network.name} has no logits: no Inception Score is "
                          "reported (FID, KID and the others are).", stacklevel=2)
        if self.network.count_modes:
            modes = metrics.mode_statistics(fake["classes"], self.network.num_classes)
            values.update(modes)
            values["real_modes"] = metrics.mode_statistics(
                real["classes"], self.network.num_classes)["modes"]
        return {"metrics": values, "protocol": self.describe(real),
                "seconds": round(time.time() - start, 2)}

    def describe(self, real=None):
        """The protocol, the network and the real statistics' provenance, as a dict.

        ``num_real`` and ``kid_samples`` are the numbers used: the real images the
        statistics came from (all of a split smaller than the protocol's ``num_real``)
        and the features per side KID compared (``{"real": ..., "generated": ...}``),
        which are also those precision / recall / density / coverage compared
        (``fidelity_samples``). The protocol's own values are kept under ``requested``.
        """
        real = real or self.real_statistics()
        p = self.protocol
        kept = {"real": int(len(real["kid_features"])),
                "generated": min(p.kid_samples, p.num_samples)}
        used = {"num_real": int(real["metadata"]["num_real"]), "kid_samples": kept,
                "fidelity_samples": dict(kept)}
        return dict(p.to_dict(), **used, dataset=self.dataset, resolution=self.resolution,
                    requested={"num_real": p.num_real, "kid_samples": p.kid_samples},
                    network=self.network.describe(),
                    real={"num_real": real["metadata"]["num_real"],
                          "source": real["metadata"]["source"],
                          "kid_features": int(len(real["kid_features"])),
                          "stats_file": real["path"]},
                    kid_block=metrics.kid_block_size(len(real["kid_features"]),
                                                     min(self.protocol.kid_samples,
                                                         self.protocol.num_samples),
                                                     self.protocol.kid_block),
                    fid_definition="|m_r - m_g|^2 + Tr(C_r + C_g - 2 (C_r C_g)^(1/2)), unbiased "
                    "covariances, square-root trace by symmetric eigendecompositions "
                    "(tf_asgan metrics.trace_sqrt_product, scale-equivariant)",
                    is_definition="exp E KL(p(y|x) || p(y)) (TF-GAN "
                    "classifier_score_from_logits) per split; mean and std over splits",
                    fidelity_definition="precision / recall: Kynkaanniemi et al. 2019 "
                    "(k-NN balls, <=); density / coverage: Naeem et al. 2020 (k-NN balls of "
                    "the real features, <); radii exclude the point itself; on the KID "
                    "subsets (tf_asgan evaluation.fidelity)")


def _generator_fn(generator, latent_dim):
    """``(z -> images, latent_dim)`` for a Keras model, an exported SavedModel or a callable."""
    if isinstance(generator, keras.Model):
        dim = latent_dim or int(generator.inputs[0].shape[-1])
        fn = tf.function(lambda z: generator(z, training=False), reduce_retracing=True)
        return fn, dim
    if hasattr(generator, "generate") and hasattr(generator, "latent_dim"):
        dim = latent_dim or int(generator.latent_dim.numpy())
        return (lambda z: generator.generate(z)["images"]), dim
    if latent_dim is None:
        raise errors.InputError("Pass latent_dim= with a plain generator callable.")
    return generator, int(latent_dim)
