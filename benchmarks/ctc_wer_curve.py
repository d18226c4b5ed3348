#!/usr/bin/env python3
"""The learning curve of a CTC run: greedy CTC WER of each of its checkpoints on a test set.

Training is timed by the checkpoints themselves: a checkpoint's age is its file time minus
the time ``train_config.yaml`` was written at start-up. Decoding happens afterwards, so
it does not steal time from training::

    python benchmarks/ctc_wer_curve.py --exp-dir exp/ctc \
        --test-data-config configs/test_data.yaml --test-set test-seen_transcribe
"""

from __future__ import annotations

import argparse
import json
import logging
import re
from pathlib import Path

import torch

from auden.checkpoint import load_model
from auden.data.config import DataConfig, load_data_config
from auden.decoding.decode import build_test_loader, decode_utterances
from auden.decoding.metrics import score_utterances

logger = logging.getLogger("ctc_wer_curve")


def checkpoints_in_order(exp_dir: Path) -> list[tuple[int, Path]]:
    found = []
    for path in exp_dir.glob("checkpoint-*.pt"):
        match = re.fullmatch(r"checkpoint-(\d+)\.pt", path.name)
        if match:
            found.append((int(match.group(1)), path))
    return sorted(found)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--exp-dir", type=Path, required=True)
    parser.add_argument("--test-data-config", type=Path, required=True)
    parser.add_argument("--test-set", default="test-seen_transcribe", help="a 'name' in it")
    parser.add_argument("--max-duration", type=float, default=200.0)
    parser.add_argument("--every", type=int, default=1, help="decode every n-th checkpoint")
    parser.add_argument("--out", type=Path, help="also write the curve here (jsonl)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    sources = {s.name: s for s in load_data_config(args.test_data_config)}
    if args.test_set not in sources:
        raise SystemExit(f"test set '{args.test_set}' not in {args.test_data_config}: {sorted(sources)}")
    source = sources[args.test_set]
    start = (args.exp_dir / "train_config.yaml").stat().st_mtime
    checkpoints = checkpoints_in_order(args.exp_dir)
    if not checkpoints:
        raise SystemExit(f"no checkpoint-<n>.pt in '{args.exp_dir}'")
    rows = []
    for k, (step, path) in enumerate(checkpoints):
        if k % args.every and k != len(checkpoints) - 1:
            continue
        model = load_model(path)
        loader, num_cuts = build_test_loader(
            source, DataConfig(num_workers=0), max_duration=args.max_duration, seed=0
        )
        utts = decode_utterances(model, loader, total=num_cuts, desc=path.name)
        scores, _ = score_utterances(args.test_set, source.task, utts)
        row = {
            "step": step,
            "train_seconds": round(path.stat().st_mtime - start, 1),
            "wer": round(scores.errors.rate, 2),
            "num_utts": scores.num_utts,
            "example": {"ref": utts[0].ref, "hyp": utts[0].hyp},
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    if args.out:
        args.out.write_text("".join(json.dumps(r) + "\n" for r in rows))


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
