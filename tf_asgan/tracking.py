"""The quantities a GAN's train step logs: epoch means for ``fit`` and the last step alone.

:class:`StepMetrics` holds two ``keras.metrics.Mean`` per name: one that ``fit`` resets
at each epoch start (its epoch mean is what the progress bar, ``history.csv`` and the
epoch logs show) and one reset at the start of every train step (its value is the step's
own, read by per-step logging callbacks through ``ASGAN.step_logs``).

:class:`tf_asgan.utils.nonfinite.NonFiniteMonitor` watches those step values in the
graph, so that catching a NaN costs no host round trip per step. This module also holds
the few batch summaries the step logs (:func:`mean_probability`, :func:`mean_linf`), so
that the model only says *what* it records.
"""

import keras
import tensorflow as tf


def metric_names(*, input_grad=False, adversarial=False, dat=None, advas=False):
    """The names logged by a train step with these options, in logging order.

    Args:
      input_grad: the step computes ``grad_x L_D`` at the clean reals (``grad_l1``).
      adversarial: AS-GAN's second D update (``d_loss_adv``, ``D_adv``, ``epsilon``).
      dat: a :class:`tf_asgan.methods.DAT` or ``None``: ``D_dat_<side>`` and
        ``dat_linf_<side>`` for each side it attacks.
      advas: AdvAs in the G update (``advas_penalty``, ``advas_lambda``).
    """
    names = ["d_loss", "g_loss", "D_real", "D_fake"]
    if input_grad:
        names.append("grad_l1")
    if adversarial:
        names += ["d_loss_adv", "D_adv", "epsilon"]
    if dat is not None:
        names += [f"{key}_{side}" for side in ("real", "fake")
                  if getattr(dat, f"attacks_{side}") for key in ("D_dat", "dat_linf")]
    if advas:
        names += ["advas_penalty", "advas_lambda"]
    return names


class StepMetrics:
    """Running means of the named quantities, per epoch and for the last step.

    Args:
      names: the quantities, e.g. from :func:`metric_names`.
    """

    def __init__(self, names):
        self._epoch = {name: keras.metrics.Mean(name=name) for name in names}
        self._step = {name: keras.metrics.Mean(name=name) for name in names}

    @property
    def epoch_metrics(self):
        """The per-epoch ``keras.metrics.Mean`` objects (``Model.metrics``: ``fit``
        resets them at each epoch start)."""
        return list(self._epoch.values())

    def __contains__(self, name):
        return name in self._epoch

    def start_step(self):
        """Resets the last-step means (called first in every train step)."""
        for tracker in self._step.values():
            tracker.reset_state()

    def record(self, name, value):
        """Adds ``value`` (a scalar) to both means of ``name``."""
        self._epoch[name].update_state(value)
        self._step[name].update_state(value)

    def step_results(self):
        """``{name: mean over the last train step}``."""
        return {name: m.result() for name, m in self._step.items()}

    def epoch_logs(self):
        """``{name: epoch mean so far}``: what ``train_step`` returns to ``fit``.

        Under ``MultiWorkerMirroredStrategy`` Keras reduces the step logs across workers
        along axis 0, which scalars lack (tensorflow issue 72388; docs/dependencies.md);
        each value is then returned with shape ``[1]`` and Keras returns scalars.
        """
        logs = {m.name: m.result() for m in self._epoch.values()}
        if isinstance(tf.distribute.get_strategy(), tf.distribute.MultiWorkerMirroredStrategy):
            logs = {name: tf.reshape(value, [1]) for name, value in logs.items()}
        return logs


def mean_probability(logits):
    """``mean sigmoid(logits)``: D's average probability of "real" on a batch, in [0, 1]."""
    return tf.reduce_mean(tf.sigmoid(logits))


def mean_linf(delta):
    """Mean over the batch of each sample's L-infinity norm ``max |delta_i|`` (``delta``:
    ``[N, ...]``, a perturbation in input units)."""
    flat = tf.reshape(delta, (tf.shape(delta)[0], -1))
    return tf.reduce_mean(tf.reduce_max(tf.abs(flat), axis=1))
