#!/usr/bin/env python3
"""Print the mini_en results: every test set and task, with the demo's targets beside them.

Reads what evaluate.py wrote under <exp-dir>/<decoding-method>/ (wer-summary-* for WER and
exact match, recogs-* for the describe attributes: voice gender, speed and pitch, or the
sound-event type, all of which must be right for a clip to count).

    python local/results_table.py --exp-dir exp/audio_llm
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from corpus import description_attributes  # noqa: E402

# (task, metric) -> (target, True when higher is better); test set prefix -> WER targets.
TARGETS = {
    ("transcribe", "WER", "test-seen"): (5.0, False),
    ("transcribe", "WER", "test-unseen"): (15.0, False),
    ("answer", "exact_match", None): (90.0, True),
    ("describe", "attributes", None): (90.0, True),
    ("continue", "exact_match", None): (80.0, True),
}


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


def target_for(task: str, metric: str, test_set: str):
    for (t, m, prefix), target in TARGETS.items():
        if t == task and m == metric and (prefix is None or test_set.startswith(prefix + "_")):
            return target
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--exp-dir", required=True, type=Path)
    parser.add_argument("--decoding-method", default="greedy_search")
    args = parser.parse_args()
    folder = args.exp_dir / args.decoding_method
    summaries = sorted(folder.glob("wer-summary-*.txt"), key=lambda p: p.stat().st_mtime)
    if not summaries:
        raise SystemExit(f"no wer-summary files under '{folder}': run evaluate.py first")
    suffix = summaries[-1].name.split("-iter-")[-1] if "-iter-" in summaries[-1].name else ""
    rows = [("test set", "task", "metric", "value", "target", "met")]
    for summary in sorted(p for p in summaries if p.name.endswith(suffix)):
        test_set = summary.name[len("wer-summary-") :].split("-iter-")[0].split("-epoch-")[0]
        task = test_set.rsplit("_", 1)[-1]
        metrics = read_summary(summary)
        metrics.pop("utterances", None)
        if task == "describe":
            recogs = folder / summary.name.replace("wer-summary-", "recogs-")
            metrics["attributes"] = attribute_accuracy(read_recogs(recogs))
        for metric, value in metrics.items():
            target = target_for(task, metric, test_set)
            if target is None:
                goal, met = "", ""
            else:
                goal = f"{'>=' if target[1] else '<='} {target[0]:g}"
                met = "yes" if (value >= target[0] if target[1] else value <= target[0]) else "NO"
            rows.append((test_set, task, metric, f"{value:.2f}", goal, met))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
