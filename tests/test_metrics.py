import random

import jiwer
import pytest

from auden.decoding.metrics import (
    EPS,
    DecodedUtterance,
    align,
    count_errors,
    is_chinese,
    score_utterances,
)
from auden.decoding.writers import format_errs, format_recogs, format_table


def _utts(task, pairs):
    return [
        DecodedUtterance(f"utt{i}", task, "Transcribe.", r, h) for i, (r, h) in enumerate(pairs)
    ]


def test_wer_of_known_pairs():
    counts = count_errors(align("the cat sat on the mat".split(), "the cat sit on mat".split()))
    assert (counts.subs, counts.dels, counts.ins, counts.ref_len) == (1, 1, 0, 6)
    assert counts.rate == pytest.approx(100 * 2 / 6)
    counts = count_errors(align("a b c".split(), "a x c d".split()))
    assert (counts.subs, counts.dels, counts.ins) == (1, 0, 1)
    assert align("a b c".split(), "a x c d".split()) == [
        ("a", "a"),
        ("b", "x"),
        ("c", "c"),
        (EPS, "d"),
    ]
    assert count_errors(align([], ["x"])).rate == float("inf")
    assert count_errors(align([], [])).rate == 0.0


def test_word_error_counts_agree_with_jiwer_on_random_pairs():
    rng = random.Random(0)
    vocab = "a b c d e f".split()
    for _ in range(200):
        ref = [rng.choice(vocab) for _ in range(rng.randint(1, 12))]
        hyp = [rng.choice(vocab) for _ in range(rng.randint(0, 12))]
        ours = count_errors(align(ref, hyp))
        theirs = jiwer.process_words(" ".join(ref), " ".join(hyp) or "")
        assert ours.errors == theirs.substitutions + theirs.deletions + theirs.insertions


def test_transcribe_scores_normalised_english_wer():
    scores, scored = score_utterances(
        "dev",
        "transcribe",
        _utts(
            "transcribe",
            [
                ("Mr. Smith won't pay twenty-five dollars.", "mister smith will not pay $25"),
                ("The cat sat on the mat.", "the cat sit on mat"),
            ],
        ),
    )
    assert scores.unit == "WER" and scores.exact_match is None
    assert (scores.errors.errors, scores.errors.ref_len) == (2, 12)
    assert scores.as_rows() == [("WER", "16.67")]
    assert scored[0].exact_match and not scored[1].exact_match


def test_chinese_references_are_scored_by_characters():
    assert is_chinese(["今天天气很好"]) and not is_chinese(["hello world"])
    scores, scored = score_utterances(
        "aishell",
        "transcribe",
        _utts(
            "transcribe",
            [
                ("今天天气很好。", "今天天汽很好啊"),
                ("我用 iPhone 打电话", "我用iphone打电话"),
            ],
        ),
    )
    assert scores.unit == "CER"
    assert scored[0].ref_tokens == list("今天天气很好")
    assert (scored[0].counts.subs, scored[0].counts.ins) == (1, 1)
    assert scored[1].counts.errors == 0  # Latin words inside Chinese stay whole, spaces ignored
    assert scores.errors.rate == pytest.approx(100 * 2 / (6 + 6))


def test_answer_is_scored_by_exact_match_only():
    scores, _ = score_utterances(
        "qa",
        "answer",
        _utts(
            "answer",
            [
                ("Paris.", "paris"),
                ("Forty two", "42"),
                ("London", "Paris"),
                ("yes", "yes it is"),
            ],
        ),
    )
    assert scores.errors is None
    assert scores.exact_match == pytest.approx(50.0)
    assert scores.as_rows() == [("exact_match", "50.00")]


@pytest.mark.parametrize("task", ["continue", "describe"])
def test_continue_and_describe_get_wer_and_exact_match(task):
    scores, _ = score_utterances(
        "s",
        task,
        _utts(task, [("a male voice", "a male voice"), ("a happy female voice", "a female voice")]),
    )
    assert scores.as_rows() == [("WER", "14.29"), ("exact_match", "50.00")]


def test_errs_and_recogs_files_show_alignments_and_frequent_errors():
    scores, scored = score_utterances(
        "dev",
        "transcribe",
        _utts(
            "transcribe",
            [
                ("the cat sat", "the hat sat"),
                ("a cat ran", "a hat ran away"),
                ("dogs bark", "dogs"),
            ],
        ),
    )
    errs = format_errs(scores, scored)
    assert errs.startswith(
        "%WER = 50.00\nErrors: 1 insertions, 1 deletions, 2 substitutions, "
        "over 8 reference words (5 correct)"
    )
    assert "utt0:\tthe (cat->hat) sat" in errs
    assert "utt1:\ta (cat->hat) ran (*->away)" in errs
    subs = errs.split("SUBSTITUTIONS: count ref -> hyp\n")[1].splitlines()
    assert subs[0] == "2   cat -> hat"
    assert "DELETIONS: count ref\n1   bark\n" in errs
    assert "INSERTIONS: count hyp\n1   away\n" in errs
    assert "\ncat   0 2 2 0\n" in errs  # never right, two errors, twice in refs, never in hyps
    recogs = format_recogs(scored)
    assert recogs.splitlines()[:3] == [
        "utt0:\tprompt=Transcribe.",
        "utt0:\tref=the cat sat",
        "utt0:\thyp=the hat sat",
    ]
    table = format_table([scores])
    assert table.splitlines()[2].split() == ["dev", "transcribe", "WER", "50.00", "3"]
