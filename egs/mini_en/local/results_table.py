#!/usr/bin/env python3
"""Print the mini_en results: each task's text ceiling, cascade and end-to-end scores, seen
and unseen voices, with the demo's targets beside them.

Reads what evaluate.py wrote under <exp-dir>/<decoding-method>/: wer-summary-* for WER and
exact match, recogs-* for the describe attributes (voice gender, speed and pitch, or the
sound-event type, all of which must be right for a clip to count). The newest result of
each kind is read: the model itself, ``baseline=cascade`` and ``baseline=text``.

    python local/results_table.py --exp-dir exp/audio_llm
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from corpus import description_attributes  # noqa: E402

SPLITS = ("test-seen", "test-unseen")
# (task, metric) -> (seen target, unseen target, True when higher is better)
TARGETS = {
    ("transcribe", "WER"): (5.0, 8.0, False),
    ("answer", "exact_match"): (95.0, 90.0, True),
    ("continue", "exact_match"): (95.0, 90.0, True),
    ("describe", "attributes"): (90.0, 90.0, True),
    ("instruct", "exact_match"): (85.0, 85.0, True),
}
ROWS = [  # (row label, test-set task suffix, metric)
    ("transcribe", "transcribe", "WER"),
    ("transcribe (joint CTC head)", "transcribe_ctc", "WER"),
    ("answer", "answer", "exact_match"),
    ("continue", "continue", "exact_match"),
    ("describe", "describe", "attributes"),
    ("instruct", "instruct", "exact_match"),
]
KINDS = {"text": "baseline-text", "cascade": "baseline-cascade", "audio LLM": ""}


def read_summary(path: Path) -> dict[str, float]:
    header, row = path.read_text().splitlines()[:2]
    return {k: float(v) for k, v in zip(header.split("\t")[1:], row.split("\t")[1:])}


def read_recogs(path: Path) -> list[tuple[str, str]]:
    """(ref, hyp) pairs of a recogs file."""
    refs, hyps = {}, {}
    for line in path.read_text().splitlines():
        m = re.match(r"^(\S+):\t(ref|hyp)=(.*)$", line)
        if m:
            (refs if m.group(2) == "ref" else hyps)[m.group(1)] = m.group(3)
    return [(refs[k], hyps.get(k, "")) for k in refs]


def attribute_accuracy(pairs: list[tuple[str, str]]) -> float:
    right = sum(description_attributes(r) == description_attributes(h) for r, h in pairs)
    return 100.0 * right / max(1, len(pairs))


def collect(folder: Path) -> dict[tuple[str, str, str], float]:
    """(kind, test set, metric) -> value, from the newest summary of each."""
    scores: dict[tuple[str, str, str], float] = {}
    for summary in sorted(folder.glob("wer-summary-*.txt"), key=lambda p: p.stat().st_mtime):
        name = summary.name[len("wer-summary-") : -len(".txt")]
        test_set, _, suffix = name.partition("-iter-")
        if not suffix:
            test_set, _, suffix = name.partition("-epoch-")
        kind = next((k for k, tag in KINDS.items() if tag and suffix.endswith(tag)), "audio LLM")
        metrics = read_summary(summary)
        if test_set.endswith("_describe"):
            recogs = folder / summary.name.replace("wer-summary-", "recogs-")
            metrics["attributes"] = attribute_accuracy(read_recogs(recogs))
        for metric, value in metrics.items():
            scores[(kind, test_set, metric)] = value
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--exp-dir", required=True, type=Path)
    parser.add_argument("--decoding-method", default="greedy_search")
    args = parser.parse_args()
    folder = args.exp_dir / args.decoding_method
    scores = collect(folder)
    if not scores:
        raise SystemExit(f"no wer-summary files under '{folder}': run evaluate.py first")

    def pair(kind: str, suffix: str, metric: str) -> str:
        values = [scores.get((kind, f"{split}_{suffix}", metric)) for split in SPLITS]
        return " / ".join("-" if v is None else f"{v:.2f}" for v in values)

    header = ("task", "metric", *(f"{k} seen / unseen" for k in KINDS), "target", "met")
    rows = [header]
    for label, suffix, metric in ROWS:
        if not any((k, f"{s}_{suffix}", metric) in scores for k in KINDS for s in SPLITS):
            continue
        task = suffix.split("_")[0]
        target = TARGETS.get((task, metric))
        goal = met = ""
        if target is not None and suffix == task:
            better = ">=" if target[2] else "<="
            goal = f"{better} {target[0]:g} / {target[1]:g}"
            values = [scores.get(("audio LLM", f"{s}_{task}", metric)) for s in SPLITS]
            ok = [
                v is not None and (v >= t if target[2] else v <= t)
                for v, t in zip(values, target[:2])
            ]
            met = "yes" if all(ok) else "NO"
        rows.append((label, metric, *(pair(k, suffix, metric) for k in KINDS), goal, met))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
