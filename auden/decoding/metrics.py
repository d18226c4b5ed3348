"""Scores of decoded text: WER/CER from kaldialign alignments, and exact-match accuracy.

What a task is scored with:

| task                      | scores                                            |
|---------------------------|---------------------------------------------------|
| transcribe                | WER (CER when the references are Chinese)         |
| answer                    | exact match                                       |
| continue, describe, other | WER (or CER) and exact match                      |

Text is normalised first: English with Whisper's own English normaliser (the packaged
``whisper-normalizer``, so figures compare with published ones); Chinese by dropping
punctuation and spaces, then scored per character.

Example::

    counts = count_errors(align("a b c".split(), "a x c d".split()))
    counts.rate  # 66.67: one substitution and one insertion over three words
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field

import kaldialign
from whisper_normalizer.english import EnglishTextNormalizer

EPS = "*"  # the empty side of an insertion or deletion in an alignment


@dataclass
class DecodedUtterance:
    """One decoded utterance: what was asked and answered, and what should have been."""

    cut_id: str
    task: str
    prompt: str
    ref: str
    hyp: str


@dataclass
class ErrorCounts:
    """Edit-distance counts over a number of reference tokens."""

    ref_len: int = 0
    ins: int = 0
    dels: int = 0
    subs: int = 0

    @property
    def errors(self) -> int:
        return self.ins + self.dels + self.subs

    @property
    def rate(self) -> float:
        """Errors per 100 reference tokens (the WER or CER in percent)."""
        if self.ref_len == 0:
            return 0.0 if self.errors == 0 else float("inf")
        return 100.0 * self.errors / self.ref_len

    def __add__(self, other: ErrorCounts) -> ErrorCounts:
        return ErrorCounts(
            self.ref_len + other.ref_len,
            self.ins + other.ins,
            self.dels + other.dels,
            self.subs + other.subs,
        )


@dataclass
class ScoredUtterance:
    """An utterance with its normalised tokens, alignment and counts."""

    utt: DecodedUtterance
    ref_tokens: list[str]
    hyp_tokens: list[str]
    alignment: list[tuple[str, str]]
    counts: ErrorCounts
    exact_match: bool


@dataclass
class TaskScores:
    """A test set's scores for its task; ``None`` where the task is not scored that way."""

    test_set: str
    task: str
    num_utts: int
    unit: str  # "WER" or "CER"
    errors: ErrorCounts | None = None
    exact_match: float | None = None  # percent of utterances matching exactly
    extra: dict[str, float] = field(default_factory=dict)

    def as_rows(self) -> list[tuple[str, str]]:
        """(metric, value) rows, for the summary files and table."""
        rows = []
        if self.errors is not None:
            rows.append((self.unit, f"{self.errors.rate:.2f}"))
        if self.exact_match is not None:
            rows.append(("exact_match", f"{self.exact_match:.2f}"))
        return rows


LABEL_TASK = "label"  # an utterance label (gender, speed...) predicted by a label head
WORD_ERROR_TASKS = {"transcribe", "continue", "describe", "instruct"}
EXACT_MATCH_TASKS = {"answer", "continue", "describe", "instruct", LABEL_TASK}


def align(ref: list[str], hyp: list[str]) -> list[tuple[str, str]]:
    """The minimum-edit alignment of two token lists; ``EPS`` marks the missing side."""
    return [(r, h) for r, h in kaldialign.align(ref, hyp, EPS)]


def count_errors(alignment: list[tuple[str, str]]) -> ErrorCounts:
    counts = ErrorCounts()
    for r, h in alignment:
        if r == EPS:
            counts.ins += 1
            continue
        counts.ref_len += 1
        if h == EPS:
            counts.dels += 1
        elif r != h:
            counts.subs += 1
    return counts


def is_chinese(texts: list[str]) -> bool:
    """Whether most of the letters in ``texts`` are CJK ideographs (then we score by CER)."""
    cjk = letters = 0
    for text in texts:
        for ch in text:
            if ch.isalpha():
                letters += 1
                cjk += _is_cjk(ch)
    return letters > 0 and cjk / letters > 0.5


_WHISPER_ENGLISH = EnglishTextNormalizer()


def normalize_english(text: str) -> str:
    """Whisper's English normaliser: 'Mr. Smith won't pay $25' -> 'mister smith will not pay $25'."""
    return _WHISPER_ENGLISH(text)


def normalize(text: str, chinese: bool) -> str:
    if not chinese:
        return normalize_english(text)
    # NFKC folds full-width forms; punctuation becomes a space, which tokenize() drops.
    chars = [
        " " if unicodedata.category(ch)[0] in "PSZC" else ch
        for ch in unicodedata.normalize("NFKC", text).lower()
    ]
    return " ".join("".join(chars).split())


def tokenize(text: str, chinese: bool) -> list[str]:
    """Words, or characters for Chinese (Latin words inside Chinese text stay whole)."""
    if not chinese:
        return text.split()
    tokens: list[str] = []
    word = ""
    for ch in text:
        if _is_cjk(ch):
            if word:
                tokens.append(word)
                word = ""
            tokens.append(ch)
        elif ch.isspace():
            if word:
                tokens.append(word)
                word = ""
        else:
            word += ch
    if word:
        tokens.append(word)
    return tokens


def score_utterances(
    test_set: str, task: str, utts: list[DecodedUtterance]
) -> tuple[TaskScores, list[ScoredUtterance]]:
    """Score one test set's utterances the way its task asks (see the module table)."""
    chinese = is_chinese([u.ref for u in utts])
    scored = []
    for u in utts:
        ref_norm, hyp_norm = normalize(u.ref, chinese), normalize(u.hyp, chinese)
        ref_tokens, hyp_tokens = tokenize(ref_norm, chinese), tokenize(hyp_norm, chinese)
        alignment = align(ref_tokens, hyp_tokens)
        scored.append(
            ScoredUtterance(
                utt=u,
                ref_tokens=ref_tokens,
                hyp_tokens=hyp_tokens,
                alignment=alignment,
                counts=count_errors(alignment),
                exact_match=ref_tokens == hyp_tokens,
            )
        )
    scores = TaskScores(
        test_set=test_set, task=task, num_utts=len(utts), unit="CER" if chinese else "WER"
    )
    if task in WORD_ERROR_TASKS or task not in EXACT_MATCH_TASKS:
        total = ErrorCounts()
        for s in scored:
            total = total + s.counts
        scores.errors = total
    if task in EXACT_MATCH_TASKS:
        matches = sum(s.exact_match for s in scored)
        scores.exact_match = 100.0 * matches / len(scored) if scored else 0.0
    return scores, scored


def _is_cjk(ch: str) -> bool:
    o = ord(ch)
    return (
        0x4E00 <= o <= 0x9FFF
        or 0x3400 <= o <= 0x4DBF
        or 0x20000 <= o <= 0x2A6DF
        or 0xF900 <= o <= 0xFAFF
        or 0x3040 <= o <= 0x30FF  # kana, scored per character like ideographs
    )
