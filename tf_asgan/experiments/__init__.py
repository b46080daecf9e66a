"""Experiments that use the library: the CPU study, the step benchmark, the loop-overhead
benchmark, and the one table of method presets they share (:mod:`presets`)."""
