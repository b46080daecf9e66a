"""Plumbing the rest of the package stands on: atomic file writes (:mod:`io`), image
conversions and grids (:mod:`images`), ``tf.distribute`` helpers (:mod:`distribute`),
non-finite checks (:mod:`nonfinite`), SavedModel reading (:mod:`saved_models`) and
TF-GAN's import workaround (:mod:`_tfgan`)."""
