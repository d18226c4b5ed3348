"""The `instruct` task of mini_en: free questions about a clip, answered from its plan.

Each speech utterance gets one instruction, drawn by a generator seeded with its id, so
the corpus plan (and every other target) is unchanged. A phrasing is one of a kind's core
questions in one of several frames ("Tell me: ...", "... Answer in a few words."); the
test splits ask only (question, frame) sentences that training never uses, so a model
must follow the question, not recall a sentence. Every core question of a kind holds
that kind's key words ("man or a woman", "animal", "how many words"...)::

    >>> make_instruction({"id": "u1", "kind": "phrase", "text": "the red cat can jump",
    ...                   "gender": "female", "speed": "fast", "pitch": "high"}, "train")[1]
    ... # e.g. ("Which animal is mentioned?", "cat")
"""

from __future__ import annotations

import random

from corpus import ANIMALS, COLOURS, NUMBERS

# kind -> the core questions; each holds the kind's key words, which no other kind uses.
QUESTIONS: dict[str, list[str]] = {
    "gender": ["is the speaker a man or a woman?", "was that a man or a woman speaking?",
               "do you hear a man or a woman?"],
    "animal": ["which animal is mentioned?", "what animal do you hear about?",
               "name the animal in the clip."],
    "count": ["how many words did you hear?", "how many words are spoken?",
              "count the words: how many words are there?"],
    "first_word": ["what is the first word?", "which word is spoken first?",
                   "what was the first word in the clip?"],
    "speed": ["is the speech fast or slow?", "does the speaker talk fast or slow?",
              "is the speaker fast or slow?"],
    "question": ["was that a question?", "did the speaker ask a question?",
                 "is the clip a question?"],
    "pitch": ["is the voice high or low?", "does the speaker have a high or low voice?",
              "is the speaker's voice high or low?"],
    "colour": ["which colour is mentioned?", "what colour do you hear about?",
               "name the colour in the clip."],
}
# The frames a question is asked in; "{}" is the question.
FRAMES = ["{}", "Tell me: {}", "Listen to the clip. {}", "Please answer: {}",
          "{} Answer in a few words.", "Here is a question about the clip: {}"]


def phrasing(question: str, frame: str) -> str:
    text = frame.format(question)
    return text[0].upper() + text[1:]


def held_out(q: int, f: int) -> bool:
    """Which (question, frame) pairs only the test splits ask: one in four, so that every
    question and every frame is also heard in training, but never that sentence."""
    return (q + f) % 4 == 0


PHRASINGS: dict[str, tuple[list[str], list[str]]] = {
    kind: (
        [phrasing(q, f) for i, q in enumerate(qs) for j, f in enumerate(FRAMES)
         if not held_out(i, j)],
        [phrasing(q, f) for i, q in enumerate(qs) for j, f in enumerate(FRAMES)
         if held_out(i, j)],
    )
    for kind, qs in QUESTIONS.items()
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
