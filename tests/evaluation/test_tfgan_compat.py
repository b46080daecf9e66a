"""TF-GAN is imported in one place only, and the submodules we need load under TF 2.21."""

import pathlib
import re

import numpy as np
import pytest
import tensorflow as tf

from helpers import REPO, scipy_fid
from tf_asgan.utils import _tfgan

PACKAGE = pathlib.Path(REPO) / "tf_asgan"


def test_submodules_load():
    assert callable(_tfgan.losses_impl().minimax_discriminator_loss)
    assert callable(_tfgan.eval_module().frechet_classifier_distance_from_activations)


def test_only_the_compat_module_imports_tfgan():
    pattern = re.compile(r"^\s*(import|from)\s+tensorflow_gan", re.M)
    offenders = [p.name for p in PACKAGE.rglob("*.py")
                 if p.name != "_tfgan.py" and pattern.search(p.read_text())]
    assert offenders == []


def test_a_users_own_tensorflow_gan_import_next_to_ours_works():
    # tf_asgan registers stand-in parent packages for TF-GAN
    # (docs/dependencies.md#tf-gan-imports-on-current-tensorflow); a user's
    # `import tensorflow_gan` in the same process must still reach tfgan.losses / .eval.
    import tensorflow_gan as tfgan

    real, fake = tf.constant([0.5, -1.0]), tf.constant([0.2, 2.0])
    by_hand = np.mean(np.log1p(np.exp(-real.numpy()))) + np.mean(np.log1p(np.exp(fake.numpy())))
    value = tfgan.losses.wargs.minimax_discriminator_loss(real, fake, label_smoothing=0.0)
    assert float(value) == pytest.approx(by_hand, rel=1e-6)
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(200, 4)), rng.normal(0.5, 1.0, size=(200, 4))
    fid = tfgan.eval.frechet_classifier_distance_from_activations(
        tf.constant(a), tf.constant(b))
    assert float(fid) == pytest.approx(scipy_fid(a, b), rel=1e-4)
    assert tfgan.__version__ == "2.1.0"
    with pytest.raises(AttributeError, match="estimator"):  # as without tf_asgan, TF >= 2.16
        tfgan.estimator  # noqa: B018
