"""The cache of real-data statistics behind FID, IS, KID, precision, recall, density and
coverage.

The statistics of the real images (the features' mean and covariance, the real IS, a KID
subset of features) are computed once per dataset (or image folder) / split /
resolution / network / protocol and stored in an ``.npz`` file with the metadata they
were computed from (:func:`stats_metadata`: the source's fingerprint and order, the
shuffle seeds, the network's fingerprint, the image count, the KID subset). A file is
used only when its metadata equals what a new computation would record
(:func:`read_stats`); one that differs or cannot be read is recomputed, with a warning.

The KID subset is the first ``kid_samples`` real features of the shuffled subset, in
float32: ``4 * kid_samples * D`` bytes (82 MB on disk and in memory for 10,000
Inception features of 2,048). Precision, recall, density and coverage compare the same
features (:mod:`~tf_asgan.evaluation.fidelity`), so they need nothing more on disk, and
their key is the KID subset's (``kid_samples`` is in the metadata); their k-NN radii
(8 bytes per feature and k) are recomputed by each evaluator, not cached.
"""

import hashlib
import json
import logging
import os

import numpy as np
import tensorflow as tf

from tf_asgan.utils import io

log = logging.getLogger(__name__)
STATS_FORMAT = 1
# The real images are shuffled with this seed before the first num_real are taken.
REAL_SHUFFLE_SEED = 0
REAL_IS_SPLITS = 10  # the real data's IS (a reference value) always uses 10 splits


def stats_metadata(network, dataset, resolution, protocol, num_real, src):
    return {"format": STATS_FORMAT, "dataset": dataset, "split": protocol.real_split,
            "resolution": int(resolution), "num_real": int(num_real),
            "source": src.description, "source_fingerprint": src.fingerprint,
            "source_order": "permutation" if src.read_index else "buffer",
            # tf.data folds TensorFlow's global seed into the shuffle's: the real subset
            # and the KID subset's order depend on both, so the cache is keyed on both.
            "shuffle_seeds": [int(v) for v in tf.compat.v1.get_seed(REAL_SHUFFLE_SEED)],
            "network": network.name, "network_fingerprint": network.fingerprint,
            "real_is_splits": min(REAL_IS_SPLITS, num_real), "kid_samples": protocol.kid_samples}


def stats_path(cache_dir, dataset, split, resolution, metadata, image_dir=None):
    """The cache file of one dataset (one image folder) / split / resolution / network
    and one ``metadata`` (:func:`stats_metadata`: the image count, the shuffle seeds, the
    network's and the source's fingerprints...): its name ends in a hash of the whole
    metadata, so statistics computed from different inputs (two runs of other seeds
    sharing a cache folder) live in different files instead of replacing each other.
    The file's own metadata is still compared on reading (:func:`read_stats`).
    """
    inputs = hashlib.sha1(json.dumps(metadata, sort_keys=True).encode()).hexdigest()[:10]
    safe = dataset.replace("/", "_")
    if image_dir:
        safe += "_" + hashlib.sha1(os.path.abspath(image_dir).encode()).hexdigest()[:10]
    return os.path.join(cache_dir, f"{safe}_{split}_{resolution}px_{inputs}.npz")


def read_stats(path, expected):
    """The cached statistics at ``path`` if their metadata equals ``expected``, else None."""
    if not os.path.exists(path):
        return None
    try:
        with np.load(path, allow_pickle=False) as f:
            stored = json.loads(str(f["metadata"]))
            expected = json.loads(json.dumps(expected, sort_keys=True))
            if stored != expected:
                changed = sorted(k for k in set(stored) | set(expected)
                                 if stored.get(k) != expected.get(k))
                log.warning("Real-data statistics %s were computed with different settings "
                            "(%s); recomputing them.", path, ", ".join(changed))
                return None
            return {"metadata": stored, "mean": f["mean"], "covariance": f["covariance"],
                    "kid_features": f["kid_features"], "is": float(f["is"]),
                    "is_std": float(f["is_std"]),
                    "classes": f["classes"] if "classes" in f.files else None}
    except (OSError, ValueError, KeyError) as err:
        log.warning("Real-data statistics %s are unreadable (%s); recomputing them.", path, err)
        return None


def write_stats(path, stats):
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    arrays = {k: stats[k] for k in ("mean", "covariance", "kid_features", "is", "is_std")}
    if stats.get("classes") is not None:
        arrays["classes"] = stats["classes"]
    with io.atomic_path(path, suffix=".npz") as tmp:  # a crash leaves the old file or none
        np.savez(tmp, metadata=json.dumps(stats["metadata"], sort_keys=True), **arrays)
