"""The building blocks of :mod:`tf_asgan.config.train_config`: a field that is also a flag,
and a section.

A configuration field is declared with :func:`option`, which records in the field's
metadata everything ``scripts/train.py`` needs to make it a command-line flag (its help,
its choices) and what :meth:`Section.validate` checks generically (the choices, a
minimum). A :class:`Section` is a dataclass of such fields that validates itself.
"""

import dataclasses

from tf_asgan import errors, schedules


def option(default, help, *, choices=None, mutable=False, flag=True, minimum=None,
           fraction=None):
    """A configuration field whose name is also its flag's name.

    Args:
      default: the default value (the flag's default too).
      help: the flag's help text.
      choices: the allowed values (the flag is an enum); checked by
        :meth:`Section.validate` after the section's own checks.
      mutable: may change between the runs of one workdir (where data lives, how long to
        train, what to write); any other difference is a different experiment.
      flag: ``False`` for a recorded field that no flag sets.
      minimum: the smallest allowed value (checked by :meth:`Section.validate`).
      fraction: the default as written on the command line (``"1/255"``) for a float the
        flag takes as a fraction; the field then also accepts such strings.
    """
    metadata = {"help": help, "choices": tuple(choices) if choices is not None else None,
                "mutable": mutable, "flag": flag, "minimum": minimum, "fraction": fraction}
    return dataclasses.field(default=default, metadata=metadata)


def unknown(name, value, allowed):
    """The error (:class:`tf_asgan.errors.InputError`) of a value outside its choices."""
    return errors.InputError(f"Unknown {name} {value!r}; choose one of {list(allowed)}.")


class Section:
    """Base of the configuration's sections: frozen dataclasses of :func:`option` fields.

    A subclass states its own checks in :meth:`check` (the specific messages); then
    :meth:`validate` checks every field's ``choices`` and ``minimum``.
    """

    def __post_init__(self):
        for field in self.fields():
            if field.metadata["fraction"] is not None:  # "1/255" -> 0.0039...
                value = schedules.parse_epsilon(getattr(self, field.name))
                object.__setattr__(self, field.name, value)  # sections are frozen

    @classmethod
    def fields(cls):
        return dataclasses.fields(cls)

    @classmethod
    def names(cls):
        return tuple(f.name for f in dataclasses.fields(cls))

    def check(self):
        """The section's own checks (raising ``ValueError``); run first by :meth:`validate`."""

    def validate(self):
        """Raises ``ValueError`` naming the first bad field and how to fix it."""
        self.check()
        for field in self.fields():
            value, meta = getattr(self, field.name), field.metadata
            if meta["choices"] is not None and value not in meta["choices"]:
                raise unknown(field.name, value, meta["choices"])
            if meta["minimum"] is not None and value < meta["minimum"]:
                raise errors.InputError(f"{field.name} must be >= {meta['minimum']}, got {value}.")
        return self

    def replace(self, **changes):
        """A copy with ``changes`` (field names of this section)."""
        return dataclasses.replace(self, **changes)

    def items(self):
        """``(name, value)`` of every field, in order."""
        return [(name, getattr(self, name)) for name in self.names()]
