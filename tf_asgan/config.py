"""The training configuration: sections of plain fields, validated before any work starts.

A :class:`TrainConfig` holds one section per concern (``config.data``, ``config.model``,
``config.method``, ``config.siblings``, ``config.optim``, ``config.run``, ``config.eval``;
see :mod:`tf_asgan.config_sections` and :mod:`tf_asgan.config_methods`). Field names are
unique across the sections: each is also the name of an absl flag of ``scripts/train.py``,
made from the field's metadata (:func:`tf_asgan.config_fields.option`). So a run's
resolved configuration is a flat dictionary (``config.json``) and a flagfile
(:func:`to_flagfile`) that repeats it.
"""

import dataclasses
import json
import os

from tf_asgan import io, methods
from tf_asgan.config_fields import option
from tf_asgan.config_methods import MAX_CONFIG_EPSILON, MethodConfig, SiblingsConfig
from tf_asgan.config_sections import (
    NONFINITE_ACTIONS,
    DataConfig,
    EvalConfig,
    ModelConfig,
    OptimConfig,
    RunConfig,
)
from tf_asgan.schedules import parse_epsilon

__all__ = ["TrainConfig", "DataConfig", "ModelConfig", "MethodConfig", "SiblingsConfig",
           "OptimConfig", "RunConfig", "EvalConfig", "SECTIONS", "METHODS_VERSION",
           "MAX_CONFIG_EPSILON", "NONFINITE_ACTIONS", "MUTABLE_FIELDS",
           "parse_epsilon", "fields", "flag_fields", "to_flagfile", "save", "load"]

# The version of the DAT / AdvAs definitions a run trains with. 1: before they followed
# their sources (a squared, summed DAT objective; AdvAs with a fixed or uncapped weight and
# a one-batch estimate); 2: as in docs/methods.md. A run of another version is a
# different experiment: it is not resumed under today's code.
METHODS_VERSION = 2
# attribute of TrainConfig -> its section, in the order of config.json.
SECTIONS = {"data": DataConfig, "model": ModelConfig, "method": MethodConfig,
            "siblings": SiblingsConfig, "optim": OptimConfig, "run": RunConfig,
            "eval": EvalConfig}
# field name -> the attribute of the section holding it.
_OWNER = {name: section for section, cls in SECTIONS.items() for name in cls.names()}
if len(_OWNER) != sum(len(cls.names()) for cls in SECTIONS.values()):
    raise RuntimeError("A field name appears in two sections: field names are flag names.")


def check_steps_per_execution(config, steps_per_epoch):
    """Raises ``ValueError`` when ``config.steps_per_execution`` does not divide
    ``steps_per_epoch`` (``0``: not known yet, no check): the last execution of an epoch
    would run into the next one."""
    k = config.run.steps_per_execution
    if steps_per_epoch and k >= 1 and steps_per_epoch % k:
        raise ValueError(f"--steps_per_execution={k} does not divide the {steps_per_epoch} "
                         "steps per epoch: an epoch's last execution would run into the "
                         "next epoch. Choose a divisor, or set --steps_per_epoch to a "
                         f"multiple of {k}.")


@dataclasses.dataclass(init=False)
class TrainConfig:
    """Everything a training run depends on. Defaults: the embedded demo (AS-DCGAN, digits).

    ``TrainConfig(epochs=2, dataset="stacked_digits")`` takes the fields by name (or whole
    sections: ``TrainConfig(optim=OptimConfig(...))``). Every field reads by name too:
    ``config.epochs`` is ``config.optim.epochs`` (delegated by ``__getattr__``); change one
    with :meth:`replace`.
    """

    data: DataConfig
    model: ModelConfig
    method: MethodConfig
    siblings: SiblingsConfig
    optim: OptimConfig
    run: RunConfig
    eval: EvalConfig
    # recorded, not chosen: no flag (see METHODS_VERSION)
    methods_version: int = option(METHODS_VERSION, "The version of the DAT / AdvAs "
                                  "definitions the run trained with.", flag=False)

    def __init__(self, *, methods_version=METHODS_VERSION, **values):
        for name, cls in SECTIONS.items():
            section = values.pop(name, None) or cls()
            own = {k: values.pop(k) for k in cls.names() if k in values}
            object.__setattr__(self, name, section.replace(**own) if own else section)
        if values:
            raise TypeError(f"TrainConfig got unknown fields {sorted(values)}.")
        object.__setattr__(self, "methods_version", methods_version)

    def __getattr__(self, name):  # only called for names that are not attributes
        if name in _OWNER:
            return getattr(getattr(self, _OWNER[name]), name)
        raise AttributeError(f"TrainConfig has no field {name!r}.")

    def __setattr__(self, name, value):
        if name in _OWNER:
            raise AttributeError(f"Set {name} with config.replace({name}=...) (or on "
                                 f"config.{_OWNER[name]}).")
        object.__setattr__(self, name, value)

    def sections(self):
        """``{attribute: section}`` in order."""
        return {name: getattr(self, name) for name in SECTIONS}

    def replace(self, **changes):
        """A copy with ``changes`` (field names, as for the constructor, or sections)."""
        return TrainConfig(**{"methods_version": self.methods_version, **self.sections(),
                              **changes})

    def validate(self):
        """Raises ``ValueError`` naming the first bad field and how to fix it."""
        if self.methods_version != METHODS_VERSION:
            raise ValueError(
                f"methods_version={self.methods_version}: this configuration was trained "
                f"with tf_asgan's earlier DAT / AdvAs definitions (today's: "
                f"{METHODS_VERSION}, docs/methods.md); it can be evaluated or exported, "
                "not trained further. Start a new run.")
        for section in self.sections().values():
            section.validate()
        self._check_across_sections()
        return self

    def _check_across_sections(self):
        batch_size, d_steps = self.optim.batch_size, self.method.d_steps
        advas = self.advas_object()
        if advas is not None and advas.estimate == "unbiased" and batch_size // d_steps < 2:
            raise ValueError("The unbiased AdvAs estimate splits each D batch into two "
                             "halves: batch_size / d_steps must be >= 2 (and >= 2 per "
                             "replica, which the train step checks).")
        methods.check_combination(self.method.adversarial, self.dat_object())
        if batch_size % d_steps:
            raise ValueError(f"batch_size={batch_size} must be divisible by "
                             f"d_steps={d_steps} (each D iteration takes a slice).")
        check_steps_per_execution(self, self.optim.steps_per_epoch)
        if self.eval.eval_every_epochs:
            self.eval_protocol().validate()

    # The objects built from the fields (their sections build them).
    def epsilon_schedule_object(self):
        return self.method.epsilon_schedule_object()

    def perturbation_kwargs(self):
        return self.method.perturbation_kwargs()

    def dat_object(self):
        return self.siblings.dat_object()

    def advas_object(self):
        return self.siblings.advas_object()

    def eval_protocol(self):
        return self.eval.protocol(seed=self.optim.seed)

    def to_dict(self):
        """The flat ``{field: value}`` of every field (``config.json``), in order."""
        values = {}
        for section in self.sections().values():
            values.update(section.items())
        values["methods_version"] = self.methods_version
        return values

    @classmethod
    def from_dict(cls, values):
        values = _upgrade(values)
        unknown = sorted(set(values) - {f.name for f in fields()})
        if unknown:
            raise ValueError(f"Unknown configuration fields {unknown}.")
        return cls(**values)

    def differences(self, other):
        """Fields (other than :data:`MUTABLE_FIELDS`) whose values differ from ``other``'s."""
        a, b = self.to_dict(), other.to_dict()
        return {k: (b[k], a[k]) for k in a if k not in MUTABLE_FIELDS and a[k] != b[k]}


def _upgrade(values):
    """A stored configuration of an older version, in today's fields (same experiment).

    Before the sibling methods followed their sources (``methods_version`` 1), AdvAs had
    ``advas_scale`` (fixed or relative) and always the one-batch (biased) estimate, and
    DAT another objective. A run that used either keeps ``methods_version=1``, so it is
    read (evaluation, export) but not resumed as today's method; a run that used
    neither is the same experiment as today's.
    """
    values = dict(values)
    if "advas_scale" in values:  # stored by every run of version 1
        scale = values.pop("advas_scale")
        advas = values.get("advas_lambda", 0.0) > 0
        if advas:
            values["advas_weight"], values["advas_estimate"] = scale, "biased"
        if advas or values.get("dat", "none") != "none":
            values["methods_version"] = 1  # trained with the version-1 definitions
    return values


def fields():
    """Every field of a :class:`TrainConfig` (the sections' and the recorded ones), in the
    order of :meth:`TrainConfig.to_dict`."""
    own = [f for f in dataclasses.fields(TrainConfig) if f.name not in SECTIONS]
    return [f for cls in SECTIONS.values() for f in cls.fields()] + own


def flag_fields():
    """The fields that are command-line flags (all but recorded ones), in order."""
    return [f for f in fields() if f.metadata["flag"]]


# Fields that may change between the runs of one workdir (where data lives, how
# long to train, what to write); any other difference is a different experiment.
MUTABLE_FIELDS = tuple(f.name for f in fields() if f.metadata["mutable"])


def to_flagfile(config):
    """The configuration as absl flag lines (``--name=value``), one per flag field."""
    lines = []
    names = {f.name for f in flag_fields()}
    for key, value in config.to_dict().items():
        if value is None or key not in names:
            continue
        if isinstance(value, bool):
            lines.append(f"--{key}" if value else f"--no{key}")
        elif isinstance(value, float):
            lines.append(f"--{key}={value!r}")
        else:
            lines.append(f"--{key}={value}")
    return "\n".join(lines) + "\n"


def save(config, workdir):
    """Writes ``config.json`` and ``flags.txt`` into ``workdir`` (each atomically)."""
    io.atomic_write_text(os.path.join(workdir, "config.json"),
                         json.dumps(config.to_dict(), indent=2, sort_keys=True))
    io.atomic_write_text(os.path.join(workdir, "flags.txt"), to_flagfile(config))


def load(workdir):
    """The configuration stored in ``workdir``, or ``None``."""
    path = os.path.join(workdir, "config.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return TrainConfig.from_dict(json.load(f))

