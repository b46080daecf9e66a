"""Training data: named TFDS datasets, image folders and the embedded digits.

- :mod:`~tf_asgan.data.base`: the :class:`~tf_asgan.data.base.Source` contract every
  source meets (float32 images ``[H, W, C]`` in ``[-1, 1]``, ``C`` = 1 for MNIST and
  Fashion-MNIST, else 3), and ``to_model_range``.
- :mod:`~tf_asgan.data.catalog`: the named datasets and :func:`source`, which picks one.
- :mod:`~tf_asgan.data.stream`: a source as the batched, resumable training stream.
- :mod:`~tf_asgan.data.digits`, :mod:`~tf_asgan.data.folders`: the embedded digits
  (no download) and image folders; :mod:`~tf_asgan.data.decode`: which decoder reads an
  image file (TensorFlow's or Pillow's).
"""

from tf_asgan.data.base import Source
from tf_asgan.data.catalog import DATASETS, source
from tf_asgan.data.stream import training_stream

__all__ = ["DATASETS", "Source", "source", "training_stream"]
