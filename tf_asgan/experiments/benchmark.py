"""Step cost of the methods and of the training options, measured in one process so the
numbers compare.

For each architecture, method, option and XLA setting, :func:`build` builds the networks
as a run of that configuration does (:func:`row_config` gives it: the method's preset of
:mod:`tf_asgan.experiments.presets`, the option's changes, the architecture's source
batch norm, latent size and channels), :func:`measure_step` wraps ``ASGAN.train_step``
in a ``tf.function`` (``jit_compile`` for XLA), warms it up, then times ``repeats`` runs
of ``steps`` steps on a fixed batch and keeps the median milliseconds per step.
:func:`count_flops` counts the floating-point operations of one step's graph with
TensorFlow's profiler (convolutions, their gradients and matrix products: the bulk of
the work; batch norm and most element-wise ops are not counted: of the EMA's update,
only its multiplications). :func:`input_throughput` times the training input pipeline
(the embedded digits through :func:`tf_asgan.data.stream.training_stream`).

The ratio that matters is ``(t_method / t_baseline) / (flops_method / flops_baseline)``:
1.0 means the method costs exactly the extra arithmetic it needs. An option's row is
also compared with its reference (:func:`tf_asgan.experiments.presets.reference`: the
same method without the option on the same networks; ``nobn_d`` for spectral
normalization and the gradient penalties, which need a D without batch norm):
``option_time_ratio`` and ``option_flop_ratio``.
"""

import statistics
import time

import keras
import numpy as np
import tensorflow as tf

from tf_asgan import errors, networks
from tf_asgan.asgan import ASGAN
from tf_asgan.config.train_config import TrainConfig
from tf_asgan.data import digits
from tf_asgan.data import stream as stream_lib
from tf_asgan.experiments import presets
from tf_asgan.training import builder
from tf_asgan.utils import distribute, timing

# The step benchmark's methods: every preset (tf_asgan.experiments.presets); its options.
METHODS = tuple(presets.PRESETS)
OPTIONS = tuple(presets.OPTIONS)
# The AS-GAN paper's networks take a latent of 100; every other source's 128
# (tf_asgan.networks, "Latent sizes of the sources").
PAPER_NETWORKS = ("dcgan", "resnet")


def row_config(architecture, resolution, method, option="none", width=1.0):
    """The :class:`~tf_asgan.config.train_config.TrainConfig` of one benchmark row:
    ``method``'s preset plus ``option``'s changes, on ``architecture`` with batch norm
    where its source has it (``bn_g``, ``bn_d``), its source's latent size and channels
    (one for ``wgangp_mnist``: its dataset, MNIST, is grey)."""
    norms = networks.ARCHITECTURES[architecture].BATCH_NORM
    changes = dict(architecture=architecture, resolution=resolution, width=width,
                   latent_dim=100 if architecture in PAPER_NETWORKS else 128,
                   bn_g="generator" in norms, bn_d="discriminator" in norms,
                   **presets.preset(method))
    if architecture == "wgangp_mnist":
        changes["dataset"] = "mnist"
    return TrainConfig(**changes).replace(**presets.option(option))


def build(architecture, resolution, method, batch_size, seed=0, option="none", width=1.0):
    """``(gan, batch)``: a compiled model of ``method`` with ``option`` and a fixed image
    batch ``[batch_size, resolution, resolution, channels]`` in ``[-1, 1]``.

    The networks are :func:`tf_asgan.training.builder.build_networks` of the row's
    configuration, as a run builds them, the model from the same keyword arguments
    (:func:`~tf_asgan.training.builder.asgan_kwargs`, the rotation loss included), with
    the paper's Adam and no input gradient where the method needs none
    (``track_input_grad=False``), so the baseline is timed without it.
    """
    row = row_config(architecture, resolution, method, option, width)
    model = row.model
    keras.utils.set_random_seed(seed)
    g, d = builder.build_networks(model, row.run)
    kwargs = builder.asgan_kwargs(row.model, row.method, row.siblings, row.optim,
                                  row.rotation)
    kwargs.pop("seed")  # the draws follow keras's global seed, as before
    gan = ASGAN(g, d, track_input_grad=False, **kwargs)
    gan.compile()
    batch = tf.constant(np.random.default_rng(seed).uniform(
        -1, 1, (batch_size, resolution, resolution, model.channels)).astype(np.float32))
    return gan, batch


def check(architectures, resolutions, method_names, options):
    """Refuses, before any timing, what :func:`run` cannot measure: an unknown method or
    option, a resolution an architecture lacks, a method and option that do not combine
    (the configuration's own check, e.g. the rotation loss with AdvAs), a rotation
    option on a D without a rotation head (dcgan).

    Raises:
      tf_asgan.errors.InputError: one line naming the flag value and the fix.
    """
    presets.check(method_names)
    presets.check_options(options)
    for arch in architectures:
        bad = [r for r in resolutions if r not in networks.supported_resolutions(arch)]
        if bad:
            raise errors.InputError(f"--architectures={arch} supports --resolutions "
                                    f"{list(networks.supported_resolutions(arch))}, not {bad}.")
        for res in resolutions:
            for method in method_names:
                for option in options:
                    try:
                        row_config(arch, res, method, option).validate()
                    except errors.InputError as err:
                        raise errors.InputError(f"--methods={method} with --options={option} "
                                                f"on {arch}-{res}: {err}") from None
        rotation = [o for o in options if o in presets.ROTATION_OPTIONS]
        for res in resolutions if rotation else ():
            bn_d = row_config(arch, res, "baseline").model.bn_d
            d = networks.build_discriminator(arch, res, width=1 / 16, batch_norm=bn_d)
            try:
                networks.heads.features_layer(d)
            except errors.InputError as err:
                raise errors.InputError(
                    f"--options={rotation[0]} needs a D with a rotation head, which "
                    f"--architectures={arch} lacks: {err}") from None


def step_function(gan, jit_compile):
    return tf.function(gan.train_step, jit_compile=jit_compile)


def count_flops(gan, batch):
    """Floating-point operations of one train step (TensorFlow profiler, graph mode)."""
    from tensorflow.python.profiler import model_analyzer, option_builder

    graph = tf.function(gan.train_step).get_concrete_function(
        tf.TensorSpec(batch.shape, batch.dtype)).graph
    options = option_builder.ProfileOptionBuilder(
        option_builder.ProfileOptionBuilder.float_operation()).with_empty_output().build()
    return int(model_analyzer.profile(graph, options=options).total_float_ops)


def measure_step(gan, batch, *, jit_compile=False, warmup=3, steps=5, repeats=5):
    """Median milliseconds per train step (and every repeat's value):
    :func:`tf_asgan.utils.timing.time_calls` of the step on ``batch``, a ``tf.function``
    with ``jit_compile`` (XLA) as given.

    Raises:
      tf_asgan.errors.InputError: a count below 1 or not an integer.
    """
    fn = step_function(gan, jit_compile)
    return timing.time_calls(lambda: fn(batch), warmup, repeats, steps)


def input_throughput(batch_size, resolution=32, batches=50, repeats=3):
    """Images per second of the training input pipeline (embedded digits, cached)."""
    src = digits.digits_source(resolution)
    epochs = (batches * repeats + 1) * batch_size // src.num_examples + 2
    stream, _ = stream_lib.training_stream(src, batch_size, epochs=epochs, seed=0)
    iterator = iter(stream)
    next(iterator)  # fill the cache / start the prefetch
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(batches):
            np.asarray(next(iterator))
        rates.append(batches * batch_size / (time.perf_counter() - start))
    return statistics.median(rates)


def check_precisions(precisions):
    """The Keras dtype policies of ``precisions`` (``auto`` resolved for this machine,
    :func:`tf_asgan.utils.distribute.resolve_precision`), each once, in order.

    Raises:
      tf_asgan.errors.InputError: an unknown name, none, or two names that resolve to one
        policy (the rows would be measured twice).
    """
    if not precisions:
        raise errors.InputError("Give at least one precision, e.g. --precision=float32.")
    names = [distribute.resolve_precision(p) for p in precisions]
    if len(set(names)) != len(names):
        raise errors.InputError(f"--precision={','.join(precisions)} names one policy twice "
                                f"({names} here); give each once.")
    return names


def run(architectures=("dcgan", "resnet"), resolutions=(32,), method_names=tuple(METHODS),
        xla=(False, True), batch_size=64, warmup=3, steps=5, repeats=5, log=print,
        options=("none",), width=1.0, precisions=("float32",)):
    """Measures every combination; returns the JSON-serialisable report.

    ``options`` (:data:`OPTIONS`) are measured on every method, with the references they
    are compared with (:func:`tf_asgan.experiments.presets.with_references`); an option
    whose configuration on an architecture is another's (``nobn_d`` on a D that has no
    batch norm) is measured once, under the first name. ``width`` scales every network
    (1: the sources'; for tests). Each of ``precisions`` (Keras dtype policies:
    ``float32``, ``mixed_bfloat16``, ``mixed_float16``; :func:`check_precisions`) builds
    and times every row under that global policy; a row's ``precision_speedup`` is the
    float32 row's milliseconds over its own, when float32 is measured.

    Raises:
      tf_asgan.errors.InputError: a count (``batch_size``, ``warmup``, ``steps``,
        ``repeats``) below 1 or not an integer
        (:func:`tf_asgan.utils.timing.check_counts`); see :func:`check` and
        :func:`check_precisions` (all before any timing).
    """
    timing.check_counts(batch_size=batch_size, warmup=warmup, steps=steps, repeats=repeats)
    check(architectures, resolutions, method_names, options)
    precisions = check_precisions(precisions)
    measured = presets.with_references(options)
    rows = []
    for precision in precisions:
        with distribute.precision_policy(precision):
            for arch in architectures:
                for res in resolutions:
                    same = _aliases(arch, res, measured)
                    for method in method_names:
                        for option in (o for o in measured if o not in same):
                            rows += _measure_row(
                                arch, res, method, option, same, xla, batch_size,
                                dict(warmup=warmup, steps=steps, repeats=repeats), width,
                                log, precision)
    _add_ratios(rows)
    pipeline = input_throughput(batch_size)
    return {"batch_size": batch_size, "warmup": warmup, "steps": steps, "repeats": repeats,
            "width": width, "precisions": precisions, "rows": rows,
            "input_pipeline_images_per_s": pipeline,
            "devices": [d.name for d in tf.config.list_logical_devices()],
            "tensorflow": tf.__version__}


def _aliases(arch, res, options):
    """``{option: earlier option with the same configuration}`` on ``arch`` at ``res``."""
    first, same = {}, {}
    for option in options:
        key = tuple(row_config(arch, res, "baseline", option).to_dict().items())
        if key in first:
            same[option] = first[key]
        else:
            first[key] = option
    return same


def _measure_row(arch, res, method, option, same, xla, batch_size, counts, width, log,
                 precision="float32"):
    gan, batch = build(arch, res, method, batch_size, option=option, width=width)
    flops = count_flops(gan, batch)
    ref = presets.reference(option)
    rows = []
    for jit in xla:
        ms, all_ms = measure_step(gan, batch, jit_compile=jit, **counts)
        rows.append({"architecture": arch, "resolution": res, "method": method,
                     "option": option, "reference": same.get(ref, ref), "xla": jit,
                     "precision": precision, "ms_per_step": ms, "ms_repeats": all_ms,
                     "images_per_s": batch_size * 1000 / ms, "flops": flops})
        log(f"{arch}-{res} {method:16s} {option:16s} {precision:14s} "
            f"xla={'on ' if jit else 'off'} {ms:8.1f} ms/step  "
            f"{rows[-1]['images_per_s']:8.1f} img/s  {flops / 1e9:7.2f} GFLOP")
    return rows


def _add_ratios(rows):
    """Each row's time and FLOPs over the baseline method's with the same option
    (``time_ratio``, ``flop_ratio``), over its option's reference with the same method
    (``option_time_ratio``, ``option_flop_ratio``), and XLA's speed-up."""
    index = {(r["architecture"], r["resolution"], r["method"], r["option"], r["xla"],
              r.get("precision", "float32")): r for r in rows}
    for r in rows:
        net, option, xla = (r["architecture"], r["resolution"]), r["option"], r["xla"]
        precision = r.get("precision", "float32")
        _ratios(r, index.get((*net, "baseline", option, xla, precision)), "")
        if r["reference"] is not None:
            _ratios(r, index.get((*net, r["method"], r["reference"], xla, precision)),
                    "option_")
        off = index.get((*net, r["method"], option, False, precision))
        if xla and off:
            r["xla_speedup"] = off["ms_per_step"] / r["ms_per_step"]
        full = index.get((*net, r["method"], option, xla, "float32"))
        if precision != "float32" and full:
            r["precision_speedup"] = full["ms_per_step"] / r["ms_per_step"]


def _ratios(row, reference, prefix):
    if reference is None:
        return
    row[prefix + "time_ratio"] = row["ms_per_step"] / reference["ms_per_step"]
    row[prefix + "flop_ratio"] = row["flops"] / reference["flops"]
    row[prefix + "time_over_flop_ratio"] = row[prefix + "time_ratio"] / row[prefix + "flop_ratio"]


def table(report):
    """The report as a markdown table; with options other than ``none``, also each row's
    option, its reference and the ratios to it."""
    options = any(r.get("option", "none") != "none" for r in report["rows"])
    precisions = len({r.get("precision", "float32") for r in report["rows"]}) > 1
    head = ["net", "method", "XLA", "ms/step", "img/s", "GFLOP/step", "time / baseline",
            "FLOPs / baseline", "time ratio / FLOP ratio", "XLA speed-up"]
    if options:
        head[2:2] = ["option", "vs"]
        head[-1:-1] = ["time / vs", "FLOPs / vs", "time ratio / FLOP ratio vs"]
    if precisions:
        head[-1:-1] = ["precision", "speed-up vs float32"]
    text_columns = (5 if options else 3)
    lines = ["| " + " | ".join(head) + " |",
             "|" + "|".join("---" if i < text_columns or h == "precision" else "---:"
                            for i, h in enumerate(head)) + "|"]

    def fmt(value, spec):
        return format(value, spec) if value is not None else ""

    for r in report["rows"]:
        cells = [f"{r['architecture']}-{r['resolution']}", r["method"],
                 "on" if r["xla"] else "off", f"{r['ms_per_step']:.1f}",
                 f"{r['images_per_s']:.0f}", f"{r['flops'] / 1e9:.2f}",
                 fmt(r.get("time_ratio"), ".2f"), fmt(r.get("flop_ratio"), ".2f"),
                 fmt(r.get("time_over_flop_ratio"), ".2f"), fmt(r.get("xla_speedup"), ".2f")]
        if options:
            cells[2:2] = [r["option"], r["reference"] or ""]
            cells[-1:-1] = [fmt(r.get("option_time_ratio"), ".2f"),
                            fmt(r.get("option_flop_ratio"), ".2f"),
                            fmt(r.get("option_time_over_flop_ratio"), ".2f")]
        if precisions:
            cells[-1:-1] = [r.get("precision", "float32"),
                            fmt(r.get("precision_speedup"), ".2f")]
        lines.append("| " + " | ".join(cells) + " |")
    fastest = min(r["ms_per_step"] for r in report["rows"])
    pipe = report["input_pipeline_images_per_s"]
    lines.append("")
    lines.append(f"Input pipeline (digits, cached, batch {report['batch_size']}): "
                 f"{pipe:.0f} images/s, {pipe / (report['batch_size'] * 1000 / fastest):.1f}x "
                 "the fastest training step.")
    return "\n".join(lines)
