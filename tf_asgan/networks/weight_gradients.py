"""How a network's 2-D convolutions compute their weight gradients.

``"kernel"`` (the default) leaves every convolution as Keras builds it: TensorFlow's
``Conv2DBackpropFilter`` (oneDNN's kernel on CPUs) computes ``dL/dW``. ``"patches"``
computes the same quantity as one matrix product over the input's patches
(:func:`patch_weight_gradient`; im2col, Chellapilla, Puri and Simard, "High Performance
Convolutional Neural Networks for Document Processing", 2006). The forward pass and the
input gradient keep TensorFlow's kernels, so the outputs are bit for bit the same; the
weight gradient is the same sum, computed in another order (equal to TensorFlow's to
float32 rounding; in bfloat16 both round their float32 accumulation once to bfloat16).

Why (ours, measured in ``docs/results.md``, "Convolution weight gradients by patches"):
on a CPU without AMX, oneDNN's bfloat16 weight-gradient kernel can be slower than its
float32 one on a layer with small feature maps and many channels (DCGAN-32's D
``8x8x256 -> 4x4x512`` at batch 64, one profile run on an AMD EPYC: 44.4 ms against
24.3 in float32), while a bfloat16 matrix product over that layer's patches took 17.3.
Where the feature maps are large, or the kernel is 3x3 at stride 1 (the patches copy
the input nine times), the copy costs more than it saves; in float32 the route gains
nothing. So it is a speed option for ``--precision=mixed_bfloat16`` with DCGAN-type
discriminators on such CPUs, chosen by the user (``--conv_weight_gradient``), never
switched on by ``auto``.

:func:`route_weight_gradients` switches a built model's ``keras.layers.Conv2D`` layers
(spectral-norm ones included; ``Conv2DTranspose`` is not a ``Conv2D`` and keeps its
kernel) by replacing each layer's ``convolution_op`` on the instance: the layer's class,
config, weights and checkpoint keys are unchanged, so checkpoints move freely between the
two routes. An exported generator computes the same outputs (its SavedModel also holds
the route's gradient function). The route lives on the instance only: a copy made by
``keras.models.clone_model`` (the EMA of G, synchronised batch norm) has the kernel's
again, a train step traced before the call keeps what it traced, and a ``Conv2D``
subclass whose ``call`` does not go through ``convolution_op`` is not affected.
"""

import functools

import keras
import tensorflow as tf

from tf_asgan import errors

WEIGHT_GRADIENTS = ("kernel", "patches")


def patch_weight_gradient(x, dy, kernel_shape, strides, padding, dilations=(1, 1)):
    """The weight gradient of a 2-D convolution as one matrix product over the input's
    patches (im2col, module docstring): ``dW[i, j, c, o] = sum over n, h, w of
    x_pad[n, h*s + i*r, w*s + j*r, c] * dy[n, h, w, o]``, i.e. ``patches^T @ dy`` with
    ``patches`` the ``k_h x k_w x C_in`` input patches of every output position
    (``tf.image.extract_patches``, which pads as ``tf.nn.conv2d`` does; it copies the
    input about ``k_h k_w / (s_h s_w)`` times, and that copy is part of the cost) and
    ``dy`` reshaped to ``[positions, C_out]``. The same value as
    ``tf.raw_ops.Conv2DBackpropFilter`` (tested against it), by another kernel.

    Args:
      x: the convolution's input ``[N, H, W, C_in]``.
      dy: the gradient of its output ``[N, H_out, W_out, C_out]``, same dtype.
      kernel_shape: ``[k_h, k_w, C_in, C_out]``.
      strides, dilations: ``(s_h, s_w)``, ``(r_h, r_w)``; padding: ``"same"`` / ``"valid"``.

    Returns:
      ``[k_h, k_w, C_in, C_out]`` in ``x``'s dtype.

    Raises:
      tf_asgan.errors.InputError: ``dy`` not the shape of the convolution's output, or
        ``x``'s channels not ``C_in``.
    """
    k_h, k_w, c_in, c_out = kernel_shape
    patches = tf.image.extract_patches(x, sizes=[1, k_h, k_w, 1],
                                       strides=[1, *strides, 1], rates=[1, *dilations, 1],
                                       padding=padding.upper())
    if (x.shape[-1] != c_in
            or not tf.TensorShape(dy.shape).is_compatible_with([*patches.shape[:3], c_out])):
        raise errors.InputError(
            f"patch_weight_gradient: x {tuple(x.shape)} and kernel {tuple(kernel_shape)} "
            f"(strides {tuple(strides)}, {padding}) give outputs "
            f"{(*patches.shape[:3], c_out)}, but dy is {tuple(dy.shape)}; pass the "
            "gradient of this convolution's output.")
    flat = tf.reshape(patches, [-1, k_h * k_w * c_in])
    grad = tf.matmul(flat, tf.reshape(dy, [-1, c_out]), transpose_a=True)
    return tf.reshape(grad, [k_h, k_w, c_in, c_out])


def patch_gradient_conv2d(x, kernel, strides, padding, dilations=(1, 1)):
    """``tf.nn.conv2d(x, kernel)`` (channels last) whose gradient with respect to
    ``kernel`` is :func:`patch_weight_gradient`; the gradient with respect to ``x`` is
    TensorFlow's ``Conv2DBackpropInput``, as in the plain op. Both backward ops are
    differentiable, so gradient penalties (R1, WGAN-GP) that differentiate the input
    gradient again work as with the plain op (tested).

    Args:
      x: ``[N, H, W, C_in]``; kernel: ``[k_h, k_w, C_in, C_out]``, same dtype.
      strides, dilations: ``(s_h, s_w)``, ``(r_h, r_w)``; padding: ``"same"`` / ``"valid"``.

    Returns:
      ``[N, H_out, W_out, C_out]``.

    Raises:
      tf_asgan.errors.InputError: from :func:`patch_weight_gradient`, in the backward
        pass, if the shapes do not fit (they do for a layer's own input and kernel).
    """
    conv = dict(strides=[1, *strides, 1], padding=padding.upper(),
                dilations=[1, *dilations, 1])

    @tf.custom_gradient
    def forward(x, kernel):
        def backward(dy):
            dx = tf.raw_ops.Conv2DBackpropInput(input_sizes=tf.shape(x), filter=kernel,
                                                out_backprop=dy, **conv)
            dw = patch_weight_gradient(x, dy, kernel.shape, strides, padding, dilations)
            return dx, dw

        return tf.nn.conv2d(x, kernel, **conv), backward

    # a variable read here, outside, so that the tape sees the kernel as a tensor input
    return forward(tf.convert_to_tensor(x), tf.convert_to_tensor(kernel))


def check(route):
    """Raises :class:`tf_asgan.errors.InputError` unless ``route`` is one of
    :data:`WEIGHT_GRADIENTS`."""
    if route not in WEIGHT_GRADIENTS:
        raise errors.InputError(f"Unknown weight-gradient route {route!r}; choose from "
                                f"{list(WEIGHT_GRADIENTS)}.")


def route_weight_gradients(model, route):
    """Sets how ``model``'s ``Conv2D`` layers compute their weight gradients (module
    docstring); returns the names of the layers routed by patches (none for
    ``"kernel"``). Layers inside nested layers and models count; layers with
    ``groups > 1`` or channels first keep their kernel (the patch product assumes
    neither). Call it on a built model before the first train step traces.

    Raises:
      tf_asgan.errors.InputError: ``route`` not in :data:`WEIGHT_GRADIENTS`.
    """
    check(route)
    routed = []
    for layer in conv_layers(model):
        if "convolution_op" in vars(layer):  # routed before: back to the class's method
            del layer.convolution_op
        if route == "patches" and layer.groups == 1 and layer.data_format == "channels_last":
            layer.convolution_op = functools.partial(_patch_convolution_op, layer)
            routed.append(layer.name)
    return routed


def conv_layers(model):
    """The ``Conv2D`` layers of ``model`` and of every layer or model nested in it, at
    any depth (Keras's own walk over the tracked sublayers; it has no public one)."""
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, keras.layers.Conv2D):
            yield layer


def _patch_convolution_op(layer, inputs, kernel):
    return patch_gradient_conv2d(inputs, kernel, layer.strides, layer.padding,
                                 layer.dilation_rate)
