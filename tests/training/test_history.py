"""history.csv: 1-based epochs like the sample grids and metrics, no empty val_* columns,
and the files earlier versions wrote (Keras's CSVLogger) converted when a run resumes."""

import csv

import keras
import numpy as np
import pytest

from helpers import generated_source, small_config
from tf_asgan.training import history, loop


def rows_of(path):
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        return reader.fieldnames, list(reader)


class StepValues(keras.callbacks.Callback):
    """Each step's own logged values (not the running means Keras passes)."""

    def __init__(self):
        super().__init__()
        self.values = []

    def on_train_batch_end(self, batch, logs=None):
        self.values.append({k: float(v) for k, v in self.model.step_logs().items()})


@pytest.mark.slow
def test_history_rows_are_numbered_like_the_grids_and_hold_the_epoch_means(tmp_path):
    steps = StepValues()
    loop.train(small_config(width=0.125, export=False), str(tmp_path), verbose=0,
               source=generated_source(), callbacks=[steps])
    header, rows = rows_of(tmp_path / "history.csv")
    assert header[:3] == ["epoch", "step", "steps_in_mean"]
    assert not [name for name in header if name.startswith("val_")]
    assert all(value != "" for row in rows for value in row.values())
    assert [(r["epoch"], r["step"], r["steps_in_mean"]) for r in rows] == [
        ("1", "3", "3"), ("2", "6", "3")]
    assert sorted(p.name for p in (tmp_path / "samples").glob("epoch_*")) == [
        "epoch_0001.png", "epoch_0002.png"]
    for epoch, row in enumerate(rows):
        own = steps.values[3 * epoch:3 * epoch + 3]
        for name in ("d_loss", "g_loss", "D_real", "D_fake"):
            assert float(row[name]) == pytest.approx(np.mean([v[name] for v in own]),
                                                     rel=1e-5)


def keras_csv(path, epoch_logs):
    """``history.csv`` as earlier versions wrote it: Keras's own CSVLogger."""
    logger = keras.callbacks.CSVLogger(str(path), append=True)
    logger.on_train_begin()
    for epoch, logs in enumerate(epoch_logs):
        logger.on_epoch_end(epoch, logs)
    logger.on_train_end()


@pytest.mark.slow
def test_a_run_resumed_over_an_old_history_converts_it_and_appends(tmp_path):
    config = small_config(width=0.125, export=False)
    loop.train(config.replace(epochs=1), str(tmp_path), verbose=0, source=generated_source())
    _, (first,) = rows_of(tmp_path / "history.csv")
    logs = {k: float(v) for k, v in first.items() if k not in history.FIRST}
    (tmp_path / "history.csv").unlink()
    keras_csv(tmp_path / "history.csv", [logs])  # epoch 0, with val_* columns of NA
    header, _ = rows_of(tmp_path / "history.csv")
    assert "val_d_loss" in header and "step" not in header

    loop.train(config, str(tmp_path), verbose=0, source=generated_source())
    header, rows = rows_of(tmp_path / "history.csv")
    assert not [name for name in header if name.startswith("val_")]
    assert [(r["epoch"], r["step"], r["steps_in_mean"]) for r in rows] == [
        ("1", "3", ""), ("2", "6", "3")]  # how many steps the old row covers is unknown
    assert {k: float(rows[0][k]) for k in logs} == logs  # its values, unchanged
    assert set(rows[0]) == set(rows[1])


def test_reading_an_old_history_drops_an_unfinished_line_and_unused_val_columns(tmp_path):
    path = tmp_path / "history.csv"
    keras_csv(path, [{"d_loss": 1.5, "g_loss": 0.25}, {"d_loss": 1.25, "g_loss": 0.5}])
    with open(path, "a") as f:
        f.write("2,1.0,0.7")  # a kill mid-write
    rows = history.read(str(path), steps_per_epoch=10)
    assert rows == [
        {"epoch": "1", "step": "10", "steps_in_mean": "", "d_loss": "1.5", "g_loss": "0.25"},
        {"epoch": "2", "step": "20", "steps_in_mean": "", "d_loss": "1.25", "g_loss": "0.5"}]
    history.write(str(path), rows)
    assert path.read_text().splitlines() == [
        "epoch,step,steps_in_mean,d_loss,g_loss", "1,10,,1.5,0.25", "2,20,,1.25,0.5"]
    assert history.read(str(path)) == rows  # today's format is read as it is
