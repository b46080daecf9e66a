"""From a configuration to a finished run.

- :mod:`~tf_asgan.training.loop`: :func:`train`, the training run.
- :mod:`~tf_asgan.training.builder`: the source, model, checkpoint, evaluator and
  callbacks a configuration asks for.
- :mod:`~tf_asgan.training.rundir`: the run directory (resume, overwrite, new; exports)
  and reading a run back.
- :mod:`~tf_asgan.training.callbacks`: what happens between steps (logs, samples,
  checkpoints, evaluations, the non-finite guard).
- :mod:`~tf_asgan.training.checkpoints`: checkpoints that survive crashes.
"""

from tf_asgan.training.loop import train

__all__ = ["train"]
