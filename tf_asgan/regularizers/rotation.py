"""SSGAN's self-supervised rotation loss, as pure functions of a rotation-logits function.

Source: Chen, Zhai, Ritter, Lucic and Houlsby, "Self-Supervised GANs via Auxiliary
Rotation Loss", CVPR 2019, sec. 3: D gains a second head ``Q_D`` that classifies the
rotation ``r`` in ``R = {0, 90, 180, 270}`` degrees of an image ``x^r``, and

    L_D = V(G, D) - beta  * E_{x ~ P_data} E_{r ~ R} [log Q_D(R = r | x^r)]
    L_G = -V(G, D) - alpha * E_{x ~ P_G}   E_{r ~ R} [log Q_D(R = r | x^r)]

i.e. D learns the rotation task on *real* images only, and G is rewarded for fakes whose
rotations D recognises. The weights are ``beta = 1.0`` (D) and ``alpha = 0.2`` (G), the
defaults of both reference codes: the authors' ``google/compare_gan``
(``compare_gan/gans/ssgan.py``: ``weight_rotation_loss_d=1.0``,
``weight_rotation_loss_g=0.2``) and Mimicry (``kwotsin/mimicry``,
``torch_mimicry/nets/ssgan/ssgan_base.py``: ``ss_loss_scale`` 1.0 in D, 0.2 in G), whose
fork by the DAT authors (``iceli1007/DAT-GAN``) produced DAT's SSGAN results.

Rotations: ``k`` quarter turns *counter-clockwise* (label ``k`` is ``90 k`` degrees),
``numpy.rot90(image, k)`` on each ``[H, W]`` plane and ``tf.image.rot90``; both reference
codes turn the same way (Mimicry's ``_rot_tensor``: 90 degrees is ``transpose`` then a
flip of the rows; compare_gan's ``rotate_images``: ``flip_up_down(transpose_image(x))``).

Two ways to form the rotated batch, both unbiased estimates of ``E_x E_r`` on a shuffled
batch (:data:`SCHEMES`):

- ``"quarter"`` (Mimicry's ``_rotate_batch``, the default): each image of the batch is
  rotated once, image ``i`` of ``N`` by label ``floor(4 i / N)``, so the first quarter of
  the batch stays upright, the second is turned 90 degrees, and so on. One D pass over
  ``N`` images. The default because DAT's SSGAN results come from this code.
- ``"all"`` (the paper's expectation taken over all four ``r`` for every image, as
  compare_gan does): every image in all four rotations, ``4 N`` images, labels
  ``[0]*N + [1]*N + [2]*N + [3]*N``. compare_gan rotates only the last
  ``rotated_batch_size / 4`` images of the batch (a gin parameter); ours rotates the
  whole batch.

The loss is the mean softmax cross-entropy of the four rotation logits against the
labels, exact (``log_softmax``, as Mimicry's ``F.cross_entropy``; compare_gan adds
``1e-10`` inside its ``log(softmax)``, which we do not).

What is ours (the model's composition, :class:`tf_asgan.ASGAN`): see ``docs/methods.md``,
"SSGAN's rotation loss". The D head itself is
:func:`tf_asgan.networks.rotation_classifier` (a linear layer on D's features).
"""

import dataclasses

import tensorflow as tf

from tf_asgan import errors
from tf_asgan.utils import options

SCHEMES = ("quarter", "all")
OFF = "none"
NUM_ROTATIONS = 4
# The weights of both reference codes (module docstring): beta on reals in D's loss,
# alpha on fakes in G's loss.
DEFAULT_WEIGHT_D = 1.0
DEFAULT_WEIGHT_G = 0.2
# The values a train step with the rotation loss logs (tf_asgan.tracking).
METRIC_NAMES = ("rotation_d", "rotation_acc", "rotation_g")


def rotate(images, k):
    """``images`` turned ``k`` quarter turns counter-clockwise (``numpy.rot90`` of each
    ``[H, W]`` plane): ``[N, H, W, C] -> [N, W, H, C]``, the same dtype.

    Args:
      images: ``[N, H, W, C]``.
      k: a Python int (taken modulo 4).
    """
    return tf.image.rot90(images, k % NUM_ROTATIONS)


def _check_square(images):
    shape = images.shape
    if shape.rank != 4:
        raise errors.InputError(f"The rotation loss takes image batches [N, H, W, C]; got shape "
                                f"{shape}.")
    if shape[1] is not None and shape[2] is not None and shape[1] != shape[2]:
        raise errors.InputError(f"The rotation loss needs square images (a rotated batch keeps "
                                f"its shape); got {shape[1]}x{shape[2]}.")


def quarter_labels(n):
    """Mimicry's labels of a batch of ``n``: ``floor(4 i / n)`` for ``i < n``, int32
    ``[n]`` (``n`` an int or an int32 scalar tensor)."""
    n = tf.cast(n, tf.int32)
    return (tf.range(n) * NUM_ROTATIONS) // tf.maximum(n, 1)


def rotated_batch(images, scheme="quarter"):
    """The rotated images and their labels under ``scheme`` (module docstring).

    Args:
      images: ``[N, H, W, C]`` square images, any dtype.
      scheme: "quarter" (each image once, Mimicry) or "all" (each image four times).

    Returns:
      ``(rotated, labels)``: ``[M, H, W, C]`` and int32 ``[M]``, ``M = N`` ("quarter")
      or ``4 N`` ("all", angle-major: all images at 0 degrees, then at 90, ...).

    Raises:
      InputError: an unknown scheme, or images that are not a batch of squares.
    """
    images = tf.convert_to_tensor(images)
    _check_square(images)
    turned = [rotate(images, k) for k in range(NUM_ROTATIONS)]
    n = tf.shape(images)[0]
    if scheme == "all":
        labels = tf.repeat(tf.range(NUM_ROTATIONS, dtype=tf.int32), n)
        return tf.concat(turned, axis=0), labels
    if scheme != "quarter":
        raise errors.InputError(f"Unknown rotation scheme {scheme!r}; choose one of "
                                f"{list(SCHEMES)}.")
    labels = quarter_labels(n)
    # image i from the stack of its four rotations, at its own label
    picks = tf.stack([labels, tf.range(n)], axis=1)
    return tf.gather_nd(tf.stack(turned, axis=0), picks), labels


def cross_entropy(logits, labels):
    """Mean softmax cross-entropy ``-mean_i log softmax(logits_i)[labels_i]``.

    Args:
      logits: ``[M, 4]`` rotation logits (any float dtype; computed in float32).
      labels: int ``[M]`` in ``[0, 4)``.

    Returns:
      float32 scalar, >= 0 (``log 4 = 1.386`` for uniform logits).
    """
    logits = tf.cast(logits, tf.float32)
    return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=tf.cast(labels, tf.int32), logits=logits))


def accuracy(logits, labels):
    """The fraction of rows whose largest logit is at their label (float32 scalar in
    [0, 1]; compare_gan logs it as ``accuracy/d_rotation``)."""
    predicted = tf.argmax(logits, axis=-1, output_type=tf.int32)
    return tf.reduce_mean(tf.cast(tf.equal(predicted, tf.cast(labels, tf.int32)), tf.float32))


def loss(rotation_logits_fn, images, scheme="quarter"):
    """The rotation loss of ``images``: ``(cross-entropy, accuracy)``, unweighted.

    Args:
      rotation_logits_fn: ``[M, H, W, C] -> [M, 4]`` rotation logits of the current D
        (its rotation classifier).
      images: ``[N, H, W, C]`` upright square images in model-input units.
      scheme: see :func:`rotated_batch`.

    Returns:
      Two float32 scalars: the mean cross-entropy (:func:`cross_entropy`) and the
      accuracy (:func:`accuracy`) over the rotated batch.
    """
    rotated, labels = rotated_batch(images, scheme)
    logits = rotation_logits_fn(rotated)
    return cross_entropy(logits, labels), accuracy(logits, labels)


@dataclasses.dataclass(frozen=True)
class RotationLoss:
    """SSGAN's rotation loss as an option of :class:`tf_asgan.ASGAN`.

    Attributes:
      scheme: "quarter" (Mimicry's, one rotation per image) or "all" (the paper's
        expectation over all four, as compare_gan).
      weight_d: ``beta``, its weight in D's loss (on reals); the sources' 1.0.
      weight_g: ``alpha``, its weight in G's loss (on fakes); the sources' 0.2.
    """

    scheme: str = "quarter"
    weight_d: float = DEFAULT_WEIGHT_D
    weight_g: float = DEFAULT_WEIGHT_G

    def validate(self):
        """Returns ``self``; raises :class:`~tf_asgan.errors.InputError` naming a bad field."""
        if self.scheme not in SCHEMES:
            raise errors.InputError(f"Unknown rotation scheme {self.scheme!r}; choose one of "
                                    f"{list(SCHEMES)} (or none / rotation=None).")
        for name in ("weight_d", "weight_g"):
            if not getattr(self, name) >= 0:
                raise errors.InputError(f"The rotation loss's {name} must be >= 0 (the sources': "
                                        f"D {DEFAULT_WEIGHT_D}, G {DEFAULT_WEIGHT_G}), got "
                                        f"{getattr(self, name)}.")
        return self


def as_rotation(value):
    """``None``, ``"none"``, a scheme name, a dict of :class:`RotationLoss`'s fields or a
    :class:`RotationLoss` -> ``None`` or a validated :class:`RotationLoss`
    (:func:`tf_asgan.utils.options.as_option`).

    Raises:
      InputError: unknown dict keys (naming the fields), another type, or a bad field.
    """
    return options.as_option(value, RotationLoss, what="rotation loss", argument="rotation",
                             public="tf_asgan.regularizers.RotationLoss",
                             name_field="scheme", names=SCHEMES, off=OFF)


def check_combination(rotation, advas):
    """Refuses the rotation loss together with AdvAs.

    AdvAs (:mod:`tf_asgan.methods.advas`) is derived for a generator that minimises the
    game's objective, ``L_gen = -L_adv``, and its weight
    ``min(1, ||grad_theta L_gen|| / ||grad_theta r~||)`` compares that gradient with the
    penalty's. Its presentation calls it compatible with regularisers of the *adversary's*
    training (D's rotation term on reals would be one), but SSGAN also changes G's loss,
    ``+ alpha * L_rot(fakes)``, a collaborative term outside the game, and no source says
    whether ``L_gen`` holds it (AdvAs was shown with WGAN-GP and StyleGAN2 only).

    Raises:
      InputError: both set.
    """
    if rotation is not None and advas is not None:
        raise errors.InputError(
            "The rotation loss (SSGAN) with AdvAs is not defined: AdvAs is derived for a "
            "generator that minimises the game's objective, and SSGAN adds a rotation term "
            "to G's loss that no AdvAs source places in its penalty weight (AdvAs was shown "
            "with WGAN-GP and StyleGAN2). Use one of them (--rotation_loss=none or "
            "--advas_lambda=0).")
