"""Flagfiles (``--flagfile=PATH``) that work from any directory, and a command line that
wins over them.

absl expands ``--flagfile=PATH`` itself, opening ``PATH`` (and every ``--flagfile=`` line
nested in it) relative to the current directory. Every flagfile of the repository
includes ``flags/defaults.flags`` by its repository path, so with absl alone a flagfile
works only from the repository root. :func:`expand` reads the flagfiles instead, with
absl's rules for their lines (blank lines and lines starting with ``#`` or ``//`` are
skipped; every other line is one argument, stripped), and resolves each path, nested or
not, against the current directory first and then the repository root (ours): a path
that works today keeps its meaning, and one that works only from the root now works from
anywhere.

The expanded command line puts the arguments read from flagfiles first, in their order,
and the arguments written on the command line itself after them, in theirs (ours): a
flag written on the command line wins over a flagfile's value of it, wherever the
``--flagfile`` stands (absl alone lets the later one win). So
``train.py --workdir=runs/b --flagfile=runs/a/flags.txt`` trains in ``runs/b``.
"""

import os

from tf_asgan import errors

_DIRECTIVES = ("--flagfile", "-flagfile")


def _directive(arg):
    """``(is a flagfile directive, its path or None when the path is the next argument)``."""
    for name in _DIRECTIVES:
        if arg == name:
            return True, None
        if arg.startswith(name + "="):
            return True, arg[len(name) + 1:].strip()
    return False, None


def resolve(path, root):
    """The file ``path`` names: itself (relative to the current directory) if it exists,
    else ``root/path`` for a relative ``path``.

    Raises:
      tf_asgan.errors.MissingError: neither exists (the message names both places).
    """
    path = os.path.expanduser(path)
    if os.path.isfile(path) or os.path.isabs(path):
        if not os.path.isfile(path):
            raise errors.MissingError(f"Flagfile {path} does not exist; check the path.")
        return path
    beside_root = os.path.join(root, path)
    if os.path.isfile(beside_root):
        return beside_root
    raise errors.MissingError(
        f"Flagfile {path} does not exist in the current directory ({os.getcwd()}) nor in "
        f"the repository ({root}); check the path.")


def _lines(path, root, stack):
    """The arguments of flagfile ``path`` with its nested flagfiles expanded."""
    path = resolve(path, root)
    key = os.path.realpath(path)
    if key in stack:
        raise errors.InputError(
            f"Flagfile {path} includes itself (through {' -> '.join(stack)}); remove "
            "the circular --flagfile line.")
    try:
        with open(path) as f:
            text = f.readlines()
    except (OSError, UnicodeDecodeError) as err:
        raise errors.InputError(f"Cannot read flagfile {path} ({err}); check the file.") \
            from err
    out = []
    for line in text:
        if line.isspace() or line.startswith(("#", "//")):
            continue
        is_directive, nested = _directive(line.strip())
        if is_directive and nested:
            out.extend(_lines(nested, root, stack + [key]))
        else:
            out.append(line.strip())
    return out


def expand(argv, root):
    """``argv`` (``sys.argv``: the program first) with every flagfile read in place of
    its ``--flagfile`` argument (see the module docstring), then the command line's own
    arguments after the flagfiles' ones.

    Args:
      argv: the program name and its arguments, as ``sys.argv``.
      root: the repository root, the second place a relative flagfile path is looked for.

    Returns:
      A new list: ``argv[0]``, the flagfiles' arguments, the other arguments (those
      after ``--`` stay last, untouched).

    Raises:
      tf_asgan.errors.MissingError: a flagfile that exists in neither place.
      tf_asgan.errors.InputError: ``--flagfile`` without a path, a flagfile that
        includes itself, or one that cannot be read.
    """
    read, own = [], []
    args = list(argv[1:])
    while args:
        arg = args.pop(0)
        if arg == "--":
            own += [arg, *args]
            break
        is_directive, path = _directive(arg)
        if not is_directive:
            own.append(arg)
            continue
        if path is None:
            if not args:
                raise errors.InputError(f"{arg} needs a path: {arg}=PATH.")
            path = args.pop(0)
        if path:  # absl ignores an empty one
            read += _lines(path, root, [])
    return [argv[0], *read, *own]
