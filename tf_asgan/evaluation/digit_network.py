"""The digit classifier behind the digits datasets' FID, KID and modes.

**The digit classifier** is a small CNN this project trains on the ``digits`` training
images (scikit-learn's bundled 8x8 digits, upscaled to 32x32; the held-out ``test``
split measures it) the first time it is needed, and caches under
``$TF_ASGAN_CACHE`` (default ``~/.cache/tf_asgan``). For ``digits`` it classifies the
channel mean; for ``stacked_digits`` each channel separately, giving 1,000 joint
classes (``100 * R + 10 * G + B``) whose log-probabilities are the sum of the three
channels' and features that are the three channels' concatenated.
"""

import json
import logging
import os

import keras
import numpy as np
import tensorflow as tf

from tf_asgan import errors
from tf_asgan.data import digits
from tf_asgan.evaluation.feature_network import IMAGES, FeatureNetwork, sha1_of_files
from tf_asgan.utils import io

log = logging.getLogger(__name__)

DIGIT_SIZE = 32
DIGIT_CLASSIFIER_VERSION = 1


def build_digit_classifier():
    """The CNN: ``[N, 32, 32, 1]`` in ``[-1, 1]`` -> ``(logits [N, 10], features [N, 128])``."""
    x = keras.Input((DIGIT_SIZE, DIGIT_SIZE, 1))
    h = x
    for filters in (32, 64):
        h = keras.layers.Conv2D(filters, 3, padding="same", activation="relu")(h)
        h = keras.layers.MaxPooling2D()(h)
    h = keras.layers.Conv2D(64, 3, strides=2, padding="same", activation="relu")(h)
    h = keras.layers.Flatten()(h)
    features = keras.layers.Dense(128, activation="relu", name="features")(h)
    logits = keras.layers.Dense(10, name="logits")(features)
    return keras.Model(x, [logits, features], name="digit_classifier")


def digit_data(split):
    """Digits of ``split`` as ``([N, 32, 32, 1]`` in ``[-1, 1]``, labels)."""
    images, labels = digits.digits_arrays(split)
    return digits.upscale_digits(images, DIGIT_SIZE)[..., None], labels


def digit_accuracy(model, split="test"):
    """Accuracy of the classifier on a digits split (``test``: 360 held-out images)."""
    images, labels = digit_data(split)
    logits, _ = model(images, training=False)
    return float(np.mean(np.argmax(logits, axis=1) == labels))


def train_digit_classifier(seed=0, epochs=30, batch_size=64):
    """Trains the classifier on the 1,437 ``train`` digits (shifts of up to 2 px and
    light noise as augmentation). Returns ``(model, test accuracy)``."""
    keras.utils.set_random_seed(seed)
    images, labels = digit_data("train")
    inputs = keras.Input((DIGIT_SIZE, DIGIT_SIZE, 1))
    h = keras.layers.RandomTranslation(2 / DIGIT_SIZE, 2 / DIGIT_SIZE, fill_value=-1.0,
                                       fill_mode="constant", seed=seed)(inputs)
    h = keras.layers.GaussianNoise(0.1, seed=seed)(h)
    model = build_digit_classifier()
    logits, _ = model(h)
    trainer = keras.Model(inputs, logits)
    trainer.compile(keras.optimizers.Adam(1e-3),
                    keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    trainer.fit(images, labels, batch_size=batch_size, epochs=epochs, verbose=0, shuffle=True)
    return model, digit_accuracy(model)


def digit_classifier(cache_dir=None, seed=0):
    """The trained digit classifier: loaded from the cache, or trained (~15 s) and cached.

    Returns:
      ``(model, info)`` where ``info`` holds the held-out accuracy and the weights file.
    """
    cache_dir = cache_dir or os.path.join(io.cache_root(), "digit_classifier")
    stem = os.path.join(cache_dir, f"v{DIGIT_CLASSIFIER_VERSION}_seed{seed}")
    weights, meta = stem + ".weights.h5", stem + ".json"
    model = build_digit_classifier()
    if os.path.exists(weights) and os.path.exists(meta):
        try:
            with open(meta) as f:
                info = json.load(f)
            if info.get("sha1") != sha1_of_files([weights]):  # statistics key on the sha1
                raise errors.InputError("its weights file does not match the recorded SHA-1")
            model.load_weights(weights)
            return model, dict(info, weights=weights)
        except (OSError, ValueError, KeyError) as err:
            log.warning("Cached digit classifier %s is unreadable (%s); retraining it.",
                        weights, err)
    log.info("Training the digit classifier (once; cached in %s).", cache_dir)
    model, accuracy = train_digit_classifier(seed)
    os.makedirs(cache_dir, exist_ok=True)
    with io.atomic_path(weights) as tmp:
        model.save_weights(tmp)
    info = {"version": DIGIT_CLASSIFIER_VERSION, "seed": seed, "test_accuracy": accuracy,
            "sha1": sha1_of_files([weights])}
    io.atomic_write_json(meta, info, indent=2)
    log.info("Digit classifier: %.2f%% accuracy on the 360 held-out digits.", 100 * accuracy)
    return model, dict(info, weights=weights)


def digits_network(stacked=False, cache_dir=None, seed=0):
    """The digit classifier as a :class:`FeatureNetwork` (``stacked``: 1,000 classes)."""
    model, info = digit_classifier(cache_dir, seed)

    def classify(channel):
        logits, features = model(channel, training=False)
        return tf.nn.log_softmax(logits), features

    @tf.function(input_signature=[IMAGES])
    def fn(images):
        x = tf.image.resize(images, (DIGIT_SIZE, DIGIT_SIZE), method="area", antialias=True)
        if not stacked:
            return classify(tf.reduce_mean(x, axis=-1, keepdims=True))
        parts = [classify(x[..., c:c + 1]) for c in range(3)]
        (r, fr), (g, fg), (b, fb) = parts
        joint = r[:, :, None, None] + g[:, None, :, None] + b[:, None, None, :]
        return tf.reshape(joint, (-1, 1000)), tf.concat([fr, fg, fb], axis=1)

    kind = "stacked_digits" if stacked else "digits"
    how = ("each channel classified separately; joint class 100*R + 10*G + B"
           if stacked else "the channel mean classified")
    return FeatureNetwork(
        name=f"digit_classifier_v{DIGIT_CLASSIFIER_VERSION}:{kind}",
        fingerprint=info.get("sha1") or sha1_of_files([info["weights"]]),
        num_classes=1000 if stacked else 10, feature_dim=384 if stacked else 128, fn=fn,
        preprocessing=f"area resize to {DIGIT_SIZE}x{DIGIT_SIZE}, values in [-1, 1]; {how}; "
                      f"held-out accuracy {info['test_accuracy']:.4f}",
        count_modes=True)
