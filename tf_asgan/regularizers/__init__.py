"""D's regularisers: spectral normalization of its layers (:mod:`.spectral_norm`),
gradient penalties (:mod:`.penalties`) and SSGAN's self-supervised rotation loss
(:mod:`.rotation`), each from its primary source."""

from tf_asgan.regularizers import penalties, rotation, spectral_norm
from tf_asgan.regularizers.penalties import GradientPenalty
from tf_asgan.regularizers.rotation import RotationLoss
from tf_asgan.regularizers.spectral_norm import SpectralConv2D, SpectralDense

__all__ = ["GradientPenalty", "RotationLoss", "SpectralConv2D", "SpectralDense", "penalties",
           "rotation", "spectral_norm"]
