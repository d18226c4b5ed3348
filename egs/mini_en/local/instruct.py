"""The `instruct` task of mini_en: free questions about a clip, answered from its plan.

Each speech utterance gets one instruction, drawn by a generator seeded with its id, so
the corpus plan (and every other target) is unchanged. Every kind of question has several
phrasings; the test sets ask with phrasings never used in training (held out), so a model
must follow the question, not memorise its wording. A phrasing of one kind always holds
that kind's key words ("man or a woman", "animal", "how many words"...)::

    >>> make_instruction({"id": "u1", "kind": "phrase", "text": "the red cat can jump",
    ...                   "gender": "female", "speed": "fast", "pitch": "high"}, "train")[1]
    ... # e.g. ("Which animal is mentioned?", "cat")
"""

from __future__ import annotations

import random

from corpus import ANIMALS, COLOURS, NUMBERS

# kind -> (training phrasings, held-out phrasings used by the test splits)
PHRASINGS: dict[str, tuple[list[str], list[str]]] = {
    "gender": (
        ["Is the speaker a man or a woman?", "Was that a man or a woman speaking?",
         "Tell me whether a man or a woman is speaking."],
        ["Do you hear a man or a woman?"],
    ),
    "animal": (
        ["Which animal is mentioned?", "What animal do you hear about?",
         "Name the animal in the clip."],
        ["Which animal does the speaker mention?"],
    ),
    "count": (
        ["How many words did you hear?", "How many words are spoken?",
         "Count the words: how many words are there?"],
        ["Tell me how many words the speaker says."],
    ),
    "first_word": (
        ["What is the first word?", "Which word is spoken first?",
         "Tell me the first word you hear."],
        ["What was the first word in the clip?"],
    ),
    "speed": (
        ["Is the speech fast or slow?", "Does the speaker talk fast or slow?",
         "Tell me whether the speech is fast or slow."],
        ["Is the speaker fast or slow?"],
    ),
    "question": (
        ["Was that a question?", "Did the speaker ask a question?",
         "Tell me whether the speaker asks a question."],
        ["Is the clip a question?"],
    ),
    "pitch": (
        ["Is the voice high or low?", "Does the speaker have a high or low voice?",
         "Tell me whether the voice is high or low."],
        ["Is the speaker's voice high or low?"],
    ),
    "colour": (
        ["Which colour is mentioned?", "What colour do you hear about?",
         "Name the colour in the clip."],
        ["Which colour does the speaker mention?"],
    ),
}
KINDS = sorted(PHRASINGS)
# Every question in the corpus (questions and dialogue turns alike) starts with one of these.
QUESTION_WORDS = ("what", "how", "where", "can", "do")
TEST_SPLITS = ("test-seen", "test-unseen")


def response(kind: str, utt: dict) -> str:
    """The answer to a question of ``kind`` about utterance ``utt`` (a plan entry)."""
    words = utt["text"].split()
    if kind == "gender":
        return {"male": "a man", "female": "a woman"}[utt["gender"]]
    if kind == "animal":
        return next((w for w in words if w in ANIMALS), "no animal")
    if kind == "colour":
        return next((w for w in words if w in COLOURS), "no colour")
    if kind == "count":
        return NUMBERS[len(words)] if len(words) < len(NUMBERS) else str(len(words))
    if kind == "first_word":
        return words[0]
    if kind == "speed":
        return utt["speed"]
    if kind == "pitch":
        return utt["pitch"]
    if kind == "question":
        return "yes" if words[0] in QUESTION_WORDS else "no"
    raise ValueError(f"unknown instruction kind '{kind}'")


def make_instruction(utt: dict, split: str, seed: int = 0) -> tuple[str, str] | None:
    """(instruction, response) for a speech utterance; None for a sound event."""
    if not utt.get("text"):
        return None
    rng = random.Random(f"{seed}:{utt['id']}:instruct")
    kind = rng.choice(KINDS)
    train, held_out = PHRASINGS[kind]
    phrasings = held_out if split in TEST_SPLITS else train
    return rng.choice(phrasings), response(kind, utt)
