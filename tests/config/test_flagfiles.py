"""The configuration, the flags of scripts/train.py, and every paper flagfile."""

import glob
import os
import re

import pytest
import tensorflow_datasets as tfds
from absl import flags

from helpers import REPO, load_script
from tf_asgan import legacy, losses, methods, networks, optimizers, perturbations, schedules
from tf_asgan.asgan import SECOND_UPDATES
from tf_asgan.config import sections, train_config
from tf_asgan.config.train_config import TrainConfig
from tf_asgan.data import catalog, folders
from tf_asgan.data import stream as stream_lib
from tf_asgan.evaluation import classifiers
from tf_asgan.regularizers import penalties, rotation
from tf_asgan.training import builder, loop
from tf_asgan.utils import distribute

FLAGFILES = sorted(os.path.relpath(p, REPO)
                   for p in glob.glob(os.path.join(REPO, "flags", "**", "*.flags"),
                                      recursive=True))


train_script = load_script("train")


def parse(*args):
    """(config, workdir) of ``train.py args`` (paths relative to the repository root)."""
    values = flags.FlagValues()
    train_script.define_flags(values)
    cwd = os.getcwd()
    os.chdir(REPO)
    try:
        values(["train.py", *args])
    finally:
        os.chdir(cwd)
    return train_script.config_from_flags(values), values.workdir


def parse_file(path):
    return parse(f"--flagfile={path}")


# -- configuration ----------------------------------------------------------------------


@pytest.mark.parametrize("text,value", [("1/255", 1 / 255), ("0.5/255", 0.5 / 255),
                                        ("0.2 / 255", 0.2 / 255), ("0.01", 0.01), (0.3, 0.3)])
def test_parse_epsilon(text, value):
    assert schedules.parse_epsilon(text) == pytest.approx(value, rel=1e-12)


@pytest.mark.parametrize("changes,message", [
    (dict(resolution=48), "supports resolutions \\[32, 64, 128\\], not 48"),
    (dict(architecture="resnet", resolution=128), "not 128"),
    (dict(epsilon=3.0), "must lie in \\[0, 0.25\\]"),
    (dict(epsilon=-1 / 255), "epsilon=-0.00392157 .* must lie in"),
    (dict(epsilon=1.0), "1 in input units .*--epsilon=1/255"),  # the usual slip
    (dict(epsilon=1.5, epsilon_unit="pixel"), "3 in input units"),
    (dict(epsilon=0.2, epsilon_unit="pixel"), "0.4 in input units"),
    (dict(dat="pgd", adversarial=False, dat_epsilon=0.5), "dat_epsilon=0.5 must lie in"),
    (dict(architecture="vgg"), "Unknown architecture 'vgg'"),
    (dict(perturbation="fsgm"), "Unknown perturbation 'fsgm'"),
    (dict(perturbation="fsgm", adversarial=False), "Unknown perturbation 'fsgm'"),
    (dict(strategy="tpu"), "Unknown strategy 'tpu'"),
    (dict(precision="fp8"), "Unknown precision 'fp8'"),
    (dict(epsilon_schedule="cosine"), "cosine"),
    (dict(on_nonfinite="ignore"), "on_nonfinite must be one of"),
    (dict(bad_images="keep"), "bad_images must be skip or fail"),
    (dict(checkpoint_every_minutes=-1.0), "checkpoint_every_minutes must be >= 0"),
    (dict(batch_size=10, d_steps=3), "divisible by d_steps=3"),
    (dict(advas_lambda=1.0, batch_size=2, d_steps=2), "two halves"),
    (dict(perturbation="pgd", pgd_step_size=-0.01), "pgd_step_size must be >= 0"),
    (dict(dat="pgd", adversarial=False, dat_pgd_step_size=-1.0), "dat_pgd_step_size must"),
    (dict(advas_lambda=1.0, advas_weight="relative"), "was removed"),
    (dict(advas_lambda=1.0, advas_estimate="exact"), "Unknown AdvAs estimate"),
    (dict(dataset="svhn"), "Unknown dataset 'svhn'"),
    (dict(dataset="folder"), "--image_dir"),
    (dict(lr_d=0.0), "lr_d must be > 0"),
    (dict(beta2_g=1.0), "beta2_g must lie in"),
    (dict(epochs=0), "epochs must be >= 1"),
    (dict(loss="lsgan"), "lsgan"),
    (dict(second_update="fake_only"), "second_update"),
])
def test_validate_names_the_bad_field(changes, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**changes).validate()


def test_flagfile_round_trip_and_workdir_files(tmp_path):
    config = TrainConfig(dataset="stacked_digits", architecture="resnet", epsilon="2/255",
                         epsilon_schedule="linear", epsilon_start_step=100,
                         epsilon_ramp_steps=50, bn_d=False, lr_d=4e-4, beta2_g=0.9,
                         perturbation="pgd", pgd_steps=3, seed=9, image_dir=None)
    train_config.save(config, str(tmp_path))
    parsed, _ = parse(f"--flagfile={tmp_path / 'flags.txt'}")
    assert parsed == config
    assert train_config.load(str(tmp_path)) == config
    assert train_config.load(str(tmp_path / "elsewhere")) is None


def test_differences_ignore_the_mutable_fields():
    a = TrainConfig()
    b = a.replace(epochs=50, data_dir="/data", lr_g=1e-4)
    assert b.differences(a) == {"lr_g": (2e-4, 1e-4)}


def test_no_flags_means_the_demo_which_is_the_library_default():
    assert train_script.with_default_flagfile(["train.py"]) == \
        ["train.py", f"--flagfile={train_script.DEMO_FLAGFILE}"]
    assert train_script.with_default_flagfile(["train.py", "--epochs=2"]) == \
        ["train.py", "--epochs=2"]
    config, workdir = parse(f"--flagfile={train_script.DEMO_FLAGFILE}")
    # The demo is the library default plus an evaluation with the digit classifier.
    assert config.replace(checkpoint_every_steps=0) == TrainConfig(
        eval_every_epochs=5, eval_num_samples=5000, eval_network="digits")
    assert workdir == "runs/demo"


def test_every_config_field_has_a_flag_with_help():
    values = flags.FlagValues()
    train_script.define_flags(values)
    names = {f.name for f in train_config.flag_fields()}
    assert names | {"workdir", "existing_run"} == set(values)
    recorded = set(TrainConfig().to_dict()) - names
    # recorded with a run, not chosen by a flag (channels: the dataset's)
    assert recorded == {"methods_version", "channels"}
    for field in train_config.flag_fields():
        flag, meta = values[field.name], field.metadata
        assert flag.help.endswith(meta["help"]) and len(meta["help"]) > 15, field.name
        choices = meta["choices"]
        assert getattr(flag.parser, "enum_values", None) == (list(choices) if choices else None)
        if meta["fraction"] is None:
            assert flag.default == field.default, field.name
        else:  # a string flag, its default written as a fraction
            assert schedules.parse_epsilon(flag.default) == field.default
        assert type(flag.value) in (type(field.default), str, type(None)), field.name


def test_the_choices_are_the_owning_modules():
    choices = {f.name: f.metadata["choices"] for f in train_config.fields()
               if f.metadata["choices"] is not None}
    assert choices == {
        "dataset": catalog.DATASETS, "bad_images": folders.BAD_IMAGES,
        "architecture": tuple(networks.ARCHITECTURES), "loss": tuple(losses.LOSSES),
        "perturbation": tuple(perturbations.PERTURBATIONS), "epsilon_unit": schedules.UNITS,
        "epsilon_schedule": tuple(schedules.SCHEDULES), "second_update": SECOND_UPDATES,
        "dat": ("none", *methods.DAT_VARIANTS), "dat_side": methods.DAT_SIDES,
        "dat_loss": methods.DAT_LOSSES, "advas_weight": methods.ADVAS_WEIGHTS,
        "advas_estimate": methods.ADVAS_ESTIMATES, "strategy": distribute.STRATEGIES,
        "precision": distribute.PRECISIONS, "jit_compile": distribute.SWITCHES,
        "conv_weight_gradient": networks.WEIGHT_GRADIENTS,
        "on_nonfinite": sections.NONFINITE_ACTIONS, "eval_network": classifiers.NETWORKS,
        "lr_schedule": optimizers.LR_SCHEDULES, "gradient_penalty": ("none", *penalties.KINDS),
        "rotation_loss": (rotation.OFF, *rotation.SCHEMES)}


@pytest.mark.parametrize("flag", ["--architecture=vgg", "--dataset=svhn", "--loss=lsgan",
                                  "--perturbation=fsgm", "--strategy=tpu",
                                  "--existing_run=append", "--on_nonfinite=ignore"])
def test_unknown_names_fail_at_parse_time_listing_the_choices(flag):
    with pytest.raises(flags.IllegalFlagValueError, match="should be one of"):
        parse(flag)


@pytest.mark.parametrize("flag,message", [
    ("--resolution=48", "not 48"),
    ("--epsilon=1", "did you mean|--epsilon=1/255"),
    ("--epsilon=-1/255", "must lie in"),
    ("--epsilon=abc", "a fraction like 1/255, got 'abc'"),
    ("--dat_epsilon=2/0", "a fraction like 1/255, got '2/0'"),
])
def test_bad_flag_values_fail_at_parse_time(flag, message):
    with pytest.raises(ValueError, match=message):
        parse(flag)


# -- the paper flagfiles -------------------------------------------------------------------


def test_the_expected_flagfiles_exist():
    names = {os.path.relpath(p, "flags") for p in FLAGFILES}
    pairs = {f"table1/{d}_{a}_{k}.flags" for d in ("cifar10", "celeba", "lsun")
             for a in ("dcgan", "resnet") for k in ("as", "baseline")}
    pairs |= {f"table1/imagenet64_dcgan_{k}.flags" for k in ("as", "baseline")}
    pairs |= {f"table2/{r}_{k}.flags" for r in ("standard", "beta2_0.9", "no_bn_g", "no_bn_d",
                                                "no_bn", "lr_d_4e-4") for k in ("as", "baseline")}
    pairs |= {f"table3/{r}_{k}.flags" for r in ("lr_2e-4", "lr_d_5e-5") for k in ("as", "baseline")}
    pairs |= {f"fig3/eps_{e}.flags" for e in ("0", "0.2", "0.5", "1", "2", "3", "4")}
    pairs |= {"fig3/gaussian.flags", "defaults.flags", "demo.flags"}
    pairs |= {f"siblings/cifar10_dcgan_{m}.flags"
              for m in ("dat", "dat_pgd", "advas", "as_advas", "as_dat_fake")}
    pairs |= {f"neighbours/cifar10_{n}_{k}.flags" for n in ("wgangp_cnn", "sngan_cnn",
                                                            "wgangp_resnet")
              for k in ("as", "baseline")}
    pairs |= {f"dat/{d}_{n}{k}.flags" for d in ("cifar10", "cifar100", "stl10")
              for n in ("sngan", "ssgan") for k in ("", "_dat")}
    pairs |= {"advas/mnist_wgangp.flags", "advas/mnist_wgangp_advas.flags"}
    assert names == pairs


# What the first line of a flagfile must name: the AS-GAN paper's table or figure for its
# own settings, the sibling method for siblings/; elsewhere a citation (authors and year,
# an arXiv number or Mimicry), where in it (a table, figure, README table or abstract) and
# the number reported there.
_CITATION = re.compile(r"et al\. \d{4}|arXiv \d{4}\.\d{4,5}|Mimicry")
_PLACE = re.compile(r"Table \d|Fig\. \d|README|abstract")
_NUMBER = re.compile(r"\d+(\.\d+|%|,\d{3})")


def _first_line(path):
    with open(os.path.join(REPO, path)) as f:
        return f.readline()


@pytest.mark.parametrize("path", FLAGFILES)
def test_every_flagfile_first_line_names_its_source(path):
    first, folder = _first_line(path), os.path.relpath(path, "flags").split(os.sep)[0]
    assert first.startswith("# ")
    if path == "flags/demo.flags":  # the embedded default, and says so
        with open(os.path.join(REPO, path)) as f:
            assert "Not a paper setting" in f.read()
    elif path == "flags/defaults.flags":
        assert "the AS-GAN paper" in first
    elif folder.startswith(("table", "fig")):
        assert re.search(r"Table \d|Fig\. \d|ImageNet", first), first
    elif folder == "siblings":
        assert re.search(r"DAT|AdvAs", first), first
    else:
        for part in (_CITATION, _PLACE, _NUMBER):
            assert part.search(first), (part.pattern, first)


@pytest.mark.parametrize("path", FLAGFILES)
def test_flagfile_parses_and_has_its_own_workdir(path):
    config, workdir = parse_file(path)
    if path != "flags/defaults.flags":
        assert workdir == "runs/" + os.path.relpath(path, "flags")[:-len(".flags")]
    if path.startswith(("flags/table", "flags/fig")):
        assert config.run.checkpoint_every_steps > 0


def test_workdirs_are_distinct():
    workdirs = [parse_file(p)[1] for p in FLAGFILES if p != "flags/defaults.flags"]
    assert len(set(workdirs)) == len(workdirs)


def _setting(path):
    config, _ = parse_file(f"flags/{path}.flags")
    return config


@pytest.mark.parametrize("name", [os.path.relpath(p, "flags")[:-len("_baseline.flags")]
                                  for p in FLAGFILES if p.endswith("_baseline.flags")])
def test_each_baseline_is_its_as_setting_without_the_second_update(name):
    as_config, base_config = _setting(f"{name}_as"), _setting(f"{name}_baseline")
    assert as_config.method.adversarial and not base_config.method.adversarial
    assert base_config.differences(as_config) == {"adversarial": (True, False)}


@pytest.mark.parametrize("name,data,arch,res,epochs", [
    ("table1/cifar10_dcgan", "cifar10", "dcgan", 32, 200),
    ("table1/cifar10_resnet", "cifar10", "resnet", 32, 200),
    ("table1/celeba_dcgan", "celeb_a", "dcgan", 64, 100),
    ("table1/celeba_resnet", "celeb_a", "resnet", 64, 100),
    ("table1/lsun_dcgan", "lsun/bedroom", "dcgan", 64, 10),
    ("table1/lsun_resnet", "lsun/bedroom", "resnet", 64, 10),
    ("table1/imagenet64_dcgan", "imagenet_resized/64x64", "dcgan", 64, 10),
])
def test_table1_settings_are_the_papers(name, data, arch, res, epochs):
    c = _setting(f"{name}_as")
    assert (c.data.dataset, c.model.architecture, c.model.resolution,
            c.optim.epochs) == (data, arch, res, epochs)
    assert c.method.epsilon == pytest.approx(1 / 255) and c.method.epsilon_unit == "input"
    assert (c.method.perturbation, c.method.loss, c.method.second_update, c.model.latent_dim) == \
        ("fgsm", "non_saturating", "real_and_fake", 100)
    assert (c.optim.lr_g, c.optim.beta1_d, c.optim.beta2_d, c.optim.beta1_g, c.optim.beta2_g,
            c.optim.batch_size) == (2e-4, 0.5, 0.999, 0.5, 0.999, 64)
    # CelebA DCGAN uses lr_D = 5e-5 (the paper, Table 3); everything else 2e-4.
    assert c.optim.lr_d == (5e-5 if name == "table1/celeba_dcgan" else 2e-4)
    assert c.optim.cache == (data not in ("lsun/bedroom", "imagenet_resized/64x64"))


@pytest.mark.parametrize("row,changes", [
    ("standard", {}),
    ("beta2_0.9", {"beta2_d": (0.999, 0.9), "beta2_g": (0.999, 0.9)}),
    ("no_bn_g", {"bn_g": (True, False)}),
    ("no_bn_d", {"bn_d": (True, False)}),
    ("no_bn", {"bn_g": (True, False), "bn_d": (True, False)}),
    ("lr_d_4e-4", {"lr_d": (2e-4, 4e-4)}),
])
def test_table2_rows_change_only_their_setting(row, changes):
    assert _setting(f"table2/{row}_as").differences(_setting("table1/cifar10_dcgan_as")) == \
        changes


def test_table3_rows():
    celeba = _setting("table1/celeba_dcgan_as")
    assert _setting("table3/lr_d_5e-5_as") == celeba
    assert _setting("table3/lr_2e-4_as").differences(celeba) == {"lr_d": (5e-5, 2e-4)}


@pytest.mark.parametrize("value", ["0.2", "0.5", "1", "2", "3", "4"])
def test_fig3_epsilons(value):
    c = _setting(f"fig3/eps_{value}")
    assert c.method.epsilon == pytest.approx(float(value) / 255)
    assert c.differences(_setting("table1/cifar10_dcgan_as")).keys() <= {"epsilon"}


def test_sibling_settings():
    base, as_ = _setting("table1/cifar10_dcgan_baseline"), _setting("table1/cifar10_dcgan_as")
    dat = _setting("siblings/cifar10_dcgan_dat")
    assert dat.differences(base) == {"dat": ("none", "authors")}
    assert dat.siblings.dat_object() == methods.DAT(variant="authors", side="both", loss="replace",
                                                    step_size=1.0, epsilon=2 / 255, steps=3)
    pgd = _setting("siblings/cifar10_dcgan_dat_pgd").siblings.dat_object()
    assert (pgd.variant, pgd.epsilon, pgd.steps) == ("pgd", pytest.approx(2 / 255), 3)
    assert _setting("siblings/cifar10_dcgan_advas").differences(base) == {
        "advas_lambda": (0.0, 1.0)}
    assert _setting("siblings/cifar10_dcgan_as_advas").differences(as_) == {
        "advas_lambda": (0.0, 1.0)}
    assert _setting("siblings/cifar10_dcgan_advas").siblings.advas_object() == methods.AdvAs(
        lam=1.0, weight="norm_ratio", estimate="unbiased")  # as published
    mixed = _setting("siblings/cifar10_dcgan_as_dat_fake")
    assert mixed.method.adversarial and mixed.siblings.dat_object().side == "fake"


def _version_1(**changes):
    """A config.json as tf_asgan wrote it before DAT and AdvAs followed their sources."""
    old = TrainConfig(**changes).to_dict()
    del old["advas_weight"], old["advas_estimate"], old["methods_version"]
    old["advas_scale"] = "fixed"
    return old


def test_a_stored_run_without_dat_or_advas_is_still_the_same_experiment():
    loaded = TrainConfig.from_dict(_version_1())
    assert loaded.differences(TrainConfig()) == {}
    assert loaded.methods_version == legacy.METHODS_VERSION


@pytest.mark.parametrize("changes", [dict(advas_lambda=0.5), dict(dat="authors",
                                                                  adversarial=False)])
def test_a_stored_run_of_the_old_dat_or_advas_is_a_different_experiment(changes):
    loaded = TrainConfig.from_dict(_version_1(**changes))
    assert loaded.methods_version == 1
    assert "methods_version" in loaded.differences(TrainConfig(**changes))
    if "advas_lambda" in changes:  # what it trained with
        assert (loaded.siblings.advas_weight, loaded.siblings.advas_estimate) == ("fixed", "biased")
    with pytest.raises(ValueError, match="earlier DAT / AdvAs definitions"):
        loaded.validate()


def test_dat_on_the_reals_with_as_gan_is_refused_at_parse_time():
    with pytest.raises(ValueError, match="side='fake'"):
        parse("--flagfile=flags/table1/cifar10_dcgan_as.flags", "--dat=authors")


def test_fig3_zero_and_gaussian():
    zero, gauss = _setting("fig3/eps_0"), _setting("fig3/gaussian")
    assert (zero.method.perturbation, zero.method.epsilon,
            zero.method.adversarial) == ("none", 0.0, True)
    assert (gauss.method.perturbation, gauss.method.epsilon) == ("gaussian", pytest.approx(1 / 255))


# -- the sources' settings: the Table 1 neighbours, DAT's and AdvAs's ---------------------

# Training images of the splits the flagfiles train on (TFDS): one pass's batches bound
# steps_per_epoch (tf_asgan.data.stream.epoch_steps).
_TRAIN_IMAGES = {"cifar10": 50_000, "cifar100": 50_000, "stl10": 100_000, "mnist": 60_000}
_SOURCE_STEPS = {"neighbours": 100_000, "dat": 100_000, "advas": 40_000}


@pytest.mark.parametrize("path", [p for p in FLAGFILES
                                  if p.split("/")[1] in _SOURCE_STEPS])
def test_step_budgets_are_the_sources_in_generator_updates(path):
    c, _ = parse_file(path)
    assert c.optim.epochs * c.optim.steps_per_epoch == _SOURCE_STEPS[path.split("/")[1]]
    assert c.optim.steps_per_epoch <= _TRAIN_IMAGES[c.data.dataset] // c.optim.batch_size
    if c.optim.lr_schedule == "linear":  # decays to 0 at the last step, as the sources
        assert c.optim.lr_decay_steps == c.optim.epochs * c.optim.steps_per_epoch
    assert c.eval.eval_every_epochs * c.optim.steps_per_epoch in (5_000, 10_000)


def _optim(c):
    o = c.optim
    return (o.lr_d, o.lr_g, o.beta1_d, o.beta2_d, o.beta1_g, o.beta2_g,
            o.batch_size // c.method.d_steps, c.method.d_steps, o.lr_schedule)


@pytest.mark.parametrize("name,net,loss,penalty,sn,optim", [
    # Miyato et al. 2018, Table 2 rows at Table 1's settings A (WGAN-GP) and B (SN-GAN).
    ("cifar10_wgangp_cnn", "sngan_cnn", "wasserstein", "wgan_gp", False,
     (1e-4, 1e-4, 0.5, 0.9, 0.5, 0.9, 64, 5, "constant")),
    ("cifar10_sngan_cnn", "sngan_cnn", "hinge", "none", True,
     (1e-4, 1e-4, 0.5, 0.999, 0.5, 0.999, 64, 1, "constant")),
    # gan_cifar_resnet.py: LR 2e-4, betas (0, 0.9), N_CRITIC 5, BATCH_SIZE 64, DECAY.
    ("cifar10_wgangp_resnet", "wgangp_resnet", "wasserstein", "wgan_gp", False,
     (2e-4, 2e-4, 0.0, 0.9, 0.0, 0.9, 64, 5, "linear")),
])
def test_neighbour_settings_are_their_sources(name, net, loss, penalty, sn, optim):
    c = _setting(f"neighbours/{name}_baseline")
    assert (c.data.dataset, c.model.architecture, c.model.resolution, c.model.latent_dim) == \
        ("cifar10", net, 32, 128)
    assert (c.method.loss, c.method.gradient_penalty, c.model.spectral_norm) == \
        (loss, penalty, sn)
    assert c.model.bn_g and not c.model.bn_d and not c.method.adversarial
    assert _optim(c) == optim
    assert c.method.gradient_penalty_object() is None or \
        c.method.gradient_penalty_object().weight == 10.0
    as_ = _setting(f"neighbours/{name}_as")  # AS-GAN as in the paper's own runs
    assert (as_.method.perturbation, as_.method.epsilon, as_.method.epsilon_unit,
            as_.method.second_update) == ("fgsm", pytest.approx(1 / 255), "input",
                                          "real_and_fake")


def test_dat_settings_are_mimicrys():
    c = _setting("dat/cifar10_sngan")
    assert (c.model.architecture, c.model.resolution, c.model.latent_dim, c.model.spectral_norm,
            c.model.bn_d, c.method.loss, c.method.adversarial) == \
        ("sngan_resnet", 32, 128, True, False, "hinge", False)
    assert _optim(c) == (2e-4, 2e-4, 0.0, 0.9, 0.0, 0.9, 64, 5, "linear")
    assert (c.eval.eval_num_samples, c.eval.eval_num_real) == (50_000, 50_000)
    assert _setting("dat/cifar100_sngan").differences(c) == {"dataset": ("cifar10", "cifar100")}
    stl = _setting("dat/stl10_sngan")
    # (epochs and the evaluation fields may change within a run: not in differences)
    assert set(stl.differences(c)) == {"dataset", "resolution", "steps_per_epoch"}
    assert (stl.model.resolution, stl.eval.eval_real_split) == (48, "unlabelled")
    for data in ("cifar10", "cifar100", "stl10"):
        sngan, ssgan = _setting(f"dat/{data}_sngan"), _setting(f"dat/{data}_ssgan")
        assert ssgan.differences(sngan) == {"rotation_loss": ("none", "quarter")}
        assert (ssgan.rotation.rotation_weight_d, ssgan.rotation.rotation_weight_g) == (1.0, 0.2)
        for net, config in (("sngan", sngan), ("ssgan", ssgan)):
            dat = _setting(f"dat/{data}_{net}_dat")
            assert dat.differences(config) == {"dat": ("none", "authors")}
            assert dat.siblings.dat_object() == _setting(
                "siblings/cifar10_dcgan_dat").siblings.dat_object()  # the authors' step


def test_advas_setting_is_gan_mnist_py():
    c = _setting("advas/mnist_wgangp")
    assert (c.data.dataset, c.model.architecture, c.model.resolution, c.model.channels,
            c.model.latent_dim, c.model.bn_g, c.model.bn_d) == \
        ("mnist", "wgangp_mnist", 28, 1, 128, False, False)
    assert (c.method.loss, c.method.gradient_penalty, c.method.adversarial) == \
        ("wasserstein", "wgan_gp", False)
    assert _optim(c) == (1e-4, 1e-4, 0.5, 0.9, 0.5, 0.9, 50, 5, "constant")
    assert (c.eval.eval_num_samples, c.eval.eval_num_real) == (60_000, 60_000)
    advas = _setting("advas/mnist_wgangp_advas")
    assert advas.differences(c) == {"advas_lambda": (0.0, 1.0)}
    assert advas.siblings.advas_object() == methods.AdvAs(lam=1.0, weight="norm_ratio",
                                                          estimate="unbiased")


# -- one training step per network and per option combination, on mock data ------------

def _network_and_options(config):
    """What a flagfile builds (the networks) and how it trains (SSGAN's rotation head on
    D's features is an option: the head is one dense layer on any D's "d_features")."""
    m, method, sib = config.model, config.method, config.siblings
    network = (m.architecture, m.resolution, m.channels, m.bn_g, m.bn_d, m.spectral_norm)
    options = (method.loss, method.gradient_penalty, config.rotation.rotation_loss,
               method.adversarial, method.perturbation, method.second_update, sib.dat,
               sib.dat_side, sib.dat_loss, bool(sib.advas_lambda), method.d_steps > 1,
               config.optim.lr_schedule)
    return {("network", network), ("options", options)}


def _covering_settings():
    """The fewest flagfiles (greedy set cover, ties to the first in order) that train every
    network of the flagfiles and every option combination at least once: an option
    combination is the same code on every network, a network the same with every
    option. (One run per distinct file setting took 28 runs for the 45 files before the
    sources' settings were added, 2 minutes on 2 cores; this cover of all 65 takes 25, 2.7
    minutes. The datasets the cover does not train on are loaded apart, below.)"""
    keys = {path: _network_and_options(parse_file(path)[0]) for path in FLAGFILES}
    left, chosen = set().union(*keys.values()), []
    while left:
        best = max(FLAGFILES, key=lambda p: (len(keys[p] & left), -FLAGFILES.index(p)))
        chosen.append(best)
        left -= keys[best]
    return sorted(chosen)


# Reduced width: what a flagfile sets (architecture, resolution, batch norm, spectral
# norm, loss, penalty, rotation, method, siblings) is what is tested; the source-width
# networks are checked by their parameter counts (tests/networks). At full width the 28
# settings of the AS-GAN paper's files took 10 minutes.
ONE_STEP_WIDTH = 0.125
COVERING = _covering_settings()


# D updates per step in the one-step runs: a flagfile's n_dis of 5 is run as 2. The D
# updates of a step are a Python loop in ASGAN.train_step whose iterations differ only in
# the last one (it keeps the fakes G's update back-propagates through), so 2 runs every
# branch of 5, at 2/5 of the tracing (dat/stl10_sngan_dat: 63 s -> 17 s on 2 cores).
ONE_STEP_D_STEPS = 2


def _one_step(config):
    d_steps = min(config.method.d_steps, ONE_STEP_D_STEPS)
    return config.replace(batch_size=4 * d_steps, d_steps=d_steps, epochs=1,
                          steps_per_epoch=1, width=ONE_STEP_WIDTH, export=False,
                          sample_every_epochs=1, eval_every_epochs=0)


@pytest.mark.slow
@pytest.mark.parametrize("path", COVERING)
def test_flagfile_trains_one_step_on_mock_data(path, tmp_path):
    config, _ = parse_file(path)
    assert config.eval.eval_every_epochs >= 1 and config.eval.eval_network == "inception"
    config = _one_step(config)  # 4 images per D update (AdvAs's two halves of 2)
    with tfds.testing.mock_data(num_examples=config.optim.batch_size):
        result = loop.train(config, str(tmp_path), verbose=0)
    assert result["step"] == 1 and result["total_steps"] == 1
    assert os.path.exists(tmp_path / "checkpoints" / "ckpt-1.index")
    assert os.path.exists(tmp_path / "samples" / "epoch_0001.png")


def _data_key(config):
    return (config.data.dataset, config.model.resolution, config.model.channels,
            config.optim.cache)


def _uncovered_data():
    trained = {_data_key(parse_file(p)[0]) for p in COVERING}
    out = {}
    for path in FLAGFILES:
        key = _data_key(parse_file(path)[0])
        if key not in trained and key not in out:
            out[key] = path
    return sorted(out.values())


@pytest.mark.parametrize("path", _uncovered_data())
def test_flagfile_data_the_one_step_runs_skip_yields_a_batch(path):
    config, _ = parse_file(path)
    res, channels = config.model.resolution, config.model.channels
    with tfds.testing.mock_data(num_examples=8):
        src = builder.make_source(config.data, res, config.optim.seed)
        stream, _ = stream_lib.training_stream(src, 4, epochs=1, steps_per_epoch=1,
                                               cache=config.optim.cache)
        batch = next(iter(stream)).numpy()
    assert batch.shape == (4, res, res, channels)
    assert -1.0 <= batch.min() and batch.max() <= 1.0


def test_a_boolean_jit_compile_is_written_as_a_flag_the_parser_takes(tmp_path):
    config = TrainConfig(jit_compile=True)
    assert (config.run.jit_compile == "on"
            and TrainConfig(jit_compile=False).run.jit_compile == "off")
    path = tmp_path / "flags.txt"
    path.write_text(train_config.to_flagfile(config))
    parsed, _ = parse(f"--flagfile={path}")
    assert parsed == config.validate()
