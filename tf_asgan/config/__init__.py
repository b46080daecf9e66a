"""The training configuration: :class:`TrainConfig`, one frozen section per concern.

- :mod:`~tf_asgan.config.fields`: ``option()``, a field carrying its flag help, choices
  and minimum; the ``Section`` base class.
- :mod:`~tf_asgan.config.sections`: the sections (data, model, method, siblings, optim,
  run, eval) and their static checks.
- :mod:`~tf_asgan.config.train_config`: :class:`TrainConfig`, ``config.json`` and
  ``flags.txt``.
- :mod:`~tf_asgan.config.checks`: the checks that need facts known only at run time
  (the data's size, the replicas, the resume position).
- :mod:`~tf_asgan.config.flagfiles`: ``--flagfile`` paths found from any directory, and
  a command line that wins over its flagfiles.
"""

from tf_asgan.config.train_config import TrainConfig, load, save

__all__ = ["TrainConfig", "load", "save"]
