"""Measuring a generator: IS, FID, KID, precision, recall, density, coverage (and modes
for digits) under a stated protocol.

- :mod:`~tf_asgan.evaluation.metrics`: IS, FID, KID and modes as functions of features and
  logits.
- :mod:`~tf_asgan.evaluation.fidelity`: precision, recall, density and coverage of two
  feature sets (k-nearest-neighbour balls).
- :mod:`~tf_asgan.evaluation.feature_network`: the contract of the networks that give
  them; :mod:`~tf_asgan.evaluation.classifiers`: Inception, a SavedModel of the user's,
  and the choice of network; :mod:`~tf_asgan.evaluation.digit_network`: the digit
  classifier.
- :mod:`~tf_asgan.evaluation.real_stats`: the cache of real-data statistics, keyed on
  what they were computed from.
- :mod:`~tf_asgan.evaluation.evaluator`: :class:`Evaluator` and its :class:`Protocol`.
"""

from tf_asgan.evaluation.evaluator import Evaluator, Protocol

__all__ = ["Evaluator", "Protocol"]
