"""Files on disk: the project's cache folder and all-or-nothing writes.

Every file the package writes goes through this module, so a process killed part-way
leaves either the previous file or the new one, never half of one. The bottom layer:
it imports nothing from ``tf_asgan``.
"""

import contextlib
import json
import os
import secrets
import shutil
import tempfile


def cache_root():
    """The project's cache folder (digit classifier, data statistics).

    Returns:
      ``$TF_ASGAN_CACHE`` when set and non-empty, else ``~/.cache/tf_asgan``. The folder
      is not created.
    """
    return os.environ.get("TF_ASGAN_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "tf_asgan")


def _suffix(path):
    """Everything from the first dot of the file name (``a.weights.h5`` -> ``.weights.h5``),
    so writers that pick a format from the name see the same one."""
    name = os.path.basename(path).lstrip(".")
    dot = name.find(".")
    return name[dot:] if dot >= 0 else ""


@contextlib.contextmanager
def atomic_path(path, suffix=None):
    """A temporary path to write ``path`` through, for writers that take a file name.

    Yields a path in the same folder as ``path`` ending in the same suffix (default:
    everything from the first dot of its name, e.g. ``.png``, ``.npz``, ``.weights.h5``).
    When the block ends normally the temporary file replaces ``path`` in one rename; when
    it raises, the temporary file is removed and ``path`` is left as it was. The folder
    must exist.

    Raises:
      FileNotFoundError: the block completed without writing the temporary file.
    """
    folder, name = os.path.split(os.path.abspath(path))
    suffix = _suffix(path) if suffix is None else suffix
    tmp = os.path.join(folder, f".{name}.{os.getpid()}-{secrets.token_hex(4)}.tmp{suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)


def atomic_write_text(path, text):
    """Writes the string ``text`` to ``path`` atomically (see :func:`atomic_path`)."""
    with atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())


def atomic_write_json(path, value, **json_kwargs):
    """Writes ``json.dumps(value, **json_kwargs)`` to ``path`` atomically.

    Raises:
      TypeError / ValueError: ``value`` is not JSON-serialisable (``path`` untouched).
    """
    atomic_write_text(path, json.dumps(value, **json_kwargs))


@contextlib.contextmanager
def atomic_directory(path, prefix=".tmp-"):
    """A temporary folder to build the folder ``path`` in, swapped in when complete.

    Yields a new empty folder beside ``path`` (its name starts with ``prefix``). When the
    block ends normally: if ``path`` exists it is first renamed aside (``<tmp>.old``), the
    new folder is renamed to ``path``, and only then is the old one deleted, so at every
    moment one complete copy exists. When the block raises, the temporary folder is
    deleted and ``path`` is untouched. The parent folder is created if needed, and the
    new folder gets the permissions of any folder made by ``os.makedirs`` (the
    process's umask), not the owner-only ones of a temporary folder.
    """
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=prefix, dir=parent)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)
    try:
        yield tmp
        if os.path.exists(path):
            old = tmp + ".old"
            os.rename(path, old)
            os.rename(tmp, path)
            shutil.rmtree(old)
        else:
            os.rename(tmp, path)
    finally:
        if os.path.exists(tmp):
            shutil.rmtree(tmp)


def append_line(path, line):
    """Appends ``line`` and a newline to the text file ``path`` (created if missing),
    flushed to disk.

    If the file ends in the unterminated line of a killed writer, a newline is written
    first, so ``line`` always stands on a line of its own.
    """
    starts_clean = True
    if os.path.exists(path) and os.path.getsize(path):
        with open(path, "rb") as f:
            f.seek(-1, os.SEEK_END)
            starts_clean = f.read(1) == b"\n"
    with open(path, "a") as f:
        f.write(("" if starts_clean else "\n") + line + "\n")
        f.flush()
        os.fsync(f.fileno())
