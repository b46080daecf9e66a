"""MNIST and Fashion-MNIST at 28x28 with one channel: the TFDS sources on mock data, the
grey conversion, the channel count recorded with the run and given to the networks,
grey sample grids, and one run end to end whose export keeps ``[N, 28, 28, 1]``."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from PIL import Image

from helpers import load_script, small_config
from tf_asgan import errors, export, layout
from tf_asgan.config import train_config
from tf_asgan.config.train_config import TrainConfig
from tf_asgan.data import base, catalog
from tf_asgan.evaluation import classifiers
from tf_asgan.training import builder, loop, rundir
from tf_asgan.utils import images


def _take(dataset):
    return list(dataset.as_numpy_iterator())


@pytest.mark.parametrize("name", catalog.GREY_DATASETS)
def test_the_grey_datasets_keep_one_channel_and_their_28x28_pixels(name):
    assert catalog.channels(name) == 1 and catalog.channels("cifar10") == 3
    with tfds.testing.mock_data(num_examples=4):
        src = catalog.source(name, 28)
        got = np.stack(_take(src.images))
        raw = tfds.load(name, split="train", decoders={"image": tfds.decode.SkipDecoding()})
        pixels = np.stack([tf.io.decode_png(ex["image"]).numpy() for ex in raw])
        resized = catalog.source(name, 32)  # another resolution only when asked
        assert resized.images.element_spec.shape == (32, 32, 1)
    assert src.num_examples == 4 and got.shape == (4, 28, 28, 1) and "grey" in src.description
    # at its own size an image keeps its pixel values: p / 127.5 - 1
    np.testing.assert_allclose(got, pixels / 127.5 - 1.0, atol=1e-6)


def test_the_grey_conversion_keeps_grey_and_takes_the_luma_of_rgb():
    grey = np.array([[[0], [255]], [[51], [102]]], np.uint8)
    np.testing.assert_allclose(base.to_model_range(grey, 2, channels=1).numpy(),
                               grey / 127.5 - 1.0, atol=1e-6)
    # RGB -> ITU-R BT.601 luma 0.2989 R + 0.5870 G + 0.1140 B (tf.image.rgb_to_grayscale)
    rgb = np.array([[[255, 0, 0], [0, 255, 0]], [[0, 0, 255], [100, 150, 200]]], np.uint8)
    luma = rgb.astype(np.float64) @ np.array([0.2989, 0.5870, 0.1140])
    np.testing.assert_allclose(base.to_model_range(rgb, 2, channels=1).numpy()[..., 0],
                               luma / 127.5 - 1.0, atol=1e-5)
    # three channels: grey repeated, as before
    np.testing.assert_allclose(base.to_model_range(grey, 2).numpy(),
                               np.repeat(grey, 3, -1) / 127.5 - 1.0, atol=1e-6)
    with pytest.raises(errors.InputError, match="channels must be 1"):
        base.to_model_range(grey, 2, channels=2)


def test_the_channel_count_comes_from_the_dataset_and_is_recorded(tmp_path):
    config = TrainConfig(dataset="mnist")
    assert config.model.channels == 1 and TrainConfig().model.channels == 3
    assert config.replace(dataset="cifar10").model.channels == 3
    assert TrainConfig(dataset="fashion_mnist", channels=3).model.channels == 1  # not a choice
    train_config.save(config, str(tmp_path))
    with open(tmp_path / layout.CONFIG) as f:
        assert json.load(f)["channels"] == 1
    assert "channels" not in train_config.to_flagfile(config)  # no flag: the dataset's
    old = config.to_dict()
    del old["channels"]  # a config.json from before the field
    assert TrainConfig.from_dict(old).model.channels == 1


def test_the_digit_classifier_is_refused_for_mnist_and_inception_is_the_default():
    for name in catalog.GREY_DATASETS:
        with pytest.raises(errors.InputError, match="8x8 digits"):
            TrainConfig(dataset=name, eval_network="digits").validate()
        TrainConfig(dataset=name, eval_network="auto").validate()
        # evaluate.py's route too (its own flag named), before any network is built
        with pytest.raises(errors.InputError, match="--network=digits cannot score"):
            classifiers.network_for("digits", name, network_flag="--network")
    TrainConfig(dataset="digits", eval_network="digits").validate()


def test_a_grid_of_grey_images_is_a_grey_png(tmp_path):
    x = np.linspace(-1, 1, 5 * 3 * 3).reshape(5, 3, 3, 1).astype(np.float32)
    pixels = images.grid(x, columns=4)
    assert pixels.shape == (2 * 5 + 2, 4 * 5 + 2, 1)
    np.testing.assert_array_equal(pixels[2:5, 7:10, 0], images.to_uint8(x[1, ..., 0]))
    path = images.save_grid(x, str(tmp_path / "grey.png"), columns=4)
    with Image.open(path) as im:
        assert im.mode == "L"
        np.testing.assert_array_equal(np.asarray(im), pixels[..., 0])
    with Image.open(images.save_grid(np.repeat(x, 3, -1), str(tmp_path / "rgb.png"))) as im:
        assert im.mode == "RGB"
    with pytest.raises(errors.InputError, match="C = 1 .* or 3"):
        images.grid(np.zeros((2, 3, 3, 2)))


@pytest.mark.parametrize("method", [dict(advas_lambda=1.0, adversarial=False),
                                    dict(adversarial=True), dict(dat="authors",
                                                                 adversarial=False)])
def test_the_methods_train_wgan_gp_on_one_channel_images(method):
    """AdvAs's MNIST setting (WGAN-GP's networks, loss and penalty), and AS-GAN and DAT in
    it: one step on 28x28x1 images changes both networks."""
    config = small_config(dataset="mnist", architecture="wgangp_mnist", resolution=28,
                          bn_g=False, bn_d=False, loss="wasserstein",
                          gradient_penalty="wgan_gp", **method).validate()
    gan = builder.model_of(config, jit_compile=False)
    x = np.random.default_rng(0).uniform(-1, 1, (8, 28, 28, 1)).astype(np.float32)
    kernels = lambda: [net.get_weights()[0] for net in (gan.generator, gan.discriminator)]  # noqa: E731
    before = kernels()
    logs = gan.fit(x, batch_size=8, epochs=1, verbose=0).history
    assert all(np.isfinite(v[-1]) for v in logs.values())
    assert not any(np.array_equal(a, b) for a, b in zip(before, kernels()))


@pytest.mark.slow
def test_an_mnist_run_trains_samples_and_exports_one_channel(tmp_path):
    config = small_config(dataset="mnist", architecture="wgangp_mnist", resolution=28,
                          bn_g=False, bn_d=False, epochs=1, steps_per_epoch=1,
                          checkpoint_every_steps=0, export=True).validate()
    workdir = str(tmp_path / "run")
    with tfds.testing.mock_data(num_examples=8):
        result = loop.train(config, workdir, verbose=0)
    assert result["step"] == 1
    with Image.open(os.path.join(workdir, layout.SAMPLES, "epoch_0001.png")) as im:
        assert im.mode == "L" and im.size == (8 * 30 + 2, 8 * 30 + 2)
    g = tf.saved_model.load(result["export"])
    spec = g.signatures["serving_default"].structured_outputs["images"]
    assert spec.shape.as_list() == [None, 28, 28, 1]
    assert (int(g.channels.numpy()), int(g.resolution.numpy())) == (1, 28)
    assert g.sample(3, 0)["images"].shape == (3, 28, 28, 1)
    assert export.read_metadata(result["export"])["channels"] == 1
    restored, _, _ = rundir.restore_generator(workdir)
    assert restored.outputs[0].shape[1:] == (28, 28, 1)
    grid, _ = load_script("sample").write(result["export"], str(tmp_path / "out"), num=4,
                                          rows=1, steps=3)
    with Image.open(grid) as im:
        assert im.mode == "L"
    assert builder.model_of(config, jit_compile=False).discriminator.inputs[0].shape[-1] == 1
