"""Spectral normalization of D's layers (Miyato et al. 2018, "Spectral Normalization for
Generative Adversarial Networks", arXiv 1802.05957): each layer computes with
``W_SN = W / sigma(W)``, ``sigma(W)`` the largest singular value of its kernel.

The method (the paper): Eq. (8) ``W_SN = W / sigma(W)``; Appendix A, Algorithm 1: one
power iteration per forward pass from a persistent ``u`` (``v = W^T u / ||W^T u||``,
``u = W v / ||W v||``, ``sigma = u^T W v``); ``u`` and ``v`` are constants for the
gradient, which therefore flows through ``sigma(W)`` into the raw ``W``: Eq. (12),
``dV/dW = (G - lambda u v^T) / sigma`` with ``G = dV/dW_SN`` and
``lambda = sum(G * W_SN)``.

The reference code we follow is PyTorch's ``torch/nn/utils/spectral_norm.py``:

- ``u`` (size ``out``) and ``v`` (size ``K``) are persistent, normalised Gaussian draws
  at creation; every training-mode forward pass runs one power iteration
  (``n_power_iterations=1``), stores the new ``u`` and ``v`` and divides by
  ``sigma = u^T W v`` computed from them; an inference-mode pass uses the stored ``u``,
  ``v`` unchanged (so with the same ``W`` it gives exactly the last training pass's
  ``sigma``). Normalisation ``x / max(||x||, eps)``, ``eps = 1e-12``.
- The kernel is the matrix ``[out_channels, -1]`` (PyTorch's ``[out, in, kh, kw]``
  flattened after the output axis). Keras kernels are ``[kh, kw, in, out]`` (``Dense``:
  ``[in, out]``); we read them as ``M = reshape(kernel, [-1, out])``, ``[K, out]`` with
  ``K = kh * kw * in``. ``W = M^T`` is PyTorch's matrix up to an order of its columns
  (``(kh, kw, in)`` here, ``(in, kh, kw)`` there), which leaves every singular value
  unchanged. In ``M``'s terms: ``v = normalize(M u)``, ``u = normalize(M^T v)``,
  ``sigma = v^T M u``.

Other reference code, checked: Miyato's chainer code (``pfnet-research/sngan_projection``,
``source/links/sn_convolution_2d.py`` and ``source/functions/max_sv.py``) also reshapes
to ``[out, -1]`` and stores ``u`` only in training mode, but runs the power iteration on
every call (inference too, without storing it) and normalises by ``||x|| + eps``;
Mimicry (``torch_mimicry/modules/spectral_norm.py``, the base of the DAT authors' code)
does the same as chainer. The two differ from PyTorch only in inference-mode passes.

Not ``keras.layers.SpectralNormalization`` (Keras 3.15): on every training call it
assigns ``W / sigma`` back into the kernel and computes ``sigma`` without a gradient,
which is neither the reparameterisation nor Eq. (12)'s gradient.

In AS-GAN's train step (:mod:`tf_asgan.asgan`) every D call is in training mode, so each
performs one power iteration, as PyTorch's hook does on each ``D(x)`` of a training
loop. With ``d_steps`` D iterations per step: the baseline calls D ``2 * d_steps + 1``
times (real and fake batch per D update, the fake batch in G's update; 3 with
``d_steps=1``); AS-GAN's second D update adds 2 per D iteration (1 with
``second_update="real_only"``): 5 per step with the paper's FGSM, whose input gradient
comes from the first update's pass; PGD adds one per attack step that computes a
gradient; DAT, AdvAs and gradient penalties add their own D passes. So one AS-GAN step
refines ``u`` more often than one baseline step does; each call divides by the ``sigma``
of the ``u`` it has just refined (within one step the calls' ``sigma`` differ by one
iteration's refinement, as with PyTorch's ``D(real)``, ``D(fake)``).

``tf.distribute``: ``u`` and ``v`` are mirrored, non-trainable variables with Keras's
default aggregation ("none"), like batch norm's moving statistics: each replica assigns
its own copy. The copies stay identical because the update is a function of ``W`` and
``u`` only, never of the replica's batch: the copies start equal (a mirrored variable's
copies are initialised from the first replica's value), ``W`` is mirrored (the
optimizer applies the all-reduced gradient to every copy), and every replica runs the
same operations on the same values (on devices of one kind, bit for bit). This needs no
cross-replica communication, unlike ``aggregation="only_first_replica"``, whose update
in replica context is a merge call that broadcasts the first replica's value; the tests
check that the copies agree after training steps on two replicas. A checkpoint holds
one copy, restored into all.

Mixed precision: the kernel is read as float32 (its variable is not autocast), ``u``,
``v``, ``sigma`` and ``W / sigma`` are float32, and only the normalised kernel is cast
to the layer's compute dtype. ``u`` and ``v`` are non-trainable: the layers' trainable
parameters are those of ``Conv2D`` / ``Dense``.
"""

import math
import numbers

import keras
import tensorflow as tf

from tf_asgan import errors

EPSILON = 1e-12  # PyTorch's eps: x / max(||x||, eps)


def normalize(x, eps=EPSILON):
    """``x / max(||x||_2, eps)`` for a vector ``x`` (PyTorch's ``F.normalize``)."""
    return x / tf.maximum(tf.norm(x), eps)


def kernel_matrix(kernel):
    """The kernel ``[..., out]`` as the matrix ``M`` ``[K, out]``, ``K`` the product of
    the other dimensions (``M^T`` is PyTorch's ``[out, -1]`` matrix, columns permuted)."""
    return tf.reshape(kernel, [-1, kernel.shape[-1]])


def power_iteration(matrix, u, eps=EPSILON):
    """One step of Algorithm 1 on ``W = matrix^T``: ``v = normalize(W^T u)``,
    ``u = normalize(W v)``.

    Args:
      matrix: ``M`` ``[K, out]`` float32 (:func:`kernel_matrix`).
      u: ``[out]`` float32, the current estimate of ``W``'s first left singular vector.

    Returns:
      ``(u, v)``, ``[out]`` and ``[K]`` unit vectors, constants for the gradient.
    """
    matrix = tf.stop_gradient(matrix)
    v = normalize(tf.linalg.matvec(matrix, u), eps)
    u = normalize(tf.linalg.matvec(matrix, v, transpose_a=True), eps)
    return u, v


def estimate_sigma(matrix, u, v):
    """``u^T W v = v^T M u`` (a scalar, ``W``'s largest singular value once ``u`` and ``v``
    have converged), differentiable in ``matrix`` with ``u``, ``v`` held constant."""
    u, v = tf.stop_gradient(u), tf.stop_gradient(v)
    return tf.tensordot(v, tf.linalg.matvec(matrix, u), 1)


def _unit_normal(shape, dtype=None):
    """A normalised standard-normal draw (PyTorch's initial ``u`` and ``v``), float32
    whatever ``dtype``; from Keras's seeded random state."""
    del dtype
    return normalize(keras.random.normal(shape, dtype="float32"))


class _SpectralNormalized:
    """What :class:`SpectralConv2D` and :class:`SpectralDense` add to their Keras base:
    ``u``, ``v`` (``sn_u``, ``sn_v``) and the normalised kernel."""

    def _init_spectral(self, power_iterations, epsilon):
        integer = (isinstance(power_iterations, numbers.Integral)
                   and not isinstance(power_iterations, bool))
        if not integer or power_iterations < 1:
            raise errors.InputError("power_iterations must be an integer >= 1 (Miyato et "
                                    f"al.'s Algorithm 1: 1), got {power_iterations!r}.")
        if not (isinstance(epsilon, numbers.Real) and epsilon > 0):
            raise errors.InputError(f"epsilon must be > 0 (PyTorch's: 1e-12), got {epsilon!r}.")
        self.power_iterations, self.epsilon = int(power_iterations), float(epsilon)

    def add_weight(self, *args, **kwargs):
        if kwargs.get("name") == "kernel":
            kwargs["autocast"] = False  # read in float32 under mixed precision
        return super().add_weight(*args, **kwargs)

    def build(self, input_shape):
        super().build(input_shape)
        shape = tuple(self.kernel.shape)
        self.sn_u = self.add_weight(name="sn_u", shape=(shape[-1],), initializer=_unit_normal,
                                    trainable=False, autocast=False, dtype="float32")
        self.sn_v = self.add_weight(name="sn_v", shape=(math.prod(shape[:-1]),),
                                    initializer=_unit_normal, trainable=False,
                                    autocast=False, dtype="float32")

    def normalized_kernel(self, training=False):
        """``W / sigma(W)`` in float32, the kernel's shape. ``training=True`` first runs
        ``power_iterations`` power iterations and stores ``u`` and ``v``."""
        kernel = tf.cast(self.kernel, tf.float32)
        matrix = kernel_matrix(kernel)
        u, v = tf.convert_to_tensor(self.sn_u), tf.convert_to_tensor(self.sn_v)
        if training:
            for _ in range(self.power_iterations):
                u, v = power_iteration(matrix, u, self.epsilon)
            self.sn_u.assign(u)
            self.sn_v.assign(v)
        return kernel / estimate_sigma(matrix, u, v)

    def sigma(self):
        """``sigma`` from the stored ``u``, ``v`` (what an inference-mode call divides by)."""
        matrix = kernel_matrix(tf.cast(self.kernel, tf.float32))
        return estimate_sigma(matrix, tf.convert_to_tensor(self.sn_u),
                              tf.convert_to_tensor(self.sn_v))

    def _compute_kernel(self, training):
        return tf.cast(self.normalized_kernel(training), self.compute_dtype)

    def get_config(self):
        return {**super().get_config(), "power_iterations": self.power_iterations,
                "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package="tf_asgan")
class SpectralConv2D(_SpectralNormalized, keras.layers.Conv2D):
    """``keras.layers.Conv2D`` computing with ``W / sigma(W)`` (see the module docstring).

    A subclass rather than a wrapper (ours): the layer keeps ``Conv2D``'s arguments,
    weight names (``kernel``, ``bias``) and trainable parameter count, so a network
    switches it in by class, and ``keras.models.clone_model`` (synchronised batch norm)
    rebuilds it from its config. ``u`` ``[filters]`` and ``v`` ``[kh * kw * in]`` are
    the non-trainable ``sn_u``, ``sn_v``, checkpointed with the model.

    Args:
      power_iterations: power iterations per training-mode call (1: Miyato et al.).
      epsilon: the normalisation's ``eps`` (PyTorch's 1e-12).
      **kwargs: ``keras.layers.Conv2D``'s arguments.

    Raises:
      InputError: ``power_iterations`` not an integer >= 1, or ``epsilon <= 0``.
    """

    def __init__(self, *args, power_iterations=1, epsilon=EPSILON, **kwargs):
        super().__init__(*args, **kwargs)
        self._init_spectral(power_iterations, epsilon)

    def call(self, inputs, training=None):
        outputs = self.convolution_op(inputs, self._compute_kernel(training))
        if self.use_bias:
            channels_last = self.data_format == "channels_last"
            outputs = outputs + (self.bias if channels_last
                                 else tf.reshape(self.bias, (1, -1, 1, 1)))
        return self.activation(outputs) if self.activation is not None else outputs


@keras.saving.register_keras_serializable(package="tf_asgan")
class SpectralDense(_SpectralNormalized, keras.layers.Dense):
    """``keras.layers.Dense`` computing with ``W / sigma(W)`` (see :class:`SpectralConv2D`;
    ``u`` ``[units]``, ``v`` ``[in]``). Inputs ``[..., in]`` -> ``[..., units]``."""

    def __init__(self, *args, power_iterations=1, epsilon=EPSILON, **kwargs):
        super().__init__(*args, **kwargs)
        self._init_spectral(power_iterations, epsilon)

    def call(self, inputs, training=None):
        outputs = keras.ops.matmul(inputs, self._compute_kernel(training))
        if self.use_bias:
            outputs = outputs + self.bias
        return self.activation(outputs) if self.activation is not None else outputs
