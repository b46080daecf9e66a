"""Training side effects as Keras callbacks: sample grids, per-step logs, checkpoints."""

import os

import keras
import tensorflow as tf

from tf_asgan import images


class SampleGrid(keras.callbacks.Callback):
    """Writes ``G(z)`` for a fixed latent batch as ``<directory>/epoch_XXXX.png``."""

    def __init__(self, directory, z, every_epochs=1, columns=8):
        super().__init__()
        self.directory = directory
        self.z = tf.constant(z)
        self.every_epochs = max(1, int(every_epochs))
        self.columns = columns

    def path(self, epoch):
        return os.path.join(self.directory, f"epoch_{epoch:04d}.png")

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every_epochs == 0:
            images.save_grid(self.model.generate(self.z).numpy(), self.path(epoch + 1),
                             self.columns)


class StepLogger(keras.callbacks.Callback):
    """Logs every step's quantities (not epoch means) and the epoch means to TensorBoard.

    Step scalars are named ``step/<metric>``, epoch means ``epoch/<metric>``; the x axis
    is the number of completed training steps (generator updates).
    """

    def __init__(self, logdir, every_steps=1):
        super().__init__()
        self.logdir = logdir
        self.every_steps = max(1, int(every_steps))
        self._writer = None

    def on_train_begin(self, logs=None):
        self._writer = tf.summary.create_file_writer(self.logdir)

    def _step(self):
        return int(self.model.g_optimizer.iterations)

    def on_train_batch_end(self, batch, logs=None):
        step = self._step()
        if step % self.every_steps:
            return
        with self._writer.as_default(step=step):
            for name, value in self.model.step_logs().items():
                tf.summary.scalar(f"step/{name}", value)

    def on_epoch_end(self, epoch, logs=None):
        with self._writer.as_default(step=self._step()):
            for name, value in (logs or {}).items():
                tf.summary.scalar(f"epoch/{name}", value)
        self._writer.flush()

    def on_train_end(self, logs=None):
        self._writer.close()


class Checkpointer(keras.callbacks.Callback):
    """Saves a ``tf.train.CheckpointManager`` every N steps and at every epoch end.

    Checkpoints are numbered by the training step. The manager writes each one under a
    temporary name and renames it, so a crash mid-write leaves the previous one intact.
    """

    def __init__(self, manager, every_steps=0, is_chief=True):
        super().__init__()
        self.manager = manager
        self.every_steps = int(every_steps)
        self.is_chief = is_chief
        self._last_saved = None

    def save(self):
        step = int(self.model.g_optimizer.iterations)
        if self.is_chief and step != self._last_saved:
            self.manager.save(checkpoint_number=step)
            self._last_saved = step

    def on_train_batch_end(self, batch, logs=None):
        if self.every_steps and int(self.model.g_optimizer.iterations) % self.every_steps == 0:
            self.save()

    def on_epoch_end(self, epoch, logs=None):
        self.save()
