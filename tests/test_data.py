"""Data sources: geometry and range, the embedded digits, folders, TFDS, the stream."""

import time

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from PIL import Image

from tf_asgan import data


def _take(ds, n=None):
    ds = ds if n is None else ds.take(n)
    return [np.asarray(x) for x in tfds.as_numpy(ds)]


# -- geometry ---------------------------------------------------------------------------


def test_to_model_range_crops_the_centre_square_and_maps_to_minus1_1():
    # 2 x 6 image: the centre 2 x 2 square is columns 2..3.
    img = np.zeros((2, 6, 3), np.uint8)
    img[:, 2:4] = 255
    out = data.to_model_range(img, 2).numpy()
    np.testing.assert_allclose(out, np.ones((2, 2, 3)), atol=1e-6)
    img[:, 2:4] = 0  # now the outer columns are white, the centre black
    img[:, [0, 1, 4, 5]] = 255
    np.testing.assert_allclose(data.to_model_range(img, 2).numpy(), -np.ones((2, 2, 3)),
                               atol=1e-6)


def test_to_model_range_area_resize_averages_blocks():
    img = np.array([[0, 0, 255, 255]] * 4, np.uint8)[..., None]  # gray 4x4
    out = data.to_model_range(img, 2).numpy()
    assert out.shape == (2, 2, 3)
    np.testing.assert_allclose(out[:, 0], -1.0, atol=1e-6)
    np.testing.assert_allclose(out[:, 1], 1.0, atol=1e-6)
    mid = data.to_model_range(np.full((4, 4, 1), 51, np.uint8), 2).numpy()
    np.testing.assert_allclose(mid, 51 / 127.5 - 1, atol=1e-6)


def test_gray_repeated_and_alpha_dropped():
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 255, 7
    out = data.to_model_range(rgba, 4).numpy()
    np.testing.assert_allclose(out[..., 0], 1.0)
    np.testing.assert_allclose(out[..., 1:], -1.0)
    gray = np.full((4, 4, 1), 255, np.uint8)
    np.testing.assert_allclose(data.to_model_range(gray, 4).numpy(), 1.0)


# -- embedded digits ----------------------------------------------------------------------


def test_digits_split_sizes_and_disjointness():
    train, train_y = data.digits_arrays("train")
    test, _ = data.digits_arrays("test")
    everything, _ = data.digits_arrays("all")
    assert (len(train), len(test), len(everything)) == (1437, 360, 1797)
    assert train.shape[1:] == (8, 8) and train.min() >= 0 and train.max() <= 16
    assert set(train_y) == set(range(10))
    # Every test image is a row of "all" with index % 5 == 0, none is in train.
    np.testing.assert_array_equal(test, everything[::5])
    with pytest.raises(ValueError, match="train, test or all"):
        data.digits_arrays("validation")


def test_digits_source_shapes_range_and_gray_rgb():
    src = data.digits_source(32)
    assert src.num_examples == 1437
    batch = _take(src.images.batch(64), 1)[0]
    assert batch.shape == (64, 32, 32, 3) and batch.dtype == np.float32
    assert batch.min() >= -1 and batch.max() <= 1
    assert batch.min() == -1 and batch.max() > 0.9  # background black, strokes bright
    np.testing.assert_array_equal(batch[..., 0], batch[..., 2])
    # The upscaled first image agrees with the original 8x8 digit at block centres.
    raw, _ = data.digits_arrays("train")
    small = tf.image.resize(batch[:1], (8, 8), "area").numpy()[0, ..., 0]
    assert np.corrcoef(small.ravel(), raw[0].ravel())[0, 1] > 0.9


def test_stacked_digits_modes_match_the_stacked_digits():
    src = stacked_digits = data.stacked_digits(32, size=300, seed=3, with_labels=True)
    assert stacked_digits.num_examples == 300
    images, modes = zip(*tfds.as_numpy(src.images))
    images, modes = np.stack(images), np.array(modes)
    assert images.shape == (300, 32, 32, 3) and images.min() >= -1 and images.max() <= 1
    assert modes.min() >= 0 and modes.max() < 1000
    # Independent route: identify each channel's digit by exact match with the upscaled
    # training digits, then read its label.
    raw, labels = data.digits_arrays("train")
    bank = data.upscale_digits(raw, 32).reshape(len(raw), -1)
    for image, mode in zip(images[:40], modes[:40]):
        digits = []
        for c in range(3):
            distance = np.abs(bank - image[..., c].ravel()).max(axis=1)
            assert distance.min() < 1e-6
            digits.append(labels[np.argmin(distance)])
        assert mode == 100 * digits[0] + 10 * digits[1] + digits[2]
    # The default set covers (nearly) all 1000 modes, roughly uniformly.
    full = data.stacked_digits(32, with_labels=True)
    counts = np.bincount(_take(full.images.map(lambda x, m: m).batch(50_000))[0],
                         minlength=1000)
    assert full.num_examples == 50_000 and (counts > 0).sum() >= 995
    assert counts.max() < 5 * counts.mean()


def test_source_by_name_and_unknown_name():
    assert data.source("digits", 32).num_examples == 1437
    assert data.source("stacked_digits", 32).num_examples == data.STACKED_DIGITS_SIZE
    with pytest.raises(ValueError, match="Unknown dataset 'mnist'"):
        data.source("mnist", 32)
    with pytest.raises(ValueError, match="--image_dir"):
        data.source("folder", 32)


# -- image folders -----------------------------------------------------------------------


def test_folder_with_rgb_gray_rgba_png_and_jpeg(tmp_path):
    (tmp_path / "sub" / "deeper").mkdir(parents=True)
    Image.fromarray(np.full((20, 30, 3), (255, 0, 0), np.uint8)).save(tmp_path / "a.png")
    Image.fromarray(np.full((16, 16), 255, np.uint8), "L").save(tmp_path / "sub" / "b.png")
    rgba = np.zeros((12, 12, 4), np.uint8)
    rgba[..., 2], rgba[..., 3] = 255, 10
    Image.fromarray(rgba, "RGBA").save(tmp_path / "sub" / "deeper" / "c.PNG")
    Image.fromarray(np.full((40, 24, 3), (0, 255, 0), np.uint8)).save(tmp_path / "d.jpg",
                                                                       quality=100)
    (tmp_path / "notes.txt").write_text("not an image")
    src = data.folder_source(str(tmp_path), 8)
    assert src.num_examples == 4
    a, d, b, c = _take(src.images)  # sorted paths: a.png, d.jpg, sub/b.png, sub/deeper/c.PNG
    for image in (a, b, c, d):
        assert image.shape == (8, 8, 3) and image.dtype == np.float32
    np.testing.assert_allclose(a[0, 0], [1, -1, -1], atol=1e-6)
    np.testing.assert_allclose(b, 1.0, atol=1e-6)
    np.testing.assert_allclose(c[0, 0], [-1, -1, 1], atol=1e-6)
    np.testing.assert_allclose(d[0, 0], [-1, 1, -1], atol=0.02)  # JPEG rounding


def test_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        data.folder_source(str(tmp_path / "missing"), 32)
    (tmp_path / "x.txt").write_text("")
    with pytest.raises(ValueError, match="holds no .png/.jpg/.jpeg"):
        data.folder_source(str(tmp_path), 32)
    with pytest.raises(ValueError, match="bad_images must be one of"):
        data.folder_source(str(tmp_path), 32, bad_images="keep")


def _messy_folder(root):
    """Four good files (gray+alpha PNG, 16-bit gray PNG, BMP, GIF; odd sizes) and four
    bad ones (truncated PNG and JPEG, an empty file, text named .png)."""
    rng = np.random.default_rng(0)
    Image.fromarray(np.full((9, 13), 255, np.uint8)).convert("LA").save(root / "a_la.png")
    Image.fromarray(np.full((7, 7), 65535, np.uint16)).save(root / "b_gray16.png")
    Image.fromarray(np.full((5, 11, 3), (0, 0, 255), np.uint8)).save(root / "c.bmp")
    Image.fromarray(np.full((6, 6, 3), (255, 0, 0), np.uint8)).save(root / "d.gif")
    noise = Image.fromarray(rng.integers(0, 255, (30, 30, 3), dtype=np.uint8))
    noise.save(root / "e.png")
    noise.save(root / "f.jpg")
    for name in ("e.png", "f.jpg"):
        raw = (root / name).read_bytes()
        (root / name).write_bytes(raw[: len(raw) // 2])
    (root / "g_empty.png").write_bytes(b"")
    (root / "h_text.png").write_text("not an image")


def test_folder_skips_unreadable_files_and_counts_them(tmp_path, caplog, monkeypatch):
    monkeypatch.setenv("TF_ASGAN_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "images"
    root.mkdir()
    _messy_folder(root)
    with caplog.at_level("WARNING", logger="tf_asgan"):
        src = data.folder_source(str(root), 4)
    assert src.num_examples == 4 and "4 unreadable skipped" in src.description
    assert "Skipping 4 of the 8 image files" in caplog.text
    for name, reason in (("e.png", "Invalid PNG data"), ("f.jpg", "jpeg::Uncompress failed"),
                         ("g_empty.png", "Input is empty"),
                         ("h_text.png", "Unknown image file format")):
        assert f"{name} ({reason}" in caplog.text
    assert "function_node" not in caplog.text
    la, gray16, bmp, gif = _take(src.images)
    for image in (la, gray16, bmp, gif):
        assert image.shape == (4, 4, 3) and image.dtype == np.float32
    np.testing.assert_allclose(la, 1.0, atol=1e-6)  # gray + alpha -> white RGB
    np.testing.assert_allclose(gray16, 1.0, atol=1e-6)  # 16 bit -> 8 bit
    np.testing.assert_allclose(bmp[0, 0], [-1, -1, 1], atol=1e-6)
    np.testing.assert_allclose(gif[0, 0], [1, -1, -1], atol=0.02)  # palette rounding

    # The scan is cached (a resumed run does not decode everything again) ...
    cached = list((tmp_path / "cache" / "folders").glob("*.json"))
    assert len(cached) == 1
    scans = []
    original = data._scan
    monkeypatch.setattr(data, "_scan", lambda paths: scans.append(paths) or original(paths))
    assert data.folder_source(str(root), 4).num_examples == 4
    assert scans == []
    # ... until a file changes.
    Image.fromarray(np.zeros((3, 3, 3), np.uint8)).save(root / "e.png")
    assert data.folder_source(str(root), 4).num_examples == 5
    assert len(scans) == 1


def test_folder_fails_on_unreadable_files_when_asked_and_when_none_is_readable(tmp_path):
    root = tmp_path / "images"
    root.mkdir()
    _messy_folder(root)
    with pytest.raises(data.BadImagesError, match="4 of the 8 image files .* cannot be read: "
                       ".*e.png .*--bad_images=skip"):
        data.folder_source(str(root), 32, bad_images="fail")
    only_bad = tmp_path / "bad"
    only_bad.mkdir()
    (only_bad / "x.jpg").write_text("no")
    with pytest.raises(data.BadImagesError, match="1 of the 1 image files .* Remove or repair"):
        data.folder_source(str(only_bad), 32)


# -- TFDS ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name,res", [("cifar10", 32), ("celeb_a", 64), ("lsun/bedroom", 64),
                                      ("imagenet_resized/64x64", 64), ("cifar100", 32)])
def test_tfds_sources_on_mock_data(name, res):
    with tfds.testing.mock_data(num_examples=5):
        src = data.source(name, res)
        images = np.stack(_take(src.images))
    assert src.num_examples == 5 and images.shape == (5, res, res, 3)
    assert images.min() >= -1 and images.max() <= 1 and images.std() > 0.1


def test_stl10_reads_the_unlabelled_split():
    with tfds.testing.mock_data(num_examples=3):
        src = data.source("stl10", 64)
        assert "unlabelled" in src.description and src.num_examples == 3


def test_missing_dataset_fails_fast_and_names_the_remedies(tmp_path):
    start = time.monotonic()
    with pytest.raises(data.DatasetNotAvailableError) as err:
        data.source("cifar10", 32, data_dir=str(tmp_path))
    assert time.monotonic() - start < 10
    message = str(err.value)
    assert str(tmp_path) in message
    assert "--data_dir" in message and "download_and_prepare" in message
    assert "--dataset=folder --image_dir" in message


# -- the training stream ------------------------------------------------------------------


def _numbered(n):
    """A source whose image ``i`` is constant ``i``: batches reveal the order."""
    images = tf.data.Dataset.range(n).map(lambda i: tf.fill((2, 2, 3), tf.cast(i, tf.float32)))
    return data.Source(images, n, f"numbered({n})")


def _ids(stream, n=None):
    return [batch[:, 0, 0, 0].astype(int).tolist() for batch in _take(stream, n)]


def _stream(src, **kw):
    tf.random.set_seed(7)  # the stream depends on the global seed at construction
    return data.training_stream(src, 4, **kw)


def test_stream_epochs_are_permutations_drop_the_remainder_and_differ():
    stream, steps = _stream(_numbered(10), epochs=3, seed=0)
    assert steps == 2
    ids = _ids(stream)
    assert len(ids) == 6 and all(len(b) == 4 for b in ids)
    epochs = [sum(ids[2 * e:2 * e + 2], []) for e in range(3)]
    for e in epochs:
        assert len(set(e)) == 8 and set(e) <= set(range(10))
    assert epochs[0] != epochs[1] != epochs[2]


def test_stream_is_deterministic_and_seeded():
    src = _numbered(12)
    a = _ids(_stream(src, epochs=2, seed=1)[0])
    assert a == _ids(_stream(src, epochs=2, seed=1)[0])
    assert a != _ids(_stream(src, epochs=2, seed=2)[0])


@pytest.mark.parametrize("start", [0, 1, 3, 4, 5])
def test_stream_resumed_at_any_step_continues_the_uninterrupted_one(start):
    src = _numbered(13)  # 3 batches of 4 per epoch
    full = _ids(_stream(src, epochs=3, seed=5)[0])
    resumed = _ids(_stream(src, epochs=3, seed=5, start_step=start)[0])
    assert resumed == full[start:]


def test_stream_with_short_epochs_and_cache_off():
    src = _numbered(20)
    stream, steps = _stream(src, epochs=3, seed=0, steps_per_epoch=2, cache=False)
    assert steps == 2 and len(_ids(stream)) == 6
    assert _ids(_stream(src, epochs=3, seed=0, steps_per_epoch=2, start_step=3)[0]) == \
        _ids(stream)[3:]


def test_stream_errors():
    with pytest.raises(ValueError, match="fewer than one batch"):
        data.training_stream(_numbered(3), 4, epochs=1)
    with pytest.raises(ValueError, match="holds only 2 batches"):
        data.training_stream(_numbered(8), 4, epochs=1, steps_per_epoch=3)
    with pytest.raises(ValueError, match="past the end"):
        data.training_stream(_numbered(8), 4, epochs=1, start_step=2)
