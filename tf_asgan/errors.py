"""The package's errors: one base class, and readable reasons from TensorFlow's messages.

Every exception tf_asgan raises on purpose derives from :class:`TfAsganError`, so a
script catches one type. Each also keeps the builtin base that says what kind of
problem it is (``ValueError`` for a bad setting or input, ``FileNotFoundError`` for
something missing, ...), so code that catches those keeps working.
"""

import functools
import re
import sys

# The exit status of a script stopped by Ctrl-C: 128 + SIGINT, as the shell reports it.
INTERRUPTED_STATUS = 130
_NOISE = (re.compile(r"\{\{function_node [^}]*\}\}\s*"), re.compile(r"\s*\[Op:\w+\].*$"))


class TfAsganError(Exception):
    """Base class of every error tf_asgan raises on purpose; its message says what was
    wrong and how to fix it."""


class InputError(TfAsganError, ValueError):
    """A setting, argument or input that tf_asgan refuses (a flag value, a shape, a name
    that is not in a registry, ...)."""


class MissingError(TfAsganError, FileNotFoundError):
    """Something tf_asgan needs is not where it was asked for (a folder, a run, a
    checkpoint, a dataset, a network)."""


class ExistsError(TfAsganError, FileExistsError):
    """Something is already where tf_asgan would write, and overwriting was not asked for."""


def short_message(err, limit=200):
    """The first line of ``err``'s message without TensorFlow's op and device noise."""
    text = str(getattr(err, "message", None) or err).strip()
    text = (text.splitlines() or [""])[0]
    for pattern in _NOISE:
        text = pattern.sub("", text)
    return text[:limit]


def exit_interrupted(script, message):
    """Ends a script that Ctrl-C stopped: ``<script>: <message>`` as one line on stderr
    (what was kept and how to go on, instead of Python's traceback) and exit status
    :data:`INTERRUPTED_STATUS`."""
    print(f"{script}: {message}", file=sys.stderr)
    raise SystemExit(INTERRUPTED_STATUS)


def on_interrupt(script, message):
    """Decorates a script's ``main``: Ctrl-C anywhere in it ends the script with
    :func:`exit_interrupted` (``message``: what was kept and how to go on)."""
    def decorate(main):
        @functools.wraps(main)
        def guarded(*args, **kwargs):
            try:
                return main(*args, **kwargs)
            except KeyboardInterrupt:
                exit_interrupted(script, message)
        return guarded
    return decorate
