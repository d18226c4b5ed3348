#!/usr/bin/env python3
"""Stage 2 (end) of mini_en: one cuts file per (split, task) holding only the cuts that
carry that task's target, so data configs mix tasks by weight and test sets score
each task on its own material.

    mini_en_cuts_<split>.jsonl.gz -> mini_en_cuts_<split>_<task>.jsonl.gz
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from corpus import SPLITS, TASK_KINDS
from lhotse import CutSet

log = logging.getLogger("task_subsets")



def kind_of(cut) -> str:
    return (cut.supervisions[0].custom or {})["kind"]


def write_subsets(fbank_dir: Path, split: str) -> dict[str, int]:
    source = fbank_dir / f"mini_en_cuts_{split}.jsonl.gz"
    if not source.is_file():
        raise FileNotFoundError(f"'{source}' does not exist: compute the features first")
    cuts = CutSet.from_file(source).to_eager()
    counts = {}
    for task, kinds in TASK_KINDS.items():
        subset = cuts.filter(lambda c, kinds=kinds: kind_of(c) in kinds).to_eager()
        if len(subset) == 0:
            raise ValueError(f"'{source}' has no cut for task '{task}' (kinds {kinds})")
        out = fbank_dir / f"mini_en_cuts_{split}_{task}.jsonl.gz"
        tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}.jsonl.gz")
        subset.to_file(tmp)
        os.replace(tmp, out)
        counts[task] = len(subset)
    log.info("%s: %s", split, ", ".join(f"{t} {n}" for t, n in counts.items()))
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fbank-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        for split in SPLITS:
            write_subsets(args.fbank_dir, split)
    except (FileNotFoundError, ValueError) as err:
        log.error("%s", err)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
