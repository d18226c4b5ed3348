"""The mini_en corpus plan (egs/mini_en/local/corpus.py): what the demo learns from."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "egs" / "mini_en" / "local"))
import corpus  # noqa: E402


def test_same_arguments_give_the_same_plan_and_another_seed_another():
    first, again = corpus.plan_corpus(300, seed=1), corpus.plan_corpus(300, seed=1)
    assert [u.to_dict() for u in first["train"]] == [u.to_dict() for u in again["train"]]
    other = corpus.plan_corpus(300, seed=2)
    assert [u.text for u in other["train"]] != [u.text for u in first["train"]]


def test_smallest_corpus_still_has_every_kind_in_every_split():
    plan = corpus.plan_corpus(64)
    for split, utts in plan.items():
        assert set(Counter(u.kind for u in utts)) == set(corpus.KIND_SHARES), split
    with pytest.raises(ValueError, match="--num-utts"):
        corpus.plan_corpus(10)


def test_unseen_voices_are_new_pairings_of_accents_and_variants_heard_in_training():
    seen, unseen = corpus.split_voices()
    assert len(seen) + len(unseen) == len(corpus.all_voices()) and len(unseen) == 24
    assert not {v.name for v in seen} & {v.name for v in unseen}
    assert {v.accent for v in unseen} <= {v.accent for v in seen}
    assert {v.variant for v in unseen} <= {v.variant for v in seen}
    assert Counter(v.gender for v in unseen) == {"male": 12, "female": 12}
    plan = corpus.plan_corpus(2000)
    train_voices = {u.voice for u in plan["train"] if u.voice}
    assert not {u.voice for u in plan["test-unseen"] if u.voice} & train_voices
    assert {u.voice for u in plan["test-seen"] if u.voice} <= train_voices


def test_answers_are_right_and_replies_follow_their_templates():
    words = {w: i for i, w in enumerate(corpus.NUMBERS)}
    for utt in corpus.plan_corpus(2000)["train"]:
        text = utt.text.split()
        if utt.kind == "question" and "plus" in text:
            assert words[utt.answer] == words[text[2]] + words[text[4]]
        elif utt.kind == "question" and "minus" in text:
            assert words[utt.answer] == words[text[2]] - words[text[4]]
        elif utt.kind == "dialogue" and utt.text == "how are you":
            assert utt.reply == "i am fine thank you"
        elif utt.kind == "dialogue" and utt.text.startswith("can the "):
            assert utt.reply == f"yes the {text[2]} can {text[3]}"


def test_descriptions_carry_the_attributes_they_were_made_with():
    for utt in corpus.plan_corpus(500)["train"]:
        attributes = corpus.description_attributes(utt.description)
        if utt.kind == "event":
            assert attributes == {"speed": None, "pitch": None, "gender": None,
                                  "event": utt.event}
        else:
            assert attributes == {"speed": utt.speed, "pitch": utt.pitch,
                                  "gender": utt.gender, "event": None}
            lo, hi = corpus.SPEEDS[utt.speed]
            assert lo <= utt.rate_wpm <= hi


def test_spoken_vocabulary_is_small_and_closed():
    words = {w for utts in corpus.plan_corpus(8000).values() for u in utts for w in u.text.split()}
    assert 40 <= len(words) <= 80


def test_instruct_tests_ask_only_sentences_training_never_asks():
    import instruct

    for kind, (train, held_out) in instruct.PHRASINGS.items():
        assert train and held_out and not set(train) & set(held_out), kind
    plan = corpus.plan_corpus(300)
    asked = {
        split: {instruct.make_instruction(u.to_dict(), split)[0] for u in utts if u.text}
        for split, utts in plan.items()
    }
    assert not asked["train"] & (asked["test-seen"] | asked["test-unseen"])


def test_instruct_answers_come_from_the_plan():
    import instruct

    utt = {"id": "u", "kind": "dialogue", "text": "can the red cat jump", "gender": "female",
           "speed": "fast", "pitch": "low"}
    expected = {"gender": "a woman", "animal": "cat", "colour": "red", "count": "five",
                "first_word": "can", "speed": "fast", "pitch": "low", "question": "yes"}
    assert {k: instruct.response(k, utt) for k in instruct.KINDS} == expected
    assert instruct.make_instruction({"id": "e", "text": ""}, "train") is None  # a sound event
