"""A training source as the batched, resumable stream ``fit`` consumes.

:func:`training_stream` shuffles each epoch with its own seed (derived from the run's
seed and the epoch), so the batches of step ``k`` are the same whether a run went
straight through or was resumed at ``k``; :func:`epoch_steps` is the number of steps of
one epoch (the data's size over the batch, or the ``steps_per_epoch`` asked for).
Sources that can list their examples (``Source.read_index``) are shuffled by a full
permutation; the others through a shuffle buffer.
"""

from typing import Optional

import tensorflow as tf

from tf_asgan import errors
from tf_asgan.data.base import Source


def epoch_steps(src: Source, batch_size, steps_per_epoch: Optional[int] = None):
    """Training steps in one epoch: ``steps_per_epoch``, or one pass over ``src``."""
    natural = src.num_examples // batch_size
    steps = steps_per_epoch or natural
    if steps < 1:
        raise errors.InputError(f"{src.description} has {src.num_examples} images, fewer than one "
                                f"batch of {batch_size}; lower the batch size.")
    if natural and steps > natural:
        raise errors.InputError(f"steps_per_epoch={steps} but {src.description} holds only "
                                f"{natural} batches of {batch_size}; leave it unset or lower it.")
    return steps


def _concatenate(parts):
    """``parts[0].concatenate(parts[1])...`` as a balanced tree (logarithmic nesting)."""
    if len(parts) == 1:
        return parts[0]
    half = len(parts) // 2
    return _concatenate(parts[:half]).concatenate(_concatenate(parts[half:]))


def _epoch_seed(seed, epoch):
    return seed * 1_000_003 + epoch


def _buffered_stream(src, batch_size, epochs, seed, steps_per_epoch, skip, cache, buffer):
    """Batches of sources that cannot be listed: each epoch a seeded buffer shuffle of
    the (cached) images."""
    natural = src.num_examples // batch_size
    images = src.images.cache() if cache else src.images
    buffer = max(1, min(buffer, src.num_examples or buffer))

    def epoch(e):
        # ``e`` is a Python int: Dataset.shuffle cannot take a symbolic seed.
        shuffled = images.shuffle(buffer, seed=_epoch_seed(seed, e),
                                  reshuffle_each_iteration=False)
        batches = shuffled.batch(batch_size, drop_remainder=True)
        # A shortened epoch stops reading early; a full one reads to the end, which
        # is what completes the in-memory cache after the first epoch.
        return batches if steps_per_epoch == natural else batches.take(steps_per_epoch)

    return _concatenate([epoch(e) for e in epochs]).skip(skip)


def _listed_stream(src, batch_size, epochs, seed, steps_per_epoch, skip):
    """Batches of a listed source (a folder): each epoch the first
    ``steps_per_epoch * batch_size`` indices of a fresh full permutation; the images
    are read (one map over the whole stream) as they are needed."""
    per_epoch = steps_per_epoch * batch_size
    indices = _concatenate([src.permutation(_epoch_seed(seed, e)).take(per_epoch)
                            for e in epochs]).skip(skip * batch_size)
    images = indices.map(src.read_index, num_parallel_calls=tf.data.AUTOTUNE)
    return images.batch(batch_size, drop_remainder=True)


def training_stream(src: Source, batch_size, *, epochs, seed=0, start_step=0,
                    steps_per_epoch: Optional[int] = None, cache=True,
                    shuffle_buffer=10_000):
    """The shuffled batches of a run's epochs, resumable at any step.

    Epoch ``e`` is shuffled with its own seed (``seed * 1_000_003 + e``; TensorFlow also
    folds in the global seed, so build the stream after ``tf.random.set_seed``), so the
    stream is deterministic and a run resumed at step ``s`` sees exactly the batches an
    uninterrupted run would: it starts at epoch ``s // steps_per_epoch``, skipping the
    batches of that epoch already trained on. Incomplete final batches are dropped.

    Args:
      src: the images.
      batch_size: global batch size.
      epochs: the stream ends after this many epochs (counted from step 0).
      seed: shuffle seed.
      start_step: training steps already done.
      steps_per_epoch: batches per epoch (default ``num_examples // batch_size``).
      cache: keep decoded images in memory (the embedded and 32 px datasets fit); not for
        a folder, which is read in a full permutation each epoch.
      shuffle_buffer: shuffle buffer size (``num_examples`` when smaller) of sources
        that cannot list their examples (TFDS, the embedded data).

    Returns:
      ``(dataset, steps_per_epoch)``.
    """
    steps_per_epoch = epoch_steps(src, batch_size, steps_per_epoch)
    first_epoch, skip = divmod(int(start_step), steps_per_epoch)
    if first_epoch >= epochs:
        raise errors.InputError(f"start_step={start_step} is past the end of {epochs} epochs of "
                                f"{steps_per_epoch} steps.")
    if src.read_index is not None:
        stream = _listed_stream(src, batch_size, range(first_epoch, epochs), seed,
                                steps_per_epoch, skip)
    else:
        stream = _buffered_stream(src, batch_size, range(first_epoch, epochs), seed,
                                  steps_per_epoch, skip, cache, shuffle_buffer)
    return stream.prefetch(tf.data.AUTOTUNE), steps_per_epoch
