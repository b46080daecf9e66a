"""What a researcher watches: the D-wins criterion per loss, its in-graph monitor and the
one warning, and the grid of real training images."""

import logging
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from helpers import LATENT, deterministic_pair, generated_source, small_config
from tf_asgan import ASGAN, layout, tracking
from tf_asgan.training import builder, loop, monitors
from tf_asgan.utils import images

# -- the criterion, per loss -------------------------------------------------------------------


@pytest.mark.parametrize("loss, real, fake, right", [
    # sigmoid cross-entropy: right when D(G(z)) < 1/2, i.e. logit < 0
    ("non_saturating", [5.0], [-3.0, -0.01, 0.0, 0.2], [True, True, False, False]),
    ("minimax", [5.0], [-3.0, -0.01, 0.0, 0.2], [True, True, False, False]),
    # hinge: beyond the margin, where relu(1 + d) = 0
    ("hinge", [5.0], [-3.0, -1.0, -0.99, -0.01], [True, True, False, False]),
    # Wasserstein (ours): below every real of the batch
    ("wasserstein", [0.2, 1.0, 3.0], [0.1, 0.2, -5.0, 0.19, 2.0],
     [True, False, True, True, False]),
])
def test_a_fake_classified_right_by_the_rule_of_each_loss(loss, real, fake, right):
    got = tracking.fakes_classified_right(loss, tf.constant(real), tf.constant(fake))
    assert got.numpy().tolist() == right
    # the sigmoid losses' rule is D's probability below one half
    if loss in ("non_saturating", "minimax"):
        assert right == (1 / (1 + np.exp(-np.array(fake))) < 0.5).tolist()


def test_a_loss_without_a_rule_is_not_watched():
    assert tracking.fakes_classified_right("custom", tf.ones([2]), tf.ones([2])) is None
    monitor = tracking.DWinsMonitor("custom", steps=1)
    monitor.start_step()
    monitor.observe(tf.ones([2]), -tf.ones([2]))
    monitor.end_step(tf.constant(0, tf.int64))
    assert not monitor.watched and monitor.reached_at() == 0


def run_steps(monitor, steps, first=0):
    """Feeds ``steps`` (0-based from ``first``): per step a list of (real_logits,
    fake_logits), one per D update, in a traced train step."""
    def one(step, pairs):
        monitor.start_step()
        for real, fake in pairs:
            monitor.observe(real, fake)
        monitor.end_step(step)

    for i, pairs in enumerate(steps, start=first):
        tf.function(one)(tf.constant(i, tf.int64),
                         [(tf.constant(r, tf.float32), tf.constant(f, tf.float32))
                          for r, f in pairs])


def fakes(n_right, n):
    """Non-saturating fake logits: ``n_right`` of ``n`` below 0."""
    return [-1.0] * n_right + [1.0] * (n - n_right)


def test_the_monitor_records_the_step_that_completes_the_first_stretch_of_wins():
    monitor = tracking.DWinsMonitor("non_saturating", fraction=0.99, steps=3)
    win, lose = [([1.0], fakes(100, 100))], [([1.0], fakes(99, 100))]  # 99%: not over 99%
    # steps 1-7 (1-based): W W L W W W W -> the stretch of three ends at step 6
    run_steps(monitor, [win, win, lose, win, win])
    assert monitor.reached_at() == 0
    run_steps(monitor, [win, win], first=5)
    assert monitor.reached_at() == 6
    assert int(monitor.streak.numpy()) == 4  # the first stretch is kept, not moved


def test_a_step_counts_the_fakes_of_all_its_d_updates():
    # d_steps = 2: 100 of 100 and 99 of 100 -> 199 of 200 = 99.5% > 99%: won
    monitor = tracking.DWinsMonitor("hinge", fraction=0.99, steps=1)
    hinge = lambda k, n: [-2.0] * k + [0.0] * (n - k)  # noqa: E731
    run_steps(monitor, [[([1.0], hinge(100, 100)), ([1.0], hinge(99, 100))]])
    assert monitor.reached_at() == 1
    # 100 of 100 and 98 of 100 -> 99% exactly: not won
    monitor = tracking.DWinsMonitor("hinge", fraction=0.99, steps=1)
    run_steps(monitor, [[([1.0], hinge(100, 100)), ([1.0], hinge(98, 100))]])
    assert monitor.reached_at() == 0


def test_the_monitor_counts_the_fakes_of_every_replica(mirrored):
    with mirrored.scope():
        monitor = tracking.DWinsMonitor("wasserstein", fraction=0.75, steps=1)

    def replica_step():
        replica = tf.distribute.get_replica_context().replica_id_in_sync_group
        # replica 0: 4 of 4 fakes below the reals; replica 1: 1 of 4 -> 5 of 8, not > 75%
        fake = tf.where(tf.equal(replica, 0), tf.constant([-1.0] * 4),
                        tf.constant([-1.0, 5.0, 5.0, 5.0]))
        monitor.start_step()
        monitor.observe(tf.constant([0.0, 1.0]), fake)
        monitor.end_step(tf.constant(0, tf.int64))

    tf.function(lambda: mirrored.run(replica_step))()
    assert monitor.reached_at() == 0  # replica 0 alone (4 of 4) would have won


def test_the_train_step_feeds_the_monitor_with_ds_logits():
    def gan_with_bias(bias):
        g, d = deterministic_pair()
        d.layers[-1].bias.assign([bias])  # every logit far on one side
        gan = ASGAN(g, d, latent_dim=LATENT, adversarial=False, seed=0)
        gan.compile(d_optimizer=keras.optimizers.SGD(0.0),
                    g_optimizer=keras.optimizers.SGD(0.0))
        gan.d_wins_monitor = tracking.DWinsMonitor("non_saturating", steps=3)
        x = np.zeros((20, 8, 8, 3), np.float32)
        gan.fit(tf.data.Dataset.from_tensor_slices(x).batch(4), epochs=1, verbose=0)
        return gan.d_wins_monitor.reached_at()

    assert gan_with_bias(-100.0) == 3  # D calls every fake fake from step 1 on
    assert gan_with_bias(100.0) == 0  # ... or none


# -- the warning -------------------------------------------------------------------------------


class StubMonitor:
    def __init__(self, reached):
        self.loss, self.fraction, self.steps, self.watched = "hinge", 0.99, 300, True
        self.reached, self.reads = reached, []

    def reached_at(self):
        self.reads.append(self.model_step)
        return self.reached if self.model_step >= self.reached else 0


class StubModel:
    def __init__(self, monitor):
        self.d_wins_monitor = monitor


def test_the_warning_reads_the_monitor_every_n_steps_and_warns_once(caplog):
    monitor = StubMonitor(reached=7)
    callback = monitors.DWinsWarning(every_steps=5)
    callback.set_model(StubModel(monitor))
    callback.set_params({"steps": 20})
    callback.on_train_begin()
    callback.on_epoch_begin(0)
    with caplog.at_level(logging.WARNING, logger="tf_asgan"):
        for batch in range(20):
            monitor.model_step = batch + 1
            callback.on_train_batch_end(batch)
    assert monitor.reads == [5, 10]  # read at steps 5 and 10; none once it warned
    assert callback.warned_at == 7
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert warnings[0] == monitors.d_wins_message("hinge", 7, 0.99, 300)
    assert "300 steps up to step 7" in warnings[0] and "more than 99%" in warnings[0]
    assert "logit <= -1" in warnings[0] and "--lr_d" in warnings[0]


def test_the_minimax_warning_names_the_non_saturating_loss_first():
    text = monitors.d_wins_message("minimax", 400)
    assert "D(G(z)) < 0.5" in text
    assert text.index("--loss=non_saturating") < text.index("--lr_d")
    assert "--loss=non_saturating" not in monitors.d_wins_message("non_saturating", 400)


# -- the grid of real images -------------------------------------------------------------------


def test_the_real_grid_is_the_first_images_of_the_stream_laid_out_as_sample_grids(tmp_path):
    x = np.random.default_rng(0).uniform(-1, 1, (100, 6, 6, 3)).astype(np.float32)
    labels = np.arange(100)
    stream = tf.data.Dataset.from_tensor_slices((x, labels)).batch(24)
    path = str(tmp_path / "samples" / "real.png")
    assert monitors.write_real_grid(stream, path, n=64, columns=8) == path
    with Image.open(path) as im:
        written = np.asarray(im)
    np.testing.assert_array_equal(written, images.grid(x[:64], 8))
    # cell (row 2, column 3) is image 19, in uint8 as the sample grids convert it
    expected = np.uint8(np.clip((x[19] + 1) * 127.5 + 0.5, 0, 255))
    np.testing.assert_array_equal(written[2 + 2 * 8:2 + 2 * 8 + 6, 2 + 3 * 8:2 + 3 * 8 + 6],
                                  expected)
    # kept as it is once written
    other = tf.data.Dataset.from_tensor_slices(-x).batch(24)
    assert monitors.write_real_grid(other, path) is None
    with Image.open(path) as im:
        np.testing.assert_array_equal(np.asarray(im), written)


def test_a_real_grid_of_grey_images_is_grey_and_of_a_short_stream_holds_all(tmp_path):
    x = np.linspace(-1, 1, 5 * 4 * 4).reshape(5, 4, 4, 1).astype(np.float32)
    path = monitors.write_real_grid(tf.data.Dataset.from_tensor_slices(x).batch(2),
                                    str(tmp_path / "real.png"))
    with Image.open(path) as im:
        assert im.mode == "L"  # one channel, like the epochs' sample grids of grey data
        written = np.asarray(im)
    np.testing.assert_array_equal(written, images.grid(x, 8)[..., 0])


@pytest.mark.slow
def test_a_run_writes_the_real_images_it_is_fed_first_and_keeps_them(tmp_path):
    source = generated_source(40)
    config = small_config(epochs=1, export=False)
    loop.train(config, str(tmp_path), verbose=0, source=source)
    path = tmp_path / layout.SAMPLES / layout.REAL_GRID
    with Image.open(path) as im:
        written = np.asarray(im)
    # epoch 1 feeds 3 batches of 8: 24 of the source's images, in 3 rows of 8
    pool = images.to_uint8(np.stack(list(source.images.as_numpy_iterator())))
    assert written.shape == (2 + 3 * 34, 2 + 8 * 34, 3)
    cells = [written[2 + r * 34:r * 34 + 34, 2 + c * 34:c * 34 + 34]
             for r in range(3) for c in range(8)]
    found = [int(np.flatnonzero((pool == cell).all(axis=(1, 2, 3)))[0]) for cell in cells]
    assert len(set(found)) == 24  # 24 distinct training images
    assert found != sorted(found)  # shuffled as the training stream is
    before = os.stat(path).st_mtime_ns
    loop.train(small_config(epochs=2, export=False), str(tmp_path), verbose=0, source=source)
    assert os.stat(path).st_mtime_ns == before  # a resumed run keeps it
    assert builder.SAMPLE_GRID_SIZE == 64
