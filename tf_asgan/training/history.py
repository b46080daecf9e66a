"""``history.csv``: one row of epoch means per finished epoch, numbered from 1 like the
sample grids (``samples/epoch_0001.png``) and ``metrics.jsonl``.

Columns: ``epoch`` (1-based), ``step`` (training steps done at the epoch's end),
``steps_in_mean`` (how many steps the row's means cover: the epoch's steps, fewer for
an epoch a run resumed part-way through, whose earlier steps' values were not kept),
then the logged quantities in alphabetical order (``D_fake``, ``d_loss``, ...). No
column is empty: there is no validation data, so there are no ``val_*`` columns.

The file is rewritten whole, atomically, at each epoch end (it holds one short row
per epoch): a kill never leaves half a row, and the row of an epoch done again (a run
stopped after writing it but before the epoch's checkpoint) replaces the earlier one.

Earlier versions wrote the file with Keras's ``CSVLogger``: 0-based epochs and a
``val_*`` column of ``NA`` for every quantity. Such a file is converted at the first
epoch end of a resumed run (ours): epochs shifted to 1-based, the ``val_*`` columns that
hold no value dropped, ``step`` filled in (epoch x steps per epoch), ``steps_in_mean``
left empty on those rows (unknown: they may cover part of an epoch), and an unfinished
last line (a kill mid-write) dropped.
"""

import csv
import io as text_io
import logging
import os

from tf_asgan.training import callbacks
from tf_asgan.utils import io

log = logging.getLogger(__name__)

FIRST = ("epoch", "step", "steps_in_mean")
_EMPTY = ("", "NA", None)


def read(path, steps_per_epoch=None):
    """The rows of ``history.csv`` at ``path`` as dicts of strings, in today's format
    (an earlier version's file converted as the module docstring says; its ``step``
    needs ``steps_per_epoch``, left empty without it); ``[]`` when there is none."""
    if not os.path.exists(path):
        return []
    with open(path, newline="") as f:
        text = f.read()
    if text and not text.endswith("\n"):  # a kill mid-write: the last row is unfinished
        text = text[:text.rfind("\n") + 1]
        log.warning("%s: an unfinished last line was dropped.", path)
    reader = csv.DictReader(text_io.StringIO(text))
    rows = [row for row in reader if None not in row and None not in row.values()
            and row[reader.fieldnames[0]].isdigit()]
    header = reader.fieldnames or []
    if header and header[0] == "epoch" and "step" not in header:
        rows = _upgrade(rows, header, steps_per_epoch)
    return rows


def _upgrade(rows, header, steps_per_epoch):
    """Rows of Keras's ``CSVLogger`` (0-based ``epoch``, ``val_*`` columns) in today's
    format."""
    unused = {name for name in header if name.startswith("val_")
              and all(row[name] in _EMPTY for row in rows)}
    upgraded = []
    for row in rows:
        epoch = int(row["epoch"]) + 1
        step = epoch * steps_per_epoch if steps_per_epoch else ""
        values = {k: v for k, v in row.items() if k != "epoch" and k not in unused}
        upgraded.append({"epoch": str(epoch), "step": str(step), "steps_in_mean": "",
                         **values})
    return upgraded


def write(path, rows):
    """Writes ``rows`` (dicts) to ``path`` atomically, columns :data:`FIRST` then the
    others in alphabetical order (case-insensitive); a value a row lacks is empty."""
    names = sorted({k for row in rows for k in row} - set(FIRST), key=str.lower)
    out = text_io.StringIO()
    writer = csv.DictWriter(out, [*FIRST, *names], restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    io.atomic_write_text(path, out.getvalue())


def _cell(value):
    try:
        return repr(float(value))
    except (TypeError, ValueError):
        return str(value)


class EpochHistory(callbacks.RunCallback):
    """Writes the epoch means Keras passes to ``on_epoch_end`` as a row of
    ``history.csv`` at ``path`` (see the module docstring)."""

    def __init__(self, path):
        super().__init__()
        self.path = path

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)  # reads the step
        covered = self.step - self._epoch_start
        done = epoch + 1
        rows = [row for row in read(self.path, self.step // done) if int(row["epoch"]) < done]
        rows.append({"epoch": done, "step": self.step, "steps_in_mean": covered,
                     **{name: _cell(value) for name, value in (logs or {}).items()}})
        write(self.path, rows)
