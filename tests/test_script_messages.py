"""What the scripts say (issue 23, items 8 and 13): each entry point names its own flags,
checks its inputs before its outputs, and prints our errors as one line."""

import ast
import os

import pytest
import tensorflow as tf

from helpers import LATENT, REPO, run_script, tiny_dcgan
from tf_asgan import errors, export
from tf_asgan.config import train_config
from tf_asgan.config.train_config import TrainConfig
from tf_asgan.evaluation import classifiers
from tf_asgan.utils import distribute


def _help(name):
    (field,) = [f for f in train_config.flag_fields() if f.name == name]
    return field.metadata["help"]


def test_the_jit_compile_help_says_what_auto_does_on_a_cpu():
    one_replica = tf.distribute.get_strategy()
    assert one_replica.num_replicas_in_sync == 1
    if not tf.config.list_logical_devices("GPU"):  # this machine: XLA off under auto
        assert distribute.resolve_jit("auto", one_replica) is False
    text = _help("jit_compile")
    assert "off on a CPU" in text and "when a GPU is visible" in text


@pytest.mark.parametrize("network_flag,other", [("--eval_network", "--network="),
                                                ("--network", "--eval_network=")])
def test_the_inception_message_names_the_callers_network_flag(tmp_path, network_flag, other):
    with pytest.raises(classifiers.NetworkNotAvailableError) as err:
        classifiers.network_for("inception", "cifar10", str(tmp_path),
                                network_flag=network_flag)
    assert f"{network_flag}=digits" in str(err.value) and other not in str(err.value)


def test_a_value_outside_its_choices_is_our_error():
    with pytest.raises(errors.InputError, match="Unknown strategy 'tpu'"):
        TrainConfig(strategy="tpu").validate()


def _one_line_error(proc, *words):
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    lines = [line for line in proc.stderr.splitlines() if all(w in line for w in words)]
    assert lines, proc.stderr[-3000:]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A tiny exported generator that records a CIFAR-10 run, and its sample folder."""
    root = tmp_path_factory.mktemp("export")
    g, _ = tiny_dcgan()
    path = str(root / "generator")
    export.export_generator(g, path, latent_dim=LATENT,
                            metadata={"dataset": "cifar10", "resolution": 32})
    return path


@pytest.mark.slow
def test_evaluate_py_names_its_own_network_flag(exported, tmp_path):
    proc = run_script("evaluate.py", f"--generator={exported}", "--network=inception",
                      f"--inception_path={tmp_path}", f"--output={tmp_path}/eval.json")
    _one_line_error(proc, "evaluate.py:", "--network=digits")
    assert "--eval_network" not in proc.stderr


@pytest.mark.slow
def test_sample_py_names_a_bad_generator_before_existing_outputs(exported, tmp_path):
    samples = os.path.join(os.path.dirname(exported), "exported_samples")
    os.makedirs(samples, exist_ok=True)
    open(os.path.join(samples, "grid_seed0.png"), "wb").close()  # an earlier grid
    typo = os.path.join(os.path.dirname(exported), "generatr")
    proc = run_script("sample.py", f"--generator={typo}")
    _one_line_error(proc, "sample.py:", typo)
    assert "exists" not in proc.stderr


@pytest.mark.slow
@pytest.mark.parametrize("args,words", [  # the library's refusals: tests/experiments
    (["--resolutions=abc"], ["--resolutions=abc", "integers"]),
    (["--architectures=", "--profile"], ["--profile", "--architectures is empty"]),
    (["--architectures=dcgan", "--profile_conv=d_conv3"], ["--profile_conv", "add --profile"]),
    (["--architectures=dcgan", "--profile", "--profile_conv=d_conv9"],
     ["no Conv2D layer 'd_conv9'", "d_conv3"]),
])
def test_benchmark_py_refuses_bad_flags_in_one_line_before_timing(args, words, tmp_path):
    proc = run_script("benchmark.py", *args, "--noloop_overhead", "--xla=off",
                      f"--output={tmp_path}")
    _one_line_error(proc, "benchmark.py:", *words)
    assert not os.listdir(tmp_path)  # nothing measured, nothing written


def test_ctrl_c_in_a_decorated_main_is_one_line_and_status_130(capsys):
    @errors.on_interrupt("tool.py", "Interrupted; nothing was written.")
    def main(argv):
        assert argv == ["tool.py"]
        raise KeyboardInterrupt

    with pytest.raises(SystemExit) as stop:
        main(["tool.py"])
    assert stop.value.code == errors.INTERRUPTED_STATUS == 130
    assert capsys.readouterr().err == "tool.py: Interrupted; nothing was written.\n"


@pytest.mark.parametrize("script", ["evaluate", "export", "analyze", "sample", "benchmark"])
def test_every_script_main_answers_ctrl_c_in_one_line(script):
    """train.py and study.py say where their runs resume (test_interruptions.py) and
    quickstart.py has nothing to resume; the other scripts' ``main`` carry the
    decorator, so Ctrl-C anywhere in them is one line."""
    tree = ast.parse(open(os.path.join(REPO, "scripts", f"{script}.py")).read())
    (main,) = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "main"]
    names = [ast.unparse(d.func) for d in main.decorator_list if isinstance(d, ast.Call)]
    assert names == ["errors.on_interrupt"]
    assert ast.literal_eval(main.decorator_list[0].args[0]) == f"{script}.py"
