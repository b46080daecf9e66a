"""TF-GAN is imported in one place only, and the submodules we need load under TF 2.21."""

import pathlib
import re

from tf_asgan import _tfgan

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "tf_asgan"


def test_submodules_load():
    assert callable(_tfgan.losses_impl().minimax_discriminator_loss)
    assert callable(_tfgan.eval_module().frechet_classifier_distance_from_activations)


def test_only_the_compat_module_imports_tfgan():
    pattern = re.compile(r"^\s*(import|from)\s+tensorflow_gan", re.M)
    offenders = [p.name for p in PACKAGE.rglob("*.py")
                 if p.name != "_tfgan.py" and pattern.search(p.read_text())]
    assert offenders == []
