"""The three SIFT modes: what the text LLM is told, what it reads, and what is stored.

| mode       | the LLM reads                        | the stored user turn      | the target                     |
|------------|--------------------------------------|---------------------------|--------------------------------|
| `sift_s`   | the transcript                       | the audio only            | a warm, brief reply            |
| `sift_ssp` | ``<meta>...</meta><text>...</text>`` | the audio only            | an empathetic, tone-aware reply |
| `sit_ssp`  | ``<meta>...</meta><text>...</text>`` | audio + a describe prompt | "Sounds like ..." one sentence |

The voice-aware modes need at least one normalised metadata field; a cut without any is
dropped from them (reason ``no_metadata``), never given made-up metadata.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from auden.data.prompts import stable_seed
from auden.data.sift.metadata import metadata_block

_REPLY_RULES = (
    "Answer with the reply only: no quotes, no labels, no stage directions, and never "
    "mention tags, metadata or that you were given a transcript."
)

SIFT_S_SYSTEM = (
    "You are a friendly voice assistant. The user message is what someone just said to "
    "you out loud. Reply the way a warm, attentive person would in conversation: one or "
    "two short sentences that respond to what they said; do not repeat their words back. "
    + _REPLY_RULES
)

SIFT_SSP_SYSTEM = (
    "You are a friendly voice assistant who listens to how things are said as well as "
    "what is said. The user message gives the speaker's words between <text> and </text> "
    "and how they sounded between <meta> and </meta> (for example gender, age, emotion, "
    "pace, volume, accent). Reply to the speaker in one or two short sentences that "
    "answer their words and show you noticed their tone or feeling, with empathy; do not "
    "repeat their words back. " + _REPLY_RULES
)

SIT_SSP_SYSTEM = (
    "You describe voices. The user message gives a speaker's words between <text> and "
    "</text> and how they sounded between <meta> and </meta>. Write exactly one sentence "
    "that starts with 'Sounds like' and says, in natural words, the speaker's emotion "
    "and gender where known, quotes what they said, and describes the voice (pace, "
    "volume, age, accent where known). Never mention tags or metadata."
)

# The stored prompts of `sit_ssp`: one is drawn per cut with a seed from the cut id.
DESCRIBE_VOICE_PROMPTS = (
    "Describe the speaker's voice.",
    "How does the speaker sound?",
    "Describe how this was said.",
    "What can you tell about the speaker and how they said it?",
    "Describe the voice and the words in this clip.",
)


@dataclass(frozen=True)
class SiftMode:
    """One way of making an instruct target from a transcript and voice metadata."""

    name: str
    system_prompt: str
    uses_metadata: bool
    assistant_prefix: str = ""  # the reply is forced to start with it
    may_repeat_transcript: bool = False  # descriptions quote the words on purpose

    def llm_input(self, text: str, meta: dict[str, str]) -> str:
        return metadata_block(meta, text) if self.uses_metadata else text

    def instruction(self, cut_id: str, seed: int) -> str:
        """The user turn's text stored beside the audio ("" when the audio is the message)."""
        if self.name != "sit_ssp":
            return ""
        rng = random.Random(stable_seed(seed, self.name, cut_id))
        return rng.choice(DESCRIBE_VOICE_PROMPTS)


MODES: dict[str, SiftMode] = {
    m.name: m
    for m in (
        SiftMode("sift_s", SIFT_S_SYSTEM, uses_metadata=False),
        SiftMode("sift_ssp", SIFT_SSP_SYSTEM, uses_metadata=True),
        SiftMode(
            "sit_ssp",
            SIT_SSP_SYSTEM,
            uses_metadata=True,
            assistant_prefix="Sounds like",
            may_repeat_transcript=True,
        ),
    )
}


def get_mode(name: str) -> SiftMode:
    try:
        return MODES[name]
    except KeyError:
        raise ValueError(f"unknown SIFT mode '{name}'; known modes: {list(MODES)}") from None
