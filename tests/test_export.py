"""The exported generator: loads without tf_asgan, same outputs, atomic, documented."""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from helpers import LATENT, REPO, blobs, damaged_copy, run_script, small_config, tiny_dcgan
from tf_asgan import export, networks
from tf_asgan.config import train_config
from tf_asgan.training import rundir
from tf_asgan.utils import images as images_lib
from tf_asgan.utils import saved_models

# Runs in a fresh interpreter in which `import tf_asgan` fails.
_RELOAD = textwrap.dedent("""
    import json, sys
    sys.modules["tf_asgan"] = None
    import numpy as np
    import tensorflow as tf
    path, z_file, out_file = sys.argv[1:]
    g = tf.saved_model.load(path)
    z = np.load(z_file)
    serve = g.signatures["serving_default"]
    sample = g.signatures["sample"]
    np.savez(out_file,
             direct=g.generate(tf.constant(z))["images"].numpy(),
             signature=serve(z=tf.constant(z))["images"].numpy(),
             sampled=sample(n=tf.constant(3), seed=tf.constant(11))["images"].numpy(),
             sampled_z=g.sample(3, 11)["z"].numpy(),
             latent_dim=g.latent_dim.numpy(), resolution=g.resolution.numpy())
    print(json.dumps(sorted(serve.structured_input_signature[1])))
""")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    tf.keras.utils.set_random_seed(5)
    g, _ = tiny_dcgan()
    # Non-trivial BN statistics, so that inference mode (not batch statistics) matters.
    norms = [layer for layer in g.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert norms
    for layer in norms:
        layer.moving_mean.assign(tf.random.normal(layer.moving_mean.shape) * 0.01)
        layer.moving_variance.assign(tf.fill(layer.moving_variance.shape, 1e-3))
    path = str(tmp_path_factory.mktemp("export") / "generator")
    export.export_generator(g, path, metadata={"step": 7})
    return g, path


@pytest.mark.slow
def test_reload_without_tf_asgan_gives_identical_outputs(exported, tmp_path):
    g, path = exported
    z = np.random.default_rng(0).standard_normal((5, LATENT)).astype(np.float32)
    np.save(tmp_path / "z.npy", z)
    env = dict(os.environ, PYTHONPATH="", TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run([sys.executable, "-c", _RELOAD, path, str(tmp_path / "z.npy"),
                           str(tmp_path / "out.npz")], capture_output=True, text=True,
                          env=env, cwd=str(tmp_path), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == ["z"]
    out = np.load(tmp_path / "out.npz")
    expected = g(z, training=False).numpy()
    np.testing.assert_array_equal(out["direct"], expected)
    np.testing.assert_array_equal(out["signature"], expected)
    assert out["direct"].shape == (5, 32, 32, 3)
    assert (int(out["latent_dim"]), int(out["resolution"])) == (LATENT, 32)
    # sample(n, seed) is G of stateless N(0, I) latents: reproducible and consistent.
    z_seed = tf.random.stateless_normal((3, LATENT), seed=[11, 0]).numpy()
    np.testing.assert_array_equal(out["sampled_z"], z_seed)
    np.testing.assert_allclose(out["sampled"], g(z_seed, training=False).numpy(), atol=1e-6)


def test_sample_signature_is_seeded(exported):
    _, path = exported
    g = tf.saved_model.load(path)
    a = g.sample(4, 1)["images"].numpy()
    np.testing.assert_array_equal(a, g.sample(4, 1)["images"].numpy())
    assert np.abs(a - g.sample(4, 2)["images"].numpy()).max() > 1e-2
    assert a.min() >= -1 and a.max() <= 1


def test_metadata_and_refusal_to_overwrite(exported):
    g, path = exported
    assert export.read_metadata(path) == {"step": 7, "latent_dim": LATENT, "channels": 3}
    before = os.path.getmtime(os.path.join(path, "saved_model.pb"))
    with pytest.raises(FileExistsError, match="overwrite"):
        export.export_generator(g, path)
    assert os.path.getmtime(os.path.join(path, "saved_model.pb")) == before
    assert export.read_metadata(path)["step"] == 7


def test_overwrite_replaces_atomically(tmp_path):
    g, _ = tiny_dcgan()
    path = str(tmp_path / "gen")
    export.export_generator(g, path, metadata={"step": 1})
    export.export_generator(g, path, metadata={"step": 2}, overwrite=True)
    assert export.read_metadata(path)["step"] == 2
    assert sorted(os.listdir(tmp_path)) == ["gen"]  # no temporary folders left behind


@pytest.mark.slow
@pytest.mark.parametrize("damage,message", [
    ("variables/variables.index", "missing variables/variables.index"),
    ("truncate", "cannot be loaded"),
    ("saved_model.pb", "not a SavedModel directory"),
])
def test_a_half_copied_export_gets_our_error(exported, tmp_path, damage, message):
    copy = damaged_copy(exported[1], tmp_path / "generator", damage)
    with pytest.raises(saved_models.ExportNotReadableError, match=message):
        export.load(copy)
    # the scripts that read exports say it in one line (no traceback)
    script = os.path.join(REPO, "scripts", "sample.py")
    proc = subprocess.run([sys.executable, script, f"--generator={copy}",
                           f"--out_dir={tmp_path / 'png'}"], capture_output=True, text=True,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"), timeout=300)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "sample.py: " in proc.stderr and message.split()[0] in proc.stderr


@pytest.mark.slow
def test_sample_script_refuses_sizes_below_one(tmp_path):
    script = os.path.join(REPO, "scripts", "sample.py")
    proc = subprocess.run([sys.executable, script, f"--generator={tmp_path}", "--columns=0"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and "--columns must be >= 1, got 0" in proc.stderr


def _saved_model_cli(path, signature, inputs, outdir):
    """``saved_model_cli run``: TF1's session-based loader, the one TF Serving uses."""
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    proc = subprocess.run([cli, "run", "--dir", path, "--tag_set", "serve", "--signature_def",
                           signature, *inputs, "--outdir", str(outdir), "--overwrite"],
                          capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {name: np.load(outdir / f"{name}.npy") for name in ("images", "z")
            if (outdir / f"{name}.npy").exists()}


@pytest.mark.slow
def test_the_session_based_loader_of_tf_serving_gives_the_same_images(exported, tmp_path):
    g, path = exported
    z = np.random.default_rng(3).standard_normal((4, LATENT)).astype(np.float32)
    np.save(tmp_path / "z.npy", z)
    served = _saved_model_cli(path, "serving_default", ["--inputs", f"z={tmp_path / 'z.npy'}"],
                              tmp_path / "serve")
    loaded = tf.saved_model.load(path)
    expected = loaded.generate(tf.constant(z))["images"].numpy()
    assert expected.shape == (4, 32, 32, 3)
    np.testing.assert_allclose(served["images"], expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(expected, g(z, training=False).numpy(), rtol=1e-5, atol=1e-6)
    sampled = _saved_model_cli(path, "sample", ["--input_exprs", "n=3;seed=11"],
                               tmp_path / "sample")
    reference = loaded.sample(tf.constant(3), tf.constant(11))
    np.testing.assert_array_equal(sampled["z"], reference["z"].numpy())
    np.testing.assert_allclose(sampled["images"], reference["images"].numpy(), rtol=1e-5,
                               atol=1e-6)


def _generator_checkpoint(config, prefix, width):
    m = config.model
    g = networks.build_generator(m.architecture, m.resolution, latent_dim=m.latent_dim,
                                 batch_norm=m.bn_g, width=width)
    return tf.train.Checkpoint(generator=g).save(str(prefix))


@pytest.mark.slow
def test_export_of_a_checkpoint_of_another_width_is_one_line(tmp_path):
    config = small_config(width=0.125)
    workdir = tmp_path / "run"
    (workdir / "checkpoints").mkdir(parents=True)
    train_config.save(config, str(workdir))
    fits = _generator_checkpoint(config, tmp_path / "fits" / "ckpt", 0.125)
    other = _generator_checkpoint(config, tmp_path / "other" / "ckpt", 0.25)
    rundir.restore_generator(str(workdir), fits)  # the run's own width restores
    proc = run_script("export.py", f"--workdir={workdir}", f"--checkpoint={other}",
                      f"--output={tmp_path / 'generator'}")
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if line.startswith("export.py: ")]
    assert len(lines) == 1 and "does not fit the model" in lines[0]
    assert "another architecture, resolution, width" in lines[0]
    assert not (tmp_path / "generator").exists()


def _folder_run(tmp_path):
    """A workdir of a --dataset=folder run as train.py leaves it: config.json, the export
    ``generator`` (metadata of today) and an older kept export ``generator_step1`` whose
    metadata predates ``image_dir``."""
    folder = tmp_path / "images"
    folder.mkdir()
    for i, image in enumerate(images_lib.to_uint8(blobs(24, seed=4))):
        Image.fromarray(image).save(folder / f"{i}.png")
    config = small_config(dataset="folder", image_dir=str(folder), width=0.125)
    workdir = tmp_path / "run"
    workdir.mkdir()
    train_config.save(config, str(workdir))
    m = config.model
    g = networks.build_generator(m.architecture, m.resolution, latent_dim=m.latent_dim,
                                 batch_norm=m.bn_g, width=m.width)
    meta = rundir.export_metadata(config, 3)
    assert meta["image_dir"] == str(folder) and "data_dir" in meta
    export.export_generator(g, str(workdir / "generator"), metadata=meta)
    old = {k: v for k, v in meta.items() if k not in ("image_dir", "data_dir")}
    export.export_generator(g, str(workdir / "generator_step1"), metadata=old)
    return workdir


@pytest.mark.slow
def test_evaluate_finds_a_folder_runs_images_and_gives_each_export_its_file(tmp_path):
    workdir = _folder_run(tmp_path)
    common = ["--network=digits", "--num_samples=24", "--is_splits=2", "--kid_samples=24",
              "--batch_size=24", f"--cache_dir={tmp_path / 'stats'}"]
    proc = run_script("evaluate.py", f"--workdir={workdir}", *common)
    assert proc.returncode == 0, proc.stderr[-3000:]
    first = json.loads((workdir / "eval.json").read_text())
    assert first["run"]["image_dir"] == str(tmp_path / "images")
    assert first["protocol"]["num_real"] == 24  # the folder's 24 images
    # A second export of the same run (metadata without image_dir: config.json's) gets
    # its own file; the first result stays.
    proc = run_script("evaluate.py", f"--generator={workdir / 'generator_step1'}", *common)
    assert proc.returncode == 0, proc.stderr[-3000:]
    second = json.loads((workdir / "eval_generator_step1.json").read_text())
    assert second["generator"] == str(workdir / "generator_step1")
    assert json.loads((workdir / "eval.json").read_text()) == first
    # The same generator again: its result is not replaced without --overwrite.
    proc = run_script("evaluate.py", f"--workdir={workdir}", *common)
    assert proc.returncode != 0 and "eval.json exists" in proc.stderr
    assert json.loads((workdir / "eval.json").read_text()) == first
