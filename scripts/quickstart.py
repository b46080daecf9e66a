"""The library API in a dozen lines: AS-DCGAN on generated images of discs, on a CPU.

(``scripts/train.py`` is the full product: datasets, checkpoints, logs, export.)

Writes ``runs/quickstart/samples.png``. Usage: ``python scripts/quickstart.py [steps]``.
"""

import os
import sys

import numpy as np
import tensorflow as tf

import tf_asgan


def discs(n, size=32, seed=0):
    """``n`` images of one coloured disc on a dark background, in [-1, 1]."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    cy, cx = rng.uniform(8, size - 8, (2, n, 1, 1))
    radius = rng.uniform(4, 8, (n, 1, 1))
    mask = ((yy - cy) ** 2 + (xx - cx) ** 2 < radius ** 2)[..., None]
    colour = rng.uniform(-0.2, 1.0, (n, 1, 1, 3))
    return np.where(mask, colour, -1.0).astype("float32")


def main(steps=300, batch_size=64, workdir="runs/quickstart"):
    tf.keras.utils.set_random_seed(0)
    data = tf.data.Dataset.from_tensor_slices(discs(steps * batch_size // 4))
    data = data.shuffle(4096, seed=0).repeat().batch(batch_size, drop_remainder=True)
    gan = tf_asgan.ASGAN(tf_asgan.networks.build_generator("dcgan", 32),
                         tf_asgan.networks.build_discriminator("dcgan", 32),
                         perturbation="fgsm", epsilon=1 / 255)
    gan.compile()  # the paper's Adam(2e-4, 0.5, 0.999) for both networks
    gan.fit(data, epochs=1, steps_per_epoch=steps)
    os.makedirs(workdir, exist_ok=True)
    tf_asgan.utils.images.save_grid(gan.generate(tf.random.normal((32, 100), seed=1)).numpy(),
                                    os.path.join(workdir, "samples.png"))
    print(f"wrote {workdir}/samples.png")


if __name__ == "__main__":
    if len(sys.argv) > 2 or (len(sys.argv) == 2 and not (sys.argv[1].isdigit()
                                                          and int(sys.argv[1]) >= 1)):
        sys.exit("Usage: python scripts/quickstart.py [steps]  (steps: a positive integer, "
                 "default 300)")
    try:
        main(int(sys.argv[1]) if len(sys.argv) > 1 else 300)
    except (tf_asgan.errors.TfAsganError, OSError) as err:  # OSError: writing runs/quickstart
        sys.exit(f"quickstart.py: {err}")
    except KeyboardInterrupt:  # nothing to resume: the example trains in memory
        tf_asgan.errors.exit_interrupted("quickstart.py", "Interrupted; nothing was "
                                         "written. Run the same command again.")
