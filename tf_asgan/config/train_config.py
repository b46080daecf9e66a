"""The training configuration: sections of plain fields, validated before any work starts.

A :class:`TrainConfig` holds one section per concern (``config.data``, ``config.model``,
``config.method``, ``config.rotation``, ``config.siblings``, ``config.optim``,
``config.run``, ``config.eval``; see :mod:`tf_asgan.config.sections`,
:mod:`tf_asgan.config.method` and :mod:`tf_asgan.config.rotation`). Field names are
unique across the sections: each is also the name of an absl flag of ``scripts/train.py``,
made from the field's metadata (:func:`tf_asgan.config.fields.option`). So a run's
resolved configuration is a flat dictionary (``config.json``) and a flagfile
(:func:`to_flagfile`) that repeats it.
"""

import dataclasses
import json
import os

from tf_asgan import errors, layout, legacy, methods
from tf_asgan.config import checks
from tf_asgan.config.fields import option
from tf_asgan.config.method import MAX_CONFIG_EPSILON, MethodConfig, SiblingsConfig
from tf_asgan.config.rotation import RotationConfig
from tf_asgan.config.sections import (
    NONFINITE_ACTIONS,
    DataConfig,
    EvalConfig,
    ModelConfig,
    OptimConfig,
    RunConfig,
)
from tf_asgan.data import catalog
from tf_asgan.evaluation import classifiers
from tf_asgan.regularizers import penalties, rotation
from tf_asgan.utils import io

__all__ = ["TrainConfig", "DataConfig", "ModelConfig", "MethodConfig", "RotationConfig",
           "SiblingsConfig",
           "OptimConfig", "RunConfig", "EvalConfig", "SECTIONS",
           "MAX_CONFIG_EPSILON", "NONFINITE_ACTIONS", "MUTABLE_FIELDS",
           "fields", "flag_fields", "section_of", "to_flagfile", "save", "load"]


# attribute of TrainConfig -> its section, in the order of config.json.
SECTIONS = {"data": DataConfig, "model": ModelConfig, "method": MethodConfig,
            "rotation": RotationConfig, "siblings": SiblingsConfig, "optim": OptimConfig,
            "run": RunConfig, "eval": EvalConfig}
# field name -> the attribute of the section holding it.
_OWNER = {name: section for section, cls in SECTIONS.items() for name in cls.names()}
if len(_OWNER) != sum(len(cls.names()) for cls in SECTIONS.values()):
    raise RuntimeError("A field name appears in two sections: field names are flag names.")


@dataclasses.dataclass(init=False)
class TrainConfig:
    """Everything a training run depends on. Defaults: the embedded demo (AS-DCGAN, digits).

    ``TrainConfig(epochs=2, dataset="stacked_digits")`` takes the fields by name (or whole
    sections: ``TrainConfig(optim=OptimConfig(...))``). A field is read from its section,
    ``config.optim.epochs``, so a call site shows which settings it depends on
    (``config.epochs`` raises an error naming the section); change one with
    :meth:`replace`.

    ``model.channels`` is not chosen: it is the dataset's
    (:func:`tf_asgan.data.catalog.channels`: 1 for mnist and fashion_mnist, else 3), set
    here whatever was passed, and recorded in ``config.json`` with the run.
    """

    data: DataConfig
    model: ModelConfig
    method: MethodConfig
    rotation: RotationConfig
    siblings: SiblingsConfig
    optim: OptimConfig
    run: RunConfig
    eval: EvalConfig
    # recorded, not chosen: no flag (see legacy.METHODS_VERSION)
    methods_version: int = option(legacy.METHODS_VERSION, "The version of the DAT / AdvAs "
                                  "definitions the run trained with.", flag=False)

    def __init__(self, *, methods_version=legacy.METHODS_VERSION, **values):
        for name, cls in SECTIONS.items():
            section = values.pop(name, None) or cls()
            own = {k: values.pop(k) for k in cls.names() if k in values}
            object.__setattr__(self, name, section.replace(**own) if own else section)
        channels = catalog.channels(self.data.dataset)
        if self.model.channels != channels:
            object.__setattr__(self, "model", self.model.replace(channels=channels))
        if values:
            raise TypeError(f"TrainConfig got unknown fields {sorted(values)}.")
        object.__setattr__(self, "methods_version", methods_version)

    def __getattr__(self, name):  # only called for names that are not attributes
        if name in _OWNER:
            raise AttributeError(f"Read {name} from its section: config.{_OWNER[name]}.{name}.")
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
        if self.methods_version != legacy.METHODS_VERSION:
            raise errors.InputError(
                f"methods_version={self.methods_version}: this configuration was trained "
                f"with tf_asgan's earlier DAT / AdvAs definitions (today's: "
                f"{legacy.METHODS_VERSION}, docs/methods.md); it can be evaluated or exported, "
                "not trained further. Start a new run.")
        for section in self.sections().values():
            section.validate()
        self._check_across_sections()
        return self

    def _check_across_sections(self):
        batch_size, d_steps = self.optim.batch_size, self.method.d_steps
        advas = self.siblings.advas_object()
        if advas is not None and advas.estimate == "unbiased" and batch_size // d_steps < 2:
            raise errors.InputError("The unbiased AdvAs estimate splits each D batch into two "
                                    "halves: batch_size / d_steps must be >= 2 (and >= 2 per "
                                    "replica, which the train step checks).")
        methods.check_combination(self.method.adversarial, self.siblings.dat_object())
        rotation.check_combination(self.rotation.rotation_object(), advas)
        classifiers.check_network(self.eval.eval_network, self.data.dataset)
        penalty = self.method.gradient_penalty_object()
        if penalty is not None and self.model.bn_d:
            raise penalties.batch_norm_error(penalty.kind)
        if batch_size % d_steps:
            raise errors.InputError(f"batch_size={batch_size} must be divisible by "
                                    f"d_steps={d_steps} (each D iteration takes a slice).")
        checks.check_steps_per_execution(self.run, self.optim.steps_per_epoch)
        if self.eval.eval_every_epochs:
            self.eval.protocol(self.optim.seed).validate()

    def to_dict(self):
        """The flat ``{field: value}`` of every field (``config.json``), in order."""
        values = {}
        for section in self.sections().values():
            values.update(section.items())
        values["methods_version"] = self.methods_version
        return values

    @classmethod
    def from_dict(cls, values):
        values = legacy.upgrade_config(values)
        unknown = sorted(set(values) - {f.name for f in fields()})
        if unknown:
            raise errors.InputError(f"Unknown configuration fields {unknown}.")
        return cls(**values)

    def differences(self, other):
        """Fields (other than :data:`MUTABLE_FIELDS`) whose values differ from ``other``'s."""
        a, b = self.to_dict(), other.to_dict()
        return {k: (b[k], a[k]) for k in a if k not in MUTABLE_FIELDS and a[k] != b[k]}


def section_of(name):
    """The attribute of :class:`TrainConfig` whose section holds field ``name`` (``None``
    for the recorded ``methods_version``, which the configuration holds itself)."""
    return _OWNER.get(name)


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


def to_flagfile(config, workdir=None):
    """The configuration as absl flag lines (``--name=value``), one per flag field, and
    ``--workdir=<workdir as an absolute path>`` last when ``workdir`` is given (so
    ``--flagfile=<workdir>/flags.txt`` continues that run from any directory; a
    ``--workdir`` on the command line wins over it, see
    :mod:`tf_asgan.config.flagfiles`)."""
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
    if workdir is not None:
        lines.append(f"--workdir={os.path.abspath(workdir)}")
    return "\n".join(lines) + "\n"


def save(config, workdir):
    """Writes ``config.json`` and ``flags.txt`` (with the workdir) into ``workdir``, each
    atomically and only when its text changes (a file that already says the same is
    left as it is: same bytes, same modification time)."""
    for name, text in ((layout.CONFIG, json.dumps(config.to_dict(), indent=2, sort_keys=True)),
                       (layout.FLAGS, to_flagfile(config, workdir))):
        path = layout.entry(workdir, name)
        try:
            with open(path) as f:
                if f.read() == text:
                    continue
        except (OSError, UnicodeDecodeError):
            pass  # absent or unreadable: written
        io.atomic_write_text(path, text)


def load(workdir):
    """The configuration stored in ``workdir``, or ``None`` when it holds none.

    Raises:
      tf_asgan.errors.InputError: a ``config.json`` that is not readable JSON, or holds
        unknown fields.
    """
    path = layout.entry(workdir, layout.CONFIG)
    if not os.path.exists(path):
        return None
    try:
        with open(path) as f:
            values = json.load(f)
    except (OSError, ValueError) as err:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise errors.InputError(
            f"{path} cannot be read ({err}): the run's recorded configuration. Restore it, "
            "move the run away or use another --workdir.") from err
    if not isinstance(values, dict):
        raise errors.InputError(f"{path} holds no configuration (a JSON object); restore "
                                "it, move the run away or use another --workdir.")
    return TrainConfig.from_dict(values)
