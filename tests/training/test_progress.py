"""The progress line: the run's step and total, the ETA from the measured step time, plain
lines in a log file, a redrawn line on a terminal; and a finished run's final metrics."""

import io
import json
import os

import pytest

from helpers import generated_source, small_config
from tf_asgan import layout
from tf_asgan.config.train_config import TrainConfig
from tf_asgan.training import callbacks, loop, progress


@pytest.mark.parametrize("seconds, text", [
    (None, "?"), (0, "0s"), (42.4, "42s"), (59.6, "1m00s"), (185, "3m05s"),
    (3600, "1h00m"), (3725, "1h02m"), (90061, "25h01m")])
def test_durations_read_as_hours_minutes_seconds(seconds, text):
    assert progress.format_duration(seconds) == text


def test_the_line_shows_step_of_total_epoch_time_per_step_eta_and_values():
    line = progress.progress_line(120, 440, 6, 20, 0.3125,
                                  {"D_real": 0.75, "epsilon": 0.0039, "g_loss": 0.5,
                                   "d_loss": 1.23456, "note": "x"})
    # 320 steps left at 0.3125 s: 100 s
    assert line == ("step 120/440 (27%), epoch 6/20 | 0.312 s/step, ETA 1m40s | "
                    "d_loss 1.235, g_loss 0.5, D_real 0.75, epsilon 0.0039")
    assert progress.eta_seconds(120, 440, 0.3125) == 100.0
    assert progress.progress_line(440, 440, 20, 20, None, epoch_done=True) == (
        "step 440/440 (100%), epoch 20/20 done")


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


class Terminal(io.StringIO):
    def isatty(self):
        return True


def drive(callback, clock, epochs, steps, times, end_times=None):
    """Calls ``callback``'s hooks as ``fit`` would, the clock at ``times[step - 1]`` at
    the end of each step (and at ``end_times[epoch]`` at each epoch end, if given)."""
    callback.set_params({"steps": steps})
    callback.on_train_begin()
    for epoch in range(epochs):
        callback.on_epoch_begin(epoch)
        for batch in range(steps):
            clock.now = times[epoch * steps + batch]
            callback.on_train_batch_end(batch, {"d_loss": 0.5 + batch})
        if end_times:
            clock.now = end_times[epoch]
        callback.on_epoch_end(epoch, {"d_loss": 0.25})


def test_into_a_file_it_writes_plain_lines_with_the_eta_from_the_step_times():
    stream, clock = io.StringIO(), Clock()
    callback = progress.Progress(12, 3, stream=stream, every_seconds=3.0, clock=clock)
    assert not callback.terminal
    # step 1 ends at 1000 s (tracing: not timed), then 2 s a step
    times = [1000.0 + 2.0 * k for k in range(8)]
    drive(callback, clock, epochs=2, steps=4, times=times)
    text = stream.getvalue()
    assert "\x1b" not in text and "\r" not in text and "\b" not in text
    # the first batch, then at most one line per 3 s, and one at each epoch end (the
    # last batch of an epoch leaves its line to the epoch end)
    assert text.splitlines() == [
        "step 1/12 (8%), epoch 1/3 | d_loss 0.5",
        "step 3/12 (25%), epoch 1/3 | 2 s/step, ETA 18s | d_loss 2.5",
        "step 4/12 (33%), epoch 1/3 done | 2 s/step, ETA 16s | d_loss 0.25",
        "step 6/12 (50%), epoch 2/3 | 2 s/step, ETA 12s | d_loss 1.5",
        "step 8/12 (67%), epoch 2/3 done | 2 s/step, ETA 8s | d_loss 0.25"]


def test_the_eta_counts_the_time_between_steps_too():
    stream, clock = io.StringIO(), Clock()
    callback = progress.Progress(100, 10, stream=stream, every_seconds=1e9, clock=clock)
    # 10 steps of 1 s, then 21 s more before the epoch ends (an evaluation)
    drive(callback, clock, epochs=1, steps=10, times=[1000.0 + k for k in range(10)],
          end_times=[1030.0])
    # (1030 - 1000) s / 9 steps = 3.33 s a step; 90 steps left: 300 s
    assert stream.getvalue().splitlines() == [
        "step 1/100 (1%), epoch 1/10 | d_loss 0.5",
        "step 10/100 (10%), epoch 1/10 done | 3.33 s/step, ETA 5m00s | d_loss 0.25"]


def test_on_a_terminal_it_redraws_one_line_and_ends_it_at_the_epoch_end():
    stream, clock = Terminal(), Clock()
    callback = progress.Progress(4, 1, stream=stream, every_seconds=0.0, clock=clock)
    assert callback.terminal
    drive(callback, clock, epochs=1, steps=4, times=[1000.0, 1001.0, 1002.0, 1003.0])
    drawn = ["step 1/4 (25%), epoch 1/1 | d_loss 0.5",
             "step 2/4 (50%), epoch 1/1 | 1 s/step, ETA 2s | d_loss 1.5",
             "step 3/4 (75%), epoch 1/1 | 1 s/step, ETA 1s | d_loss 2.5",
             "step 4/4 (100%), epoch 1/1 done | 1 s/step, ETA 0s | d_loss 0.25"]
    pads = [0] + [max(0, len(a) - len(b)) for a, b in zip(drawn, drawn[1:])]
    assert stream.getvalue() == "".join(
        "\r" + line + " " * pad for line, pad in zip(drawn, pads)) + "\n"
    assert "\x1b" not in stream.getvalue()


def test_auto_verbosity_uses_the_line_and_silences_keras_others_pass_through():
    shown, verbose = progress.for_verbosity("auto", 10, 2)
    assert verbose == 0 and isinstance(shown[0], progress.Progress)
    assert shown[0].total_steps == 10 and shown[0].epochs == 2
    assert progress.for_verbosity(0, 10, 2) == ([], 0)
    assert progress.for_verbosity(1, 10, 2) == ([], 1)


@pytest.mark.slow
def test_a_run_into_a_log_file_shows_its_total_steps_without_escapes(tmp_path, capsys):
    loop.train(small_config(epochs=2, export=False), str(tmp_path), source=generated_source())
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\r" not in out and "\b" not in out
    lines = [line for line in out.splitlines() if line.startswith("step ")]
    assert lines[-1].startswith("step 6/6 (100%), epoch 2/2 done | ")
    assert "step 3/6 (50%), epoch 1/2 done | " in out and "ETA " in lines[-1]


# -- the final metrics of a finished run ---------------------------------------------------------


def test_the_last_complete_evaluation_record_is_read_back(tmp_path):
    path = str(tmp_path / layout.METRICS)
    assert callbacks.last_evaluation(path) is None
    first = {"epoch": 1, "step": 3, "metrics": {"fid": 50.0}}
    last = {"epoch": 2, "step": 6, "metrics": {"fid": 40.5}}
    with open(path, "w") as f:
        f.write(json.dumps(first) + "\n" + json.dumps(last) + "\n" + '{"epoch": 3, "st')
    assert callbacks.last_evaluation(path) == last


@pytest.mark.slow
def test_a_finished_run_invoked_again_returns_its_final_evaluation(tmp_path):
    config = TrainConfig(batch_size=16, epochs=2, steps_per_epoch=2, export=False,
                         eval_every_epochs=1, eval_num_samples=200, eval_network="digits",
                         eval_cache_dir=str(tmp_path / "stats"), width=0.125)
    workdir = str(tmp_path / "run")
    first = loop.train(config, workdir, verbose=0)
    assert first["evaluation"]["epoch"] == 2
    again = loop.train(config, workdir, verbose=0)  # nothing left to train
    assert again["step"] == 4
    assert again["evaluation"] == first["evaluation"]
    with open(os.path.join(workdir, layout.METRICS)) as f:
        assert len(f.readlines()) == 2  # not evaluated again
