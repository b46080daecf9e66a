"""The quantities a GAN's train step logs: epoch means for ``fit`` and the last step alone.

:class:`StepMetrics` holds two ``keras.metrics.Mean`` per name: one that ``fit`` resets
at each epoch start (its epoch mean is what the progress bar, ``history.csv`` and the
epoch logs show) and one reset at the start of every train step (its value is the step's
own, read by per-step logging callbacks through ``ASGAN.step_logs``).

:class:`tf_asgan.utils.nonfinite.NonFiniteMonitor` watches those step values in the
graph, so that catching a NaN costs no host round trip per step. This module also holds
the few batch summaries the step logs (:func:`mean_probability`, :func:`mean_linf`), so
that the model only says *what* it records, and :class:`DWinsMonitor`, the in-graph
record of D winning outright (:func:`fakes_classified_right`, per loss).
"""

import threading

import keras
import tensorflow as tf

from tf_asgan.utils import distribute

# "D wins outright" (ours, after issue 23's example): more than D_WINS_FRACTION of a step's
# fakes classified right (fakes_classified_right) in D_WINS_STEPS consecutive steps.
D_WINS_FRACTION = 0.99
D_WINS_STEPS = 300


def metric_names(*, input_grad=False, adversarial=False, dat=None, advas=False,
                 gradient_penalty=False):
    """The names logged by a train step with these options, in logging order.

    Args:
      input_grad: the step computes ``grad_x L_D`` at the clean reals (``grad_l1``).
      adversarial: AS-GAN's second D update (``d_loss_adv``, ``D_adv``, ``epsilon``).
      dat: a :class:`tf_asgan.methods.DAT` or ``None``: ``D_dat_<side>`` and
        ``dat_linf_<side>`` for each side it attacks.
      advas: AdvAs in the G update (``advas_penalty``, ``advas_lambda``).
      gradient_penalty: a gradient penalty in D's updates (``gp``).
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
    if gradient_penalty:
        names.append("gp")
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

    def record(self, name, value, weight=None):
        """Adds ``value`` (a scalar) to both means of ``name``, with ``weight`` (a scalar;
        0: not counted, e.g. a lazy penalty's update without it; a step whose every value
        has weight 0 reads 0)."""
        self._epoch[name].update_state(value, sample_weight=weight)
        self._step[name].update_state(value, sample_weight=weight)

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


def _sign_rule(real_logits, fake_logits):
    del real_logits
    return fake_logits < 0.0


def _margin_rule(real_logits, fake_logits):
    del real_logits
    return fake_logits <= -1.0


def _ranking_rule(real_logits, fake_logits):
    return fake_logits < tf.reduce_min(real_logits)


# loss name -> (rule, what "classified right" means, in words)
_CRITERIA = {
    "non_saturating": (_sign_rule, "D(G(z)) < 0.5, i.e. logit < 0"),
    "minimax": (_sign_rule, "D(G(z)) < 0.5, i.e. logit < 0"),
    "hinge": (_margin_rule, "logit <= -1, beyond the hinge margin"),
    "wasserstein": (_ranking_rule, "scored below every real of the batch"),
}


def fakes_classified_right(loss, real_logits, fake_logits):
    """Which fakes D classifies right, by the decision rule of GAN loss ``loss``.

    - ``non_saturating``, ``minimax`` (sigmoid cross-entropy): ``d(G(z)) < 0``, i.e.
      ``D(G(z)) < 1/2``, the decision of a classifier trained with that loss
      (Goodfellow et al. 2014).
    - ``hinge``: ``d(G(z)) <= -1``: beyond the margin, where the fake's term
      ``relu(1 + d)`` of ``L_D`` is exactly 0 and D has nothing left to learn from it
      (Lim & Ye 2017). Ours: stricter than the sign, because a hinge D is trained to
      put fakes at -1 and the sign alone is already met by a balanced one.
    - ``wasserstein``: no threshold exists (the critic's scale is arbitrary), so ours:
      a fake is classified right when D scores it below every real of the batch
      (``d(G(z)) < min_i d(x_i)``); all fakes right means the batch is separated.

    Args:
      loss: a loss name of :data:`tf_asgan.losses.LOSSES`.
      real_logits, fake_logits: D's logits ``[M]`` and ``[N]`` (float32).

    Returns:
      A bool ``[N]`` tensor, or ``None`` for a loss with no rule here (not watched).
    """
    if loss not in _CRITERIA:
        return None
    return _CRITERIA[loss][0](real_logits, fake_logits)


def d_wins_rule(loss):
    """What "a fake classified right" means for ``loss``, in words (``None``: no rule)."""
    return _CRITERIA[loss][1] if loss in _CRITERIA else None


class DWinsMonitor:
    """Remembers, inside the train step, the first step that ends ``steps`` consecutive
    steps in each of which D classified more than ``fraction`` of the fakes right
    (:func:`fakes_classified_right`); the host reads it only every ``log_every_steps``
    steps (:class:`tf_asgan.training.monitors.DWinsWarning`), so watching costs no
    device round trip per step.

    A step's fraction counts the fakes of all its D iterations (``d_steps``), on every
    replica, with D's logits of the D update (before that update).

    Args:
      loss: the run's loss name; a loss without a rule is not watched (:attr:`watched`).
      fraction: in [0, 1); a step is won when strictly more of its fakes are right.
      steps: consecutive won steps, >= 1.
    """

    def __init__(self, loss, fraction=D_WINS_FRACTION, steps=D_WINS_STEPS):
        self.loss, self.fraction, self.steps = loss, float(fraction), int(steps)
        self.watched = loss in _CRITERIA
        flags = dict(trainable=False, aggregation="only_first_replica")
        self.streak = keras.Variable(0, dtype="int64", name="d_wins_streak", **flags)
        # 0: not yet; else the 1-based step that completed the first such stretch.
        self.first_step = keras.Variable(0, dtype="int64", name="d_wins_step", **flags)
        # the counts of the step being traced, per replica thread (MirroredStrategy
        # traces each replica's step in its own thread)
        self._pending = threading.local()

    def start_step(self):
        """In the train step, first: forgets the counts of an earlier trace."""
        self._pending.counts = []

    def observe(self, real_logits, fake_logits):
        """In the train step, once per D update: counts the fakes classified right."""
        right = fakes_classified_right(self.loss, real_logits, fake_logits)
        if right is None:
            return
        counts = tf.stack([tf.reduce_sum(tf.cast(right, tf.float32)),
                           tf.cast(tf.size(right), tf.float32)])
        self._pending.counts = getattr(self._pending, "counts", []) + [counts]

    def end_step(self, step):
        """In the train step, at its end (``step``: 0-based): updates the streak with
        the counts :meth:`observe` saw in this step (nothing if it saw none)."""
        pending = getattr(self._pending, "counts", [])
        self._pending.counts = []
        if not pending:
            return
        counts = tf.add_n(pending)
        total = distribute.cross_replica_sum()
        if total is not None:
            counts = total(counts)
        won = counts[0] > self.fraction * counts[1]
        streak = tf.where(won, self.streak + 1, tf.zeros_like(self.streak))
        self.streak.assign(streak)
        first = tf.logical_and(streak >= self.steps, tf.equal(self.first_step, 0))
        self.first_step.assign(tf.where(first, tf.cast(step, tf.int64) + 1, self.first_step))

    def reached_at(self):
        """The 1-based step that completed the first stretch of D wins, or 0 (one small
        device read)."""
        return int(self.first_step.numpy())
