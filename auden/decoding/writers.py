"""The files an evaluation leaves under ``exp_dir/<decoding_method>/``, icefall style.

- ``recogs-<test>-<suffix>.txt``: per utterance its prompt, reference and hypothesis;
- ``errs-<test>-<suffix>.txt``: totals, per-utterance alignments, the most frequent
  substitutions, deletions and insertions, and per-word statistics;
- ``wer-summary-<test>-<suffix>.txt``: the test set's scores in one table row.

All are written to a temporary name and renamed.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from auden.atomic import atomic_file
from auden.decoding.metrics import EPS, ErrorCounts, ScoredUtterance, TaskScores


def write_text_atomically(path: Path, text: str) -> None:
    with atomic_file(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def _one_line(text: str) -> str:
    return text.replace("\r", " ").replace("\n", " ").replace("\t", " ")


def format_recogs(scored: list[ScoredUtterance]) -> str:
    lines = []
    for s in sorted(scored, key=lambda s: s.utt.cut_id):
        u = s.utt
        lines.append(f"{u.cut_id}:\tprompt={_one_line(u.prompt)}")
        lines.append(f"{u.cut_id}:\tref={_one_line(u.ref)}")
        lines.append(f"{u.cut_id}:\thyp={_one_line(u.hyp)}")
    return "\n".join(lines) + "\n"


def format_errs(scores: TaskScores, scored: list[ScoredUtterance], *, top: int = 100) -> str:
    """icefall's errs file: totals, PER-UTT DETAILS, SUBSTITUTIONS, DELETIONS, INSERTIONS,
    PER-WORD STATS."""
    total = ErrorCounts()
    subs: Counter = Counter()
    dels: Counter = Counter()
    ins: Counter = Counter()
    # word -> [correct, ref errors (sub/del), hyp errors (sub/ins)]
    words: dict[str, list[int]] = {}
    details = []
    for s in sorted(scored, key=lambda s: s.utt.cut_id):
        total = total + s.counts
        parts = []
        for r, h in s.alignment:
            if r == h:
                parts.append(r)
                words.setdefault(r, [0, 0, 0])[0] += 1
                continue
            parts.append(f"({r}->{h})")
            if r == EPS:
                ins[h] += 1
            elif h == EPS:
                dels[r] += 1
            else:
                subs[(r, h)] += 1
            if r != EPS:
                words.setdefault(r, [0, 0, 0])[1] += 1
            if h != EPS:
                words.setdefault(h, [0, 0, 0])[2] += 1
        details.append(f"{s.utt.cut_id}:\t{' '.join(parts)}")

    unit = scores.unit
    token = "characters" if unit == "CER" else "words"
    correct = total.ref_len - total.subs - total.dels
    out = [f"%{unit} = {total.rate:.2f}"]
    out.append(
        f"Errors: {total.ins} insertions, {total.dels} deletions, {total.subs} substitutions, "
        f"over {total.ref_len} reference {token} ({correct} correct)"
    )
    if scores.exact_match is not None:
        matches = sum(s.exact_match for s in scored)
        out.append(f"Exact match: {scores.exact_match:.2f}% ({matches}/{len(scored)} utterances)")
    out.append(
        "Search below for sections starting with PER-UTT DETAILS:, SUBSTITUTIONS:, "
        "DELETIONS:, INSERTIONS:, PER-WORD STATS:"
    )
    out += ["", "PER-UTT DETAILS: corr or (ref->hyp)", *details]
    out += ["", "SUBSTITUTIONS: count ref -> hyp"]
    out += [f"{c}   {r} -> {h}" for (r, h), c in _most_common(subs, top)]
    out += ["", "DELETIONS: count ref"]
    out += [f"{c}   {r}" for r, c in _most_common(dels, top)]
    out += ["", "INSERTIONS: count hyp"]
    out += [f"{c}   {h}" for h, c in _most_common(ins, top)]
    out += ["", "PER-WORD STATS: word  corr tot_errs count_in_ref count_in_hyp"]
    by_errors = sorted(words.items(), key=lambda kv: (-(kv[1][1] + kv[1][2]), kv[0]))
    for w, (corr, ref_err, hyp_err) in by_errors:
        out.append(f"{w}   {corr} {ref_err + hyp_err} {corr + ref_err} {corr + hyp_err}")
    return "\n".join(out) + "\n"


def _most_common(counter: Counter, top: int) -> list:
    # ties broken by the item, so that the file does not depend on decoding order
    return sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))[:top]


def format_summary(scores: TaskScores, setting: str) -> str:
    rows = scores.as_rows()
    header = "\t".join(["settings", *[name for name, _ in rows], "utterances"])
    values = "\t".join([setting, *[value for _, value in rows], str(scores.num_utts)])
    return f"{header}\n{values}\n"


def format_table(all_scores: list[TaskScores]) -> str:
    """A plain-text table of every test set's scores, printed at the end of an evaluation."""
    rows = [("test set", "task", "metric", "value", "utterances")]
    for s in all_scores:
        for name, value in s.as_rows():
            rows.append((s.test_set, s.task, name, value, str(s.num_utts)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def write_results(
    out_dir: Path, test_set: str, suffix: str, scores: TaskScores, scored: list[ScoredUtterance]
) -> dict[str, Path]:
    """Write the recogs, errs and wer-summary files of one test set; returns their paths."""
    paths = {
        "recogs": out_dir / f"recogs-{test_set}-{suffix}.txt",
        "errs": out_dir / f"errs-{test_set}-{suffix}.txt",
        "wer_summary": out_dir / f"wer-summary-{test_set}-{suffix}.txt",
    }
    write_text_atomically(paths["recogs"], format_recogs(scored))
    write_text_atomically(paths["errs"], format_errs(scores, scored))
    write_text_atomically(paths["wer_summary"], format_summary(scores, f"{out_dir.name}-{suffix}"))
    return paths
