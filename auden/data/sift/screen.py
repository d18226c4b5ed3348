"""Which LLM outputs become training targets, and why the others are dropped.

A generated target teaches the audio LLM whatever it says, so the obvious failures are
dropped rather than trained on, each counted under its reason:

- ``empty``: nothing but whitespace (or only the forced prefix);
- ``too_long``: the generation hit the token cap before it ended, or has more words than
  allowed (a truncated reply is a broken target);
- ``leaked_tags``: ``<meta>``/``<text>`` tags, or ``key: value`` metadata, copied into the reply;
- ``repeats_transcript``: a reply that only repeats what was said.

The input side adds ``no_text`` (a cut without a transcript) and ``no_metadata`` (a
voice-aware mode and no normalised field).
"""

from __future__ import annotations

import re

DROP_REASONS = (
    "no_text",
    "no_metadata",
    "empty",
    "too_long",
    "leaked_tags",
    "repeats_transcript",
)

_TAG = re.compile(r"</?\s*(meta|text)\s*>", re.IGNORECASE)
_META_PAIR = re.compile(r"\b(gender|emotion|pace|volume|accent|age)\s*:\s*\w", re.IGNORECASE)


def screen(
    response: str,
    *,
    finished: bool,
    transcript: str,
    max_words: int,
    prefix: str = "",
    may_repeat_transcript: bool = False,
) -> str | None:
    """The reason to drop ``response``, or None to keep it."""
    body = response[len(prefix) :] if prefix and response.startswith(prefix) else response
    if not body.strip():
        return "empty"
    if not finished or len(response.split()) > max_words:
        return "too_long"
    if _TAG.search(response) or _META_PAIR.search(response):
        return "leaked_tags"
    if not may_repeat_transcript and _words(response) == _words(transcript):
        return "repeats_transcript"
    return None


def _words(text: str) -> list[str]:
    return re.findall(r"[\w']+", text.lower())
