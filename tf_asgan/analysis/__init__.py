"""The paper's analyses as tools: what the discriminator and its input gradient look like.

- :mod:`~tf_asgan.analysis.attacks`: measurements (robustness to FGSM and PGD, input
  gradients and their statistics).
- :mod:`~tf_asgan.analysis.figures`: the figures (curves from a run's logs, histograms,
  gradient maps, adversarial grids, latent interpolations).
- :mod:`~tf_asgan.analysis.report`: :func:`analyze`, all of them for one run, and
  :class:`AnalysisCallback`, the same during training.
"""

from tf_asgan.analysis.report import AnalysisCallback, analyze

__all__ = ["AnalysisCallback", "analyze"]
