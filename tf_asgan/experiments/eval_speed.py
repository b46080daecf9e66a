"""What an evaluation with the 2015-12-05 Inception graph costs, beside the reference.

:func:`measure` times, in one process:

- **ours**: the forward pass of :func:`tf_asgan.evaluation.classifiers.pytorch_inception`
  (32x32 images resized to 299x299 inside, as an evaluation of 32 px samples does;
  batches of ``batch_size`` after one untimed batch): images per second, the graph's
  counted GFLOP per image (2 x the multiply-adds of its convolutions and logits) and the
  GFLOP/s that makes;
- **the CPU's matmul peak**: GFLOP/s of a 4096 x 4096 float32 ``tf.matmul``, measured
  in the same run (so a loaded machine lowers both);
- **the reference**: the same work in PyTorch, the TorchScript model of the weights file
  itself (``torch.jit.load``) after ``F.interpolate(mode="bilinear",
  align_corners=False)``, when torch is importable and the file is TorchScript; otherwise
  a line saying why it was skipped;
- **an FID-10k evaluation**, estimated from the forward pass: 10,000 generated images
  (the real statistics are cached after the first run), minutes = 10,000 / images per
  second / 60; the generator and the FID / KID arithmetic add seconds (ours, an estimate).
"""

import time

import numpy as np

from tf_asgan.evaluation import classifiers, fid_inception
from tf_asgan.utils import timing

FID_SAMPLES = 10_000


def matmul_peak(size=4096, repeats=5):
    """GFLOP/s of a ``size`` x ``size`` float32 matmul (one untimed call first, then
    ``repeats`` timed ones: :func:`tf_asgan.utils.timing.matmul_gflops`)."""
    return timing.matmul_gflops("float32", size, warmup=1, repeats=1, calls=repeats)


def _timed(forward, batches):
    forward()
    start = time.perf_counter()
    for _ in range(batches):
        forward()
    return time.perf_counter() - start


def reference_rate(weights, images, batches):
    """Images per second of the TorchScript model in ``weights`` (``None, reason`` when
    torch is missing or the file is not TorchScript)."""
    try:
        import torch  # only for this comparison; tf_asgan itself never needs it
        import torch.nn.functional as F
    except ImportError:
        return None, "torch is not installed (pip install torch to compare)"
    try:
        model = torch.jit.load(weights).eval()
    except RuntimeError as err:
        return None, f"{weights} is not a TorchScript file ({str(err).splitlines()[0]})"
    x = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))

    def forward():
        with torch.no_grad():
            return model(F.interpolate(x, size=(299, 299), mode="bilinear",
                                       align_corners=False))

    seconds = _timed(forward, batches)
    return batches * len(images) / seconds, f"torch {torch.__version__}, " \
        f"{torch.get_num_threads()} threads, TorchScript"


def measure(weights, batch_size=50, batches=4, peak_size=4096):
    """The speed report (see the module docstring) of the graph in ``weights`` (a
    PyTorch-format file: :func:`tf_asgan.evaluation.classifiers.pytorch_inception`)."""
    net = classifiers.pytorch_inception(weights, batch_size=batch_size)
    gflop = fid_inception.counted_gflop(with_logits=net.num_classes > 0)
    images = np.random.default_rng(0).uniform(-1, 1, (batch_size, 32, 32, 3)).astype(
        np.float32)
    rate = batches * batch_size / _timed(lambda: net(images), batches)
    ref, how = reference_rate(weights, images, batches)
    return {"weights": weights, "batch_size": batch_size, "batches": batches,
            "gflop_per_image": gflop, "matmul_peak_gflops": matmul_peak(peak_size),
            "ours": {"images_per_second": rate, "gflops": rate * gflop,
                     "fid_10k_minutes": FID_SAMPLES / rate / 60},
            "reference": ({"images_per_second": ref, "gflops": ref * gflop,
                           "fid_10k_minutes": FID_SAMPLES / ref / 60, "how": how}
                          if ref else {"skipped": how})}


def table(report):
    """The report as a Markdown table (one row per implementation)."""
    lines = [f"Inception forward pass (2015-12-05 graph, {report['gflop_per_image']:.2f} "
             f"GFLOP an image, batches of {report['batch_size']}; matmul peak "
             f"{report['matmul_peak_gflops']:.0f} GFLOP/s in the same run)", "",
             "| implementation | images/s | GFLOP/s | of matmul peak | FID-10k (min, est.) |",
             "|---|---:|---:|---:|---:|"]
    peak = report["matmul_peak_gflops"]
    for name, row in (("tf_asgan (Keras, float32)", report["ours"]),
                      ("reference (PyTorch)", report["reference"])):
        if "skipped" in row:
            lines.append(f"| {name} | skipped: {row['skipped']} | | | |")
            continue
        lines.append(f"| {name} | {row['images_per_second']:.2f} | {row['gflops']:.0f} | "
                     f"{row['gflops'] / peak:.0%} | {row['fid_10k_minutes']:.1f} |")
    return "\n".join(lines)
