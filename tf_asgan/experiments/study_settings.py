"""The study's settings and methods (:mod:`tf_asgan.experiments.study`): the configuration
changes of each named setting (the AS-GAN paper's Table 2 rows) and of each method (the
presets and the paper's Fig. 3 epsilon ablation), and the measured columns.
"""

from tf_asgan import errors
from tf_asgan.experiments import presets

# The settings: configuration changes on top of the study's standard run (the AS-GAN
# paper's Table 2 rows on CIFAR-10, flags/table2/*.flags, here at the study's scale).
SETTINGS = {
    "standard": {},
    "no_bn_d": {"bn_d": False},  # Table 2 "no BN in D": FID 69.82 -> 51.30 in the paper
    "no_bn_g": {"bn_g": False},  # Table 2 "no BN in G"
    "no_bn": {"bn_g": False, "bn_d": False},  # Table 2 "no BN in G and D"
    "lr_d_4e-4": {"lr_d": 4e-4},  # Table 2 "lr_D = 4e-4": a stronger D
    "beta2_0.9": {"beta2_d": 0.9, "beta2_g": 0.9},  # Table 2 "Adam beta2 = 0.9"
}
# The paper's Fig. 3 / Fig. 7 ablation as methods: AS-GAN with another epsilon (input
# units, flags/fig3/*.flags) or direction. asgan itself is the 1/255 point (the study's
# epsilon). eps 0: no perturbation, so D's second update sees the same reals and fakes
# again (flags/fig3/eps_0.flags); gaussian: x + eps * sign(n), n ~ N(0, I), at 1/255.
ABLATION = {
    "asgan_eps0": {"perturbation": "none", "epsilon": 0.0},
    "asgan_eps0.5": {"epsilon": 0.5 / 255},
    "asgan_eps2": {"epsilon": 2 / 255},
    "asgan_eps4": {"epsilon": 4 / 255},
    "asgan_gaussian": {"perturbation": "gaussian", "epsilon": 1 / 255},
}


def method_changes(name):
    """The configuration changes of study method ``name``: a preset's, or asgan's preset
    with an :data:`ABLATION` entry's changes on top.

    Raises:
      tf_asgan.errors.InputError: ``name`` is neither (the message lists both).
    """
    if name in ABLATION:
        return {**presets.preset("asgan"), **ABLATION[name]}
    check_methods([name])
    return presets.preset(name)


def check_methods(names):
    """Refuses any name that is neither a preset nor an :data:`ABLATION` method."""
    unknown = [n for n in names if n not in presets.PRESETS and n not in ABLATION]
    if unknown:
        raise errors.InputError(f"Unknown methods {unknown}; choose from "
                                f"{[*presets.PRESETS, *ABLATION]}.")


def check_settings(names):
    """Refuses any name that is not a :data:`SETTINGS` entry, and repeated names."""
    unknown = [n for n in names if n not in SETTINGS]
    if unknown or len(set(names)) != len(names):
        raise errors.InputError(f"Unknown or repeated settings {list(names)}; choose from "
                                f"{list(SETTINGS)}, each once.")
# Logged per-step quantities summarised (median and max over training) into result.json.
TRACES = ("dat_linf_real", "dat_linf_fake", "advas_lambda", "advas_penalty")
# (key in result.json, column title, format)
COLUMNS = (
    ("fid", "FID", "{:.2f}"),
    ("precision", "precision", "{:.3f}"),
    ("recall", "recall", "{:.3f}"),
    ("density", "density", "{:.3f}"),
    ("coverage", "coverage", "{:.3f}"),
    ("modes", "modes", "{:.1f}"),
    ("modes_kl", "KL(modes)", "{:.3f}"),
    ("accuracy_real", "D acc. real", "{:.1%}"),
    ("flipped_real", "flipped real @{eps}", "{:.1%}"),
    ("accuracy_fake", "D acc. fake", "{:.1%}"),
    ("flipped_fake", "flipped fake @{eps}", "{:.1%}"),
    ("grad_l1", "grad L1", "{:.3g}"),
    ("d_loss_std", "std d_loss", "{:.3f}"),
    ("g_loss_std", "std g_loss", "{:.3f}"),
)
