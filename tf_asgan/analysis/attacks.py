"""The paper's analyses as measurements: how robust the discriminator is, and what its
input gradient looks like (the figures are drawn by :mod:`tf_asgan.analysis.figures`).

- :func:`robustness` (Fig. 14/15): FGSM and the iterative attack on real and fake
  batches at several epsilons; D's mean probability of "real" and its confidence in the
  right answer before and after; the fraction of decisions flipped.
- :func:`input_gradient`, :func:`gradient_maps` (Fig. 1): D's input gradient on real
  images, clipped to +-3 standard deviations, mean absolute value over channels.
- :func:`gradient_statistics` (Fig. 5): histogram of the input gradient's entries and
  the per-image L1 norm.

Conventions: images in ``[-1, 1]``; epsilons in the same units. D's "loss" on a batch
is the term of the run's GAN loss (:mod:`tf_asgan.losses`, ``loss=``, default
``"non_saturating"``) on the batch's true side: ``real_term`` for reals, ``fake_term``
for fakes (for the non-saturating loss ``softplus(-logit)`` and ``softplus(logit)``);
an attack increases it. It is summed over the batch, so each image's input gradient is
that of its own loss. A decision is "real" when the logit is positive. D runs in
inference mode (``training=False``).
"""

import warnings

import numpy as np
import tensorflow as tf

from tf_asgan import errors, losses, perturbations, schedules

SIDES = ("real", "fake")
# Attack radii of the analyses lie in (0, MAX_ATTACK_EPSILON), in input units: half the
# library's ceiling tf_asgan.schedules.MAX_EPSILON, open at 1. At a radius of 1 an attack
# can already move every pixel to mid-grey, i.e. turn every image into the same one, so
# D's robustness means nothing from there on; and the open bound refuses the slips of
# writing 4 (or 1) for 4/255.
MAX_ATTACK_EPSILON = schedules.MAX_EPSILON / 2


def logits(discriminator, x, batch_size=256):
    """D's logits ``[N]`` (float32) on images ``x``, in batches."""
    x = np.asarray(x, np.float32)
    out = [tf.cast(tf.reshape(discriminator(x[i:i + batch_size], training=False), [-1]),
                   tf.float32).numpy() for i in range(0, len(x), batch_size)]
    return np.concatenate(out) if out else np.zeros([0], np.float32)


def side_loss(discriminator, side, loss="non_saturating"):
    """``x -> D's loss on the images x labelled side``: the ``real_term`` or ``fake_term``
    of the GAN loss ``loss`` (a name of :data:`tf_asgan.losses.LOSSES` or a
    :class:`~tf_asgan.losses.GANLoss`), times the number of logits, i.e. summed over the
    batch rather than averaged, so that each image's gradient is its own loss's.

    Raises:
      ValueError: ``side`` is not "real" or "fake", or ``loss`` is unknown.
    """
    if side not in SIDES:
        raise errors.InputError(f"side must be one of {SIDES}, got {side!r}.")
    gan_loss = losses.get(loss)
    term = gan_loss.real_term if side == "real" else gan_loss.fake_term

    def loss_fn(x):
        logit = tf.cast(discriminator(x, training=False), tf.float32)
        return term(logit) * tf.cast(tf.size(logit), tf.float32)

    return loss_fn


def input_gradient(discriminator, x, side="real", loss="non_saturating"):
    """``grad_x`` of D's loss (:func:`side_loss`) on the images ``x`` ``[N, H, W, C]``
    labelled ``side``; float32, per image, ``[N, H, W, C]``."""
    x = tf.convert_to_tensor(np.asarray(x, np.float32))
    return perturbations.input_gradient(side_loss(discriminator, side, loss), x).numpy()


def attack(discriminator, x, epsilon, side="real", steps=1, step_size=None,
           input_grad=None, loss="non_saturating"):
    """Adversarial examples of D: ``x`` moved within the L-infinity ball of radius
    ``epsilon`` (and ``[-1, 1]``) to increase D's loss on ``side`` (:func:`side_loss`).

    ``steps=1``: FGSM (:func:`tf_asgan.perturbations.fgsm_perturbation`, through
    :func:`tf_asgan.perturbations.attack` like the model's); more: the iterative attack
    (BIM, :func:`tf_asgan.perturbations.pgd_perturbation`) with
    ``step_size`` (default ``2.5 * eps / steps``). ``input_grad``: :func:`input_gradient`
    of ``x`` for ``side`` and ``loss`` when already computed (it serves the first step).

    Returns:
      float32 ``[N, H, W, C]`` in ``[-1, 1]``.

    Raises:
      ValueError: ``side`` is not "real" or "fake", or ``loss`` is unknown.
    """
    loss_fn = side_loss(discriminator, side, loss)
    x = tf.convert_to_tensor(np.asarray(x, np.float32))
    name, options = ("fgsm", {}) if steps == 1 else (
        "pgd", {"steps": int(steps), "step_size": step_size})
    return perturbations.attack(name, x, loss_fn, epsilon=float(epsilon),
                                input_grad=input_grad, **options).numpy()


def _summary(side, before, after, epsilon=None):
    if not (np.isfinite(before).all() and np.isfinite(after).all()):
        nan = float("nan")  # a broken D is not reported as a robust one
        return {k: nan for k in ("D_before", "D_after", "confidence_before",
                                 "confidence_after", "accuracy_before", "accuracy_after",
                                 "right", "flipped")}
    p0, p1 = 1 / (1 + np.exp(-before)), 1 / (1 + np.exp(-after))
    right = (lambda p: p) if side == "real" else (lambda p: 1 - p)
    correct = (lambda logit: logit > 0) if side == "real" else (lambda logit: logit <= 0)
    was_right, is_right = correct(before), correct(after)
    n_right = int(was_right.sum())
    if n_right:  # of the decisions D got right, the fraction the attack makes wrong
        flipped = float((was_right & ~is_right).sum() / n_right)
    else:  # nothing to flip: undefined, not "0% flipped" (which would read as robust)
        flipped = float("nan")
        warnings.warn(f"D classified none of the {len(before)} {side} images right before "
                      f"the attack (epsilon {epsilon}): the fraction flipped is undefined "
                      "and reported as NaN.", RuntimeWarning, stacklevel=3)
    return {"D_before": float(p0.mean()), "D_after": float(p1.mean()),
            "confidence_before": float(right(p0).mean()),
            "confidence_after": float(right(p1).mean()),
            "accuracy_before": float(was_right.mean()),
            "accuracy_after": float(is_right.mean()),
            "right": n_right, "flipped": flipped}


def robustness(discriminator, reals, fakes, epsilons, steps=(1,), loss="non_saturating"):
    """D under attack (:func:`attack` with the GAN loss ``loss``): one record per side,
    epsilon and number of attack steps.

    Each record: ``side``, ``epsilon``, ``steps``, ``D_before`` / ``D_after`` (mean
    probability of "real"), ``confidence_before`` / ``confidence_after`` (mean
    probability of the true label), ``accuracy_before`` / ``accuracy_after`` (fraction
    classified right: logit > 0 for reals, <= 0 for fakes), ``right`` (how many images D
    classified right before the attack: the denominator of ``flipped``), ``flipped`` (of
    those images, the fraction the attack makes D classify wrong; NaN, with a
    ``RuntimeWarning``, when ``right`` is 0). All NaN (``right`` too) when D's logits are
    not finite.
    """
    records = []
    for side, x in (("real", reals), ("fake", fakes)):
        if x is None:
            continue
        before = logits(discriminator, x)
        grad = input_gradient(discriminator, x, side, loss)  # every attack's first step
        for eps in epsilons:
            for k in steps:
                after = logits(discriminator, attack(discriminator, x, eps, side, k,
                                                     input_grad=grad, loss=loss))
                records.append({"side": side, "epsilon": float(eps), "steps": int(k),
                                **_summary(side, before, after, eps)})
    return records


def gradient_maps(grad, clip_std=3.0):
    """Fig. 1's maps ``[N, H, W]``: each image's gradient clipped to its mean +-
    ``clip_std`` standard deviations, then the mean absolute value over channels."""
    g = np.asarray(grad, np.float64)
    axes = tuple(range(1, g.ndim))
    mean = g.mean(axis=axes, keepdims=True)
    std = g.std(axis=axes, keepdims=True)
    clipped = np.clip(g, mean - clip_std * std, mean + clip_std * std)
    return np.abs(clipped).mean(axis=-1).astype(np.float32)


def gradient_statistics(grad, bins=50, value_range=None):
    """Histogram of the gradient's entries and the per-image L1 norms.

    Returns ``{"counts", "edges", "l1_mean", "l1_std", "l1"}`` (lists and floats).
    ``value_range`` defaults to the symmetric range of the largest magnitude.
    """
    g = np.asarray(grad, np.float64)
    finite = g[np.isfinite(g)]  # non-finite entries are left out of the histogram
    if value_range is None:
        top = float(np.abs(finite).max()) if finite.size else 1.0
        value_range = (-(top or 1.0), top or 1.0)
    counts, edges = np.histogram(finite, bins=bins, range=value_range)
    l1 = np.abs(g).reshape(len(g), -1).sum(axis=1)  # NaN for an image with a NaN
    return {"counts": counts.tolist(), "edges": edges.tolist(), "l1": l1.tolist(),
            "l1_mean": float(l1.mean()), "l1_std": float(l1.std())}


def parse_epsilons(text):
    """``"1/255,4/255,0.01"`` -> floats (the flag syntax of ``--epsilon``), each in
    ``(0, MAX_ATTACK_EPSILON)`` = ``(0, 1)`` model-input units (``4`` is refused: write
    ``4/255``).

    Raises:
      ValueError: a value outside ``(0, 1)``, or none at all.
    """
    values = [schedules.parse_epsilon(t) for t in str(text).split(",") if t.strip()]
    bad = [v for v in values if not 0 < v < MAX_ATTACK_EPSILON]
    if bad or not values:
        raise errors.InputError(f"Epsilons must lie in (0, {MAX_ATTACK_EPSILON:g}) model-input "
                                f"units, e.g. 4/255; got {text!r}.")
    return values


def real_batch(source, n, seed=0):
    """``n`` real images of a :class:`~tf_asgan.data.base.Source`, a seeded random choice."""
    buffer = max(1, min(source.num_examples or 10_000, 10_000))
    ds = source.images.shuffle(buffer, seed=seed, reshuffle_each_iteration=False).take(n)
    return np.stack(list(ds.as_numpy_iterator()))
