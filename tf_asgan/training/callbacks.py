"""Training side effects as Keras callbacks: the non-finite guard, sample grids, step
logs, checkpoints, evaluation.

Their batch hooks count steps on the host (:class:`RunCallback`) and touch the device
only on the steps where they log, check or save, so the training loop stays as fast as
a bare ``fit`` (``scripts/benchmark.py --loop_overhead``)."""

import json
import logging
import os
import time

import keras
import tensorflow as tf

from tf_asgan import layout
from tf_asgan.training import checkpoints
from tf_asgan.utils import images, io, nonfinite

log = logging.getLogger(__name__)


class SampleGrid(keras.callbacks.Callback):
    """Writes ``G(z)`` for a fixed latent batch as ``<directory>/epoch_XXXX.png`` (``G``:
    the model's ``eval_generator``, the EMA of G's weights when it keeps one)."""

    def __init__(self, directory, z, every_epochs=1, columns=8):
        super().__init__()
        self.directory = directory
        self.z = tf.constant(z)
        self.every_epochs = max(1, int(every_epochs))
        self.columns = columns
        self._generate = None

    def path(self, epoch):
        return os.path.join(self.directory, f"epoch_{epoch:04d}.png")

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every_epochs == 0:
            if self._generate is None:
                # A graph frees each activation once it is used; run eagerly, a Keras
                # model keeps all of them to the end of the call (about 4 GB for the
                # paper's ResNet-64 on 64 latents).
                self._generate = tf.function(
                    lambda z: _eval_generator(self.model)(z, training=False))
            images.save_grid(self._generate(self.z).numpy(), self.path(epoch + 1),
                             self.columns)


class RunCallback(keras.callbacks.Callback):
    """A callback that knows the run's step without asking the device every batch.

    It reads the model's step count (``completed_steps``) once per ``fit`` and once per
    epoch end, and in between counts on the host from Keras's batch index (with
    ``steps_per_execution`` Keras calls the batch hooks once per ``k`` steps, passing the
    index of the last), so a callback costs no device round trip on the batches where
    it has nothing to do. :attr:`step` is the number of steps done.
    """

    step = 0
    _epoch_start = 0

    def _read_step(self):
        """The model's step count (a device read), or the host count for a model that
        does not count its steps (a plain ``keras.Model``)."""
        read = getattr(self.model, "completed_steps", None)
        return read() if read is not None else self.step

    def on_train_begin(self, logs=None):
        self.step = self._epoch_start = self._read_step()

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = self.step

    def _advance(self, batch):
        """Sets :attr:`step` after batch ``batch``; returns the step before it."""
        before = self.step
        steps = (self.params or {}).get("steps") or batch + 1
        self.step = self._epoch_start + min(batch + 1, steps)
        return before

    def on_epoch_end(self, epoch, logs=None):
        self.step = self._read_step()

    @staticmethod
    def crossed(before, after, every):
        """Whether a multiple of ``every`` (``0``: never) lies in ``(before, after]``."""
        return bool(every) and after // every > before // every


class NonFiniteGuard(RunCallback):
    """Stops training with :class:`~tf_asgan.utils.nonfinite.NonFiniteError` after a step with
    a NaN or infinite logged value, naming the first such step and its quantities.

    The model watches its step values in the graph
    (:class:`tf_asgan.utils.nonfinite.NonFiniteMonitor`); this reads the verdict every
    ``every_steps`` steps and at epoch ends. Place it first: at an epoch end it then
    raises before any other callback saves, evaluates or draws anything of that epoch
    (the checkpointer checks again before its mid-epoch saves). A model without that
    monitor has each batch's logs checked instead.
    """

    def __init__(self, every_steps=1):
        super().__init__()
        self.every_steps = max(1, int(every_steps))

    def on_train_batch_end(self, batch, logs=None):
        before = self._advance(batch)
        if not hasattr(self.model, "check_finite"):
            bad = nonfinite.nonfinite_logs(logs or {})
            if bad:
                raise nonfinite.NonFiniteError(self.step, bad)
        elif self.crossed(before, self.step, self.every_steps):
            self.model.check_finite()

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        if hasattr(self.model, "check_finite"):
            self.model.check_finite()


class StepLogger(RunCallback):
    """Logs the quantities of every ``every_steps``-th step (that step's own values, not
    means) and the epoch means to TensorBoard.

    Step scalars are named ``step/<metric>``, epoch means ``epoch/<metric>``; the x axis
    is the number of completed training steps.
    """

    def __init__(self, logdir, every_steps=1):
        super().__init__()
        self.logdir = logdir
        self.every_steps = max(1, int(every_steps))
        self._writer = None

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self._writer = tf.summary.create_file_writer(self.logdir)

    def on_train_batch_end(self, batch, logs=None):
        before = self._advance(batch)
        if not self.crossed(before, self.step, self.every_steps):
            return
        with self._writer.as_default(step=self.step):
            for name, value in self.model.step_logs().items():
                tf.summary.scalar(f"step/{name}", value)

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        with self._writer.as_default(step=self.step):
            for name, value in (logs or {}).items():
                tf.summary.scalar(f"epoch/{name}", value)
        self._writer.flush()

    def on_train_end(self, logs=None):
        self._writer.close()


class Checkpointer(RunCallback):
    """Saves a ``tf.train.CheckpointManager`` every N steps, every M minutes (so a long
    epoch killed part-way loses at most M minutes) and at every epoch end.

    Checkpoints are numbered by the training step. The manager records a checkpoint
    only once its files are complete, so a crash mid-write leaves the previous one in
    use. The step values and weights are checked first (:func:`check_numbers`): a
    non-finite one raises :class:`~tf_asgan.utils.nonfinite.NonFiniteError` and nothing is
    saved. A full disk raises
    :class:`~tf_asgan.training.checkpoints.OutOfSpaceError` (:func:`checkpoints.save`).

    An epoch's last step is saved only at the epoch end, and this callback comes after
    those that write the epoch's outputs (sample grid, ``history.csv`` row, evaluation;
    :func:`tf_asgan.training.builder.make_callbacks`): a run stopped before they are
    written resumes before the epoch end and writes them when it gets there.
    """

    def __init__(self, manager, every_steps=0, every_minutes=0.0, clock=time.monotonic):
        super().__init__()
        self.manager = manager
        self.every_steps = int(every_steps)
        self.every_seconds = float(every_minutes) * 60.0
        self.clock = clock
        self._last_saved = None
        self._last_time = None

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self._last_time = self.clock()

    def save(self):
        if self.step != self._last_saved:
            nonfinite.check_numbers(self.model, self.step)
            checkpoints.save(self.manager, self.step)
            self._last_saved = self.step
        self._last_time = self.clock()

    def on_train_batch_end(self, batch, logs=None):
        before = self._advance(batch)
        steps = (self.params or {}).get("steps")
        if steps and batch + 1 >= steps:
            return  # the epoch's last step: saved at the epoch end, after its outputs
        if self.crossed(before, self.step, self.every_steps):
            self.save()
        elif self.every_seconds and self.clock() - self._last_time >= self.every_seconds:
            self.save()

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        self.save()


class Evaluate(keras.callbacks.Callback):
    """Evaluates the generator every N epochs and after the last one: the model's
    ``eval_generator`` (the EMA of G's weights when it keeps one, else G).

    Each evaluation (an :class:`~tf_asgan.evaluation.evaluator.Evaluator` result) is logged to
    TensorBoard as ``eval/<metric>``, appended as one JSON line (epoch, step, generator
    (``"ema"`` or ``"raw"``), metrics, protocol) to ``metrics_path``, and, when its FID
    is the best so far, the run is saved by ``best_manager`` (a
    ``tf.train.CheckpointManager`` keeping one checkpoint) and described in ``best.json``
    beside ``metrics_path``. A resumed run reads the best
    FID back from ``metrics_path``.
    """

    def __init__(self, evaluator, every_epochs, last_epoch, metrics_path, logdir=None,
                 best_manager=None):
        super().__init__()
        self.evaluator = evaluator
        self.every_epochs = max(1, int(every_epochs))
        self.last_epoch = int(last_epoch)
        self.metrics_path = metrics_path
        self.best_path = os.path.join(os.path.dirname(metrics_path), layout.BEST_RECORD)
        self.logdir = logdir
        self.best_manager = best_manager
        self.results = []
        self.best_fid = self._recorded_best()

    def _recorded_best(self):
        return min((record["metrics"]["fid"] for record in recorded_evaluations(
            self.metrics_path, warn=True)), default=float("inf"))

    def _drop_records_from(self, epoch):
        """Removes the records of ``epoch`` and later ones from ``metrics.jsonl``: those
        of an epoch done again (a run stopped after evaluating it but before its
        checkpoint), replaced by this evaluation."""
        records = recorded_evaluations(self.metrics_path)
        if any(record.get("epoch", 0) >= epoch for record in records):
            io.atomic_write_text(self.metrics_path, "".join(
                json.dumps(record, sort_keys=True) + "\n" for record in records
                if record.get("epoch", 0) < epoch))

    def on_epoch_end(self, epoch, logs=None):
        done = epoch + 1
        if done % self.every_epochs and done != self.last_epoch:
            return
        step = self.model.completed_steps()
        # A NaN from the epoch's last update is not evaluated (nor saved as the best).
        nonfinite.check_numbers(self.model, step)
        kind = getattr(self.model, "eval_generator_kind", "raw")
        log.info("Evaluating epoch %d (step %d), generator %s: %d samples with %s", done,
                 step, kind, self.evaluator.protocol.num_samples, self.evaluator.network.name)
        result = self.evaluator.evaluate(_eval_generator(self.model))
        record = {"epoch": done, "step": step, "generator": kind, **result}
        self.results.append(record)
        values = result["metrics"]
        log.info("Epoch %d: %s", done, ", ".join(
            f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in values.items()))
        if self.logdir:
            with tf.summary.create_file_writer(self.logdir).as_default(step=step):
                for name, value in values.items():
                    tf.summary.scalar(f"eval/{name}", value)
        self._drop_records_from(done)
        io.append_line(self.metrics_path, json.dumps(record, sort_keys=True))
        fid = values["fid"]
        if fid < self.best_fid:
            self.best_fid = fid
            path = (checkpoints.save(self.best_manager, step, layout.entry(
                os.path.dirname(self.metrics_path), layout.CHECKPOINTS))
                if self.best_manager else None)
            io.atomic_write_json(self.best_path, {"epoch": done, "step": step, "fid": fid,
                                                  "generator": kind, "checkpoint": path,
                                                  "metrics": values},
                                 indent=2, sort_keys=True)
            log.info("Best FID so far (%.4g); saved %s", fid, path)


def _eval_generator(model):
    """The generator ``model`` is judged by: its ``eval_generator`` (a GAN's EMA of G, or
    G), else its ``generator``."""
    generator = getattr(model, "eval_generator", None)
    return model.generator if generator is None else generator


def recorded_evaluations(metrics_path, warn=False):
    """The complete evaluation records of ``metrics_path`` (``metrics.jsonl``), in order;
    none when it does not exist. An incomplete line (e.g. the half-written last line of
    a run killed mid-write) is skipped, and with ``warn`` reported."""
    if not os.path.exists(metrics_path):
        return []
    records = []
    with open(metrics_path) as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                record["metrics"]["fid"] = float(record["metrics"]["fid"])
            except (ValueError, KeyError, TypeError):
                if warn:
                    log.warning("%s line %d is not a complete record; ignored.",
                                metrics_path, number)
                continue
            records.append(record)
    return records


def last_evaluation(metrics_path):
    """The last complete record of ``metrics_path``, or ``None``: what a run that
    evaluated nothing in this call (a finished run invoked again) reports as its
    final metrics."""
    records = recorded_evaluations(metrics_path)
    return records[-1] if records else None
