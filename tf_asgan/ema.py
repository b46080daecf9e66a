"""An exponential moving average (EMA) of the generator's weights.

After each G update (one per train step), the update of train step ``t`` (``t = 0, 1,
...``: the steps done before it, the model's step count) sets::

    w_ema <- beta_t * w_ema + (1 - beta_t) * w     for each trainable weight w of G
    b_ema <- b                                     for each non-trainable variable b of G
                                                   (batch-norm moving mean and variance)

with ``beta_t = 0`` for ``t < start_step`` (the EMA is a copy of G) and ``beta_t =
decay`` from ``start_step`` on. The EMA starts as a copy of G. So after ``k`` updates at
``decay`` from weights ``w_0`` (G's, and the EMA's, when they start)::

    w_ema_k = decay^k w_0 + (1 - decay) sum_{i=1..k} decay^(k-i) w_i

``w_i`` being G's weights after update ``i`` (:func:`closed_form`).

Sources:

- StudioGAN (``src/utils/ema.py``, class ``Ema``, taken from BigGAN-PyTorch): the target
  starts as a copy of G; ``update(iter)`` after every G optimizer step with the 0-based
  step (``src/worker.py``: ``self.ema.update(current_step)``), ``decay = 0`` for
  ``iter < start_iter`` and ``decay`` (default 0.9999) from it on,
  ``target = target * decay + source * (1 - decay)``. This module follows it, with
  ``start_step`` our name of ``start_iter``.
- stylegan2-ada-pytorch (``training/training_loop.py``): ``beta = 0.5 ** (batch_size /
  ema_nimg)``, ``ema_nimg = ema_kimg * 1000`` (ramped up as ``min(ema_nimg, cur_nimg *
  ema_rampup)``), ``p_ema.copy_(p.lerp(p_ema, beta))`` (the same average), and its
  buffers copied: ``b_ema.copy_(b)``. Its half-life of ``ema_kimg`` thousand images is
  ``--ema_decay = 0.5 ** (batch_size / (1000 * ema_kimg))`` here (no ramp-up).

Batch-norm statistics: StudioGAN's ``Ema`` averages G's whole ``state_dict``, its
running mean and variance included, with the same decay; stylegan2-ada copies G's
buffers. We copy them (stylegan2-ada's rule; ours to choose between the two): they are
already Keras's moving averages of G's batch statistics, and a second average would lag
them by another ``1 / (1 - decay)`` steps.

Under ``tf.distribute`` the EMA's variables are created in the strategy's scope (mirrored
like G's) and each replica's copy is updated from that replica's copy of G, in a
cross-replica update as Keras's optimizers do (:func:`assign_each`), so the copies stay
equal whenever G's are.
"""

import keras
import numpy as np
import tensorflow as tf

from tf_asgan import errors

EMA = "ema"  # the generator a record names: the EMA of G's weights
RAW = "raw"  # or G itself


def decay_at(step, decay, start_step):
    """``beta_t``: 0 for ``step < start_step``, else ``decay`` (float32 scalar tensor)."""
    before = tf.cast(tf.convert_to_tensor(step), tf.int64) < int(start_step)
    return tf.where(before, tf.constant(0.0, tf.float32), tf.constant(float(decay), tf.float32))


def averaged(ema_value, value, beta):
    """``beta * ema_value + (1 - beta) * value`` (in ``ema_value``'s dtype)."""
    beta = tf.cast(beta, ema_value.dtype)
    return beta * ema_value + (1.0 - beta) * tf.cast(value, ema_value.dtype)


def closed_form(history, decay):
    """The EMA after ``k = len(history) - 1`` updates at ``decay``, from ``history`` =
    ``[w_0, w_1, ..., w_k]`` (NumPy arrays; ``w_0``: the weights the EMA starts from),
    in float64: ``decay^k w_0 + (1 - decay) sum_{i=1..k} decay^(k-i) w_i``."""
    k = len(history) - 1
    total = decay ** k * np.asarray(history[0], np.float64)
    for i in range(1, k + 1):
        total = total + (1.0 - decay) * decay ** (k - i) * np.asarray(history[i], np.float64)
    return total


def _tf_variable(v):
    return v.value if isinstance(v, keras.Variable) else v


def assign_each(targets, sources, fn):
    """``target.assign(fn(target, source))`` for each pair, on every replica: each
    replica's copy of ``target`` from that replica's copy of ``source`` (a cross-replica
    update through ``merge_call``, the way Keras's optimizers update variables).

    Args:
      targets, sources: equal-length lists of (Keras or TensorFlow) variables.
      fn: ``(target, source) -> new value`` of TensorFlow values.
    """
    pairs = [(_tf_variable(t), _tf_variable(s)) for t, s in zip(targets, sources)]

    def update(target, source):
        return target.assign(fn(target, source))

    def merged(strategy, pairs):
        for target, source in pairs:
            strategy.extended.update(target, update, args=(source,), group=False)

    tf.__internal__.distribute.interim.maybe_merge_call(merged, tf.distribute.get_strategy(),
                                                        pairs)


class GeneratorEMA:
    """The EMA of a generator's weights, kept in a copy of the generator (module
    docstring: the update, its sources, batch-norm statistics).

    Args:
      generator: the built Keras generator (functional or sequential, every layer
        serialisable by ``get_config``: ``keras.models.clone_model`` copies it). Create
        this in the strategy scope of the generator.
      decay: ``beta`` per train step, in (0, 1) (StudioGAN: 0.9999).
      start_step: the first train step (0-based) whose update averages; before it the
        EMA copies G (>= 0).

    Attributes:
      model: the averaged generator, a Keras model like ``generator``
        (``[N, latent_dim] -> [N, H, W, C]`` images in ``[-1, 1]``).

    Raises:
      tf_asgan.errors.InputError: ``decay`` outside (0, 1), a negative ``start_step``, or
        a generator that ``keras.models.clone_model`` cannot copy.
    """

    def __init__(self, generator, decay, start_step=0):
        if not 0.0 < decay < 1.0:
            raise errors.InputError(f"ema_decay must lie in (0, 1) (0: no EMA), got {decay}.")
        if int(start_step) != start_step or start_step < 0:
            raise errors.InputError(f"ema_start_step must be an integer >= 0, got {start_step!r}.")
        self.decay, self.start_step = float(decay), int(start_step)
        self.generator = generator
        try:
            self.model = keras.models.clone_model(generator)
        except (TypeError, ValueError, NotImplementedError) as err:
            raise errors.InputError(
                f"The EMA of G needs a copy of the generator, which keras.models.clone_model "
                f"could not make ({type(err).__name__}: {errors.short_message(err)}); give its "
                "custom layers a get_config, or train without --ema_decay.") from err
        shapes = [[tuple(v.shape) for v in m.weights] for m in (generator, self.model)]
        if shapes[0] != shapes[1]:
            raise errors.InputError("The generator's copy for the EMA has other weights than "
                                    "the generator; the EMA cannot follow it.")
        self.copy_generator()

    def copy_generator(self):
        """Sets every EMA variable to the generator's (host side, outside a train step)."""
        self.model.set_weights(self.generator.get_weights())

    def update(self, step):
        """The update of train step ``step`` (module docstring), after G's update; in the
        train step, in any strategy's replica context."""
        beta = decay_at(step, self.decay, self.start_step)
        assign_each(self.model.trainable_variables, self.generator.trainable_variables,
                    lambda ema, w: averaged(ema, w, beta))
        assign_each(self.model.non_trainable_variables, self.generator.non_trainable_variables,
                    lambda ema, b: tf.identity(b))
