"""A run directory (``--workdir``): what it holds and the policies on it.

``<workdir>/`` holds ``config.json`` and ``flags.txt`` (the resolved configuration;
``train.py --flagfile=<workdir>/flags.txt`` repeats the run), ``checkpoints/`` (both
networks, both optimizers, the step count and any EMA of G), ``tensorboard/``, ``history.csv``,
``samples/epoch_XXXX.png``, with evaluation ``metrics.jsonl``, ``best.json`` and
``best/``, and, at the end, ``generator/`` (the exported SavedModel).

:class:`RunDir` decides where a run writes (:meth:`RunDir.resolve`: resume, a new
folder beside, or overwrite), keeps an earlier export when a run is extended and refuses
an export path that holds something else. :func:`restore_model` and
:func:`restore_generator` read a finished or running run back (``evaluate.py``,
``export.py``, ``analyze.py``).
"""

import glob
import logging
import os
import shutil

import tensorflow as tf

from tf_asgan import ema, errors, export, layout, networks
from tf_asgan.config import train_config
from tf_asgan.training import builder, checkpoints
from tf_asgan.utils import distribute

log = logging.getLogger(__name__)
# What to do with a workdir that already holds a run (train.py --existing_run).
EXISTING_RUN = ("resume", "overwrite", "new")


class ConfigMismatchError(errors.TfAsganError, ValueError):
    """The workdir holds a run with a different configuration."""


class ExportConflictError(errors.TfAsganError, FileExistsError):
    """The workdir's export path holds something that is not this run's export."""


class ExportUnreadableError(errors.TfAsganError, OSError):
    """An export's metadata exists but cannot be read (permissions, I/O): neither a
    conflict nor this run's export."""


def _mismatch(config, path):
    """The differences between ``config`` and the run stored in ``path`` (``{}`` when
    there is none or it is the same experiment)."""
    stored = train_config.load(path)
    if stored is None:
        return {}
    diff = _with_recorded_decay(config, stored).differences(stored)
    if "precision" in diff and config.run.precision in ("auto", run_precision(path, stored)):
        del diff["precision"]  # the precision the run trains in, by another name
    return diff


def _with_recorded_decay(config, stored):
    """``config`` with ``lr_decay_steps=0`` (a linear schedule's "the run's total") read
    as the value ``stored`` (the run's recorded configuration, or ``None``) resolved when
    it started; as it is otherwise."""
    if (stored is not None and config.optim.lr_schedule == "linear"
            and not config.optim.lr_decay_steps and stored.optim.lr_decay_steps):
        return config.replace(lr_decay_steps=stored.optim.lr_decay_steps)
    return config


def run_precision(workdir, stored=None):
    """The precision (a Keras dtype policy name) the run in ``workdir`` trains in, or
    ``None`` when there is no run or, for ``--precision=auto``, no checkpoint yet.

    An explicit ``--precision`` is the recorded one. For ``auto`` it is the precision
    its checkpoints were written in (:func:`~tf_asgan.training.checkpoints.loss_scaled`:
    ``mixed_float16``, else ``float32``, the two values auto resolves to), not what auto
    resolves to on this machine: a run extended where auto means something else keeps
    its precision, and its checkpoints stay readable (ours; the variables of a
    ``mixed_float16`` run's optimizers differ from a ``float32`` run's). ``stored``: the
    run's configuration when already read.
    """
    stored = stored or train_config.load(workdir)
    if stored is None:
        return None
    if stored.run.precision != "auto":
        return stored.run.precision
    scaled = checkpoints.loss_scaled(layout.entry(workdir, layout.CHECKPOINTS))
    return None if scaled is None else ("mixed_float16" if scaled else "float32")


def remove_run(path, reason="--existing_run=overwrite"):
    """Deletes the run entries of ``path`` (:data:`tf_asgan.layout.RUN_ENTRIES`
    and kept exports), logging ``reason``. ``config.json`` goes last: a kill part-way leaves a
    run that is still refused, never old checkpoints under a new configuration."""
    entries = [layout.entry(path, e) for e in layout.RUN_ENTRIES if e != layout.CONFIG]
    entries += glob.glob(os.path.join(glob.escape(path),
                                      layout.EXPORT + layout.KEPT_EXPORT_SUFFIX + "*"))
    entries.append(layout.entry(path, layout.CONFIG))
    removed = [e for e in entries if os.path.lexists(e)]
    for entry in removed:
        if os.path.isdir(entry) and not os.path.islink(entry):
            shutil.rmtree(entry)
        else:
            os.remove(entry)
    log.warning("%s: deleted the previous run in %s (%s).", reason, path,
                ", ".join(os.path.basename(e) for e in removed))


def resolve_workdir(config, workdir, existing_run="resume", chief=True):
    """The workdir a run of ``config`` writes to, given what ``workdir`` holds.

    A workdir holding no run, or a run of the same experiment (only mutable fields
    differ, see :meth:`tf_asgan.config.train_config.TrainConfig.differences`), is used as it is.
    ``existing_run`` decides what happens when it holds a different experiment:
    ``resume`` refuses with the list of differences; ``new`` uses the first of
    ``<workdir>_2``, ``<workdir>_3``, ... that is free or holds this same experiment;
    ``overwrite`` deletes the other run's own entries (:data:`tf_asgan.layout.RUN_ENTRIES`;
    other files stay; done by the chief only). Running the same command again resumes the run.

    Raises:
      ValueError: an unknown ``existing_run``.
      ConfigMismatchError: ``resume`` and a different experiment in ``workdir``.
    """
    if existing_run not in EXISTING_RUN:
        raise errors.InputError(f"Unknown existing_run {existing_run!r}; choose one of "
                                f"{list(EXISTING_RUN)}.")
    diff = _mismatch(config, workdir)
    if not diff:
        return workdir
    if existing_run == "resume":
        listed = ", ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in sorted(diff.items()))
        raise ConfigMismatchError(
            f"{workdir} holds a run with a different configuration ({listed}). Use a new "
            "--workdir, start a new run beside it (--existing_run=new), replace it "
            "(--existing_run=overwrite), or continue the stored run: give only the flags "
            "that may change (train.py keeps the run's values of the others) or --flagfile="
            f"{os.path.join(workdir, 'flags.txt')}.")
    if existing_run == "new":
        n = 2
        while _mismatch(config, f"{workdir}_{n}"):
            n += 1
        log.info("%s holds a different experiment; this run goes to %s_%d.", workdir,
                 workdir, n)
        return f"{workdir}_{n}"
    if chief:
        remove_run(workdir)
    return workdir


def export_step(path):
    """The step recorded with an export (``None`` if it records none), or ``False``
    when ``path`` is not a tf_asgan export (no metadata file, or not JSON).

    Raises:
      ExportUnreadableError: the metadata file exists but reading it failed otherwise.
    """
    try:
        return export.read_metadata(path).get("step")
    except (FileNotFoundError, NotADirectoryError, ValueError, AttributeError):
        return False
    except OSError as err:
        raise ExportUnreadableError(
            f"Cannot read {os.path.join(path, layout.EXPORT_ASSETS, layout.EXPORT_METADATA)} "
            f"({err.strerror or err}); fix its permissions or move {path} away, or pass "
            "--noexport.") from err


def _folder_from_here(path):
    """``path`` made absolute when it names a folder from the current directory (a relative
    ``--image_dir`` is relative to where train.py ran); as given otherwise."""
    return os.path.abspath(path) if path and os.path.isdir(path) else path


def export_metadata(config, step):
    """What an export records about its run (``assets.extra/tf_asgan.json``), including
    where its real data is (``data_dir``, ``image_dir``: evaluate.py's defaults)."""
    return {"step": step, "architecture": config.model.architecture,
            "data_dir": _folder_from_here(config.data.data_dir),
            "image_dir": _folder_from_here(config.data.image_dir),
            "resolution": config.model.resolution, "dataset": config.data.dataset,
            "adversarial": config.method.adversarial, "perturbation": config.method.perturbation,
            "epsilon": config.method.epsilon, "epsilon_unit": config.method.epsilon_unit,
            "loss": config.method.loss, "seed": config.optim.seed, "dat": config.siblings.dat,
            "advas_lambda": config.siblings.advas_lambda,
            "advas_weight": config.siblings.advas_weight,
            "advas_estimate": config.siblings.advas_estimate,
            "generator": ema.EMA if config.optim.ema_decay else ema.RAW}


class RunDir:
    """Where a run reads and writes.

    Attributes:
      path: the run's workdir (its checkpoints are read from here by every worker).
      write_path: where this process writes: ``path`` for the chief, a scratch folder
        ``<path>/.workers/<type>_<id>`` (deleted by :meth:`finish`) for other workers.
      chief: whether this process writes the run's files.
    """

    def __init__(self, path, chief=True, task=("worker", 0)):
        self.path = path
        self.chief = chief
        self.write_path = path if chief else os.path.join(path, layout.WORKERS,
                                                          f"{task[0]}_{task[1]}")
        os.makedirs(self.write_path, exist_ok=True)

    @classmethod
    def resolve(cls, config, workdir, existing_run="resume", *, chief=True,
                task=("worker", 0), multi_worker=False):
        """The :class:`RunDir` of ``config`` for ``workdir`` (see :func:`resolve_workdir`).

        Raises:
          ValueError: ``overwrite`` with several workers (they would race the deletion).
        """
        if multi_worker and existing_run == "overwrite":
            raise errors.InputError("--existing_run=overwrite is refused with several workers "
                                    "(they would race the deletion); delete the old run first, or "
                                    "use --existing_run=new or another --workdir.")
        return cls(resolve_workdir(config, workdir, existing_run, chief), chief, task)

    def writes(self, name):
        """The path of entry ``name`` (e.g. ``"tensorboard"``) this process writes."""
        return os.path.join(self.write_path, name)

    @property
    def checkpoints(self):
        """The run's checkpoint folder (the chief's: every worker restores from it)."""
        return layout.entry(self.path, layout.CHECKPOINTS)

    @property
    def export_path(self):
        return self.writes(layout.EXPORT)

    def precision(self, config):
        """``(config, precision)``: the configuration to record and the Keras dtype
        policy this call trains in.

        On a run that has a precision (:func:`run_precision`) the policy is that one, and
        a ``--precision`` that names it otherwise (``auto`` for a run of an explicit
        one, or what ``auto`` meant when the run started) is replaced by the recorded
        value, so the record stays as it was. Elsewhere ``config``'s own precision,
        resolved for this machine (:func:`tf_asgan.utils.distribute.resolve_precision`).
        """
        stored = train_config.load(self.path)
        recorded = run_precision(self.path, stored)
        here = distribute.resolve_precision(config.run.precision)
        if recorded is None:
            return config, here
        if recorded != here:
            log.info("This run trains in %s, the precision it started in (--precision=%s "
                     "would mean %s here).", recorded, config.run.precision, here)
        if stored.run.precision != config.run.precision:
            config = config.replace(precision=stored.run.precision)
        return config, recorded

    def lr_decay(self, config, total_steps):
        """``config`` with a linear schedule's ``lr_decay_steps=0`` resolved: the value
        the run recorded when it started, or, for a run that starts now, ``total_steps``
        (its ``epochs * steps_per_epoch``). Recorded with the run (:meth:`save_config`),
        so extending it with a larger ``--epochs`` keeps its schedule (ours: as
        Mimicry's ``num_steps`` and WGAN-GP's ``ITERS``, a fixed number). Warns when the
        run trains past that step: its updates from there on have learning rate 0."""
        if config.optim.lr_schedule != "linear":
            return config
        config = _with_recorded_decay(config, train_config.load(self.path))
        if not config.optim.lr_decay_steps:
            config = config.replace(lr_decay_steps=int(total_steps))
        log.info("Learning rates decay linearly from lr_d=%g, lr_g=%g to 0 over %d steps.",
                 config.optim.lr_d, config.optim.lr_g, config.optim.lr_decay_steps)
        if total_steps > config.optim.lr_decay_steps:
            log.warning("The linear learning-rate decay of this run reaches 0 after %d steps "
                        "(--lr_decay_steps, recorded when it started); its steps %d to %d "
                        "(counted from 1) train with learning rate 0.",
                        config.optim.lr_decay_steps, config.optim.lr_decay_steps + 1,
                        total_steps)
        return config

    def save_config(self, config, trains=True):
        """Writes ``config.json`` and ``flags.txt`` (the chief only), when the run has none
        yet or this call ``trains`` (a rerun that trains no step, e.g. a finished run
        given a smaller ``--epochs``, changes no record)."""
        if self.chief and (trains or train_config.load(self.path) is None):
            train_config.save(config, self.path)

    def check_export_path(self):
        """Refuses, before training, an export path holding something other than an
        export of a tf_asgan run (it would be replaced at the end).

        Raises:
          ExportConflictError: naming the path and the way out.
        """
        path = self.export_path
        if self.chief and os.path.lexists(path) and export_step(path) is False:
            raise ExportConflictError(
                f"{path} exists but is not a tf_asgan export (no readable "
                f"{layout.EXPORT_ASSETS}/{layout.EXPORT_METADATA}); move it away, "
                "or pass --noexport.")

    def export(self, generator, config, step):
        """Exports ``generator`` at ``step`` (an export of an earlier step, from before
        the run was extended, is kept as ``generator_step<N>``); returns the path."""
        path = self.export_path
        old_step = export_step(path)  # False: no export there
        if old_step is not False:
            if old_step == step:
                log.info("Export %s is already at step %d.", path, step)
                return path
            kept, n = f"{path}{layout.KEPT_EXPORT_SUFFIX}{old_step}", 2
            while os.path.lexists(kept):
                kept, n = f"{path}{layout.KEPT_EXPORT_SUFFIX}{old_step}_{n}", n + 1
            os.rename(path, kept)
            log.info("The export of step %d is kept as %s.", old_step, kept)
        export.export_generator(generator, path, latent_dim=config.model.latent_dim,
                                metadata=export_metadata(config, step))
        if self.chief:
            log.info("Exported the generator to %s", path)
        return path

    def finish(self):
        """Deletes a non-chief worker's scratch folder."""
        if not self.chief:
            shutil.rmtree(self.write_path, ignore_errors=True)


def _stored_config(workdir):
    config = train_config.load(workdir)
    if config is None:
        raise errors.MissingError(f"{workdir} holds no config.json: not a training workdir.")
    return config


def _restore(ckpt, workdir, checkpoint=None, partial=False):
    """Restores ``ckpt`` from ``checkpoint`` or the workdir's newest readable one (a
    corrupt one is reported and skipped, not moved); returns the prefix."""
    if checkpoint:
        path = checkpoints.restore_one(ckpt, checkpoint, partial=partial)
    else:
        path = checkpoints.restore_latest(ckpt, layout.entry(workdir, layout.CHECKPOINTS),
                                          writer=False, partial=partial)
    if path is None:
        raise errors.MissingError(f"{workdir}/checkpoints holds no checkpoint yet.")
    return path


def restore_model(workdir, checkpoint=None):
    """``(gan, config, checkpoint path)``: the whole run of ``workdir`` (both networks
    and optimizers) at its newest readable (or the given) checkpoint, built in the
    precision the run trains in (:func:`run_precision`).

    Raises:
      FileNotFoundError: no ``config.json`` or no checkpoint.
    """
    config = _stored_config(workdir)
    precision = run_precision(workdir, config) or distribute.resolve_precision(
        config.run.precision)
    with distribute.precision_policy(precision):  # the optimizers' variables depend on it
        gan = builder.model_of(config, jit_compile=False)
    return gan, config, _restore(builder.checkpoint_for(gan), workdir, checkpoint)


def restore_generator(workdir, checkpoint=None):
    """``(generator, config, checkpoint path)`` of the run in ``workdir`` at its latest
    (or the given) checkpoint; only the generator is built and read: the EMA of G's
    weights when the run keeps one (``--ema_decay``), else G."""
    config = _stored_config(workdir)
    g = networks.build_generator(config.model.architecture, config.model.resolution,
                                 latent_dim=config.model.latent_dim, batch_norm=config.model.bn_g,
                                 width=config.model.width, channels=config.model.channels)
    name = layout.EMA_GENERATOR if config.optim.ema_decay else layout.RUN_OBJECTS[0]
    path = _restore(tf.train.Checkpoint(**{name: g}), workdir, checkpoint, partial=True)
    return g, config, path
