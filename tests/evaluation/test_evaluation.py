"""Evaluation: network loading (local, hub cache, offline), the evaluator and its cache,
the digit classifier, and the evaluation callback in a training run.

The Inception network cannot be downloaded here; a small stand-in SavedModel with the
same call signature (images [N, 299, 299, 3] in [-1, 1] -> {"logits", "pool_3"}) goes
through the same loading code.
"""

import json
import logging
import os
import shutil
import socket
import time

import numpy as np
import pytest
import tensorflow as tf

from helpers import array_source, blobs, damaged_copy, numpy_kid, scipy_fid
from tf_asgan.config.train_config import TrainConfig
from tf_asgan.data import digits as digits_lib
from tf_asgan.evaluation import classifiers, digit_network, evaluator, metrics
from tf_asgan.training import builder, loop, rundir

CLASSES, FEATURES = 12, 16


class StandIn(tf.Module):
    """Inception's interface at a tiny cost: 37x37 average pooling, then two dense maps."""

    def __init__(self):
        super().__init__()
        rng = np.random.default_rng(0)
        self.w1 = tf.Variable(rng.normal(size=(8 * 8 * 3, FEATURES)).astype("float32") / 8)
        self.w2 = tf.Variable(rng.normal(size=(FEATURES, CLASSES)).astype("float32"))

    @tf.function(input_signature=[tf.TensorSpec([None, 299, 299, 3], tf.float32)])
    def __call__(self, images):
        pooled = tf.nn.avg_pool2d(images, 37, 37, "VALID")  # [N, 8, 8, 3]
        feats = tf.nn.relu(tf.reshape(pooled, (-1, 8 * 8 * 3)) @ self.w1)
        return {"logits": feats @ self.w2, "pool_3": tf.reshape(feats, (-1, 1, 1, FEATURES))}


@pytest.fixture(scope="module")
def standin(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("inception"))
    module = StandIn()
    tf.saved_model.save(module, path)
    return path, module


@pytest.fixture
def no_hub_cache(tmp_path, monkeypatch):
    """An empty $TFHUB_CACHE_DIR and an empty default hub cache folder."""
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path / "hub"))
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    return tmp_path / "hub"






class Replay:
    """A 'generator' that ignores z and returns the given images in order."""

    def __init__(self, images):
        self.images, self.at = images, 0

    def __call__(self, z):
        n = int(z.shape[0])
        out = self.images[self.at:self.at + n]
        self.at += n
        return out


# -- loading the network -----------------------------------------------------------------


def test_inception_from_a_local_path_matches_a_direct_call(standin, no_hub_cache):
    path, module = standin
    net = classifiers.inception(path=path)
    assert net.name == "inception:tfgan/eval/inception/1"
    assert (net.num_classes, net.feature_dim) == (CLASSES, FEATURES)
    images = blobs(5)
    logits, feats = net(images)
    direct = module(tf.image.resize(images, (299, 299), method="bilinear"))
    np.testing.assert_allclose(logits, direct["logits"].numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(feats, direct["pool_3"].numpy().reshape(5, -1), rtol=1e-5,
                               atol=1e-5)
    assert "299x299" in net.preprocessing and "[-1, 1]" in net.preprocessing


def test_inception_from_the_hub_cache(standin, no_hub_cache):
    path, _ = standin
    cached = classifiers.hub_cache_path(classifiers.INCEPTION_HANDLE, str(no_hub_cache))
    shutil.copytree(path, cached)
    net = classifiers.inception()
    assert net.fingerprint == classifiers.inception(path=path).fingerprint
    assert net.num_classes == CLASSES


def test_hub_cache_key_is_the_sha1_of_the_handle():
    import hashlib

    handle = "https://tfhub.dev/tensorflow/tfgan/eval/inception/1"
    assert classifiers.hub_cache_path(handle, "/c") == "/c/" + hashlib.sha1(
        handle.encode()).hexdigest()


@pytest.mark.parametrize("how", ["unresolvable host", "no network"])
def test_offline_without_a_copy_fails_fast_naming_both_remedies(how, no_hub_cache,
                                                                monkeypatch):
    handle = classifiers.INCEPTION_HANDLE
    if how == "unresolvable host":
        handle = handle.replace("tfhub.dev", "tfhub.invalid")
    else:
        def offline(*args, **kwargs):
            raise OSError("Network is unreachable")
        monkeypatch.setattr(socket, "create_connection", offline)
    start = time.time()
    with pytest.raises(classifiers.NetworkNotAvailableError) as err:
        classifiers.inception(handle=handle)
    assert time.time() - start < 15
    message = str(err.value)
    assert "--inception_path" in message and "TFHUB_CACHE_DIR" in message
    assert str(no_hub_cache) in message  # where to put the copy


def test_a_bad_inception_path_is_reported(tmp_path):
    with pytest.raises(classifiers.NetworkNotAvailableError, match="no saved_model.pb"):
        classifiers.inception(path=str(tmp_path))


@pytest.mark.parametrize("damage,message", [
    ("variables/variables.data-00000-of-00001", "missing variables/variables.data-00000"),
    ("variables/variables.index", "missing variables/variables.index"),
    ("truncate", "cannot be loaded|calling it failed"),
])
def test_a_half_copied_network_folder_gets_our_error(standin, tmp_path, damage, message):
    copy = damaged_copy(standin[0], tmp_path / "inception", damage)
    with pytest.raises(classifiers.NetworkNotAvailableError, match=message) as err:
        classifiers.inception(path=copy)
    assert str(copy) in str(err.value) and "copy the whole folder again" in str(err.value)


@pytest.mark.slow
def test_a_cached_digit_classifier_whose_weights_changed_is_retrained(tmp_path, monkeypatch):
    _, info = digit_network.digit_classifier()  # the session's cache
    stem = info["weights"][:-len(".weights.h5")]
    for suffix in (".weights.h5", ".json"):
        shutil.copy(stem + suffix, str(tmp_path / os.path.basename(stem + suffix)))
    copy = tmp_path / os.path.basename(info["weights"])
    trained = []

    def train(seed=0):
        trained.append(seed)
        return digit_network.build_digit_classifier(), 0.5

    monkeypatch.setattr(digit_network, "train_digit_classifier", train)
    digit_network.digit_classifier(cache_dir=str(tmp_path))
    assert trained == []  # an intact cache is used
    fresh = digit_network.build_digit_classifier()
    fresh.save_weights(str(copy))  # other weights, the old SHA-1 on record
    _, info2 = digit_network.digit_classifier(cache_dir=str(tmp_path))
    assert trained == [0] and info2["sha1"] != info["sha1"]


def test_unknown_network_name():
    with pytest.raises(ValueError, match="inception"):
        classifiers.network_for("vgg", "cifar10")


# -- the evaluator -------------------------------------------------------------------------


def make_evaluator(net, real, tmp_path, **protocol):
    values = dict(num_samples=len(real), is_splits=2, batch_size=64)
    values.update(protocol)
    return evaluator.Evaluator(net, "folder", 32, evaluator.Protocol(**values),
                               cache_dir=str(tmp_path / "stats"), source=array_source(real),
                               verbose=False)


def test_fid_of_a_set_against_itself_is_zero(standin, tmp_path):
    net = classifiers.inception(path=standin[0])
    real = blobs(300)
    result = make_evaluator(net, real, tmp_path).evaluate(Replay(real), latent_dim=4)
    dimmer = blobs(300, seed=9) * 0.5 - 0.5  # another distribution: darker, lower contrast
    other = make_evaluator(net, real, tmp_path).evaluate(Replay(dimmer), latent_dim=4)
    assert abs(result["metrics"]["fid"]) < 1e-6 * other["metrics"]["fid"]
    assert other["metrics"]["fid"] > 1e-3
    assert abs(result["metrics"]["kid"]) < 0.1 * other["metrics"]["kid"]


def test_fid_and_kid_agree_with_numpy_on_the_same_activations(standin, tmp_path):
    net = classifiers.inception(path=standin[0])
    real, fake = blobs(300), blobs(200, seed=5)[:, ::-1]  # flipped: a different set
    ev = make_evaluator(net, real, tmp_path, num_samples=200)
    result = ev.evaluate(Replay(np.ascontiguousarray(fake)), latent_dim=4)
    real_feats = net(real)[1]
    fake_feats = net(fake)[1]
    assert result["metrics"]["fid"] == pytest.approx(scipy_fid(real_feats, fake_feats),
                                                     rel=1e-3)
    # KID: the evaluator's real subset order (a fixed shuffle) and two blocks of 150/100.
    kept = ev.real_statistics()["kid_features"]
    np.testing.assert_allclose(np.sort(kept, axis=0), np.sort(real_feats, axis=0), rtol=1e-5)
    blocks = [numpy_kid(kept[:150], fake_feats[:100]), numpy_kid(kept[150:], fake_feats[100:])]
    assert result["metrics"]["kid"] == pytest.approx(np.mean(blocks), rel=1e-3)
    assert result["protocol"]["kid_block"] == 150
    # IS: TF-GAN's score of each split of the generated logits.
    logits = net(fake)[0]
    splits = [metrics.inception_score(part) for part in np.array_split(logits, 2)]
    assert result["metrics"]["is"] == pytest.approx(np.mean(splits), rel=1e-6)


def test_the_protocol_is_written_into_the_result(standin, tmp_path):
    net = classifiers.inception(path=standin[0])
    real = blobs(120)
    result = make_evaluator(net, real, tmp_path, num_samples=100, seed=3).evaluate(
        Replay(blobs(100, seed=1)), latent_dim=4)
    p = result["protocol"]
    assert (p["num_samples"], p["is_splits"], p["real_split"], p["seed"]) == (100, 2, "train", 3)
    assert p["network"]["name"] == "inception:tfgan/eval/inception/1"
    assert p["network"]["fingerprint"] == net.fingerprint
    assert p["real"]["num_real"] == 120 and p["real"]["stats_file"].endswith(".npz")
    json.dumps(result)  # serialisable as it is


def test_the_protocol_records_the_numbers_used_not_the_requested_ones(standin, tmp_path):
    # 120 real images where 50,000 are asked for (as the digits' 1,437 are), and KID
    # features limited by each side's images
    net = classifiers.inception(path=standin[0])
    ev = make_evaluator(net, blobs(120), tmp_path, num_samples=100, num_real=50_000,
                        kid_samples=10_000)
    p = ev.evaluate(Replay(blobs(100, seed=1)), latent_dim=4)["protocol"]
    assert p["num_real"] == 120 == p["real"]["num_real"]
    assert p["kid_samples"] == {"real": 120, "generated": 100}
    assert p["requested"] == {"num_real": 50_000, "kid_samples": 10_000}
    assert p["num_samples"] == 100
    # a request below what is there is used as it is
    small = make_evaluator(net, blobs(120), tmp_path / "small", num_samples=100, num_real=80,
                           kid_samples=50)
    p = small.evaluate(Replay(blobs(100, seed=1)), latent_dim=4)["protocol"]
    assert p["num_real"] == 80 and p["kid_samples"] == {"real": 50, "generated": 50}
    assert p["requested"] == {"num_real": 80, "kid_samples": 50}


class CountingNetwork:
    """Wraps a network and counts the images it classifies."""

    def __init__(self, net, fingerprint=None):
        self.images = 0
        inner = net.fn

        def fn(images):
            self.images += int(images.shape[0])
            return inner(images)

        self.net = classifiers.FeatureNetwork(
            net.name, fingerprint or net.fingerprint, net.num_classes, net.feature_dim, fn,
            net.preprocessing)


def test_real_statistics_are_cached_reused_and_recomputed_on_mismatch(standin, tmp_path,
                                                                      caplog):
    base = classifiers.inception(path=standin[0])
    real = blobs(150)
    first = CountingNetwork(base)
    stats = make_evaluator(first.net, real, tmp_path).real_statistics()
    assert first.images == 150 and os.path.exists(stats["path"])
    mtime = os.path.getmtime(stats["path"])

    again = CountingNetwork(base)
    cached = make_evaluator(again.net, real, tmp_path).real_statistics()
    assert again.images == 0  # reused: the network never saw the real images
    np.testing.assert_array_equal(cached["covariance"], stats["covariance"])
    assert os.path.getmtime(stats["path"]) == mtime

    fewer = CountingNetwork(base)  # other inputs: another file, the first one kept
    changed = make_evaluator(fewer.net, real, tmp_path, num_real=100).real_statistics()
    assert fewer.images == 100 and changed["metadata"]["num_real"] == 100
    assert changed["path"] != stats["path"] and os.path.getmtime(stats["path"]) == mtime

    other_weights = CountingNetwork(base, fingerprint="another network")
    make_evaluator(other_weights.net, real, tmp_path).real_statistics()
    assert other_weights.images == 150

    shutil.copy(changed["path"], stats["path"])  # a file whose metadata is not its name's
    mismatched = CountingNetwork(base)
    with caplog.at_level(logging.WARNING, logger="tf_asgan"):
        make_evaluator(mismatched.net, real, tmp_path).real_statistics()
    assert mismatched.images == 150
    assert "num_real" in caplog.text and "recomputing" in caplog.text

    with open(stats["path"], "wb") as f:
        f.write(b"not an npz file")
    corrupt = CountingNetwork(base)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="tf_asgan"):
        make_evaluator(corrupt.net, real, tmp_path).real_statistics()
    assert corrupt.images == 150 and "unreadable" in caplog.text


def test_real_statistics_are_keyed_on_the_global_seed_the_shuffle_used(standin, tmp_path):
    base = classifiers.inception(path=standin[0])
    real = blobs(150)
    kid_orders, paths = [], []
    # seed 1 again at the end: its file is still there (each input has its own file)
    for seed, computes in ((1, True), (1, False), (2, True), (1, False)):
        tf.random.set_seed(seed)  # tf.data folds it into the subset's shuffle
        counting = CountingNetwork(base)
        stats = make_evaluator(counting.net, real, tmp_path).real_statistics()
        assert (counting.images == 150) == computes, seed
        assert stats["metadata"]["shuffle_seeds"][0] == seed
        kid_orders.append(stats["kid_features"])
        paths.append(stats["path"])
    np.testing.assert_array_equal(kid_orders[0], kid_orders[1])
    np.testing.assert_array_equal(kid_orders[0], kid_orders[3])
    assert not np.array_equal(kid_orders[0], kid_orders[2])  # another order: recomputed
    assert paths[0] == paths[1] == paths[3] != paths[2]


def test_progress_bar_and_batches(standin, tmp_path, capsys):
    net = CountingNetwork(classifiers.inception(path=standin[0]))
    real = blobs(130)
    ev = evaluator.Evaluator(net.net, "folder", 32,
                             evaluator.Protocol(num_samples=130, is_splits=2, batch_size=50),
                             cache_dir=str(tmp_path), source=array_source(real))
    ev.evaluate(Replay(blobs(130, seed=2)), latent_dim=4)
    out = capsys.readouterr().out
    assert "Generated: 130 images" in out and "130/130" in out
    assert net.images == 260


def test_protocol_validation():
    with pytest.raises(ValueError, match="num_samples"):
        evaluator.Protocol(num_samples=0).validate()
    with pytest.raises(ValueError, match="IS splits"):
        evaluator.Protocol(num_samples=5, is_splits=10).validate()


@pytest.mark.parametrize("scale,shift", [(127.5, 127.5), (1.1, 0.0)])
def test_a_generator_outside_minus_one_one_is_refused(standin, tmp_path, scale, shift):
    net = classifiers.inception(path=standin[0])
    real = blobs(100)
    ev = make_evaluator(net, real, tmp_path, num_samples=100)
    with pytest.raises(ValueError, match=r"images span .* takes images in \[-1, 1\]"):
        ev.evaluate(Replay(real * scale + shift), latent_dim=4)  # [0, 255]; up to 1.1


def test_a_generator_of_zero_one_images_is_warned_about(standin, tmp_path):
    net = classifiers.inception(path=standin[0])
    real = blobs(100)
    ev = make_evaluator(net, real, tmp_path, num_samples=100)
    with pytest.warns(UserWarning, match=r"images in \[0, 1\]"):
        ev.evaluate(Replay(real * 0.5 + 0.5), latent_dim=4)


def test_wrong_generator_resolution_is_reported(standin, tmp_path):
    net = classifiers.inception(path=standin[0])
    ev = make_evaluator(net, blobs(100), tmp_path)
    with pytest.raises(ValueError, match="32 px"):
        ev.evaluate(Replay(blobs(100, res=16)), latent_dim=4)


# -- the digit classifier --------------------------------------------------------------------


def test_digit_classifier_accuracy_and_cache():
    model, info = digit_network.digit_classifier()
    # on the 360 held-out digits; trained with one TensorFlow thread (the test runner's)
    # 97.5%, with the default two 99.4% (AMD EPYC): the weights depend on the threads
    assert info["test_accuracy"] >= 0.97
    start = time.time()
    again, info2 = digit_network.digit_classifier()  # from the cache, no training
    assert time.time() - start < 10 and info2["sha1"] == info["sha1"]
    assert digit_network.digit_accuracy(again) == pytest.approx(info["test_accuracy"])


def test_stacked_digit_network_counts_modes():
    net = digit_network.digits_network(stacked=True)
    assert (net.num_classes, net.feature_dim, net.count_modes) == (1000, 384, True)
    src = digits_lib.stacked_digits(32, "test", size=400, seed=1, with_labels=True)
    images, modes = (np.stack(a) for a in zip(*[(x.numpy(), y.numpy()) for x, y in src.images]))
    logits, _ = net(images)
    assert np.mean(np.argmax(logits, 1) == modes) >= 0.93  # one thread: 0.94; two: >= 0.95
    # Constructed: 6 chosen modes, each from 5 test digits that the single-digit network
    # classifies correctly (so this checks the joint class 100 R + 10 G + B).
    digits, labels = digit_network.digit_data("test")
    single = np.argmax(digit_network.digits_network()(np.repeat(digits, 3, -1))[0], 1)
    right = single == labels
    by_label = {k: digits[(labels == k) & right][..., 0] for k in range(10)}
    chosen = [(1, 2, 3), (4, 5, 6), (7, 8, 9), (0, 0, 0), (9, 9, 1), (3, 0, 7)]
    stack = np.stack([np.stack([by_label[k][i] for k in triple], -1)
                      for triple in chosen for i in range(5)])
    stats = metrics.mode_statistics(np.argmax(net(stack)[0], 1), 1000)
    assert stats["modes"] == 6
    assert stats["modes_kl"] == pytest.approx(np.log(1000 / 6), rel=1e-6)


def test_digits_network_is_the_classifier_on_the_channel_mean():
    net = digit_network.digits_network()
    digits, labels = digit_network.digit_data("test")
    rgb = np.repeat(digits, 3, axis=-1)
    logits, feats = net(rgb)
    assert (logits.shape, feats.shape) == ((360, 10), (360, 128))
    assert np.mean(np.argmax(logits, 1) == labels) >= 0.97  # as the classifier's test


# -- during training ---------------------------------------------------------------------------


@pytest.mark.slow
def test_training_evaluates_logs_and_keeps_the_best_checkpoint(tmp_path):
    config = TrainConfig(batch_size=16, epochs=2, steps_per_epoch=2, export=False,
                         eval_every_epochs=1, eval_num_samples=200, eval_network="digits",
                         eval_cache_dir=str(tmp_path / "stats"))
    workdir = str(tmp_path / "run")
    result = loop.train(config, workdir, verbose=0)
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        records = [json.loads(line) for line in f]
    assert [(r["epoch"], r["step"]) for r in records] == [(1, 2), (2, 4)]
    assert result["evaluation"]["epoch"] == 2
    fids = [r["metrics"]["fid"] for r in records]
    with open(os.path.join(workdir, "best.json")) as f:
        best = json.load(f)
    assert best["fid"] == min(fids) and best["step"] == records[int(np.argmin(fids))]["step"]
    assert tf.train.latest_checkpoint(os.path.join(workdir, "best")) == best["checkpoint"]
    # The best checkpoint holds that generator: it reproduces the recorded FID.
    g, _, _ = rundir.restore_generator(workdir, best["checkpoint"])
    again = builder.make_evaluator(config.eval, config.data, config.model.resolution,
                                   config.optim.seed).evaluate(g)
    assert again["metrics"]["fid"] == pytest.approx(best["fid"], rel=1e-4)
    # TensorBoard received eval/* scalars.
    tags = set()
    for name in os.listdir(os.path.join(workdir, "tensorboard")):
        for event in tf.compat.v1.train.summary_iterator(
                os.path.join(workdir, "tensorboard", name)):
            tags |= {v.tag for v in event.summary.value}
    assert {"eval/fid", "eval/is", "eval/kid", "eval/modes", "eval/precision", "eval/recall",
            "eval/density", "eval/coverage"} <= tags
    assert all(0 <= r["metrics"]["recall"] <= 1 for r in records)  # in metrics.jsonl
    # Extending the run evaluates the new epoch and keeps the recorded best.
    loop.train(config.replace(epochs=3), workdir, verbose=0)
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        assert [json.loads(line)["epoch"] for line in f] == [1, 2, 3]


def test_training_needing_a_missing_network_fails_before_any_step(tmp_path, no_hub_cache,
                                                                  monkeypatch):
    def offline(*args, **kwargs):
        raise OSError("Network is unreachable")

    monkeypatch.setattr(socket, "create_connection", offline)
    config = TrainConfig(batch_size=16, epochs=1, steps_per_epoch=1, eval_every_epochs=1,
                         eval_network="inception")
    with pytest.raises(classifiers.NetworkNotAvailableError, match="--inception_path"):
        loop.train(config, str(tmp_path / "run"), verbose=0)
    assert not os.path.exists(tmp_path / "run" / "checkpoints")
