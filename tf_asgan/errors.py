"""Readable one-line reasons from TensorFlow's error messages."""

import re

_NOISE = (re.compile(r"\{\{function_node [^}]*\}\}\s*"), re.compile(r"\s*\[Op:\w+\].*$"))


def short_message(err, limit=200):
    """The first line of ``err``'s message without TensorFlow's op and device noise."""
    text = str(getattr(err, "message", None) or err).strip()
    text = (text.splitlines() or [""])[0]
    for pattern in _NOISE:
        text = pattern.sub("", text)
    return text[:limit]
