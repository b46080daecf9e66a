"""The training progress line: the run's step out of its total, the epoch, the time per
step, the estimated time to finish and the epoch means of the logged quantities.

It replaces Keras's progress bar in :func:`tf_asgan.training.train` (``verbose="auto"``):
Keras's bar shows the steps of one epoch only, and writes ANSI colour codes and
backspace / carriage-return redraws even into a log file (it takes any POSIX system
for a terminal). :class:`Progress` redraws one line in place only on a terminal; into a
file or pipe it writes plain lines, at most one every ``every_seconds`` seconds and one
at every epoch end, with no control characters.
"""

import sys
import time

from tf_asgan.training import callbacks

# Seconds between two lines written to a file or pipe, and between two redraws on a
# terminal (ours).
LOG_EVERY_SECONDS = 30.0
TERMINAL_EVERY_SECONDS = 0.5
# The logged quantities shown first (the others follow in the order given).
FIRST = ("d_loss", "g_loss", "D_real", "D_fake")


def format_duration(seconds):
    """``seconds`` as ``"1h02m"``, ``"3m05s"`` or ``"42s"`` (``"?"`` for ``None``)."""
    if seconds is None:
        return "?"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def eta_seconds(step, total, seconds_per_step):
    """Seconds until step ``total``: the steps left times ``seconds_per_step`` (``None``
    when the time per step is not known yet)."""
    if seconds_per_step is None:
        return None
    return max(0, total - step) * seconds_per_step


def progress_line(step, total, epoch, epochs, seconds_per_step=None, logs=None,
                  epoch_done=False):
    """One progress line, e.g. ``step 120/440 (27%), epoch 6/20 | 0.31 s/step, ETA
    1m40s | d_loss 1.234, g_loss 0.8765``.

    Args:
      step: steps done; total: the run's steps (all epochs).
      epoch: the epoch under way (1-based), or finished with ``epoch_done``.
      epochs: the run's epochs.
      seconds_per_step: the measured mean time of a step, or ``None`` (no ETA yet).
      logs: ``{name: value}`` shown after the times (Keras's epoch means), those of
        :data:`FIRST` first; values that are not numbers are left out.
    """
    percent = 100.0 * step / total if total else 100.0
    parts = [f"step {step}/{total} ({percent:.0f}%), epoch {epoch}/{epochs}"
             + (" done" if epoch_done else "")]
    if seconds_per_step is not None:
        parts.append(f"{seconds_per_step:.3g} s/step, ETA "
                     + format_duration(eta_seconds(step, total, seconds_per_step)))
    logs = logs or {}
    names = [n for n in FIRST if n in logs] + [n for n in logs if n not in FIRST]
    values = [f"{name} {float(logs[name]):.4g}" for name in names if _is_number(logs[name])]
    if values:
        parts.append(", ".join(values))
    return " | ".join(parts)


def _is_number(value):
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def is_terminal(stream):
    """Whether ``stream`` is an interactive terminal."""
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


class Progress(callbacks.RunCallback):
    """Writes :func:`progress_line` to ``stream`` (default ``sys.stdout``).

    The time per step is measured from the end of the first batch of this process (so
    tracing and compilation do not count) and includes everything between steps
    (evaluations, checkpoints), so the ETA covers what is still to come.

    Args:
      total_steps: the run's steps, all epochs.
      epochs: the run's epochs.
      stream: where to write; a terminal gets one line redrawn in place (carriage
        return), anything else plain lines.
      every_seconds: the least time between two lines (default: 30 s into a file,
        0.5 s on a terminal).
      clock: seconds, monotonic (tests pass their own).
    """

    def __init__(self, total_steps, epochs, stream=None, every_seconds=None,
                 clock=time.monotonic):
        super().__init__()
        self.total_steps, self.epochs = int(total_steps), int(epochs)
        self.stream = stream if stream is not None else sys.stdout
        self.terminal = is_terminal(self.stream)
        if every_seconds is None:
            every_seconds = TERMINAL_EVERY_SECONDS if self.terminal else LOG_EVERY_SECONDS
        self.every_seconds = float(every_seconds)
        self.clock = clock
        self._epoch = 1
        self._timed_from = None  # (time, step) at the first batch end
        self._last_write = None
        self._width = 0  # of the line on the terminal

    def seconds_per_step(self, now=None):
        """The mean time of the steps since the first batch end, or ``None``."""
        if self._timed_from is None:
            return None
        start, first = self._timed_from
        if self.step <= first:
            return None
        return ((self.clock() if now is None else now) - start) / (self.step - first)

    def on_epoch_begin(self, epoch, logs=None):
        super().on_epoch_begin(epoch, logs)
        self._epoch = epoch + 1

    def on_train_batch_end(self, batch, logs=None):
        self._advance(batch)
        now = self.clock()
        if self._timed_from is None:
            self._timed_from = (now, self.step)
        last_of_epoch = batch + 1 >= ((self.params or {}).get("steps") or batch + 2)
        due = self._last_write is None or now - self._last_write >= self.every_seconds
        if due and not last_of_epoch:  # (the epoch end writes its own line)
            self._write(now, logs, final=False)

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        self._epoch = epoch + 1
        self._write(self.clock(), logs, final=True)

    def _write(self, now, logs, final):
        line = progress_line(self.step, self.total_steps, self._epoch, self.epochs,
                             self.seconds_per_step(now), logs, epoch_done=final)
        if self.terminal:
            pad = " " * max(0, self._width - len(line))
            self.stream.write("\r" + line + pad + ("\n" if final else ""))
            self._width = 0 if final else len(line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
        self._last_write = now


def for_verbosity(verbose, total_steps, epochs, stream=None):
    """``(callbacks, fit_verbose)`` for :func:`tf_asgan.training.train`'s ``verbose``:
    ``"auto"`` gives ``[Progress(...)]`` and Keras's bar off; ``0``, ``1``, ``2`` are
    passed to ``fit`` as they are (0: silent; 1, 2: Keras's own output)."""
    if verbose == "auto":
        return [Progress(total_steps, epochs, stream=stream)], 0
    return [], verbose
