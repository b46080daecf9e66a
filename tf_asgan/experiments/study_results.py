"""The study's per-seed values as files anyone can recompute every statistic from:
``<results>/<dataset>.csv`` (``setting, method, seed, metric, value``) and
``<dataset>.json`` beside it (the study's settings, each run's configuration digest, the
measurement protocol, the code version and each run's machine: CPU and thread settings),
written atomically after every run.
"""

import csv
import dataclasses
import hashlib
import importlib.metadata
import io as text_io
import json
import logging
import math
import os
import subprocess
import time

from tf_asgan import errors
from tf_asgan.experiments.study_settings import COLUMNS, SETTINGS, method_changes
from tf_asgan.utils import io

log = logging.getLogger(__name__)

# The per-seed CSV's header: one row per value.
CSV_COLUMNS = ("setting", "method", "seed", "metric", "value")
# The metric of a run that stopped on a non-finite step (value 1; its only row).
FAILED = "failed"
# The per-seed values of the CSV: the table's columns, the training time and the traces.
CSV_METRICS = (*(key for key, _, _ in COLUMNS), "train_seconds")


def result_rows(r):
    """``[(setting, method, seed, metric, value)]`` of one run's result: every
    :data:`CSV_METRICS` value it holds (NaN kept: an undefined value, e.g. a flip rate of a
    D that classified none right) and ``<trace>_<median|max|first_epoch_max>``; for a run
    that stopped on a non-finite step, the one row ``(..., FAILED, 1.0)``."""
    if r.get("failed"):  # no measurement: the one row says the run failed
        return [(r["setting"], r["method"], r["seed"], FAILED, 1.0)]
    values = {k: r[k] for k in CSV_METRICS if r.get(k) is not None}
    for name, summary in sorted(r.get("traces", {}).items()):
        values.update({f"{name}_{stat}": v for stat, v in sorted(summary.items())})
    return [(r["setting"], r["method"], r["seed"], k, float(v)) for k, v in values.items()]


def config_digest(config):
    """The SHA-256 (hex, 16 digits) of a resolved configuration (a ``TrainConfig`` or its
    ``to_dict()``): the key a CSV row is kept under."""
    values = config if isinstance(config, dict) else config.to_dict()
    return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:16]


# What "dirty" looks at: the code, not the results a study writes into the checkout.
CODE_PATHS = ("tf_asgan", "scripts", "setup.py", "constraints.txt")


def code_version():
    """``{"package", "git_commit", "git_dirty"}`` of the code that runs (``None`` where
    unknown: no git, or not a checkout); ``git_dirty``: a tracked file of
    :data:`CODE_PATHS` differs from the commit (the study's own CSVs do not count)."""
    try:
        package = importlib.metadata.version("tf_asgan")
    except importlib.metadata.PackageNotFoundError:
        package = None
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        commit = subprocess.run(["git", "-C", here, "rev-parse", "HEAD"], check=True,
                                capture_output=True, text=True, timeout=30).stdout.strip()
        dirty = bool(subprocess.run(["git", "-C", here, "status", "--porcelain",
                                     "--untracked-files=no", "--",
                                     *(f":/{p}" for p in CODE_PATHS)], check=True,
                                    capture_output=True, text=True, timeout=30).stdout.strip())
    except (OSError, subprocess.SubprocessError):
        commit, dirty = None, None
    return {"package": package, "git_commit": commit, "git_dirty": dirty}


def _run_key(setting, method, seed):
    return f"{setting}/{method}/seed{seed}"


def _still_valid(study, dataset, key, record):
    """Whether a run recorded by an earlier write still resolves to the same configuration
    under today's definitions (its setting or method may have been redefined)."""
    try:
        config = study.train_config(dataset, record["method"], record["seed"],
                                    record["setting"])
    except errors.TfAsganError:
        return False
    return config_digest(config) == record.get("config_sha256")


def _previous(study, dataset, csv_path, json_path):
    """The rows and run records of an earlier write that are still valid (see
    :func:`write_results`); logs the runs it drops."""
    if not (os.path.exists(csv_path) and os.path.exists(json_path)):
        return [], {}
    with open(json_path) as f:
        meta = json.load(f)
    runs = {} if meta.get("measure") != study.measure() else meta.get("runs", {})
    kept = {k: r for k, r in runs.items() if _still_valid(study, dataset, k, r)}
    dropped = sorted(set(meta.get("runs", {})) - set(kept))
    if dropped:
        log.warning("%s: dropped %d runs whose setting, method or measurement changed: %s",
                    csv_path, len(dropped), ", ".join(dropped))
    with open(csv_path, newline="") as f:
        rows = [(a, b, int(c), d, float(e)) for a, b, c, d, e in list(csv.reader(f))[1:]]
    return [row for row in rows if _run_key(*row[:3]) in kept], kept


def write_results(study, results, folder):
    """Writes ``<folder>/<dataset>.csv`` (columns ``setting, method, seed, metric, value``,
    one row per value, :func:`result_rows`) and ``<folder>/<dataset>.json`` (the study's
    settings, the definitions of its settings and methods, each run's configuration
    digest, machine (:func:`tf_asgan.utils.machine.description` when its result was
    written: trained, or re-measured) and code (:func:`code_version` then), the
    measurement protocol and today's :func:`code_version`), each atomically.

    Rows of runs an earlier write recorded and ``results`` does not hold (a study run in
    parts) are kept while their configuration digest and measurement protocol still equal
    today's; the others are dropped with a warning. Returns the CSV paths.
    """
    os.makedirs(folder, exist_ok=True)
    paths = []
    for dataset in sorted({r["dataset"] for r in results}):
        csv_path = os.path.join(folder, f"{dataset}.csv")
        json_path = os.path.join(folder, f"{dataset}.json")
        rows, runs = _previous(study, dataset, csv_path, json_path)
        for r in (r for r in results if r["dataset"] == dataset):
            key = _run_key(r["setting"], r["method"], r["seed"])
            rows = [row for row in rows if _run_key(*row[:3]) != key] + result_rows(r)
            runs[key] = {"setting": r["setting"], "method": r["method"], "seed": r["seed"],
                         "config_sha256": config_digest(r["config"]), "step": r["step"],
                         "train_seconds": r.get("train_seconds"),
                         "machine": r.get("machine"), "code": r.get("code")}
        buffer = text_io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        writer.writerows((a, b, c, d, repr(e)) for a, b, c, d, e in sorted(rows))
        meta = {"dataset": dataset, "study": {k: v for k, v in dataclasses.asdict(study).items()
                                              if k not in ("datasets", "settings", "methods")},
                "settings": {k: SETTINGS[k]
                             for k in sorted({r["setting"] for r in runs.values()})},
                "methods": {m: method_changes(m)
                            for m in sorted({r["method"] for r in runs.values()})},
                "measure": study.measure(), "runs": dict(sorted(runs.items())),
                "code": code_version(), "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        io.atomic_write_text(csv_path, buffer.getvalue())
        io.atomic_write_json(json_path, meta, indent=2, sort_keys=True)
        paths.append(csv_path)
    return paths


def read_csv(path, table=None):
    """``{(setting, method, metric): {seed: value}}`` of a study CSV; with ``table``, its
    values are added to that dict (a study run in parts, each part in its own folder).

    Raises:
      tf_asgan.errors.InputError: the header is not exactly :data:`CSV_COLUMNS`, a value
        is no number, or a (setting, method, metric, seed) appears twice (in the file, or
        in ``table`` and the file).
      FileNotFoundError: no file at ``path``.
    """
    table = {} if table is None else table
    for line, (setting, method, seed, metric, value) in csv_rows(path, CSV_COLUMNS):
        try:
            seed, value = int(seed), float(value)
        except ValueError:
            raise errors.InputError(f"{path}:{line}: seed {seed!r} or value {value!r} is "
                                    "no number.") from None
        cell = table.setdefault((setting, method, metric), {})
        if seed in cell:
            raise errors.InputError(f"{path}:{line}: {setting}/{method} seed {seed} has "
                                    f"{metric} twice (in this file or an earlier one).")
        cell[seed] = value
    return table


def csv_rows(path, columns):
    """``(line number, row)`` of each data row of the CSV file ``path``, whose header must
    be exactly ``columns`` (a tuple of names); rows of another length are refused.

    Raises:
      tf_asgan.errors.InputError: another header, or a row with another number of cells.
      FileNotFoundError: no file at ``path``.
    """
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = tuple(next(reader, ()))
        if header != tuple(columns):
            raise errors.InputError(f"{path}: the header must be {','.join(columns)}; "
                                    f"got {','.join(header)}.")
        for line, row in enumerate(reader, 2):
            if len(row) != len(columns):
                raise errors.InputError(f"{path}:{line}: {len(row)} cells; the header has "
                                        f"{len(columns)}.")
            yield line, row


# The study settings that may differ between the parts of one study (the seeds run).
PART_FIELDS = ("seeds", "digits_seeds")


def read_csvs(paths):
    """:func:`read_csv` of every path into one table (the same errors; a value given by
    two files is refused). Where a ``<dataset>.json`` lies beside a CSV
    (:func:`write_results`), the parts must share the study's settings (all but
    :data:`PART_FIELDS`) and its measurement protocol.

    Raises:
      tf_asgan.errors.InputError: as :func:`read_csv`, or two parts of different studies.
    """
    table, first = {}, None
    for path in paths:
        read_csv(path, table)
        meta_path = os.path.splitext(path)[0] + ".json"
        if not os.path.exists(meta_path):
            continue
        with open(meta_path) as f:
            meta = json.load(f)
        study = {k: v for k, v in meta.get("study", {}).items() if k not in PART_FIELDS}
        key = (study, meta.get("measure"))
        if first is None:
            first = (meta_path, key)
        elif key != first[1]:
            raise errors.InputError(f"{meta_path} and {first[0]} record different study "
                                    "settings or measurements: these CSVs are not parts of "
                                    "one study.")
    return table


def parse_seeds(texts, name="seeds"):
    """The seeds of ``texts`` (``["0-16"]``, ``["0", "2", "5"]`` or both: ``["0-9",
    "12"]``, a command line's comma-separated list) as a sorted list of ints; ``None``
    when empty.

    Raises:
      tf_asgan.errors.InputError: no integer, or a reversed range (``16-0``), naming
        ``name`` (the flag).
    """
    seeds = set()
    for text in texts:
        low, _, high = text.partition("-")
        try:
            low, high = int(low), int(high or low)
        except ValueError:
            low, high = None, None
        if low is None or high < low:  # a reversed range would require no seed at all
            raise errors.InputError(f"{name}={','.join(texts)}: give seeds and ranges "
                                    "low-high of integers >= 0, e.g. 0-16 or 0,1,5-9.")
        seeds.update(range(low, high + 1))
    return sorted(seeds) or None


def seeds_text(seeds):
    """``0-16`` for a run of consecutive seeds, else the list: ``0, 2, 5``."""
    if seeds == list(range(seeds[0], seeds[-1] + 1)):
        return f"{seeds[0]}-{seeds[-1]}"
    return ", ".join(map(str, seeds))


def seeds_required(seeds, seeds_b=None):
    """The words of a test report on the seeds each arm must have (``None``: whatever
    the CSVs hold; ``seeds_b`` ``None``: as ``seeds``): ``"."``, ``"; seeds 0-16 (17)
    required."`` or ``"; seeds required: arm a 0-9 (10), arm b 0-16 (17)."``."""
    seeds_b = seeds if seeds_b is None else seeds_b
    if not seeds and not seeds_b:
        return "."
    if seeds_b == seeds:
        return f"; seeds {seeds_text(seeds)} ({len(seeds)}) required."
    a = f"{seeds_text(seeds)} ({len(seeds)})" if seeds else "whatever the CSVs hold"
    b = f"{seeds_text(seeds_b)} ({len(seeds_b)})" if seeds_b else "whatever the CSVs hold"
    return f"; seeds required: arm a {a}, arm b {b}."


# What a failed run (:data:`FAILED`) counts as in the pre-registered tests
# (docs/results.md): no mode covered, and the largest FID of its setting (over every
# method's runs); any other metric is undefined (NaN).
FAILURE_VALUES = {"modes": "zero", "fid": "worst of the setting"}
FAILURES = ("substitute", "exclude")


def failed_seeds(table, setting, method):
    """The seeds of one arm whose run failed (:data:`FAILED` recorded as 1)."""
    return {k for k, v in table.get((setting, method, FAILED), {}).items() if v == 1.0}


def arm_values(table, setting, method, metric, seeds=None, failures="substitute"):
    """``({seed: value}, number of failed runs)`` of one arm of a :func:`read_csvs` table.

    Args:
      seeds: the seeds the arm must have (each a value or a failed run), e.g.
        ``range(17)``; ``None``: whatever the table holds.
      failures: ``"substitute"``: a failed run takes :data:`FAILURE_VALUES`'s value (NaN
        for other metrics); ``"exclude"``: it is left out (the sensitivity analysis).

    Raises:
      tf_asgan.errors.InputError: a seed of ``seeds`` the arm lacks (the family is not
        complete: the pre-registration tests complete families only), an arm with no
        value of ``metric`` and no failed run, or an unknown ``failures``.
    """
    if failures not in FAILURES:
        raise errors.InputError(f"failures must be one of {FAILURES}, got {failures!r}.")
    values = dict(table.get((setting, method, metric), {}))
    failed = failed_seeds(table, setting, method)
    if seeds is not None:
        missing = sorted(set(seeds) - set(values) - failed)
        if missing:
            raise errors.InputError(f"{setting}/{method} has no {metric} for seeds {missing}: "
                                    "the family is not complete (run them first).")
        values = {k: v for k, v in values.items() if k in set(seeds)}
        failed &= set(seeds)
    if not values and not failed:
        raise errors.InputError(f"No {metric} values of {setting}/{method} in the CSV (run "
                                "that arm first).")
    if failures == "substitute":
        values.update({k: _failure_value(table, setting, metric) for k in failed})
    return dict(sorted(values.items())), len(failed)


def _failure_value(table, setting, metric):
    rule = FAILURE_VALUES.get(metric)
    if rule == "zero":
        return 0.0
    if rule == "worst of the setting":
        values = [v for (s, _, m), seeds in table.items() if s == setting and m == metric
                  for v in seeds.values() if not math.isnan(v)]
        return max(values) if values else math.nan
    return math.nan
