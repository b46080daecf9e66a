"""AS-GAN under reduced precision: how far D's response to the attacks moves when D
computes in bfloat16 or float16 instead of float32 (issue 26, item 1).

One discriminator's float32 weights are loaded into the same network built under each
Keras dtype policy (:func:`tf_asgan.utils.distribute.precision_policy`; the networks
keep D's logits in float32, every other layer computes in the policy's dtype and reads
its float32 input rounded to it). On each batch of reals ``x`` and fakes, in training
mode as in the train step (batch norm on batch statistics), each variant computes:

- the attacks of the train step from its own gradients: FGSM (AS-GAN's Eq. 13) at every
  epsilon asked for, PGD and the Gaussian control at the method's epsilon, DAT's
  authors' step (:func:`tf_asgan.methods.dat.examples`, both sides);
- per sample, the attack's effect on D's logit, ``delta = D(x_hat) - D(x)``;
- D's loss on the clean batch ``L_D(x, fake)`` and on the attacked one
  ``L_D(x_hat, fake)`` (DAT: ``L_D(x', f')``);
- the fraction of the perturbed pixels (``x_hat != x`` in float32) whose perturbation
  is exactly 0 once ``x_hat`` and ``x`` are rounded to the dtype of D's first layer.

Under ``mixed_float16`` FGSM's gradient is taken of the loss times the optimizer's
initial loss scale (``keras.optimizers.LossScaleOptimizer``, ``2**15``) and divided back,
as the train step does (:meth:`tf_asgan.ASGAN._d_apply`); PGD's later steps and DAT's
step take unscaled gradients, as the package's do.

Agreement with float32 (ours): per sample ``|delta_p - delta_32| / |delta_32|``, its
mean and 95th percentile over all samples; a sample with ``|delta_32|`` under
:data:`FLOOR` times the median ``|delta_32|`` of its attack is left out of the ratio
(the count is reported); the fraction of samples whose ``delta`` has float32's sign.
Loss terms are batch means: one ratio per batch. :data:`THRESHOLD` (5%) is the
project's bound. A candidate fix is a variant too: ``float32_layers=k`` builds the
same D with its first ``k`` weighted layers (and the layers between them) computing in
float32: the perturbation then reaches D unrounded, and is rounded only at layer
``k + 1``'s input; ``float32_last=1`` computes D's last weighted layer (the one that
gives the logit) in float32, so a small change of the logit is not rounded away.
"""

import dataclasses
import time

import keras
import numpy as np
import tensorflow as tf

from tf_asgan import errors, losses, networks, perturbations
from tf_asgan.methods import dat as dat_lib
from tf_asgan.regularizers import penalties
from tf_asgan.training import builder, rundir
from tf_asgan.utils import distribute
from tf_asgan.utils.machine import cpu_description

REFERENCE = "float32"
EPSILONS_OVER_255 = (0.2, 0.5, 1.0, 2.0, 4.0)  # issue 26; model-input units over 255
THRESHOLD = 0.05  # the project's agreement bound (ours)
FLOOR = 0.01  # ours: |delta_32| < FLOOR * median |delta_32| leaves the ratio out
FLOAT16_LOSS_SCALE = 2.0 ** 15  # keras.optimizers.LossScaleOptimizer's initial_scale


@dataclasses.dataclass(frozen=True)
class Variant:
    """A Keras dtype policy name, with D's first ``float32_layers`` weighted layers and
    its last ``float32_last`` weighted layers (with every layer after them) computing in
    float32 (0, 0: the policy's D)."""

    precision: str
    float32_layers: int = 0
    float32_last: int = 0

    def __post_init__(self):
        """Raises :class:`tf_asgan.errors.InputError` unless both counts are integers
        ``>= 0``."""
        for name in ("float32_layers", "float32_last"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise errors.InputError(f"Variant {name} must be an integer >= 0 (how many "
                                        f"of D's weighted layers compute in float32), "
                                        f"got {value!r}.")

    @property
    def name(self):
        extra = f"+{self.float32_layers}_f32" if self.float32_layers else ""
        extra += f"+last{self.float32_last}_f32" if self.float32_last else ""
        return self.precision + extra


VARIANTS = (Variant("float32"), Variant("mixed_bfloat16"), Variant("mixed_float16"),
            Variant("mixed_bfloat16", 1), Variant("mixed_bfloat16", 2),
            Variant("mixed_bfloat16", 0, 1), Variant("mixed_bfloat16", 1, 1))


def build_variant(build_d, weights, variant):
    """``build_d()`` (a ``keras.Model`` ``[N, H, W, C] -> [N]`` or ``[N, 1]`` logits)
    built under ``variant``'s policy, with ``weights`` (``get_weights()`` of a float32
    build) loaded."""
    distribute.resolve_precision(variant.precision)  # refuses an unknown name
    with distribute.precision_policy(variant.precision):
        d = build_d()
        if variant.float32_layers or variant.float32_last:
            d = _layers_float32(d, variant.float32_layers, variant.float32_last)
    d.set_weights(weights)
    return d


def _layers_float32(model, leading_count, trailing_count):
    """A clone of ``model`` whose first ``leading_count`` weighted layers (and the layers
    between them: batch norm, activations) and last ``trailing_count`` weighted layers
    (and every layer after them) compute in float32.

    Raises:
      tf_asgan.errors.InputError: a count larger than ``model``'s number of weighted
        layers (those with weights, batch norm included).
    """
    weighted = [layer for layer in model.layers if layer.weights]
    if max(leading_count, trailing_count) > len(weighted):
        raise errors.InputError(
            f"float32_layers={leading_count}, float32_last={trailing_count}: {model.name} "
            f"has {len(weighted)} weighted layers; give counts of at most {len(weighted)}.")
    chosen = set()
    if leading_count:
        chosen |= {id(layer) for layer in
                   model.layers[:model.layers.index(weighted[leading_count - 1]) + 1]}
    if trailing_count:
        chosen |= {id(layer) for layer in
                   model.layers[model.layers.index(weighted[-trailing_count]):]}

    def clone(layer):
        config = layer.get_config()
        if id(layer) in chosen:
            config["dtype"] = "float32"
        return layer.__class__.from_config(config)

    return keras.models.clone_model(model, clone_function=clone)


def input_dtype(d):
    """The dtype D's first weighted layer rounds its input to."""
    return next(layer for layer in d.layers if layer.weights).compute_dtype


def logits_of(d):
    """``images -> [N]`` float32 logits of ``d`` in training mode (as the train step)."""
    return lambda images: tf.cast(tf.reshape(d(images, training=True), [-1]), tf.float32)


def real_input_grad(logits, loss, x, scale=1.0):
    """``grad_x`` of ``loss.real_term(logits(x))``, taken of the loss times ``scale``
    and divided back (the train step's loss scaling under float16)."""
    x = tf.convert_to_tensor(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        term = loss.real_term(logits(x)) * scale
    return tape.gradient(term, x) / scale


def zero_fraction(x, x_hat, dtype):
    """Of the elements where ``x_hat != x`` (float32), the fraction whose difference is
    exactly 0 after both are rounded to ``dtype`` (NaN when none differ)."""
    x, x_hat = tf.convert_to_tensor(x, tf.float32), tf.convert_to_tensor(x_hat, tf.float32)
    moved = tf.not_equal(x_hat, x)
    lost = tf.logical_and(moved, tf.equal(tf.cast(x_hat, dtype), tf.cast(x, dtype)))
    count = tf.reduce_sum(tf.cast(moved, tf.float64))
    return float(tf.reduce_sum(tf.cast(lost, tf.float64)) / count) if count > 0 else np.nan


def attack_names(epsilons, method_epsilon):
    return ([f"fgsm {e:g}/255" for e in epsilons]
            + [f"pgd {method_epsilon * 255:g}/255", f"gaussian {method_epsilon * 255:g}/255",
               "dat real", "dat fake"])


def batch_record(d, variant, x, fake, loss, *, epsilons, method_epsilon, seed,
                 pgd_options=None):
    """One batch under one variant: ``{"logit": [N], "loss_clean": float, "attacks":
    {name: {"delta": [N], "loss_adv": float, "zero_fraction": float}}}``.

    ``x``, ``fake``: ``[N, H, W, C]`` float32 in [-1, 1]; ``epsilons``: FGSM's radii in
    model-input units; ``method_epsilon``: PGD's and the Gaussian's; ``seed``: the
    Gaussian's stateless seed (int ``[2]``).
    """
    logits, dtype = logits_of(d), input_dtype(d)
    scale = FLOAT16_LOSS_SCALE if variant.precision == "mixed_float16" else 1.0
    real, fake_logits = logits(x), logits(fake)
    grad = real_input_grad(logits, loss, x, scale)
    hats = {f"fgsm {e * 255:g}/255": perturbations.fgsm_perturbation(
        x, epsilon=e, input_grad=grad) for e in epsilons}
    tag = f"{method_epsilon * 255:g}/255"
    hats[f"pgd {tag}"] = perturbations.pgd_perturbation(
        x, epsilon=method_epsilon, input_grad=grad,
        loss_fn=lambda v: loss.real_term(logits(v)), **(pgd_options or {}))
    hats[f"gaussian {tag}"] = perturbations.gaussian_perturbation(
        x, epsilon=method_epsilon, seed=seed)
    out = {"logit": real.numpy(), "loss_clean": float(loss.discriminator(real, fake_logits)),
           "attacks": {}}
    for name, x_hat in hats.items():
        adv = logits(x_hat)
        out["attacks"][name] = dict(delta=(adv - real).numpy(),
                                    loss_adv=float(loss.discriminator(adv, fake_logits)),
                                    zero_fraction=zero_fraction(x, x_hat, dtype))
    ex = dat_lib.examples(dat_lib.DAT(), x, fake, logits, loss)
    dat_real, dat_fake = logits(ex.real), logits(ex.fake)
    dat_loss = float(loss.discriminator(dat_real, dat_fake))
    for side, clean, attacked, clean_logits, adv in (("real", x, ex.real, real, dat_real),
                                                     ("fake", fake, ex.fake, fake_logits,
                                                      dat_fake)):
        out["attacks"][f"dat {side}"] = dict(delta=(adv - clean_logits).numpy(),
                                             loss_adv=dat_loss,
                                             zero_fraction=zero_fraction(clean, attacked, dtype))
    return out


def penalty_record(d, x, fake, seed):
    """WGAN-GP's and R1's per-sample penalties ``[N]`` of ``d`` (a D without batch norm)
    on ``(x, fake)``, alpha drawn from ``seed``."""
    logits = logits_of(d)
    alpha = penalties.draw_alpha(tf.shape(x)[0], seed=seed)
    return {"wgan_gp": penalties.wgan_gp(logits, x, fake, alpha).numpy(),
            "r1": penalties.r1(logits, x).numpy()}


def relative(values, reference, floor=FLOOR):
    """Per-element agreement of ``values`` with ``reference`` (1-D arrays): ``{"mean",
    "p95", "max"}`` of ``|v - r| / |r|`` over the elements with ``|r| >= floor *
    median |r|``, ``"left_out"`` (how many were not), ``"same_sign"`` (the fraction with
    ``sign(v) == sign(r)``), ``"pooled"`` (``mean |v - r| / mean |r|`` over all
    elements: the error against the typical size, for quantities near 0 such as the
    Gaussian control's ``delta``) and ``"n"``."""
    values, reference = np.asarray(values, np.float64), np.asarray(reference, np.float64)
    keep = np.abs(reference) >= floor * np.median(np.abs(reference))
    ratio = np.abs(values[keep] - reference[keep]) / np.abs(reference[keep])
    stats = (dict(mean=float(ratio.mean()), p95=float(np.percentile(ratio, 95)),
                  max=float(ratio.max())) if ratio.size else
             dict(mean=np.nan, p95=np.nan, max=np.nan))
    pooled = float(np.mean(np.abs(values - reference)) / max(np.mean(np.abs(reference)),
                                                              np.finfo(np.float64).tiny))
    return dict(stats, pooled=pooled, left_out=int((~keep).sum()), n=int(values.size),
                same_sign=float(np.mean(np.sign(values) == np.sign(reference))))


def _pool(records, *path):
    """The values at ``path`` (keys) of every batch's record, as one 1-D array."""
    def at(record):
        for key in path:
            record = record[key]
        return np.atleast_1d(record)
    return np.concatenate([at(r) for r in records])


def compare(records, reference=REFERENCE):
    """``{variant: {quantity: relative(...)}}`` of :func:`batch_record` lists per variant
    (``records[name]``: one per batch) against ``records[reference]``; a variant's
    ``zero_fraction`` per attack is the mean over batches."""
    ref = records[reference]
    paths = {"logit D(x)": ("logit",), "L_D clean": ("loss_clean",)}
    for name in ref[0]["attacks"]:
        paths[name] = ("attacks", name, "delta")
        paths[f"L_D {name}"] = ("attacks", name, "loss_adv")
    paths.update({kind: ("penalties", kind) for kind in ref[0].get("penalties", {})})
    table = {}
    for variant, recs in records.items():
        rows = {q: relative(_pool(recs, *path), _pool(ref, *path)) for q, path in paths.items()}
        for name in ref[0]["attacks"]:
            rows[name]["zero_fraction"] = float(np.nanmean(
                _pool(recs, "attacks", name, "zero_fraction")))
        table[variant] = rows
    return table


def time_forward_backward(d, x, loss, repeats=20):
    """Median milliseconds of one D forward and backward pass (gradients of the real
    term of ``L_D`` for D's weights and its input) on ``x``, after one traced warm-up."""
    logits = logits_of(d)

    @tf.function
    def step(images):
        with tf.GradientTape() as tape:
            tape.watch(images)
            term = loss.real_term(logits(images))
        return tape.gradient(term, d.trainable_variables + [images])

    x = tf.convert_to_tensor(x)
    tf.nest.map_structure(lambda t: t.numpy(), step(x))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        tf.nest.map_structure(lambda t: t.numpy(), step(x))
        times.append(time.perf_counter() - start)
    return 1000.0 * float(np.median(times))


def measure(build_d, weights, batches, *, loss="non_saturating", epsilons=None,
            method_epsilon=1 / 255, variants=VARIANTS, seed=0, penalty_d=None,
            timing_repeats=0, log=print):
    """The comparison of every variant with float32 on ``batches``.

    Args:
      build_d: ``() -> keras.Model``, D built under the current dtype policy.
      weights: ``get_weights()`` of D (float32).
      batches: a list of ``(x, fake)`` float32 ``[N, H, W, C]`` in [-1, 1].
      loss: the GAN loss (name or :class:`tf_asgan.losses.GANLoss`).
      epsilons: FGSM's radii in model-input units (default
        :data:`EPSILONS_OVER_255` / 255).
      method_epsilon: PGD's and the Gaussian's radius (model-input units).
      variants: :class:`Variant` list; the first must be float32.
      seed: the Gaussian's and WGAN-GP's draws.
      penalty_d: ``(build, weights)`` of a D without batch norm for the penalties, or
        ``None`` (none measured).
      timing_repeats: > 0 times a D forward+backward of each variant on the first batch.

    Returns:
      ``{"agreement": compare(...), "records": {...}, "timing_ms": {variant: ms}}``.
    """
    loss = losses.get(loss)
    epsilons = [e / 255 for e in EPSILONS_OVER_255] if epsilons is None else list(epsilons)
    if variants[0].name != REFERENCE:
        raise ValueError(f"The first variant must be {REFERENCE}, got {variants[0].name}.")
    records, timing = {}, {}
    for variant in variants:
        d = build_variant(build_d, weights, variant)
        pd = None if penalty_d is None else build_variant(penalty_d[0], penalty_d[1], variant)
        recs = []
        for i, (x, fake) in enumerate(batches):
            x, fake = tf.constant(x, tf.float32), tf.constant(fake, tf.float32)
            rec = batch_record(d, variant, x, fake, loss, epsilons=epsilons,
                               method_epsilon=method_epsilon, seed=tf.constant([seed, i]))
            if pd is not None:
                rec["penalties"] = penalty_record(pd, x, fake, tf.constant([seed + 1, i]))
            recs.append(rec)
        records[variant.name] = recs
        if timing_repeats:
            timing[variant.name] = time_forward_backward(d, batches[0][0], loss, timing_repeats)
        log(f"{variant.name}: {len(recs)} batches"
            + (f", D fwd+bwd {timing[variant.name]:.1f} ms" if timing_repeats else ""))
    return {"agreement": compare(records), "records": records, "timing_ms": timing}


def grid_zero_fractions(epsilons, dtype="bfloat16"):
    """``{epsilon: fraction}`` over the 256 grey levels of an 8-bit image in model-input
    units (``k / 127.5 - 1``), each moved by ``+epsilon`` and by ``-epsilon`` (clipped to
    [-1, 1]): :func:`zero_fraction` of the moved ones after rounding to ``dtype``."""
    levels = np.arange(256, dtype=np.float64) / 127.5 - 1.0
    x = np.concatenate([levels, levels]).astype(np.float32)
    signs = np.concatenate([np.ones(256), -np.ones(256)])
    return {e: zero_fraction(x, np.clip(x + signs * e, -1.0, 1.0).astype(np.float32), dtype)
            for e in epsilons}


def from_run(workdir, *, batch_size=64, batches=4, seed=0):
    """What :func:`measure` needs, from the run in ``workdir`` at its newest checkpoint.

    Returns ``(inputs, info)``: ``inputs`` the keyword arguments ``build_d``, ``weights``,
    ``batches`` (``batches`` pairs of ``batch_size`` real images, in the source's order
    seeded by ``seed``, and fakes of the run's G in training mode from latents seeded by
    ``seed``), ``loss``, ``method_epsilon`` (the run's, model-input units) and
    ``penalty_d`` (a freshly initialised D of the run's architecture without batch
    norm, weights seeded by ``seed``: the penalties are defined for such a D only);
    ``info`` what to report (checkpoint, step, epochs, sizes).

    Raises:
      FileNotFoundError: no run or no checkpoint in ``workdir``.
    """
    gan, config, path = rundir.restore_model(workdir)
    model = config.model
    source = builder.make_source(config.data, model.resolution, seed)
    wanted = batch_size * batches
    reals = np.stack([x.numpy() for x in source.in_random_order(seed).take(wanted)])
    if len(reals) < wanted:
        raise errors.InputError(f"{workdir}'s data holds {len(reals)} images; "
                                f"--batches x --batch_size needs {wanted}.")
    z = np.random.default_rng(seed).standard_normal((wanted, model.latent_dim))
    fakes = np.concatenate([gan.generator(z[i:i + batch_size].astype(np.float32),
                                          training=True).numpy()
                            for i in range(0, wanted, batch_size)])
    kwargs = dict(batch_norm=model.bn_d, width=model.width, channels=model.channels,
                  spectral_norm=model.spectral_norm)

    def build_d():
        return networks.build_discriminator(model.architecture, model.resolution, **kwargs)

    def build_plain():
        return networks.build_discriminator(model.architecture, model.resolution,
                                            **dict(kwargs, batch_norm=False))

    keras.utils.set_random_seed(seed)
    plain = build_plain().get_weights()
    step = int(gan.step_counter.numpy())
    inputs = dict(build_d=build_d, weights=gan.discriminator.get_weights(),
                  batches=[(reals[i:i + batch_size], fakes[i:i + batch_size])
                           for i in range(0, wanted, batch_size)],
                  loss=config.method.loss, method_epsilon=float(gan.current_epsilon()),
                  penalty_d=(build_plain, plain))
    info = dict(workdir=str(workdir), checkpoint=str(path), step=step,
                epochs_trained=config.optim.epochs, architecture=model.architecture,
                resolution=model.resolution, width=model.width, dataset=config.data.dataset,
                batch_size=batch_size, batches=batches, seed=seed, cpu=cpu_description())
    return inputs, info


def _pct(value):
    return "n/a" if value is None or not np.isfinite(value) else f"{100 * value:.2f}"


def markdown(report, info):
    """The report as Markdown: per quantity and variant, the mean and 95th percentile of
    the relative difference from float32 (%), the zero-perturbation fraction of each
    attack (%), the 8-bit grid's fractions and the timing."""
    agreement = report["agreement"]
    variants = [v for v in agreement if v != REFERENCE]
    lines = [f"CPU: {info.get('cpu', cpu_description())}.",
             "Run: " + ", ".join(f"{k} {info[k]}" for k in sorted(info) if k != "cpu") + ".",
             "", "Relative difference from float32, % (mean / 95th percentile; "
             "[pooled]: mean |diff| / mean |float32|); zero: % of perturbed pixels whose "
             "perturbation rounds to 0 at D's input.", "",
             "| quantity | " + " | ".join(variants) + " |",
             "|---|" + "---|" * len(variants)]
    for quantity in agreement[REFERENCE]:
        cells = []
        for v in variants:
            row = agreement[v][quantity]
            cell = f"{_pct(row['mean'])} / {_pct(row['p95'])} [{_pct(row['pooled'])}]"
            if "zero_fraction" in row:
                cell += f", zero {_pct(row['zero_fraction'])}"
            cells.append(cell)
        lines.append(f"| {quantity} | " + " | ".join(cells) + " |")
    if report.get("grid_zero_fraction"):
        lines += ["", "8-bit grey levels (k/127.5 - 1, each moved by +-epsilon), % whose "
                  "perturbation rounds to 0 in bfloat16: " + ", ".join(
                      f"{e * 255:g}/255: {_pct(f)}"
                      for e, f in report["grid_zero_fraction"].items()) + "."]
    timing = report.get("timing_ms") or {}
    if timing:
        base = timing.get("mixed_bfloat16")
        lines += ["", "D forward+backward (real term, weights and input), batch "
                  f"{info.get('batch_size')}, median ms: " + ", ".join(
                      f"{v} {ms:.1f}" + (f" ({ms / base:.2f}x bf16)" if base else "")
                      for v, ms in timing.items()) + "."]
    return "\n".join(lines)
