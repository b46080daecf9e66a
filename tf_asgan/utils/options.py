"""One reading of a method's or regulariser's option argument: ``None``, a name, a dict of
its fields or the option object itself (``ASGAN(dat=...)``, ``gradient_penalty=...``,
``rotation=...``), so that every such argument accepts the same forms and refuses a
misspelled key the same way.
"""

import dataclasses

from tf_asgan import errors


def as_option(value, cls, *, what, argument, public, name_field=None, names=(),
              off=None):
    """``value`` -> ``None`` or a validated ``cls`` (a dataclass with a ``validate()``
    method returning itself).

    Args:
      value: ``None`` or ``off`` (-> ``None``); a string, when ``name_field`` is given (->
        ``cls(**{name_field: value})``); a dict of ``cls``'s fields; or a ``cls``.
      what: the option's name in messages (e.g. "gradient penalty").
      argument: the argument's name in messages (e.g. "gradient_penalty").
      public: ``cls``'s public path in messages (e.g.
        "tf_asgan.regularizers.GradientPenalty").
      names: the accepted strings, listed in the message of a wrong type.

    Raises:
      InputError: a dict with keys that are not ``cls``'s fields (naming them and the
        fields), a value of another type, or what ``cls.validate()`` refuses.
    """
    if value is None or (off is not None and value == off):
        return None
    if isinstance(value, str) and name_field is not None:
        value = cls(**{name_field: value})
    elif isinstance(value, dict):
        fields = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(value) - set(fields))
        if unknown:
            raise errors.InputError(f"Unknown {what} option(s) {unknown}; the options are "
                                    f"{fields}.")
        value = cls(**value)
    if not isinstance(value, cls):
        forms = f"None, one of {list(names)}, a dict" if names else "None, a dict"
        raise errors.InputError(f"{argument} must be {forms} or a {public}, got "
                                f"{type(value).__name__}.")
    return value.validate()
