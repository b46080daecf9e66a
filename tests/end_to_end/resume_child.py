"""One training process of tests/test_resume.py (not a test module).

Usage: ``python resume_child.py WORKDIR BATCH_LOG RESULT [--mirrored] [--kill=WHEN:STEP]``

Trains the tiny run of ``config()`` in WORKDIR (resuming it when it exists), appends
one line ``step replica hash`` per replica and train step to BATCH_LOG (the hash is of
the batch's bytes, written from inside the step as it runs) and, when training ends,
writes ``{"step", "weights"}`` to RESULT. ``--kill`` sends this process SIGKILL:
``after:K`` once K steps are done (after step K's callbacks, its checkpoint among
them), ``checkpoint:K`` while checkpoint K is being saved (its files are written, the
checkpoint is not yet recorded).
"""

import json
import os
import signal
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorflow.python.checkpoint import checkpoint_management  # noqa: E402

from tf_asgan import inputs
from tf_asgan.asgan import ASGAN  # noqa: E402
from tf_asgan.config.train_config import TrainConfig
from tf_asgan.training import loop


def config():
    """DCGAN-32 at width 1/8 on the embedded digits, FGSM, 3 epochs of 4 steps,
    checkpoints every 2 steps."""
    return TrainConfig(batch_size=8, epochs=3, steps_per_epoch=4, width=0.125,
                       latent_dim=16, checkpoint_every_steps=2, checkpoints_to_keep=2,
                       eval_every_epochs=0, sample_every_epochs=3, seed=11)


def log_batches(path):
    """Makes every train step append ``step replica hash-of-its-batch`` to ``path``."""
    step_fn = ASGAN.train_step

    def train_step(self, data):
        images = inputs.images_of(data)
        digest = tf.strings.to_hash_bucket_fast(tf.io.serialize_tensor(images), 2**62)
        replica = tf.distribute.get_replica_context().replica_id_in_sync_group
        tf.print(self.step_counter, replica, digest, output_stream=f"file://{path}")
        return step_fn(self, data)

    ASGAN.train_step = train_step


def kill():
    os.kill(os.getpid(), signal.SIGKILL)


class KillAfter(keras.callbacks.Callback):
    def __init__(self, step):
        super().__init__()
        self.step = step

    def on_train_batch_end(self, batch, logs=None):
        if self.model.completed_steps() == self.step:
            kill()


def kill_while_saving(step):
    """SIGKILL when checkpoint ``step`` is about to be recorded (its files are written)."""
    record = checkpoint_management.update_checkpoint_state_internal

    def update(save_dir, model_checkpoint_path, *args, **kwargs):
        if model_checkpoint_path.endswith(f"ckpt-{step}"):
            kill()
        return record(save_dir, model_checkpoint_path, *args, **kwargs)

    checkpoint_management.update_checkpoint_state_internal = update


def main(argv):
    workdir, batch_log, result_path, *options = argv
    strategy = None
    if "--mirrored" in options:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    callbacks = []
    for option in options:
        if option.startswith("--kill="):
            when, step = option.split("=", 1)[1].split(":")
            if when == "after":
                callbacks.append(KillAfter(int(step)))
            else:
                kill_while_saving(int(step))
    log_batches(batch_log)
    result = loop.train(config(), workdir, verbose=0, callbacks=callbacks,
                        strategy=strategy)
    with open(result_path, "w") as f:
        json.dump({"step": result["step"], "weights": result["all_weights_sha1"]}, f)


if __name__ == "__main__":
    main(sys.argv[1:])
