"""A run resumed where ``--precision=auto`` resolves to another precision than when it
started (trained where auto means mixed_float16, extended where it means float32, and
the reverse) continues in the precision it started in.

What auto resolves to is simulated by replacing
:func:`tf_asgan.utils.distribute.resolve_precision` (the one place that decides it):
the resolution of the other values is unchanged.
"""

import pytest

from helpers import generated_source, small_config
from tf_asgan.training import builder, checkpoints, loop, rundir
from tf_asgan.utils import distribute

REAL_RESOLVE = distribute.resolve_precision


def auto_means(monkeypatch, precision):
    """Makes ``--precision=auto`` resolve to ``precision`` (as on another machine)."""
    monkeypatch.setattr(distribute, "resolve_precision",
                        lambda name="auto": precision if name == "auto" else REAL_RESOLVE(name))


def tiny(**changes):
    return small_config(width=0.125, export=False, **changes)


def train(config, workdir):
    return loop.train(config, str(workdir), verbose=0, source=generated_source())


@pytest.mark.slow
@pytest.mark.parametrize("started, extended", [("mixed_float16", "float32"),
                                               ("float32", "mixed_float16")])
def test_a_run_extended_where_auto_means_another_precision_continues_in_its_own(
        tmp_path, monkeypatch, started, extended):
    # The reference: the whole run where auto means what it meant when the run started.
    auto_means(monkeypatch, started)
    uninterrupted = train(tiny(epochs=2), tmp_path / "reference")

    train(tiny(epochs=1), tmp_path / "run")
    auto_means(monkeypatch, extended)
    result = train(tiny(epochs=2), tmp_path / "run")  # raised InvalidArgumentError before
    assert result["step"] == 6
    # It trained on in the precision it started in: its new checkpoints have the
    # variables of that precision, its weights are those of the uninterrupted run.
    assert checkpoints.loss_scaled(str(tmp_path / "run" / "checkpoints")) is (
        started == "mixed_float16")
    assert result["all_weights_sha1"] == uninterrupted["all_weights_sha1"]
    assert rundir.run_precision(str(tmp_path / "run")) == started
    assert '"precision": "auto"' in (tmp_path / "run" / "config.json").read_text()

    # Naming the precision the run trains in is the same experiment (it was refused as
    # a different one); its record keeps auto. Naming another one is refused.
    result = train(tiny(epochs=3, precision=started), tmp_path / "run")
    assert result["step"] == 9
    assert '"precision": "auto"' in (tmp_path / "run" / "config.json").read_text()
    with pytest.raises(rundir.ConfigMismatchError, match=f"precision: 'auto' -> '{extended}'"):
        train(tiny(epochs=4, precision=extended), tmp_path / "run")


@pytest.mark.slow
def test_auto_on_a_run_of_an_explicit_precision_keeps_that_precision_and_its_record(
        tmp_path, monkeypatch):
    # mixed_bfloat16 has the variables of float32: only the record tells them apart.
    auto_means(monkeypatch, "float32")
    train(tiny(epochs=1, precision="mixed_bfloat16"), tmp_path)
    run = rundir.RunDir(str(tmp_path))
    config, precision = run.precision(tiny(epochs=2))
    assert (precision, config.run.precision) == ("mixed_bfloat16", "mixed_bfloat16")
    assert train(tiny(epochs=2), tmp_path)["step"] == 6
    assert '"precision": "mixed_bfloat16"' in (tmp_path / "config.json").read_text()


@pytest.mark.slow
def test_a_mixed_float16_run_is_read_back_where_auto_means_float32(tmp_path, monkeypatch):
    # analyze.py and the study read the whole model (optimizers included) back.
    auto_means(monkeypatch, "mixed_float16")
    trained = loop.train(tiny(epochs=1), str(tmp_path), verbose=0, source=generated_source())
    auto_means(monkeypatch, "float32")
    gan, _, path = rundir.restore_model(str(tmp_path))  # raised InvalidArgumentError before
    assert path.endswith("ckpt-3")
    assert builder.weights_digest(gan, trainable_only=False) == trained["all_weights_sha1"]


def test_a_run_without_checkpoints_has_no_precision_yet(tmp_path, monkeypatch):
    assert rundir.run_precision(str(tmp_path)) is None  # no run at all
    auto_means(monkeypatch, "mixed_float16")
    run = rundir.RunDir(str(tmp_path))
    config, precision = run.precision(tiny())
    assert (precision, config.run.precision) == ("mixed_float16", "auto")
