"""tf_asgan: adversarial symmetric GAN training for TensorFlow 2 / Keras 3."""

from setuptools import find_packages, setup

# Versions that resolve and run together (docs/dependencies.md: the traps they hold).
INSTALL_REQUIRES = [
    "tensorflow==2.21.0",
    "keras==3.15.1",
    "tensorflow-gan==2.1.0",
    "tensorflow-probability==0.25.0",
    "tf-keras==2.21.0",
    "tensorflow-hub==0.16.1",
    "tensorboard==2.21.0",  # tf.summary (TF 2.21 no longer depends on it)
    "tensorflow-datasets==4.9.10",
    "importlib_resources==7.1.0",  # needed by tfds downloads, undeclared by tfds
    "absl-py==2.5.1",
    "numpy>=1.26,<3",
    "pillow==13.0.0",
    "scikit-learn==1.9.1",
    "scipy==1.17.1",  # the study's significance tests (also scikit-learn's dependency)
    "matplotlib==3.11.2",  # the analysis and study plots
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
        "test": ["pytest==9.2.0"],
        "gpu": ["tensorflow[and-cuda]==2.21.0"],
    },
)
