"""The configuration checks that need more than one section or a fact known only at run
time (the data's size, the number of replicas, the step a run resumes at), and every
rule of ``--steps_per_execution`` in one place.

With ``steps_per_execution = k`` Keras runs ``k`` train steps per call into the device
and calls the callbacks only between calls, so everything that must happen at a step
(a log line, a checkpoint, an epoch's end, a resume) must fall on a multiple of ``k``:

- :func:`check_intervals`: ``log_every_steps`` and ``checkpoint_every_steps`` (static,
  from :meth:`tf_asgan.config.sections.RunConfig.check`);
- :func:`check_steps_per_execution`: the steps of an epoch (when the data is known);
- :func:`check_resume_position`: the step a run resumes at;
- :func:`check_replicas`: Keras's multi-step loop fails under several replicas.

Each raises :class:`tf_asgan.errors.InputError` saying what to change, before any
training step runs.
"""

from tf_asgan import errors


def check_intervals(run):
    """``run`` (a :class:`~tf_asgan.config.sections.RunConfig`): its step intervals must
    be multiples of its ``steps_per_execution``."""
    k = run.steps_per_execution
    for name in ("checkpoint_every_steps", "log_every_steps"):
        if k >= 1 and getattr(run, name) % k:
            raise errors.InputError(
                f"--{name}={getattr(run, name)} is not a multiple of "
                f"--steps_per_execution={k}: callbacks run only between executions, so "
                f"it could not land on its steps. Choose a multiple of {k}.")


def check_steps_per_execution(run, steps_per_epoch):
    """``run.steps_per_execution`` must divide ``steps_per_epoch`` (``0``: not known yet,
    no check): else the last execution of an epoch would run into the next one."""
    k = run.steps_per_execution
    if steps_per_epoch and k >= 1 and steps_per_epoch % k:
        raise errors.InputError(
            f"--steps_per_execution={k} does not divide the {steps_per_epoch} steps per "
            "epoch: an epoch's last execution would run into the next epoch. Choose a "
            f"divisor, or set --steps_per_epoch to a multiple of {k}.")


def check_resume_position(run, step, steps_per_epoch):
    """Refuses to resume mid-epoch at a step that ``run.steps_per_execution`` does not
    reach (possible after changing it): that epoch's checkpoints and logs would miss
    their steps."""
    k, done = run.steps_per_execution, step % steps_per_epoch
    if done % k:
        raise errors.InputError(
            f"The run resumes at step {step}, {done} steps into its epoch: not a multiple "
            f"of --steps_per_execution={k}. Finish this epoch with the value the run had "
            "(e.g. --steps_per_execution=1 --epochs=<this epoch>), then go on with this one.")


def check_replicas(optim, method, run, replicas):
    """The global batch must split evenly over ``replicas`` and ``method.d_steps``, and
    several steps per execution need one replica."""
    if optim.batch_size % (replicas * method.d_steps):
        raise errors.InputError(
            f"batch_size={optim.batch_size} must be divisible by the {replicas} replicas "
            f"(times d_steps={method.d_steps}); choose a multiple.")
    if replicas > 1 and run.steps_per_execution > 1:
        # docs/dependencies.md: Keras's multi-step loop fails under several replicas.
        raise errors.InputError(
            f"--steps_per_execution={run.steps_per_execution} does not work with "
            f"{replicas} replicas (Keras 3's multi-step loop fails under tf.distribute "
            "with several replicas); use 1, or one device.")
