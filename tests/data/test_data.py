"""Data sources: geometry and range, the embedded digits, folders, TFDS, the stream."""

import glob
import os
import time

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from PIL import Image

from tf_asgan.data import base, catalog, folders
from tf_asgan.data import digits as digits_lib
from tf_asgan.data import stream as stream_lib
from tf_asgan.evaluation import evaluator, feature_network


def _take(ds, n=None):
    ds = ds if n is None else ds.take(n)
    return [np.asarray(x) for x in tfds.as_numpy(ds)]


# -- geometry ---------------------------------------------------------------------------


def test_to_model_range_crops_the_centre_square_and_maps_to_minus1_1():
    # 2 x 6 image: the centre 2 x 2 square is columns 2..3.
    img = np.zeros((2, 6, 3), np.uint8)
    img[:, 2:4] = 255
    out = base.to_model_range(img, 2).numpy()
    np.testing.assert_allclose(out, np.ones((2, 2, 3)), atol=1e-6)
    img[:, 2:4] = 0  # now the outer columns are white, the centre black
    img[:, [0, 1, 4, 5]] = 255
    np.testing.assert_allclose(base.to_model_range(img, 2).numpy(), -np.ones((2, 2, 3)),
                               atol=1e-6)


def test_to_model_range_area_resize_averages_blocks():
    img = np.array([[0, 0, 255, 255]] * 4, np.uint8)[..., None]  # gray 4x4
    out = base.to_model_range(img, 2).numpy()
    assert out.shape == (2, 2, 3)
    np.testing.assert_allclose(out[:, 0], -1.0, atol=1e-6)
    np.testing.assert_allclose(out[:, 1], 1.0, atol=1e-6)
    mid = base.to_model_range(np.full((4, 4, 1), 51, np.uint8), 2).numpy()
    np.testing.assert_allclose(mid, 51 / 127.5 - 1, atol=1e-6)


def test_gray_repeated_and_alpha_dropped():
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 255, 7
    out = base.to_model_range(rgba, 4).numpy()
    np.testing.assert_allclose(out[..., 0], 1.0)
    np.testing.assert_allclose(out[..., 1:], -1.0)
    gray = np.full((4, 4, 1), 255, np.uint8)
    np.testing.assert_allclose(base.to_model_range(gray, 4).numpy(), 1.0)


# -- embedded digits ----------------------------------------------------------------------


def test_digits_split_sizes_and_disjointness():
    train, train_y = digits_lib.digits_arrays("train")
    test, _ = digits_lib.digits_arrays("test")
    everything, _ = digits_lib.digits_arrays("all")
    assert (len(train), len(test), len(everything)) == (1437, 360, 1797)
    assert train.shape[1:] == (8, 8) and train.min() >= 0 and train.max() <= 16
    assert set(train_y) == set(range(10))
    # Every test image is a row of "all" with index % 5 == 0, none is in train.
    np.testing.assert_array_equal(test, everything[::5])
    with pytest.raises(ValueError, match="train, test or all"):
        digits_lib.digits_arrays("validation")


def test_digits_source_shapes_range_and_gray_rgb():
    src = digits_lib.digits_source(32)
    assert src.num_examples == 1437
    batch = _take(src.images.batch(64), 1)[0]
    assert batch.shape == (64, 32, 32, 3) and batch.dtype == np.float32
    assert batch.min() >= -1 and batch.max() <= 1
    assert batch.min() == -1 and batch.max() > 0.9  # background black, strokes bright
    np.testing.assert_array_equal(batch[..., 0], batch[..., 2])
    # The upscaled first image agrees with the original 8x8 digit at block centres.
    raw, _ = digits_lib.digits_arrays("train")
    small = tf.image.resize(batch[:1], (8, 8), "area").numpy()[0, ..., 0]
    assert np.corrcoef(small.ravel(), raw[0].ravel())[0, 1] > 0.9


@pytest.mark.slow
def test_stacked_digits_modes_match_the_stacked_digits():
    src = stacked_digits = digits_lib.stacked_digits(32, size=300, seed=3, with_labels=True)
    assert stacked_digits.num_examples == 300
    images, modes = zip(*tfds.as_numpy(src.images))
    images, modes = np.stack(images), np.array(modes)
    assert images.shape == (300, 32, 32, 3) and images.min() >= -1 and images.max() <= 1
    assert modes.min() >= 0 and modes.max() < 1000
    # Independent route: identify each channel's digit by exact match with the upscaled
    # training digits, then read its label.
    raw, labels = digits_lib.digits_arrays("train")
    bank = digits_lib.upscale_digits(raw, 32).reshape(len(raw), -1)
    for image, mode in zip(images[:40], modes[:40]):
        digits = []
        for c in range(3):
            distance = np.abs(bank - image[..., c].ravel()).max(axis=1)
            assert distance.min() < 1e-6
            digits.append(labels[np.argmin(distance)])
        assert mode == 100 * digits[0] + 10 * digits[1] + digits[2]
    # The default set covers (nearly) all 1000 modes, roughly uniformly.
    full = digits_lib.stacked_digits(32, with_labels=True)
    counts = np.bincount(_take(full.images.map(lambda x, m: m).batch(50_000))[0],
                         minlength=1000)
    assert full.num_examples == 50_000 and (counts > 0).sum() >= 995
    assert counts.max() < 5 * counts.mean()


def test_source_by_name_and_unknown_name():
    assert catalog.source("digits", 32).num_examples == 1437
    assert catalog.source("stacked_digits", 32).num_examples == digits_lib.STACKED_DIGITS_SIZE
    with pytest.raises(ValueError, match="Unknown dataset 'emnist'"):
        catalog.source("emnist", 32)
    with pytest.raises(ValueError, match="--image_dir"):
        catalog.source("folder", 32)


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
    src = folders.folder_source(str(tmp_path), 8)
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
        folders.folder_source(str(tmp_path / "missing"), 32)
    (tmp_path / "x.txt").write_text("")
    with pytest.raises(ValueError, match="holds no .png/.jpg/.jpeg"):
        folders.folder_source(str(tmp_path), 32)
    with pytest.raises(ValueError, match="bad_images must be one of"):
        folders.folder_source(str(tmp_path), 32, bad_images="keep")


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
        src = folders.folder_source(str(root), 4)
    assert src.num_examples == 4 and "4 unreadable skipped" in src.description
    assert "Skipping 4 of the 8 image files" in caplog.text
    for name, reason in (("e.png", "Invalid PNG data"), ("f.jpg", "jpeg::Uncompress failed"),
                         ("g_empty.png", "empty file"),
                         ("h_text.png", "unknown image format (not PNG, JPEG, GIF, BMP or WebP)")):
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
    cached = [p for p in (tmp_path / "cache" / "folders").glob("*.json")
              if not p.name.endswith(".exif.json")]  # the scan's (EXIF orientations apart)
    assert len(cached) == 1
    scans = []
    original = folders._scan
    monkeypatch.setattr(folders, "_scan", lambda paths: scans.append(paths) or original(paths))
    assert folders.folder_source(str(root), 4).num_examples == 4
    assert scans == []
    # ... until a file changes.
    Image.fromarray(np.zeros((3, 3, 3), np.uint8)).save(root / "e.png")
    assert folders.folder_source(str(root), 4).num_examples == 5
    assert len(scans) == 1


def test_folder_fails_on_unreadable_files_when_asked_and_when_none_is_readable(tmp_path):
    root = tmp_path / "images"
    root.mkdir()
    _messy_folder(root)
    with pytest.raises(folders.BadImagesError, match="4 of the 8 image files .* cannot be read: "
                       ".*e.png .*--bad_images=skip"):
        folders.folder_source(str(root), 32, bad_images="fail")
    only_bad = tmp_path / "bad"
    only_bad.mkdir()
    (only_bad / "x.jpg").write_text("no")
    with pytest.raises(folders.BadImagesError, match="1 of the 1 image files .* Remove or repair"):
        folders.folder_source(str(only_bad), 32)


# -- TFDS ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name,res", [("cifar10", 32), ("celeb_a", 64), ("lsun/bedroom", 64),
                                      ("imagenet_resized/64x64", 64), ("cifar100", 32)])
def test_tfds_sources_on_mock_data(name, res):
    with tfds.testing.mock_data(num_examples=5):
        src = catalog.source(name, res)
        images = np.stack(_take(src.images))
    assert src.num_examples == 5 and images.shape == (5, res, res, 3)
    assert images.min() >= -1 and images.max() <= 1 and images.std() > 0.1


def test_stl10_reads_the_unlabelled_split():
    with tfds.testing.mock_data(num_examples=3):
        src = catalog.source("stl10", 64)
        assert "unlabelled" in src.description and src.num_examples == 3


def test_missing_dataset_fails_fast_and_names_the_remedies(tmp_path):
    start = time.monotonic()
    with pytest.raises(catalog.DatasetNotAvailableError) as err:
        catalog.source("cifar10", 32, data_dir=str(tmp_path))
    assert time.monotonic() - start < 10
    message = str(err.value)
    assert str(tmp_path) in message
    assert "--data_dir" in message and "download_and_prepare" in message
    assert "--dataset=folder --image_dir" in message


class TfasganTiny(tfds.core.GeneratorBasedBuilder):
    """A 40-image dataset TFDS prepares offline (registered as ``tfasgan_tiny``)."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict(
            {"image": tfds.features.Image(shape=(8, 8, 3))}))

    def _split_generators(self, dl_manager):
        del dl_manager
        return {"train": self._generate_examples(40)}

    def _generate_examples(self, n):
        rng = np.random.default_rng(0)
        for i in range(n):
            yield i, {"image": rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)}


def test_a_half_copied_tfds_folder_is_refused_naming_what_is_missing(tmp_path, monkeypatch):
    monkeypatch.setitem(catalog.TFDS_DATASETS, "tfasgan_tiny", "train")
    TfasganTiny(data_dir=str(tmp_path)).download_and_prepare()
    src = catalog.source("tfasgan_tiny", 8, data_dir=str(tmp_path))
    assert src.num_examples == 40 and len(_take(src.images)) == 40
    (shard,) = glob.glob(str(tmp_path / "tfasgan_tiny" / "1.0.0" / "*.tfrecord*"))
    whole = open(shard, "rb").read()
    with open(shard, "wb") as f:  # a copy interrupted half-way through the file
        f.write(whole[:len(whole) // 2])
    with pytest.raises(catalog.DatasetNotAvailableError, match="truncated copy"):
        catalog.source("tfasgan_tiny", 8, data_dir=str(tmp_path))
    os.remove(shard)  # the metadata is there, the data is not
    with pytest.raises(catalog.DatasetNotAvailableError, match="incomplete") as err:
        catalog.source("tfasgan_tiny", 8, data_dir=str(tmp_path))
    assert os.path.basename(shard) in str(err.value)
    assert "download_and_prepare" in str(err.value)
    os.remove(tmp_path / "tfasgan_tiny" / "1.0.0" / "features.json")
    with pytest.raises(catalog.DatasetNotAvailableError, match="cannot be read from"):
        catalog.source("tfasgan_tiny", 8, data_dir=str(tmp_path))


# -- the training stream ------------------------------------------------------------------


def _numbered(n):
    """A source whose image ``i`` is constant ``i``: batches reveal the order."""
    images = tf.data.Dataset.range(n).map(lambda i: tf.fill((2, 2, 3), tf.cast(i, tf.float32)))
    return base.Source(images, n, f"numbered({n})")


def _ids(stream, n=None):
    return [batch[:, 0, 0, 0].astype(int).tolist() for batch in _take(stream, n)]


def _stream(src, **kw):
    tf.random.set_seed(7)  # the stream depends on the global seed at construction
    return stream_lib.training_stream(src, 4, **kw)


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
        stream_lib.training_stream(_numbered(3), 4, epochs=1)
    with pytest.raises(ValueError, match="holds only 2 batches"):
        stream_lib.training_stream(_numbered(8), 4, epochs=1, steps_per_epoch=3)
    with pytest.raises(ValueError, match="past the end"):
        stream_lib.training_stream(_numbered(8), 4, epochs=1, start_step=2)


# -- folders: order, orientation, caches ------------------------------------------------------


def _two_class_folder(root, n=300, value_a=0, value_b=255):
    """``a/`` holds ``n`` images of ``value_a``, ``b/`` ``n`` of ``value_b`` (sorted: all
    of a, then all of b)."""
    for name, value in (("a", value_a), ("b", value_b)):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            Image.fromarray(np.full((2, 2, 3), value, np.uint8)).save(
                root / name / f"{i:05d}.png")


def _white(batch):
    return (np.asarray(batch).reshape(len(batch), -1).mean(axis=1) > 0).astype(float)


def test_a_class_sorted_folder_is_read_in_a_full_permutation_every_epoch(tmp_path):
    _two_class_folder(tmp_path)
    src = folders.folder_source(str(tmp_path), 2)
    # A shuffle buffer of 50 over the sorted list would give a first third all black.
    stream, steps = stream_lib.training_stream(src, 8, epochs=2, seed=3, shuffle_buffer=50)
    batches = [_white(b) for b in tfds.as_numpy(stream)]
    assert steps == 75 and len(batches) == 150
    first, second = batches[:75], batches[75:]
    assert sum(b.sum() for b in first) == 300  # each image once per epoch
    assert 0.35 < np.mean(np.concatenate(first[:25])) < 0.65
    one_class = sum(b.min() == b.max() for b in first)
    assert one_class <= 5  # about 2 * 0.5^8 * 75 = 0.6 expected
    assert any(not np.array_equal(a, b) for a, b in zip(first, second))  # a new order
    # The real-data subset is drawn the same way (what evaluation.py takes first).
    subset = _white(list(tfds.as_numpy(src.in_random_order(0, buffer=50).take(200))))
    assert 0.4 < subset.mean() < 0.6


def _mean_network():
    def fn(images):
        m = tf.reduce_mean(images, axis=[1, 2, 3])
        return tf.stack([m, -m], 1), tf.stack([m, m * m], 1)

    return feature_network.FeatureNetwork("mean", "mean-v1", 2, 2, fn, "none")


def test_real_statistics_of_a_sorted_folder_are_a_uniform_draw(tmp_path, monkeypatch):
    _two_class_folder(tmp_path / "images")
    monkeypatch.setattr(evaluator, "REAL_SHUFFLE_BUFFER", 50)
    ev = evaluator.Evaluator(_mean_network(), "folder", 2,
                             evaluator.Protocol(num_samples=10, num_real=200, kid_samples=100),
                             cache_dir=str(tmp_path / "stats"),
                             image_dir=str(tmp_path / "images"), verbose=False)
    stats = ev.real_statistics()
    white = (stats["mean"][0] + 1) / 2  # mean pixel -1 (black) or +1 (white)
    assert 0.4 < white < 0.6
    kid_white = (np.asarray(stats["kid_features"])[:, 0] > 0).mean()
    assert 0.35 < kid_white < 0.65


def test_cached_real_statistics_follow_the_folders_content(tmp_path):
    root = tmp_path / "images"
    root.mkdir()
    for i in range(20):
        Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(root / f"{i:02d}.png")

    def real_mean():
        ev = evaluator.Evaluator(_mean_network(), "folder", 4,
                                 evaluator.Protocol(num_samples=10, kid_samples=10),
                                 cache_dir=str(tmp_path / "stats"), image_dir=str(root),
                                 verbose=False)
        return float(ev.real_statistics()["mean"][0])

    assert real_mean() == pytest.approx(-1.0)
    time.sleep(0.05)  # a later modification time
    for i in range(20):  # the same names, new content
        Image.fromarray(np.full((4, 4, 3), 255, np.uint8)).save(root / f"{i:02d}.png")
    assert real_mean() == pytest.approx(1.0)


def _asymmetric(res=16):
    """An RGB image no flip or rotation maps onto itself: a gradient and a marker."""
    yy, xx = np.mgrid[:res, :res]
    image = np.stack([xx * 255 // (res - 1), yy * 255 // (res - 1),
                      np.zeros_like(xx)], -1).astype(np.uint8)
    image[1:4, 1:3] = (255, 255, 255)
    return image


@pytest.mark.slow
@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_as_a_viewer_shows_the_image(tmp_path, orientation):
    # PNG carries EXIF too and is lossless: the comparison with PIL's exif_transpose
    # (an independent route) is exact.
    from PIL import ImageOps

    path = tmp_path / f"photo{orientation}.png"
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(_asymmetric()).save(path, exif=exif)
    (image,) = _take(folders.folder_source(str(tmp_path), 16).images)
    with Image.open(path) as stored:
        shown = np.asarray(ImageOps.exif_transpose(stored).convert("RGB"), np.float32)
    np.testing.assert_allclose(image, shown / 127.5 - 1, atol=1e-6)
    if orientation != 1:
        assert np.abs(image - (_asymmetric() / 127.5 - 1)).mean() > 0.2  # it was turned


@pytest.mark.parametrize("orientation", [3, 6])
def test_a_phone_jpeg_is_turned_too(tmp_path, orientation):
    from PIL import ImageOps

    path = tmp_path / "photo.jpg"
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(_asymmetric()).save(path, quality=95, exif=exif)
    (image,) = _take(folders.folder_source(str(tmp_path), 16).images)
    with Image.open(path) as stored:
        shown = np.asarray(ImageOps.exif_transpose(stored).convert("RGB"), np.float32)
        pil_raw = np.asarray(stored.convert("RGB"), np.float32)
    # The accurate IDCT (tf_asgan.data.decode.decode_bytes) gives Pillow's pixels exactly.
    error = np.abs(image - (shown / 127.5 - 1)).max()
    as_stored = np.abs(image - (pil_raw / 127.5 - 1)).mean()
    assert error < 1e-5 and as_stored > 0.3
