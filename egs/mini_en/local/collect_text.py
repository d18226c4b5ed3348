#!/usr/bin/env python3
"""Stage 3 (start) of mini_en: every text the LLM will read or write in training.

The tokenizer is trained on the training split's transcripts and targets (replies,
descriptions, answers) and on the prompts, one per line, so that each of them
tokenizes into whole words.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lhotse import load_manifest

TARGET_FIELDS = ("reply", "description", "answer", "instruction", "response")


def collect(supervisions: Path, prompt_files: list[Path]) -> list[str]:
    if not supervisions.is_file():
        raise FileNotFoundError(f"'{supervisions}' does not exist: run stage 1 first")
    lines: list[str] = []
    for sup in load_manifest(supervisions):
        custom = sup.custom or {}
        lines += [sup.text or ""] + [str(custom[k]) for k in TARGET_FIELDS if custom.get(k)]
    prompts: list[str] = []
    for path in prompt_files:
        if not path.is_file():
            raise FileNotFoundError(f"prompt file '{path}' does not exist")
        prompts += [p.strip() for p in path.read_text(encoding="utf-8").splitlines() if p.strip()]
    # A prompt is read in every training sample: weigh prompts like a quarter of the
    # targets, so that BPE merges them into whole words too.
    repeat = max(1, len(lines) // max(1, len(prompts)) // 4)
    return [line.strip() for line in lines if line.strip()] + prompts * repeat


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--supervisions", type=Path, required=True)
    parser.add_argument("--prompts", type=Path, nargs="*", default=[])
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        lines = collect(args.supervisions, args.prompts)
    except FileNotFoundError as err:
        print(f"collect_text.py: {err}", file=sys.stderr)
        return 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".tmp")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    tmp.replace(args.out)
    print(f"collect_text.py: {len(lines)} lines -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
