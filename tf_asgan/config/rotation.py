"""The configuration section of SSGAN's self-supervised rotation loss
(:mod:`tf_asgan.regularizers.rotation`): its scheme and its two weights, each a flag of
``scripts/train.py``. The checks across sections (AdvAs) are
:meth:`tf_asgan.config.train_config.TrainConfig.validate`'s."""

import dataclasses

from tf_asgan import errors
from tf_asgan.config.fields import Section, option
from tf_asgan.regularizers import rotation


@dataclasses.dataclass(frozen=True)
class RotationConfig(Section):
    """SSGAN's rotation loss (Chen et al. 2019): D's rotation head and the two terms."""

    rotation_loss: str = option(
        rotation.OFF, "SSGAN's self-supervised rotation loss (Chen et al. 2019): D gets a "
        "4-way rotation head and learns the rotations of the clean reals in every D update "
        "(AS-GAN's second one and DAT's too); G is rewarded for fakes whose rotation D "
        "recognises. none; quarter (Mimicry's: image i of N turned by floor(4i/N) quarter "
        "turns); all (the paper's expectation over the 4 angles: every image in all four, "
        "4x the images). Needs a D with a rotation head (every --architecture but dcgan); "
        "not with AdvAs.", choices=(rotation.OFF, *rotation.SCHEMES))
    rotation_weight_d: float = option(
        rotation.DEFAULT_WEIGHT_D, "Weight (beta) of the rotation loss on reals in D's loss "
        "(Mimicry and compare_gan: 1.0).")
    rotation_weight_g: float = option(
        rotation.DEFAULT_WEIGHT_G, "Weight (alpha) of the rotation loss on fakes in G's loss "
        "(Mimicry and compare_gan: 0.2).")

    def check(self):
        for name in ("rotation_weight_d", "rotation_weight_g"):
            if not getattr(self, name) >= 0:
                raise errors.InputError(f"{name} must be >= 0, got {getattr(self, name)}.")
        self.rotation_object()

    def rotation_object(self):
        """The :class:`~tf_asgan.regularizers.rotation.RotationLoss` of the run, or
        ``None``."""
        if self.rotation_loss == rotation.OFF:
            return None
        return rotation.as_rotation(rotation.RotationLoss(
            scheme=self.rotation_loss, weight_d=self.rotation_weight_d,
            weight_g=self.rotation_weight_g))
