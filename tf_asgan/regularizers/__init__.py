"""D's regularisers: spectral normalization of its layers (:mod:`.spectral_norm`) and
gradient penalties (:mod:`.penalties`), each from its primary source."""

from tf_asgan.regularizers import penalties, spectral_norm
from tf_asgan.regularizers.penalties import GradientPenalty
from tf_asgan.regularizers.spectral_norm import SpectralConv2D, SpectralDense

__all__ = ["GradientPenalty", "SpectralConv2D", "SpectralDense", "penalties", "spectral_norm"]
