"""The configuration's sections: their fields, their checks, the flat view and its files."""

import json
import os

import numpy as np
import pytest

from tf_asgan import errors, methods, schedules
from tf_asgan.config import train_config
from tf_asgan.config.method import MethodConfig, SiblingsConfig
from tf_asgan.config.sections import (
    DataConfig,
    EvalConfig,
    ModelConfig,
    OptimConfig,
    RunConfig,
)
from tf_asgan.config.train_config import TrainConfig
from tf_asgan.evaluation import evaluator

# The default configuration as config.json / flags.txt held it before the sections: the
# files of a run must not change with the layout of the code.
DEFAULT = [
    ("dataset", "digits"), ("data_dir", None), ("image_dir", None), ("download", False),
    ("bad_images", "skip"), ("architecture", "dcgan"), ("resolution", 32),
    ("latent_dim", 100), ("bn_g", True), ("bn_d", True), ("width", 1.0),
    ("spectral_norm", False), ("channels", 3),
    ("loss", "non_saturating"), ("adversarial", True), ("perturbation", "fgsm"),
    ("epsilon", 1 / 255), ("epsilon_unit", "input"), ("epsilon_schedule", "constant"),
    ("epsilon_start_step", 0), ("epsilon_ramp_steps", 1), ("second_update", "real_and_fake"),
    ("d_steps", 1), ("pgd_steps", 7), ("pgd_step_size", 0.0), ("pgd_random_start", False),
    ("gradient_penalty", "none"), ("gp_weight", 0.0), ("gp_every", 1),
    ("rotation_loss", "none"), ("rotation_weight_d", 1.0), ("rotation_weight_g", 0.2),
    ("dat", "none"), ("dat_side", "both"), ("dat_loss", "replace"), ("dat_step_size", 1.0),
    ("dat_epsilon", 2 / 255), ("dat_pgd_steps", 3), ("dat_pgd_step_size", 0.0),
    ("advas_lambda", 0.0), ("advas_weight", "norm_ratio"), ("advas_estimate", "unbiased"),
    ("lr_d", 0.0002), ("lr_g", 0.0002), ("beta1_d", 0.5), ("beta2_d", 0.999),
    ("beta1_g", 0.5), ("beta2_g", 0.999), ("lr_schedule", "constant"),
    ("lr_decay_steps", 0), ("ema_decay", 0.0), ("ema_start_step", 0),
    ("batch_size", 64), ("epochs", 20),
    ("steps_per_epoch", 0), ("cache", True), ("seed", 0), ("strategy", "auto"),
    ("sync_bn", False), ("precision", "auto"), ("conv_weight_gradient", "kernel"),
    ("jit_compile", "auto"),
    ("steps_per_execution", 1), ("log_every_steps", 10), ("sample_every_epochs", 1),
    ("checkpoint_every_steps", 0),
    ("checkpoint_every_minutes", 10.0), ("checkpoints_to_keep", 3), ("export", True),
    ("on_nonfinite", "stop"), ("max_rollbacks", 3), ("eval_every_epochs", 0),
    ("eval_num_samples", 22400), ("eval_network", "auto"), ("inception_path", None),
    ("is_splits", 10), ("eval_real_split", "train"), ("eval_num_real", 50000),
    ("eval_cache_dir", None), ("methods_version", 2)]
DEFAULT_FLAGS = """\
--dataset=digits
--nodownload
--bad_images=skip
--architecture=dcgan
--resolution=32
--latent_dim=100
--bn_g
--bn_d
--width=1.0
--nospectral_norm
--loss=non_saturating
--adversarial
--perturbation=fgsm
--epsilon=0.00392156862745098
--epsilon_unit=input
--epsilon_schedule=constant
--epsilon_start_step=0
--epsilon_ramp_steps=1
--second_update=real_and_fake
--d_steps=1
--pgd_steps=7
--pgd_step_size=0.0
--nopgd_random_start
--gradient_penalty=none
--gp_weight=0.0
--gp_every=1
--rotation_loss=none
--rotation_weight_d=1.0
--rotation_weight_g=0.2
--dat=none
--dat_side=both
--dat_loss=replace
--dat_step_size=1.0
--dat_epsilon=0.00784313725490196
--dat_pgd_steps=3
--dat_pgd_step_size=0.0
--advas_lambda=0.0
--advas_weight=norm_ratio
--advas_estimate=unbiased
--lr_d=0.0002
--lr_g=0.0002
--beta1_d=0.5
--beta2_d=0.999
--beta1_g=0.5
--beta2_g=0.999
--lr_schedule=constant
--lr_decay_steps=0
--ema_decay=0.0
--ema_start_step=0
--batch_size=64
--epochs=20
--steps_per_epoch=0
--cache
--seed=0
--strategy=auto
--nosync_bn
--precision=auto
--conv_weight_gradient=kernel
--jit_compile=auto
--steps_per_execution=1
--log_every_steps=10
--sample_every_epochs=1
--checkpoint_every_steps=0
--checkpoint_every_minutes=10.0
--checkpoints_to_keep=3
--export
--on_nonfinite=stop
--max_rollbacks=3
--eval_every_epochs=0
--eval_num_samples=22400
--eval_network=auto
--is_splits=10
--eval_real_split=train
--eval_num_real=50000
"""
MUTABLE = {"data_dir", "download", "cache", "epochs", "sample_every_epochs",
           "steps_per_execution", "log_every_steps", "conv_weight_gradient",
           "checkpoint_every_steps", "checkpoint_every_minutes", "checkpoints_to_keep",
           "export", "on_nonfinite", "max_rollbacks", "bad_images", "eval_every_epochs",
           "eval_num_samples", "eval_network", "inception_path", "is_splits",
           "eval_real_split", "eval_num_real", "eval_cache_dir"}


def test_the_files_of_the_default_configuration_are_unchanged(tmp_path):
    config = TrainConfig()
    assert list(config.to_dict().items()) == DEFAULT
    assert train_config.to_flagfile(config) == DEFAULT_FLAGS
    train_config.save(config, str(tmp_path))
    assert sorted(os.listdir(tmp_path)) == ["config.json", "flags.txt"]  # no temporaries
    assert (tmp_path / "flags.txt").read_text() == DEFAULT_FLAGS + f"--workdir={tmp_path}\n"
    assert (tmp_path / "config.json").read_text() == json.dumps(dict(DEFAULT), indent=2,
                                                                sort_keys=True)


def test_the_sections_hold_the_fields_in_the_order_of_config_json():
    config = TrainConfig()
    layout = {name: section.names() for name, section in config.sections().items()}
    flat = [name for names in layout.values() for name in names] + ["methods_version"]
    assert flat == [k for k, _ in DEFAULT] == [f.name for f in train_config.fields()]
    assert layout["data"] == ("dataset", "data_dir", "image_dir", "download", "bad_images")
    assert layout["eval"][0] == "eval_every_epochs" and layout["run"][0] == "strategy"
    assert set(train_config.MUTABLE_FIELDS) == MUTABLE


def test_every_field_is_read_from_its_section_and_set_by_its_flat_name():
    config = TrainConfig(dataset="stacked_digits", epochs=2, dat_epsilon="1/255",
                         jit_compile=True)
    assert (config.data.dataset, config.optim.epochs, config.run.jit_compile) == (
        "stacked_digits", 2, "on")
    assert config.siblings.dat_epsilon == pytest.approx(1 / 255)
    for name, value in config.to_dict().items():
        section = train_config.section_of(name)
        assert (getattr(getattr(config, section), name) if section else
                getattr(config, name)) == value
    # no flat reads: the message names the section to read it from
    with pytest.raises(AttributeError, match=r"config\.optim\.epochs"):
        config.epochs  # noqa: B018
    with pytest.raises(AttributeError, match="no field 'epoch'"):
        config.epoch  # noqa: B018
    with pytest.raises(AttributeError, match="config.replace"):
        config.epochs = 3


def test_replace_and_equality():
    config = TrainConfig(epochs=2)
    other = config.replace(epochs=5, lr_d=4e-4, epsilon="2/255")
    assert (other.optim.epochs, other.optim.lr_d,
            other.method.epsilon) == (5, 4e-4, pytest.approx(2 / 255))
    assert config.optim.epochs == 2 and config != other  # the original is untouched
    assert other.replace(epochs=2, lr_d=2e-4, epsilon=1 / 255) == config
    assert config.replace(optim=OptimConfig(epochs=2)) == config
    assert TrainConfig(method=MethodConfig(d_steps=2), batch_size=8).to_dict()["d_steps"] == 2
    assert config.replace(methods_version=1).methods_version == 1
    with pytest.raises(TypeError, match="unknown fields \\['epoch'\\]"):
        config.replace(epoch=3)


def test_from_dict_round_trip_and_unknown_fields():
    config = TrainConfig(dat="pgd", adversarial=False, advas_lambda=1.0, seed=3)
    assert TrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(ValueError, match="Unknown configuration fields \\['colour'\\]"):
        TrainConfig.from_dict(dict(config.to_dict(), colour="red"))


def test_the_built_objects_come_from_their_sections():
    config = TrainConfig(epsilon="2/255", epsilon_schedule="linear", epsilon_start_step=5,
                         epsilon_ramp_steps=10, perturbation="pgd", pgd_steps=3, seed=7,
                         dat="pgd", adversarial=False, advas_lambda=0.5, eval_num_samples=100)
    schedule = config.method.epsilon_schedule_object()
    assert isinstance(schedule, schedules.LinearRamp) and schedule.ramp_steps == 10
    assert config.method.epsilon_schedule_object().get_config() == schedule.get_config()
    assert config.method.perturbation_kwargs() == config.method.perturbation_kwargs() == {
        "steps": 3, "step_size": None, "random_start": False}
    assert config.siblings.dat_object() == config.siblings.dat_object() == methods.DAT(
        variant="pgd", side="both", loss="replace", step_size=None, epsilon=2 / 255, steps=3)
    assert config.siblings.advas_object() == methods.AdvAs(lam=0.5, weight="norm_ratio",
                                                           estimate="unbiased")
    assert (config.eval.protocol(config.optim.seed) == config.eval.protocol(seed=7)
            == evaluator.Protocol(num_samples=100, seed=7))
    assert (TrainConfig().siblings.dat_object() is None
            and TrainConfig().siblings.advas_object() is None)


@pytest.mark.parametrize("section,changes,message", [
    (DataConfig, dict(dataset="emnist"), "Unknown dataset 'emnist'"),
    (DataConfig, dict(dataset="folder"), "--image_dir"),
    (DataConfig, dict(bad_images="keep"), "bad_images must be skip or fail, got 'keep'"),
    (ModelConfig, dict(resolution=48), "not 48"),
    (ModelConfig, dict(width=0.0), "width must be > 0"),
    (ModelConfig, dict(latent_dim=0), "latent_dim must be >= 1, got 0"),
    (MethodConfig, dict(epsilon=1.0), "1 in input units"),
    (MethodConfig, dict(epsilon_unit="furlong"), "Unknown epsilon unit 'furlong'"),
    (MethodConfig, dict(second_update="x"), "Unknown second_update 'x'; choose one of"),
    (MethodConfig, dict(d_steps=0), "d_steps must be >= 1"),
    (MethodConfig, dict(pgd_step_size=-1.0), "pgd_step_size must be >= 0"),
    (SiblingsConfig, dict(dat="x"), "Unknown dat 'x'; choose none or one of"),
    (SiblingsConfig, dict(dat_epsilon=0.0), "dat_epsilon=0 must lie in"),
    (SiblingsConfig, dict(advas_lambda=-1.0), "advas_lambda must be >= 0"),
    (SiblingsConfig, dict(dat_side="middle"), "Unknown dat_side 'middle'"),  # DAT off too
    (SiblingsConfig, dict(dat="authors", dat_side="middle"), "Unknown DAT side 'middle'"),
    (OptimConfig, dict(lr_g=0.0), "lr_g must be > 0"),
    (OptimConfig, dict(beta1_d=1.0), "beta1_d must lie in \\[0, 1\\)"),
    (OptimConfig, dict(epochs=0), "epochs must be >= 1, got 0"),
    (OptimConfig, dict(steps_per_epoch=-1), "steps_per_epoch must be >= 0, got -1"),
    (RunConfig, dict(strategy="tpu"), "Unknown strategy 'tpu'"),
    (RunConfig, dict(jit_compile="maybe"), "jit_compile must be one of"),
    (RunConfig, dict(on_nonfinite="ignore"), "on_nonfinite must be one of"),
    (RunConfig, dict(max_rollbacks=-1), "max_rollbacks and checkpoint_every_minutes"),
    (RunConfig, dict(checkpoint_every_steps=-1), "checkpoint_every_steps must be >= 0"),
    (RunConfig, dict(checkpoints_to_keep=0), "checkpoints_to_keep must be >= 1"),
    (EvalConfig, dict(eval_every_epochs=-1), "eval_every_epochs must be >= 0, got -1"),
    (EvalConfig, dict(eval_network="vgg"), "Unknown eval_network 'vgg'"),
])
def test_each_section_validates_its_fields(section, changes, message):
    assert section().validate() == section()
    with pytest.raises(ValueError, match=message):
        section(**changes).validate()
    with pytest.raises(ValueError, match=message):  # and so does the whole configuration
        TrainConfig(**changes).validate()


def test_the_config_epsilon_cap_is_an_eighth_of_the_library_ceiling():
    cap = train_config.MAX_CONFIG_EPSILON
    assert cap == schedules.MAX_EPSILON / 8 == 0.25
    above = float(np.nextafter(cap, 1.0))
    MethodConfig(epsilon=cap).validate()
    MethodConfig(epsilon=cap / 2, epsilon_unit="pixel").validate()  # 0.25 in input units
    SiblingsConfig(dat_epsilon=cap).validate()
    for section in (MethodConfig(epsilon=above), MethodConfig(epsilon=above / 2,
                                                              epsilon_unit="pixel")):
        with pytest.raises(ValueError, match="must lie in \\[0, 0.25\\]"):
            section.validate()
    with pytest.raises(ValueError, match="dat_epsilon=0.25 must lie in \\(0, 0.25\\]"):
        SiblingsConfig(dat_epsilon=above).validate()


@pytest.mark.parametrize("changes,message", [
    (dict(batch_size=10, d_steps=3), "divisible by d_steps=3"),
    (dict(advas_lambda=1.0, batch_size=3, d_steps=3), "two halves"),
    (dict(dat="authors"), "side='both' attacks the real batch"),
    (dict(eval_every_epochs=1, is_splits=0), "Evaluation is_splits must be >= 1"),
    (dict(methods_version=1), "earlier DAT / AdvAs definitions"),
])
def test_the_checks_across_sections(changes, message):
    config = TrainConfig(**changes)
    for section in config.sections().values():
        section.validate()  # each section alone is fine
    with pytest.raises(ValueError, match=message):
        config.validate()


def test_parse_epsilon_has_one_home():
    # one home per name: the configuration reads it from schedules, it does not re-export it
    assert not hasattr(train_config, "parse_epsilon") and callable(schedules.parse_epsilon)


@pytest.mark.parametrize("changes,fix", [
    (dict(architecture="sngan_cnn"), "--nobn_d"),
    (dict(architecture="sngan_resnet", resolution=48), "--nobn_d"),
    (dict(architecture="wgangp_resnet"), "--nobn_d"),
    (dict(architecture="wgangp_mnist", resolution=28, bn_d=False), "--nobn_g"),
])
def test_batch_norm_where_a_network_has_none_is_refused_before_training(changes, fix):
    with pytest.raises(errors.InputError, match=f"no batch normalisation in its source; add {fix}"):
        TrainConfig(**changes).validate()
    TrainConfig(**dict(changes, bn_d=False, bn_g="mnist" not in changes["architecture"])
                ).validate()
