"""Where one train step spends its time, per precision: a component breakdown.

:func:`components` cuts the work of one AS-GAN train step into pieces, each a
``tf.function`` of no arguments on inputs fixed once (a seeded latent batch, the given
real batch, one fake batch): G's forward pass; D's forward pass on the reals; D's
forward and backward pass (weight gradients of ``L_D`` on reals and fakes, no update);
G's (G, then D on its fakes, back to G's weights); the FGSM attack's input gradient
(:func:`tf_asgan.perturbations.attack` with ``fgsm``: the real term of ``L_D``
differentiated with respect to the reals, then ``x + eps * sign``); each optimizer's
update (zero gradients through the model's own optimizers: Adam then moves nothing but
does all its arithmetic); and, for the kernel alone, D's largest convolution
(:func:`largest_conv`; or another, :func:`profiled_conv`) as a bare ``Conv2D`` op, its
input gradient and its weight gradient in the compute dtype, and the weight gradient
computed another way, as one matrix product over the input's patches
(:func:`tf_asgan.networks.weight_gradients.patch_weight_gradient`, which
``--conv_weight_gradient=patches`` trains with). In the train step the input gradient
comes from step 1's backward pass (one pass for both), so alone it costs more than it
adds to the step.

:func:`measure` builds the model under each precision (Keras dtype policies: under
``mixed_*`` the variables stay float32 and each layer casts them to the compute dtype;
:func:`tf_asgan.utils.distribute.precision_policy`), times every component
(:func:`tf_asgan.utils.timing.time_calls`: median of ``repeats`` runs of ``calls`` calls
after ``warmup`` calls, synchronised by reading the outputs, as
:func:`tf_asgan.experiments.benchmark.measure_step` times the whole step, which is
measured too) and the bound a kernel can reach: GFLOP/s of a 2048 x 2048 matmul in the
compute dtype (``2 n^3`` operations, :func:`tf_asgan.utils.timing.matmul_gflops`). The
speed-up of a component under a precision is its float32 milliseconds over its own.
Everything runs with XLA off: each component is a ``tf.function`` without
``jit_compile`` and the whole step is timed with ``jit_compile=False``.
"""


import keras
import numpy as np
import tensorflow as tf

from tf_asgan import errors, networks, perturbations
from tf_asgan.experiments import benchmark, op_profile
from tf_asgan.networks import weight_gradients
from tf_asgan.networks.weight_gradients import patch_weight_gradient
from tf_asgan.utils import distribute, machine, timing

COMPONENTS = ("G forward", "D forward", "D forward+backward", "G forward+backward",
              "FGSM input gradient", "D optimizer update", "G optimizer update",
              "conv2d forward", "conv2d input gradient", "conv2d weight gradient",
              "conv2d weight gradient as patch matmul")
TRAIN_STEP = "train step"
CONV_OPS = COMPONENTS[-4:]


def largest_conv(discriminator):
    """``(layer, flops)``: the ``keras.layers.Conv2D`` of ``discriminator`` (a functional
    model; spectral-norm convolutions included) with the most floating-point operations
    per example, ``2 * H_out * W_out * C_out * k_h * k_w * C_in / groups`` (multiply and
    add each counted); the first of equals.

    Raises:
      tf_asgan.errors.InputError: no ``Conv2D`` among its layers
        (:func:`tf_asgan.networks.weight_gradients.conv_layers`).
    """
    best, best_flops = None, -1
    for layer in weight_gradients.conv_layers(discriminator):
        flops = _conv_flops(layer)
        if flops > best_flops:
            best, best_flops = layer, flops
    if best is None:
        raise errors.InputError(f"{discriminator.name} has no Conv2D layer to profile; "
                                "the conv2d components need one.")
    return best, int(best_flops)


def profiled_conv(discriminator, name=None):
    """``(layer, flops)`` of the conv2d components: :func:`largest_conv` for ``name=None``,
    else ``discriminator``'s ``Conv2D`` layer ``name`` (flops counted alike).

    Raises:
      tf_asgan.errors.InputError: ``name`` is not one of its ``Conv2D`` layers (the
        message lists them).
    """
    if name is None:
        return largest_conv(discriminator)
    convs = {layer.name: layer for layer in weight_gradients.conv_layers(discriminator)}
    if name not in convs:
        raise errors.InputError(f"{discriminator.name} has no Conv2D layer {name!r}; "
                                f"choose from {sorted(convs)}.")
    return convs[name], int(_conv_flops(convs[name]))


def check_conv_layer(architecture, resolution, name):
    """Raises :class:`tf_asgan.errors.InputError` (listing D's ``Conv2D`` layers) unless
    ``name`` is one of them on ``architecture`` at ``resolution`` (built at width 1/16
    with the benchmark's batch norm: the names do not depend on either)."""
    row = benchmark.row_config(architecture, resolution, "baseline", width=1 / 16)
    d = networks.build_discriminator(architecture, resolution, batch_norm=row.model.bn_d,
                                     width=1 / 16, channels=row.model.channels)
    profiled_conv(d, name)


def _conv_flops(layer):
    _, h, w, c_out = layer.output.shape
    k_h, k_w, c_in, _ = layer.kernel.shape
    return 2 * h * w * c_out * k_h * k_w * c_in


def components(gan, batch, seed=0, conv_layer=None):
    """``{name: fn}`` in :data:`COMPONENTS` order: each ``fn()`` a ``tf.function`` doing
    one piece of ``gan``'s train step (module docstring) on inputs built here once.

    Args:
      gan: a compiled :class:`tf_asgan.ASGAN` (e.g. from
        :func:`tf_asgan.experiments.benchmark.build`), built under the policy to profile.
      batch: real images ``[N, H, W, C]`` in ``[-1, 1]``.
      seed: of the latent batch and the conv2d inputs.
      conv_layer: the name of D's ``Conv2D`` whose kernels the conv2d components time
        (``None``: the largest; :func:`profiled_conv`).

    Each ``fn()`` returns tensors (outputs, gradients, or the updated variables), so
    reading them waits for the work. The optimizer updates change the optimizers' state
    (moments, iteration counts): use a throwaway model.
    """
    rng = np.random.default_rng(seed)
    x = tf.convert_to_tensor(batch, tf.float32)
    z = tf.constant(rng.standard_normal((x.shape[0], gan.latent_dim)), tf.float32)
    fake = tf.constant(gan.generator(z, training=False))
    d_vars, g_vars = gan.d_variables, gan.generator.trainable_variables
    loss = gan.gan_loss
    epsilon = 1 / 255 if gan.perturbation is None else gan.current_epsilon()

    def d_forward_backward():
        with tf.GradientTape() as tape:
            value = loss.discriminator(gan.discriminator_logits(x),
                                       gan.discriminator_logits(fake))
            scaled = gan.d_optimizer.scale_loss(value)
        return tape.gradient(scaled, d_vars)

    def g_forward_backward():
        with tf.GradientTape() as tape:
            value = loss.generator(gan.discriminator_logits(gan.generator(z, training=True)))
            scaled = gan.g_optimizer.scale_loss(value)
        return tape.gradient(scaled, g_vars)

    fns = {"G forward": lambda: gan.generator(z, training=True),
           "D forward": lambda: gan.discriminator(x, training=True),
           "D forward+backward": d_forward_backward,
           "G forward+backward": g_forward_backward,
           "FGSM input gradient": lambda: perturbations.attack(
               "fgsm", x, gan.real_loss_fn(True), epsilon=epsilon),
           "D optimizer update": _update(gan.d_optimizer, d_vars),
           "G optimizer update": _update(gan.g_optimizer, g_vars)}
    fns.update(_conv_ops(profiled_conv(gan.discriminator, conv_layer)[0], x.shape[0], rng))
    return {name: tf.function(fns[name]) for name in COMPONENTS}


def _update(optimizer, variables):
    """``() -> variables' values`` after ``optimizer`` applies zero gradients to them."""
    zeros = [tf.zeros_like(v.value) for v in variables]

    def apply():
        optimizer.apply_gradients(zip(zeros, variables))
        return [v.value for v in variables]

    return apply


def _conv_ops(layer, n, rng):
    """Four timed ops of ``layer`` at batch ``n`` in its compute dtype: the three
    ``Conv2D`` kernels and :func:`~tf_asgan.networks.weight_gradients.patch_weight_gradient`
    (patch extraction included)."""
    dtype = layer.compute_dtype
    in_shape = (n, *layer.input.shape[1:])
    out_shape = (n, *layer.output.shape[1:])
    x = tf.cast(tf.constant(rng.uniform(-1, 1, in_shape), tf.float32), dtype)
    dy = tf.cast(tf.constant(rng.standard_normal(out_shape), tf.float32), dtype)
    w = tf.cast(tf.convert_to_tensor(layer.kernel), dtype)
    conv = dict(strides=[1, *layer.strides, 1], padding=layer.padding.upper(),
                dilations=[1, *layer.dilation_rate, 1])
    return {"conv2d forward": lambda: tf.raw_ops.Conv2D(input=x, filter=w, **conv),
            "conv2d input gradient": lambda: tf.raw_ops.Conv2DBackpropInput(
                input_sizes=in_shape, filter=w, out_backprop=dy, **conv),
            "conv2d weight gradient": lambda: tf.raw_ops.Conv2DBackpropFilter(
                input=x, filter_sizes=w.shape, out_backprop=dy, **conv),
            "conv2d weight gradient as patch matmul": lambda: patch_weight_gradient(
                x, dy, w.shape, layer.strides, layer.padding, layer.dilation_rate)}


def check(batch_size, warmup, repeats, calls):
    """Raises :class:`tf_asgan.errors.InputError` unless every count is an integer and
    ``batch_size, warmup, repeats, calls >= 1`` (the first call traces the function):
    :func:`tf_asgan.utils.timing.check_counts`."""
    timing.check_counts(batch_size=batch_size, warmup=warmup, repeats=repeats, calls=calls)


def measure(architecture="dcgan", resolution=32, method="asgan", batch_size=64,
            precisions=("float32", "mixed_bfloat16"), width=1.0, warmup=2, repeats=5,
            calls=3, log=print, matmul_size=2048, option="none", conv_layer=None):
    """The JSON-serialisable breakdown of one train step under each of ``precisions``.

    Returns ``{"precisions", "components" (names, the train step last), "results":
    {precision: {"compute_dtype", "ms": {name: median ms}, "ms_repeats", "matmul_gflops",
    "conv": D's profiled conv and its ops' GFLOP/s}}, "speedup": {precision: {name:
    ms(float32) / ms(precision)}} and "matmul_bound": {precision: GFLOP/s over
    float32's}`` (both empty without float32), ``"parts_sum_ms"`` (see
    :func:`parts_sum`; ``None`` per precision for a method not in
    :data:`PARTS_METHODS`), the settings, ``"machine"`` and ``"tensorflow"``. Each
    precision's result also has ``"ops"``: the train step by kind of operation
    (:mod:`tf_asgan.experiments.op_profile`, ms per step over ``calls`` traced steps) and
    ``"ops_wall_ms"``, the traced steps' wall time per step. ``option``: a benchmark
    option (:data:`tf_asgan.experiments.benchmark.OPTIONS`, e.g.
    ``patch_weight_gradient``) the networks are built with; ``conv_layer``: the ``Conv2D``
    of D the conv2d components time (``None``: the largest, :func:`profiled_conv`).

    Raises:
      tf_asgan.errors.InputError: a bad count (:func:`check`), precision
        (:func:`tf_asgan.experiments.benchmark.check_precisions`) or network
        (:func:`tf_asgan.experiments.benchmark.check`), before any timing.
    """
    check(batch_size, warmup, repeats, calls)
    names = benchmark.check_precisions(precisions)
    benchmark.check([architecture], [resolution], [method], [option])
    counts = dict(warmup=warmup, repeats=repeats, calls=calls)
    results, sums = {}, {}
    for precision in names:
        with distribute.precision_policy(precision):
            results[precision], sums[precision] = _measure_precision(
                architecture, resolution, method, batch_size, width, counts, matmul_size,
                option, conv_layer)
        log(f"{precision}: " + ", ".join(f"{k} {v:.2f} ms"
                                         for k, v in results[precision]["ms"].items()))
    report = {"architecture": architecture, "resolution": resolution, "method": method,
              "option": option, "conv_layer": conv_layer, "batch_size": batch_size,
              "width": width, **counts,
              "matmul_size": matmul_size, "precisions": names,
              "components": [*COMPONENTS, TRAIN_STEP], "results": results,
              "parts_sum_ms": sums, "machine": machine.description(),
              "tensorflow": tf.__version__}
    report["speedup"], report["matmul_bound"] = _ratios(results)
    return report


def _measure_precision(architecture, resolution, method, batch_size, width, counts,
                       matmul_size, option, conv_layer=None):
    gan, batch = benchmark.build(architecture, resolution, method, batch_size, width=width,
                                 option=option)
    layer, flops = profiled_conv(gan.discriminator, conv_layer)
    ms, all_ms = {}, {}
    for name, fn in components(gan, batch, conv_layer=conv_layer).items():
        ms[name], all_ms[name] = timing.time_calls(fn, **counts)
    ms[TRAIN_STEP], all_ms[TRAIN_STEP] = benchmark.measure_step(
        gan, batch, jit_compile=False, warmup=counts["warmup"], steps=counts["calls"],
        repeats=counts["repeats"])
    gflop = flops * batch_size / 1e9
    conv = {"layer": layer.name, "input_shape": [batch_size, *layer.input.shape[1:]],
            "kernel_shape": list(layer.kernel.shape), "strides": list(layer.strides),
            "padding": layer.padding, "gflop": gflop,
            "gflops": {op: gflop / (ms[op] / 1000) for op in CONV_OPS}}
    dtype = keras.mixed_precision.global_policy().compute_dtype
    step = benchmark.step_function(gan, jit_compile=False)
    times, wall = op_profile.trace_ops(lambda: step(batch), counts["calls"])
    ops = op_profile.breakdown(times, counts["calls"], *op_profile.model_scopes(gan))
    return ({"compute_dtype": dtype, "ms": ms, "ms_repeats": all_ms, "conv": conv,
             "ops": ops, "ops_wall_ms": wall,
             "matmul_gflops": timing.matmul_gflops(dtype, matmul_size, **counts)},
            parts_sum(ms, gan.d_updates_per_step) if method in PARTS_METHODS else None)


# The methods whose step is only the parts :func:`parts_sum` adds (others add terms).
PARTS_METHODS = ("baseline", "asgan")


def parts_sum(ms, d_updates):
    """The step rebuilt from its parts: ``d_updates * (D forward+backward + D optimizer
    update) + G forward+backward + G optimizer update`` milliseconds (``ms``: name ->
    ms). An estimate for the baseline and AS-GAN (``d_updates`` = 1 or 2): it leaves out
    the attack's sign and clip, the logging, and the terms other methods add."""
    return (d_updates * (ms["D forward+backward"] + ms["D optimizer update"])
            + ms["G forward+backward"] + ms["G optimizer update"])


def _ratios(results):
    """``(speedup, matmul_bound)`` of the module docstring; empty without float32."""
    base = results.get("float32")
    if base is None:
        return {}, {}
    speedup = {p: {name: base["ms"][name] / r["ms"][name] for name in r["ms"]}
               for p, r in results.items()}
    bound = {p: r["matmul_gflops"] / base["matmul_gflops"] for p, r in results.items()}
    return speedup, bound


def table(report):
    """The report as markdown: a header (machine; network, batch, width, "XLA off"),
    one row per component (and the train step), its ms under each precision and, per
    precision other than float32, its speed-up; then the parts' sum, the matmul bound
    and D's largest conv's GFLOP/s; then the step by kind of operation (:func:`ops_table`)."""
    precisions = report["precisions"]
    others = [p for p in precisions if p != "float32" and report["speedup"]]
    head = ["component", *(f"{p} ms" for p in precisions),
            *(f"{p} speed-up" for p in others)]
    lines = [machine.header(report["machine"], report["tensorflow"]),
             f"{report['architecture']}-{report['resolution']} {report['method']}"
             + ("" if report.get("option", "none") == "none" else f" + {report['option']}")
             + f", batch {report['batch_size']}, width {report['width']:g}, XLA off", "",
             "| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    for name in report["components"]:
        cells = [f"{report['results'][p]['ms'][name]:.2f}" for p in precisions]
        cells += [f"{report['speedup'][p][name]:.2f}" for p in others]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("")
    if report["method"] in PARTS_METHODS:
        lines.append("Parts summed as the step composes them: " + ", ".join(
            f"{p} {report['parts_sum_ms'][p]:.2f} ms (step "
            f"{report['results'][p]['ms'][TRAIN_STEP]:.2f})" for p in precisions) + ".")
    else:
        lines.append(f"Parts not summed: {report['method']}'s step adds terms to those of "
                     f"{' and '.join(PARTS_METHODS)}.")
    size = report["matmul_size"]
    bound = "".join(f"; bound {p} / float32 = {report['matmul_bound'][p]:.2f}x"
                    for p in others)
    lines.append(f"Matmul {size}x{size} GFLOP/s: " + ", ".join(
        f"{report['results'][p]['compute_dtype']} {report['results'][p]['matmul_gflops']:.1f}"
        for p in precisions) + bound + ".")
    conv = report["results"][precisions[0]]["conv"]
    which = "largest " if report.get("conv_layer") is None else ""
    lines.append(f"D's {which}conv ({conv['layer']}, input {conv['input_shape']}, kernel "
                 f"{conv['kernel_shape']}, {conv['gflop']:.3f} GFLOP) GFLOP/s: " + "; ".join(
                     f"{p} " + ", ".join(f"{op[len('conv2d '):]} {r['conv']['gflops'][op]:.1f}"
                                         for op in CONV_OPS)
                     for p, r in report["results"].items()) + ".")
    return "\n".join(lines + ["", ops_table(report)])


def ops_table(report):
    """The train step by kind of operation (:mod:`tf_asgan.experiments.op_profile`): one
    row per category, its ms per step and share of the categories' sum under each
    precision, and the speed-up over float32; the sums and the traced steps' wall time
    last. Empty for a report measured before the breakdown existed."""
    results = [report["results"][p] for p in report["precisions"]]
    if any("ops" not in r for r in results):
        return ""
    precisions = report["precisions"]
    others = [i for i, p in enumerate(precisions) if p != "float32" and "float32" in precisions]
    base = results[precisions.index("float32")]["ops"] if others else None
    totals = [sum(r["ops"].values()) for r in results]
    head = ["operations", *(f"{p} ms (share)" for p in precisions),
            *(f"{precisions[i]} speed-up" for i in others)]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    for category in op_profile.CATEGORIES:
        cells = [f"{r['ops'][category]:.1f} ({100 * r['ops'][category] / t:.0f}%)"
                 for r, t in zip(results, totals)]
        cells += [_ratio(base[category], results[i]["ops"][category]) for i in others]
        lines.append(f"| {category} | " + " | ".join(cells) + " |")
    cells = [f"{t:.1f}" for t in totals] + [_ratio(totals[precisions.index("float32")],
                                                   totals[i]) for i in others]
    lines.append("| sum of the ops | " + " | ".join(cells) + " |")
    lines.append("| wall time of the traced steps | " + " | ".join(
        f"{r['ops_wall_ms']:.1f}" for r in results) + " |" + " |" * len(others))
    return "\n".join(lines)


def _ratio(a, b, floor=0.1):
    """``a / b`` to two places; ``"-"`` when either is below ``floor`` ms (no such op in
    one precision, or too little time for a ratio to mean anything)."""
    return f"{a / b:.2f}" if a >= floor and b >= floor else "-"

