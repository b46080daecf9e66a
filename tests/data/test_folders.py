"""Image folders: every listed format in the colours a viewer shows, decoding that cannot
abort the process, symbolic links; and a TFDS folder without its metadata."""

import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from PIL import Image

from helpers import REPO, script_env
from tf_asgan.data import base, catalog, decode, folders


def _pattern(h=8, w=8, seed=0):
    """An RGB image of 8 distinct colours (red among them) in random places."""
    colours = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0], [0, 0, 0],
                        [255, 255, 255], [17, 99, 201], [200, 40, 120]], np.uint8)
    index = np.random.default_rng(seed).integers(0, len(colours), (h, w))
    index[0, 0] = 0
    return colours[index]


def _shown(path):
    """What a viewer shows (Pillow's first frame in RGB), in the model's [-1, 1] units."""
    with Image.open(path) as image:
        image.seek(0)
        return np.asarray(image.convert("RGB"), np.float64) / 127.5 - 1


def _read_all(directory, resolution=8):
    src = folders.folder_source(str(directory), resolution)
    return src, [np.asarray(x) for x in src.images.as_numpy_iterator()]


# -- formats ------------------------------------------------------------------------------


def test_a_palette_bmp_gives_its_colours_not_its_palette_indices(tmp_path):
    rgb = _pattern()
    Image.fromarray(rgb).quantize(8).save(tmp_path / "pal.bmp")  # an 8-bit palette BMP
    (image,) = _read_all(tmp_path)[1]
    # Red (255, 0, 0) is [1, -1, -1]; read as an index it came out grey ([2, 2, 2] / 255).
    np.testing.assert_allclose(image[0, 0], [1, -1, -1], atol=1e-6)
    np.testing.assert_allclose(image, rgb / 127.5 - 1, atol=1e-6)


def test_a_one_bit_bmp_is_read_in_black_and_white(tmp_path):
    bits = np.random.default_rng(1).integers(0, 2, (8, 8)).astype(bool)
    Image.fromarray(bits).save(tmp_path / "one.bmp")  # mode "1": a 1-bit BMP
    src, (image,) = _read_all(tmp_path)
    assert src.num_examples == 1
    expected = np.where(bits, 1.0, -1.0)[..., None].repeat(3, -1)
    np.testing.assert_allclose(image, expected, atol=1e-6)


@pytest.mark.parametrize("extension", [".jfif", ".jpe", ".JPE"])
def test_jfif_and_jpe_files_are_jpegs(tmp_path, extension):
    Image.fromarray(_pattern()).save(tmp_path / f"photo{extension}", "JPEG", quality=100,
                                     subsampling=0)  # no chroma subsampling
    Image.fromarray(_pattern(seed=2)).save(tmp_path / "other.png")
    src, images = _read_all(tmp_path)
    assert src.num_examples == 2  # the JPEG was ignored before
    jpeg = images[1]  # sorted: other.png, photo.*
    shown = _shown(tmp_path / f"photo{extension}")
    np.testing.assert_allclose(jpeg, shown, atol=1e-6)


def test_a_quality_100_jpeg_gives_the_pixels_a_viewer_shows(tmp_path):
    # TensorFlow's default (fast) IDCT was off by ~10 levels on average here.
    Image.fromarray(_pattern(16, 16)).save(tmp_path / "q100.jpg", quality=100)
    (image,) = _read_all(tmp_path, 16)[1]
    np.testing.assert_allclose(image, _shown(tmp_path / "q100.jpg"), atol=1e-6)


def _save_every_format(root):
    """Every format the README lists, in its lossless colour types; the sorted names."""
    rgb = Image.fromarray(_pattern())
    kinds = {"rgb": rgb, "palette": rgb.quantize(8), "gray": rgb.convert("L"),
             "la": rgb.convert("LA"), "one": rgb.convert("1"), "rgba": rgb.convert("RGBA")}
    files = {f"{kind}.{ext}": (kind, ext) for kind in kinds for ext in ("png", "bmp")
             if (kind, ext) != ("la", "bmp")}  # Pillow writes no grey + alpha BMP
    files.update({"palette.gif": ("palette", "gif"), "rgb.webp": ("rgb", "webp"),
                  "rgba.webp": ("rgba", "webp"), "la.webp": ("la", "webp")})
    for name, (kind, ext) in files.items():
        kinds[kind].save(root / name, **({"lossless": True} if ext == "webp" else {}))
    return sorted(files)


def test_every_listed_format_gives_what_a_viewer_shows(tmp_path):
    names = _save_every_format(tmp_path)
    src, images = _read_all(tmp_path)
    assert src.num_examples == len(names)
    for name, image in zip(names, images):
        np.testing.assert_allclose(image, _shown(tmp_path / name), atol=1e-6, err_msg=name)


def test_sixteen_bit_png_keeps_its_high_byte(tmp_path):
    # Pillow's own conversion would clip 0x1234 to 255; TensorFlow keeps the high byte.
    Image.fromarray(np.full((8, 8), 0x1234, np.uint16)).save(tmp_path / "g16.png")
    (image,) = _read_all(tmp_path)[1]
    np.testing.assert_allclose(image, 0x12 / 127.5 - 1, atol=1e-6)


def test_the_decoder_is_chosen_by_content_not_by_name(tmp_path):
    rgb = Image.fromarray(_pattern())
    rgb.save(tmp_path / "anim.png", "WEBP", save_all=True, append_images=[rgb.rotate(90)])
    rgb.quantize(8).save(tmp_path / "pal.bmp")
    rgb.save(tmp_path / "rgb.bmp")
    rgb.save(tmp_path / "x.jfif", "JPEG")
    chosen = {name: decode.decoder_for(str(tmp_path / name)) for name in os.listdir(tmp_path)}
    assert chosen == {"anim.png": decode.PILLOW, "pal.bmp": decode.PILLOW,
                      "rgb.bmp": decode.TF, "x.jfif": decode.TF}


_READ_ANIMATED = """
import json, sys
import numpy as np
from tf_asgan.data import folders
src = folders.folder_source(sys.argv[1], 8)
print(json.dumps([np.asarray(x).tolist() for x in src.images.as_numpy_iterator()]))
"""


@pytest.mark.slow
def test_an_animated_webp_gives_its_first_frame_and_does_not_abort(tmp_path):
    # tf.io.decode_image aborts the process (SIGABRT) on these files: read them in a
    # child, so a crash fails this test instead of killing pytest.
    first, second = Image.fromarray(_pattern()), Image.fromarray(_pattern(seed=5))
    first.save(tmp_path / "a.webp", save_all=True, append_images=[second], lossless=True)
    first.save(tmp_path / "b.png", "WEBP", save_all=True, append_images=[second],
               lossless=True)  # a WebP under a PNG name
    env = dict(script_env(), TF_ASGAN_CACHE=str(tmp_path / "cache"))
    proc = subprocess.run([sys.executable, "-c", _READ_ANIMATED, str(tmp_path)], env=env,
                          capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode == 0, f"exit {proc.returncode}: {proc.stderr[-800:]}"
    images = np.asarray(json.loads(proc.stdout.strip().splitlines()[-1]))
    assert images.shape == (2, 8, 8, 3)
    for image in images:
        np.testing.assert_allclose(image, _pattern() / 127.5 - 1, atol=1e-6)


# -- symbolic links -----------------------------------------------------------------------


def _pngs(folder, count, value):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        Image.fromarray(np.full((4, 4, 3), value, np.uint8)).save(folder / f"{i}.png")


def test_symlinked_folders_are_followed_once_and_cycles_stop(tmp_path):
    root, elsewhere = tmp_path / "images", tmp_path / "elsewhere"
    _pngs(root, 4, 0)
    _pngs(elsewhere, 5, 255)
    os.symlink(elsewhere, root / "linked")  # a folder kept elsewhere
    os.symlink(root, root / "loop")  # a cycle back to the top
    os.symlink(elsewhere, root / "again")  # a second link to a folder already read
    src, images = _read_all(root, 4)
    assert src.num_examples == 9
    assert sorted(float(x.mean()) for x in images) == [-1.0] * 4 + [1.0] * 5


def test_a_dangling_link_is_skipped_and_listed(tmp_path, caplog):
    root = tmp_path / "images"
    _pngs(root, 3, 0)
    os.symlink(tmp_path / "gone.png", root / "dangling.png")
    with caplog.at_level("WARNING", logger="tf_asgan"):
        src = folders.folder_source(str(root), 4)
    assert src.num_examples == 3 and "1 unreadable skipped" in src.description
    assert "Skipping 1 of the 4 image files" in caplog.text
    assert "dangling.png (broken symbolic link to" in caplog.text
    with pytest.raises(folders.BadImagesError, match="1 of the 4 .*dangling.png .*--bad_images"):
        folders.folder_source(str(root), 4, bad_images="fail")


# -- a TFDS folder without its metadata ---------------------------------------------------


def test_a_tfds_folder_with_a_shard_but_no_dataset_info_is_named(tmp_path):
    version = tmp_path / "cifar10" / "3.0.2"
    version.mkdir(parents=True)
    with tf.io.TFRecordWriter(str(version / "cifar10-train.tfrecord-00000-of-00001")) as w:
        w.write(b"not an example")
    with pytest.raises(catalog.DatasetNotAvailableError) as caught:
        catalog.source("cifar10", 32, data_dir=str(tmp_path))
    message = str(caught.value)
    assert "\n" not in message and "no dataset_info.json" in message
    assert str(version) in message and "download_and_prepare" in message


def test_tfds_jpegs_are_decoded_as_a_viewer_shows_them():
    # TFDS's own decoder uses the fast IDCT; the source decodes the stored bytes itself.
    with tfds.testing.mock_data(num_examples=2):
        ours = [np.asarray(x) for x in catalog.source("celeb_a", 64).images.as_numpy_iterator()]
        stored = tfds.load("celeb_a", split="train", shuffle_files=False,
                           decoders={"image": tfds.decode.SkipDecoding()})
        encoded = [ex["image"] for ex in stored.as_numpy_iterator()]
    assert len(ours) == len(encoded) == 2
    for image, data in zip(ours, encoded):
        assert data[:3] == b"\xff\xd8\xff"  # CelebA is stored as JPEG
        shown = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
        np.testing.assert_allclose(image, base.to_model_range(shown, 64).numpy(), atol=1e-5)
