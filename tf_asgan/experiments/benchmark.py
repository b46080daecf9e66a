"""Step cost of the methods, measured in one process so the numbers compare.

For each architecture, method and XLA setting, :func:`measure_step` builds the paper's
networks, wraps ``ASGAN.train_step`` in a ``tf.function`` (``jit_compile`` for XLA),
warms it up, then times ``repeats`` runs of ``steps`` steps on a fixed batch and keeps
the median milliseconds per step. :func:`count_flops` counts the floating-point
operations of one step's graph with TensorFlow's profiler (convolutions, their
gradients and matrix products: the bulk of the work; batch norm and element-wise
ops are not counted). :func:`input_throughput` times the training input pipeline
(the embedded digits through :func:`tf_asgan.data.stream.training_stream`).

The ratio that matters is ``(t_method / t_baseline) / (flops_method / flops_baseline)``:
1.0 means the method costs exactly the extra arithmetic it needs.
"""

import statistics
import time

import keras
import numpy as np
import tensorflow as tf

from tf_asgan import networks
from tf_asgan.asgan import ASGAN
from tf_asgan.config.train_config import TrainConfig
from tf_asgan.data import digits
from tf_asgan.data import stream as stream_lib
from tf_asgan.experiments import presets
from tf_asgan.training import builder

# The step benchmark's methods: every preset (tf_asgan.experiments.presets).
METHODS = tuple(presets.PRESETS)


def build(architecture, resolution, method, batch_size, seed=0):
    """``(gan, batch)``: a compiled model of ``method`` and a fixed image batch."""
    config = TrainConfig(architecture=architecture, resolution=resolution,
                         **presets.preset(method))
    keras.utils.set_random_seed(seed)
    g = networks.build_generator(architecture, resolution)
    d = networks.build_discriminator(architecture, resolution)
    kwargs = builder.asgan_kwargs(config.model, config.method, config.siblings, config.optim)
    kwargs.pop("seed")  # the draws follow keras's global seed, as before
    gan = ASGAN(g, d, track_input_grad=False, **kwargs)
    gan.compile()
    batch = tf.constant(np.random.default_rng(seed).uniform(
        -1, 1, (batch_size, resolution, resolution, 3)).astype(np.float32))
    return gan, batch


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
    """Median milliseconds per train step (and every repeat's value)."""
    fn = step_function(gan, jit_compile)
    for _ in range(warmup):
        logs = fn(batch)
    _sync(logs)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            logs = fn(batch)
        _sync(logs)
        times.append(1000 * (time.perf_counter() - start) / steps)
    return statistics.median(times), times


def _sync(logs):
    for value in logs.values():
        np.asarray(value)


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


def run(architectures=("dcgan", "resnet"), resolutions=(32,), method_names=tuple(METHODS),
        xla=(False, True), batch_size=64, warmup=3, steps=5, repeats=5, log=print):
    """Measures every combination; returns the JSON-serialisable report."""
    rows = []
    for arch in architectures:
        for res in resolutions:
            flops = {}
            for method in method_names:
                gan, batch = build(arch, res, method, batch_size)
                flops[method] = count_flops(gan, batch)
                for jit in xla:
                    ms, all_ms = measure_step(gan, batch, jit_compile=jit, warmup=warmup,
                                              steps=steps, repeats=repeats)
                    row = {"architecture": arch, "resolution": res, "method": method,
                           "xla": jit, "ms_per_step": ms, "ms_repeats": all_ms,
                           "images_per_s": batch_size * 1000 / ms, "flops": flops[method]}
                    rows.append(row)
                    log(f"{arch}-{res} {method:16s} xla={'on ' if jit else 'off'} "
                        f"{ms:8.1f} ms/step  {row['images_per_s']:8.1f} img/s  "
                        f"{flops[method] / 1e9:7.2f} GFLOP")
    _add_ratios(rows)
    pipeline = input_throughput(batch_size)
    return {"batch_size": batch_size, "warmup": warmup, "steps": steps, "repeats": repeats,
            "rows": rows, "input_pipeline_images_per_s": pipeline,
            "devices": [d.name for d in tf.config.list_logical_devices()],
            "tensorflow": tf.__version__}


def _add_ratios(rows):
    base = {(r["architecture"], r["resolution"], r["xla"]): r for r in rows
            if r["method"] == "baseline"}
    no_xla = {(r["architecture"], r["resolution"], r["method"]): r for r in rows
              if not r["xla"]}
    for r in rows:
        b = base.get((r["architecture"], r["resolution"], r["xla"]))
        if b:
            r["time_ratio"] = r["ms_per_step"] / b["ms_per_step"]
            r["flop_ratio"] = r["flops"] / b["flops"]
            r["time_over_flop_ratio"] = r["time_ratio"] / r["flop_ratio"]
        off = no_xla.get((r["architecture"], r["resolution"], r["method"]))
        if r["xla"] and off:
            r["xla_speedup"] = off["ms_per_step"] / r["ms_per_step"]


def table(report):
    """The report as a markdown table."""
    lines = ["| net | method | XLA | ms/step | img/s | GFLOP/step | time / baseline | "
             "FLOPs / baseline | time ratio / FLOP ratio | XLA speed-up |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]

    def fmt(value, spec):
        return format(value, spec) if value is not None else ""

    for r in report["rows"]:
        lines.append(
            f"| {r['architecture']}-{r['resolution']} | {r['method']} | "
            f"{'on' if r['xla'] else 'off'} | {r['ms_per_step']:.1f} | "
            f"{r['images_per_s']:.0f} | {r['flops'] / 1e9:.2f} | "
            f"{fmt(r.get('time_ratio'), '.2f')} | {fmt(r.get('flop_ratio'), '.2f')} | "
            f"{fmt(r.get('time_over_flop_ratio'), '.2f')} | "
            f"{fmt(r.get('xla_speedup'), '.2f')} |")
    fastest = min(r["ms_per_step"] for r in report["rows"])
    pipe = report["input_pipeline_images_per_s"]
    lines.append("")
    lines.append(f"Input pipeline (digits, cached, batch {report['batch_size']}): "
                 f"{pipe:.0f} images/s, {pipe / (report['batch_size'] * 1000 / fastest):.1f}x "
                 "the fastest training step.")
    return "\n".join(lines)
