"""tf_asgan: adversarial symmetric GAN training (AS-GAN) for TensorFlow 2 / Keras 3.

>>> import tf_asgan
>>> g = tf_asgan.networks.build_generator("dcgan", 32)
>>> d = tf_asgan.networks.build_discriminator("dcgan", 32)
>>> gan = tf_asgan.ASGAN(g, d, epsilon=1 / 255)
>>> gan.compile()
>>> gan.fit(images_in_minus1_1_dataset, epochs=200)
"""

from tf_asgan import (
    classifiers,
    data,
    evaluation,
    export,
    images,
    losses,
    methods,
    metrics,
    networks,
    perturbations,
    schedules,
)
from tf_asgan.asgan import ASGAN

__version__ = "0.1.0"
__all__ = ["ASGAN", "classifiers", "data", "evaluation", "export", "images", "losses",
           "methods", "metrics", "networks", "perturbations", "schedules", "__version__"]
