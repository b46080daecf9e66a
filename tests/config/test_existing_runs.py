"""Continuing a run with train.py (issue 23, items 10 and 11): flags not given keep the
run's recorded values; flags.txt repeats the run; flagfiles work from any directory."""

import json
import os

import pytest
from absl import flags

from helpers import REPO, load_script, run_script
from tf_asgan import errors
from tf_asgan.config import flagfiles, train_config
from tf_asgan.config.train_config import TrainConfig
from tf_asgan.training import rundir

train_script = load_script("train", "script_train_existing_runs")


def parse(*args):
    """The parsed flags of ``train.py args`` as train.py reads its command line, from
    the current directory."""
    values = flags.FlagValues()
    train_script.define_flags(values)
    values(train_script.command_line(["train.py", *args]))
    return values


def config_of(*args):
    """``(config, workdir)`` as train.py's ``main`` resolves them."""
    values = parse(*args)
    recorded = train_script.recorded_config(values.workdir, values.existing_run)
    return train_script.config_from_flags(values, recorded), values.workdir


# The demo as it was recorded (flags/demo.flags: evaluation every 5 epochs), at 20 epochs.
DEMO = TrainConfig(epochs=20, eval_every_epochs=5, eval_num_samples=5000, eval_network="digits",
                   checkpoint_every_steps=0)


# -- item 10: a flag not given keeps the run's value ----------------------------------------


def test_a_larger_epoch_count_alone_keeps_every_recorded_value(tmp_path):
    train_config.save(DEMO, str(tmp_path))
    config, _ = config_of(f"--workdir={tmp_path}", "--epochs=21")
    assert config == DEMO.replace(epochs=21)
    assert config.eval.eval_every_epochs == 5  # was silently 0 (the global default)


def test_flags_given_on_the_command_line_or_in_a_flagfile_given_there_win(tmp_path):
    train_config.save(DEMO.replace(batch_size=16), str(tmp_path))
    flagfile = tmp_path / "more.flags"
    flagfile.write_text("# two settings\n--eval_every_epochs=2\n--nocache\n")
    config, _ = config_of(f"--workdir={tmp_path}", f"--flagfile={flagfile}", "--epochs=30")
    assert config == DEMO.replace(batch_size=16, epochs=30, eval_every_epochs=2, cache=False)


def test_a_changed_experiment_is_still_refused_by_the_given_flags_alone(tmp_path):
    train_config.save(DEMO, str(tmp_path))
    config, _ = config_of(f"--workdir={tmp_path}", "--lr_d=4e-4")
    assert config.differences(DEMO) == {"lr_d": (2e-4, 4e-4)}  # only what was given


@pytest.mark.parametrize("policy", ["new", "overwrite"])
def test_new_and_overwrite_start_from_the_flags_given_and_the_defaults(tmp_path, policy):
    train_config.save(DEMO.replace(batch_size=16), str(tmp_path))
    config, _ = config_of(f"--workdir={tmp_path}", "--epochs=21", f"--existing_run={policy}")
    assert config == TrainConfig(epochs=21)


def test_a_workdir_without_a_run_starts_from_the_defaults(tmp_path):
    config, _ = config_of(f"--workdir={tmp_path / 'fresh'}", "--epochs=3")
    assert config == TrainConfig(epochs=3)


def test_an_unreadable_config_json_is_our_one_line_error(tmp_path):
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(errors.InputError, match="config.json cannot be read"):
        config_of(f"--workdir={tmp_path}", "--epochs=3")


def test_saving_the_same_configuration_leaves_the_files_untouched(tmp_path):
    train_config.save(DEMO, str(tmp_path))
    stamps = {p: os.stat(tmp_path / p).st_mtime_ns for p in ("config.json", "flags.txt")}
    os.utime(tmp_path / "config.json", ns=(1, 1))
    os.utime(tmp_path / "flags.txt", ns=(1, 1))
    train_config.save(DEMO, str(tmp_path))
    assert all(os.stat(tmp_path / p).st_mtime_ns == 1 for p in stamps)
    train_config.save(DEMO.replace(epochs=30), str(tmp_path))
    assert json.loads((tmp_path / "config.json").read_text())["epochs"] == 30


def test_a_rerun_that_trains_no_step_changes_no_record(tmp_path):
    run = rundir.RunDir(str(tmp_path))
    run.save_config(DEMO.replace(epochs=60), trains=False)  # no record yet: written
    before = {p: (tmp_path / p).read_bytes() for p in ("config.json", "flags.txt")}
    run.save_config(DEMO.replace(epochs=10), trains=False)  # a finished run, --epochs=10
    assert {p: (tmp_path / p).read_bytes() for p in before} == before
    assert train_config.load(str(tmp_path)).optim.epochs == 60
    run.save_config(DEMO.replace(epochs=70), trains=True)  # extended: recorded
    assert train_config.load(str(tmp_path)).optim.epochs == 70


# -- item 11: flags.txt repeats the run; flagfiles from any directory -------------------------


def test_flags_txt_holds_the_workdir_and_repeats_the_run_from_anywhere(tmp_path, monkeypatch):
    run = tmp_path / "runs" / "demo"
    run.mkdir(parents=True)
    train_config.save(DEMO, str(run))
    lines = (run / "flags.txt").read_text().splitlines()
    assert lines[-1] == f"--workdir={run}"
    monkeypatch.chdir(tmp_path / "runs")  # elsewhere: the workdir is absolute
    config, workdir = config_of(f"--flagfile={run}/flags.txt")
    assert (config, workdir) == (DEMO, str(run))


@pytest.mark.parametrize("order", ["before", "after"])
def test_a_workdir_on_the_command_line_wins_over_the_flagfiles(tmp_path, order):
    (tmp_path / "a").mkdir()
    train_config.save(DEMO, str(tmp_path / "a"))
    args = [f"--flagfile={tmp_path}/a/flags.txt"]
    other = f"--workdir={tmp_path}/b"
    values = parse(*([other, *args] if order == "before" else [*args, other]))
    assert values.workdir == f"{tmp_path}/b"
    # The same for any flag: --epochs before the flagfile that sets it.
    assert parse("--epochs=7", f"--flagfile={tmp_path}/a/flags.txt").epochs == 7


def _settings(values):
    return {name: values[name].value for name in values}


@pytest.mark.parametrize("path", ["flags/demo.flags", "flags/table1/cifar10_dcgan_as.flags",
                                  "flags/siblings/cifar10_dcgan_as_dat_fake.flags"])
def test_a_flagfile_means_the_same_from_any_directory(tmp_path, monkeypatch, path):
    monkeypatch.chdir(REPO)
    at_root = _settings(parse(f"--flagfile={path}"))
    monkeypatch.chdir(tmp_path)  # plain absl: "Unable to open flagfile: flags/defaults.flags"
    assert _settings(parse(f"--flagfile={path}")) == at_root
    assert at_root["workdir"] != "runs/demo" or path == "flags/demo.flags"


def test_the_current_directory_comes_before_the_repository(tmp_path, monkeypatch):
    (tmp_path / "flags").mkdir()
    (tmp_path / "flags" / "demo.flags").write_text("--flagfile=flags/defaults.flags\n"
                                                  "--epochs=3\n")
    monkeypatch.chdir(tmp_path)
    values = parse("--flagfile=flags/demo.flags")  # ours, which includes the repository's
    assert (values.epochs, values.eval_network, values.eval_every_epochs) == (3, "inception", 10)


def test_expand_reads_flagfiles_as_absl_does(tmp_path):
    inner = tmp_path / "inner.flags"
    inner.write_text("# comment\n// comment too\n\n  --epochs=4  \n--seed=2\n")
    outer = tmp_path / "outer.flags"
    outer.write_text(f"--seed=1\n--flagfile={inner}\n--batch_size=16\n")
    argv = ["train.py", "--lr_d=1e-3", "--flagfile", str(outer), "--", "--seed=9"]
    assert flagfiles.expand(argv, REPO) == [
        "train.py", "--seed=1", "--epochs=4", "--seed=2", "--batch_size=16", "--lr_d=1e-3",
        "--", "--seed=9"]
    absl_values = flags.FlagValues()
    train_script.define_flags(absl_values)
    absl_values(["train.py", f"--flagfile={outer}"])  # absl's own expansion agrees
    assert (absl_values.seed, absl_values.epochs, absl_values.batch_size) == (2, 4, 16)


def test_flagfile_errors_are_ours(tmp_path):
    with pytest.raises(errors.MissingError, match="nowhere.flags does not exist in the "
                       "current directory .* nor in the repository"):
        flagfiles.expand(["train.py", "--flagfile=nowhere.flags"], REPO)
    loop_file = tmp_path / "loop.flags"
    loop_file.write_text(f"--flagfile={loop_file}\n")
    with pytest.raises(errors.InputError, match="includes itself"):
        flagfiles.expand(["train.py", f"--flagfile={loop_file}"], REPO)
    with pytest.raises(errors.InputError, match="needs a path"):
        flagfiles.expand(["train.py", "--flagfile"], REPO)


# -- the script, as a user runs it (from outside the repository) --------------------------


@pytest.mark.slow
def test_train_py_continues_a_run_from_anywhere_and_a_noop_rerun_keeps_its_record(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    run = tmp_path / "run"
    small = ["--epochs=1", "--steps_per_epoch=2", "--batch_size=8", "--eval_every_epochs=0",
             "--noexport", "--log_every_steps=1", "--width=0.125"]
    proc = run_script("train.py", "--flagfile=flags/demo.flags", f"--workdir={run}", *small,
                      cwd=str(elsewhere))
    assert proc.returncode == 0 and "Done: 2 steps" in proc.stdout, proc.stderr[-3000:]
    # Only a larger --epochs: every other setting is the run's (batch 8 is not the
    # default 64, which used to refuse the run as a different experiment).
    proc = run_script("train.py", f"--workdir={run}", "--epochs=2", cwd=str(elsewhere))
    assert proc.returncode == 0 and "Done: 4 steps" in proc.stdout, proc.stderr[-3000:]
    recorded = json.loads((run / "config.json").read_text())
    assert (recorded["epochs"], recorded["batch_size"], recorded["width"],
            recorded["eval_network"]) == (2, 8, 0.125, "digits")
    assert (run / "flags.txt").read_text().splitlines()[-1] == f"--workdir={run}"
    # A no-op rerun with a smaller --epochs, through flags.txt from another directory.
    before = {p: ((run / p).read_bytes(), os.stat(run / p).st_mtime_ns)
              for p in ("config.json", "flags.txt")}
    proc = run_script("train.py", f"--flagfile={run}/flags.txt", "--epochs=1", cwd=str(tmp_path))
    assert proc.returncode == 0 and "Done: 4 steps" in proc.stdout, proc.stderr[-3000:]
    assert {p: ((run / p).read_bytes(), os.stat(run / p).st_mtime_ns) for p in before} == before
