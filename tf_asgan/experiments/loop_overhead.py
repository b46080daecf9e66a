"""What the training loop costs beyond the train step, measured in one process.

Three loops train the same configuration on the same stream of batches, one after the
other in this process:

- ``bare``: a Python loop calling ``tf.function(train_step)`` on each batch (what a
  hand-written loop costs; no logs leave the device until the epoch ends);
- ``fit``: ``ASGAN.fit`` without callbacks (Keras's loop: it converts the step's logs
  to Python numbers after every execution);
- ``train``: :func:`tf_asgan.training.loop.train` with all of its callbacks (non-finite
  guard, checkpoints, TensorBoard step logs, sample grids, ``history.csv``), i.e. what
  ``scripts/train.py`` runs.

For each, the time from the start of an epoch's first batch to the end of its last
(every callback's batch work included) is divided by its steps; the median over the
epochs after the first (tracing) of two rounds in opposite orders is reported, with
the ratios ``fit / bare`` and ``train / fit``, the loop overhead. The work done once
per epoch end (checkpoint, sample grid, logs) is reported apart, in milliseconds per
epoch: it does not grow with the steps.
"""

import statistics
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf

from tf_asgan import inputs
from tf_asgan.config.train_config import TrainConfig
from tf_asgan.data import stream as stream_lib
from tf_asgan.training import builder, loop
from tf_asgan.utils import distribute


def tiny_config(steps_per_epoch=80, epochs=4, **changes):
    """The issue's stand-in: AS-DCGAN-32 at width 1/8, batch 16, the embedded digits,
    on whatever device is visible (XLA off)."""
    values = dict(batch_size=16, width=0.125, steps_per_epoch=steps_per_epoch,
                  epochs=epochs, eval_every_epochs=0, export=False, jit_compile="off")
    values.update(changes)
    return TrainConfig(**values).validate()


class EpochTimer(keras.callbacks.Callback):
    """Per epoch: seconds from the first batch's start to the last batch's end (place it
    last, so the others' batch work is inside), and from there to the epoch's end."""

    def __init__(self):
        super().__init__()
        self.loop, self.end, self._start, self._last = [], [], None, None

    def on_train_batch_begin(self, batch, logs=None):
        if batch == 0:
            self._start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self._last = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.loop.append(self._last - self._start)
        self.end.append(time.perf_counter() - self._last)


def _stream(optim, source):
    tf.random.set_seed(optim.seed)
    return stream_lib.training_stream(source, optim.batch_size, epochs=optim.epochs,
                                      seed=optim.seed, steps_per_epoch=optim.steps_per_epoch)


def time_bare(config, source):
    """Seconds per epoch of a bare ``tf.function(train_step)`` loop."""
    gan = builder.model_of(config)
    step = tf.function(gan.train_step)
    stream, steps = _stream(config.optim, source)
    iterator = iter(inputs.range_checked(stream))
    times = []
    for _ in range(config.optim.epochs):
        start = time.perf_counter()
        for _ in range(steps):
            logs = step(next(iterator))
        _ = [np.asarray(value) for value in logs.values()]  # waits for the device
        times.append(time.perf_counter() - start)
    return times, [0.0] * len(times)


def time_fit(config, source):
    """Seconds per epoch of ``ASGAN.fit`` with no callbacks but the timer."""
    gan = builder.model_of(config)
    stream, steps = _stream(config.optim, source)
    timer = EpochTimer()
    gan.fit(stream, epochs=config.optim.epochs, steps_per_epoch=steps, callbacks=[timer],
            verbose=0)
    return timer.loop, timer.end


def time_train(config, source):
    """Seconds per epoch of :func:`tf_asgan.training.loop.train` (all its callbacks)."""
    timer = EpochTimer()
    with tempfile.TemporaryDirectory() as workdir:
        loop.train(config, workdir, callbacks=[timer], verbose=0, source=source)
    return timer.loop, timer.end


LOOPS = {"bare": time_bare, "fit": time_fit, "train": time_train}


def measure(config=None, source=None, log=print, rounds=2):
    """Times the three loops on ``config`` (default :func:`tiny_config`) under its
    precision (``config.run.precision``, resolved for this machine), ``rounds``
    times in alternating order (bare, fit, train, then train, fit, bare, ...) so that a
    drift of the machine's speed falls on all three; returns ``{"rows": [...],
    "fit_over_bare", "train_over_fit", ...}`` with per-loop medians over every round's
    epochs after its first."""
    config = config or tiny_config()
    source = source or builder.make_source(config.data, config.model.resolution,
                                           config.optim.seed)
    steps = stream_lib.epoch_steps(source, config.optim.batch_size,
                                   config.optim.steps_per_epoch or None)
    loop_s = {name: [] for name in LOOPS}
    end_s = {name: [] for name in LOOPS}
    precision = distribute.resolve_precision(config.run.precision)
    for r in range(rounds):
        for name in (list(LOOPS) if r % 2 == 0 else list(LOOPS)[::-1]):
            keras.utils.set_random_seed(config.optim.seed)
            with distribute.precision_policy(precision):  # (train sets the same itself)
                loops, ends = LOOPS[name](config, source)
            loop_s[name] += loops[1:]
            end_s[name] += ends[1:]
    rows = []
    for name in LOOPS:
        ms = 1000 * statistics.median(loop_s[name]) / steps
        end_ms = 1000 * statistics.median(end_s[name])
        rows.append({"loop": name, "ms_per_step": ms, "epoch_end_ms": end_ms,
                     "ms_per_step_with_epoch_end": ms + end_ms / steps,
                     "epochs_ms_per_step": [1000 * t / steps for t in loop_s[name]]})
        log(f"loop {name:5s} {ms:7.2f} ms/step (median of {len(loop_s[name])} epochs), "
            f"{end_ms:.1f} ms at each epoch end")
    by = {r["loop"]: r["ms_per_step"] for r in rows}
    total = {r["loop"]: r["ms_per_step_with_epoch_end"] for r in rows}
    return {"rows": rows, "steps_per_epoch": steps, "epochs": config.optim.epochs,
            "rounds": rounds, "batch_size": config.optim.batch_size, "width": config.model.width,
            "steps_per_execution": config.run.steps_per_execution, "precision": precision,
            "log_every_steps": config.run.log_every_steps,
            "fit_over_bare": by["fit"] / by["bare"], "train_over_fit": by["train"] / by["fit"],
            "train_over_fit_with_epoch_ends": total["train"] / total["fit"]}


def table(report):
    """The report as a markdown table and a sentence with the ratios."""
    lines = ["| loop | ms/step | x bare | x fit | epoch-end work (ms/epoch) | "
             "ms/step with it |", "|---|---:|---:|---:|---:|---:|"]
    by = {r["loop"]: r["ms_per_step"] for r in report["rows"]}
    for r in report["rows"]:
        lines.append(f"| {r['loop']} | {r['ms_per_step']:.2f} | "
                     f"{r['ms_per_step'] / by['bare']:.3f} | "
                     f"{r['ms_per_step'] / by['fit']:.3f} | {r['epoch_end_ms']:.1f} | "
                     f"{r['ms_per_step_with_epoch_end']:.2f} |")
    lines.append("")
    lines.append(f"Loop overhead (DCGAN-32 at width {report['width']}, "
                 f"{report.get('precision', 'float32')}, batch "
                 f"{report['batch_size']}, {report['steps_per_epoch']} steps per epoch, "
                 f"{report['rounds']} rounds of {report['epochs']} epochs, "
                 f"steps_per_execution {report['steps_per_execution']}, step logs every "
                 f"{report['log_every_steps']}): loop.train / fit = "
                 f"{report['train_over_fit']:.3f} per step, "
                 f"{report['train_over_fit_with_epoch_ends']:.3f} with the epoch-end work; "
                 f"fit / bare = {report['fit_over_bare']:.3f}.")
    return "\n".join(lines)
