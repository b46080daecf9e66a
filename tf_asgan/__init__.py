"""tf_asgan: adversarial symmetric GAN training (AS-GAN) for TensorFlow 2 / Keras 3.

>>> import tf_asgan
>>> g = tf_asgan.networks.build_generator("dcgan", 32)
>>> d = tf_asgan.networks.build_discriminator("dcgan", 32)
>>> gan = tf_asgan.ASGAN(g, d, epsilon=1 / 255)
>>> gan.compile()
>>> gan.fit(images_in_minus1_1_dataset, epochs=200)

The package's plan is in docs/architecture.md: the method at the top level (``asgan``,
``gan``, ``losses``, ``perturbations``, ``schedules``, ``optimizers``, ``ema``,
``methods/``, ``regularizers/``, ``networks/``), then
one folder per concern (``data/``, ``evaluation/``, ``config/``, ``training/``,
``analysis/``, ``experiments/``, ``utils/``).
"""

from tf_asgan import (
    analysis,
    config,
    data,
    errors,
    evaluation,
    export,
    losses,
    methods,
    networks,
    perturbations,
    regularizers,
    schedules,
    training,
)
from tf_asgan.asgan import ASGAN
from tf_asgan.errors import TfAsganError

__version__ = "0.1.0"
__all__ = ["ASGAN", "TfAsganError", "analysis", "config", "data", "errors", "evaluation",
           "export", "losses", "methods", "networks", "perturbations", "regularizers", "schedules",
           "training", "__version__"]
