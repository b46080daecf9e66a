"""What a researcher watches besides the losses: the grid of real training images a run
is fed (:func:`write_real_grid`) and the warning when D wins outright for a sustained
stretch (:class:`DWinsWarning`).
"""

import logging
import os

import numpy as np

from tf_asgan import inputs, tracking
from tf_asgan.training import callbacks
from tf_asgan.utils import images

log = logging.getLogger(__name__)

# The remedies the warning names (flags of scripts/train.py), most common first.
_REMEDIES = (
    "lower D's learning rate or raise G's (--lr_d, --lr_g; the two time-scale rule of "
    "Heusel et al. 2017)",
    "one D update per G update (--d_steps=1)",
    "regularise D: AS-GAN's adversarial update (--adversarial, a larger --epsilon) or "
    "DAT (--dat)",
    "check samples/real.png: data that is trivially told apart from G's output (wrong "
    "range, borders, very few images that D memorises) lets D win whatever G does",
)


def write_real_grid(stream, path, n=64, columns=8):
    """Writes the first ``n`` training images of ``stream`` as a grid PNG at ``path``,
    laid out as the sample grids (:func:`tf_asgan.utils.images.save_grid`: row by row,
    ``columns`` wide), unless ``path`` exists (a resumed run keeps its grid).

    Args:
      stream: a ``tf.data`` dataset of batches ``[B, H, W, C]`` in ``[-1, 1]`` (or
        ``(images, labels)``), e.g. the run's training stream from step 0: what the
        model is fed first, after cropping and resizing.
      path: the PNG to write (``layout.REAL_GRID`` inside the run's samples folder).
      n: images in the grid (fewer if the stream holds fewer).
      columns: images per row.

    Returns:
      ``path`` if it was written, ``None`` if it already existed.
    """
    if os.path.exists(path):
        return None
    batches, count = [], 0
    for element in stream:
        batch = inputs.images_of(element).numpy()
        batches.append(batch[:n - count])
        count += len(batches[-1])
        if count >= n:
            break
    grid = np.concatenate(batches)  # grey images stay grey, as the epochs' sample grids
    images.save_grid(grid, path, columns)
    log.info("Wrote %d real training images to %s.", len(grid), path)
    return path


def d_wins_message(loss, step, fraction=tracking.D_WINS_FRACTION,
                   steps=tracking.D_WINS_STEPS):
    """The warning text: D classified more than ``fraction`` of the fakes right in each of
    the ``steps`` steps up to ``step`` (1-based), by the rule of ``loss``
    (:func:`tf_asgan.tracking.fakes_classified_right`), and what usually helps."""
    remedies = list(_REMEDIES)
    if loss == "minimax":  # its G gradient vanishes exactly then (Goodfellow et al. 2014)
        remedies.insert(0, "--loss=non_saturating (the minimax G loss saturates when D "
                           "wins)")
    return (f"D is winning outright: in each of the {steps} steps up to step {step} it "
            f"classified more than {fraction:.0%} of the fakes right ({loss} loss: "
            f"{tracking.d_wins_rule(loss)}), so G learns little. What usually helps: "
            + "; ".join(remedies) + ".")


class DWinsWarning(callbacks.RunCallback):
    """Logs :func:`d_wins_message` once, when the model's
    :class:`~tf_asgan.tracking.DWinsMonitor` reports a stretch of D wins.

    The monitor lives in the train step; this reads it (one scalar) every
    ``every_steps`` steps and at epoch ends until it has warned, like
    :class:`~tf_asgan.training.callbacks.NonFiniteGuard`. A model without a watched
    monitor (another loss, a plain ``keras.Model``) is never read.
    """

    def __init__(self, every_steps=1):
        super().__init__()
        self.every_steps = max(1, int(every_steps))
        self.warned_at = None  # the step named in the warning, once given

    def _check(self):
        monitor = getattr(self.model, "d_wins_monitor", None)
        if self.warned_at is not None or monitor is None or not monitor.watched:
            return
        step = monitor.reached_at()
        if step:
            self.warned_at = step
            log.warning(d_wins_message(monitor.loss, step, monitor.fraction, monitor.steps))

    def on_train_batch_end(self, batch, logs=None):
        before = self._advance(batch)
        if self.crossed(before, self.step, self.every_steps):
            self._check()

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        self._check()
