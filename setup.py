"""tf_asgan: adversarial symmetric GAN training for TensorFlow 2 / Keras 3."""

from setuptools import find_packages, setup

# The ranges the code supports. Keras's lower bound is the first version the code needs,
# TensorFlow's the first made for Keras 3; the others are the oldest versions checked,
# not necessarily the oldest that work. All lower bounds were installed together
# (Python 3.11) and a set of tests run on them (docs/dependencies.md).
# The exact versions the project is tested with are in constraints.txt: `make install`,
# `make test` and CI install with `pip install -c constraints.txt -e ".[test]"`.
INSTALL_REQUIRES = [
    # 2.16: the first with Keras 3 as tf.keras (and what tf-keras, TFP 0.24 and the TF-GAN
    # workaround of utils/_tfgan.py are made for); 2.16.1 is its first release
    "tensorflow>=2.16.1,<3",
    # 3.11: batch hooks get an execution's last step (our callbacks count on it, with
    # steps_per_execution > 1); 3.2: keras.Variable(aggregation=...)
    "keras>=3.11.0,<4",
    "tensorflow-gan>=2.1.0,<3",  # utils/_tfgan.py imports its submodules by path
    "tensorflow-probability>=0.24.0",  # imported by TF-GAN's eval; 0.24 pairs with TF 2.16
    "tf-keras>=2.16.0",  # tensorflow-hub and tensorflow-probability under Keras 3
    "tensorflow-hub>=0.16.1",
    "tensorboard>=2.16.2",  # tf.summary (TF 2.21 no longer depends on it)
    # With TF < 2.20 (protobuf < 6) pip may pick tensorflow-metadata 1.21, which needs
    # protobuf >= 6.31.1 without saying so: then `pip install "tensorflow-metadata<1.21"`.
    "tensorflow-datasets>=4.9.4",
    "importlib_resources>=6.0.0",  # needed by tfds downloads, undeclared by tfds
    "absl-py>=1.4.0",
    "numpy>=1.26,<3",
    "pillow>=10.0.0",
    "scikit-learn>=1.3.0",
    "scipy>=1.11.1",  # the study's significance tests (also scikit-learn's dependency)
    "matplotlib>=3.8.0",  # the analysis and study plots
    "setuptools<81",  # tensorflow-hub imports pkg_resources
]

setup(
    name="tf_asgan",
    version="0.1.0",
    description="Adversarial symmetric GANs (AS-GAN) for TensorFlow 2 / Keras 3",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["tf_asgan", "tf_asgan.*"]),
    python_requires=">=3.10,<3.13",
    install_requires=INSTALL_REQUIRES,
    extras_require={
        "test": ["pytest>=8.0.0"],
        "gpu": ["tensorflow[and-cuda]>=2.16.1,<3"],
    },
)
