"""Stateless random draws, so that a run's random numbers do not depend on its history.

Every random number of a train step (latents, Gaussian perturbations, PGD random
starts, WGAN-GP's interpolation weights) is drawn with a stateless TensorFlow op whose
seed is a function of

- the run seed (``config.optim.seed``, ``ASGAN(seed=...)``),
- the step (batches consumed before this one: :attr:`tf_asgan.GAN.step_counter`),
- the rollback count (how many times the run went back to a checkpoint after a
  non-finite step: the draws after a rollback differ from those that failed),
- the replica (its index in the sync group, which under ``MultiWorkerMirroredStrategy``
  counts the replicas of every worker, so no two replicas draw alike),
- the purpose (which draw of the step: :data:`PURPOSES`) and its index (e.g. the D
  iteration when ``d_steps > 1``).

A run killed and resumed from a checkpoint therefore draws exactly what an
uninterrupted run draws at every step; nothing is reseeded on resume. The seed chain is
built with ``tf.random.experimental.stateless_fold_in`` and every draw uses the Philox
algorithm explicitly (``auto_select`` may pick another generator on another device), so
the same seed gives the same numbers on CPUs and GPUs. One limit, measured on
TensorFlow 2.21's CPU kernels: under XLA (``jit_compile``) the stateless Philox draws
differ from those without it, so the numbers are the same only within one XLA setting.

Outside a train step the same helpers draw from TensorFlow's global (stateful)
generator when no seed is given.
"""

import tensorflow as tf

from tf_asgan import errors

ALG = "philox"
# The version of this draw scheme, recorded with results that depend on a run's exact
# draws (tf_asgan.experiments.study): bumped by any change of the seeds or of PURPOSES'
# existing values (a new purpose changes no earlier draw). Runs of versions before 1 drew
# from a stateful generator reseeded with seed + step.
SCHEME = 1
# Which draw of a train step a seed is for. Values are part of the seed: never reuse or
# renumber one (that would change every run's draws). gp_alpha: WGAN-GP's interpolation
# weights (tf_asgan.regularizers.penalties), index = the D update within the step.
PURPOSES = {"latent": 1, "perturbation": 2, "gp_alpha": 3}


def replica_id():
    """This replica's index in its sync group (0 outside ``tf.distribute`` replica
    contexts), as an int32 scalar."""
    context = tf.distribute.get_replica_context()
    index = 0 if context is None else context.replica_id_in_sync_group
    return tf.cast(index, tf.int32)


def _fold(key, value):
    return tf.random.experimental.stateless_fold_in(key, tf.cast(value, tf.int64), alg=ALG)


def step_key(run_seed, step, rollbacks=0):
    """The seed of one train step on the current replica: int64 ``[2]``.

    Args:
      run_seed: the run's seed (int or int scalar tensor).
      step: steps done before this one (int64 scalar).
      rollbacks: the run's rollback count (int scalar).
    """
    key = tf.stack([tf.cast(run_seed, tf.int64), tf.cast(step, tf.int64)])
    return _fold(_fold(key, rollbacks), replica_id())


def draw_seed(key, purpose, index=0):
    """The seed (int64 ``[2]``) of the draw ``purpose`` (a :data:`PURPOSES` name) number
    ``index`` within the step of ``key`` (:func:`step_key`).

    Raises:
      KeyError: an unknown purpose.
    """
    return _fold(_fold(key, PURPOSES[purpose]), index)


def _checked(seed):
    seed = tf.convert_to_tensor(seed)
    if seed.shape.rank is not None and seed.shape.as_list() != [2] or not seed.dtype.is_integer:
        raise errors.InputError(f"A stateless seed is an integer tensor of shape [2] (e.g. "
                                f"tf_asgan.randomness.draw_seed(...)), got {seed.dtype.name} of "
                                f"shape {seed.shape}.")
    return seed


def normal(shape, seed=None, dtype=tf.float32):
    """``N(0, 1)`` samples of ``shape``: stateless from ``seed`` (int ``[2]``), or from
    the global generator when ``seed`` is ``None``.

    Raises:
      ValueError: a ``seed`` that is not an integer ``[2]``.
    """
    if seed is None:
        return tf.random.normal(shape, dtype=dtype)
    return tf.random.stateless_normal(shape, _checked(seed), dtype=dtype, alg=ALG)


def uniform(shape, minval, maxval, seed=None, dtype=tf.float32):
    """``U(minval, maxval)`` samples of ``shape``, stateless from ``seed`` as in
    :func:`normal`."""
    if seed is None:
        return tf.random.uniform(shape, minval, maxval, dtype=dtype)
    return tf.random.stateless_uniform(shape, _checked(seed), minval, maxval, dtype=dtype,
                                       alg=ALG)
