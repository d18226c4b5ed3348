#!/usr/bin/env python3
"""Export cut manifests with their features (or audio) as Lhotse Shar shards.

    python tools/export_shar.py --cuts data/fbank/mini_en_cuts_train.jsonl.gz \\
        --out data/shar/train --shard-size 1000 [--fields features|recording]

Several manifests in one call: put ``{split}`` in both paths and list the splits::

    python tools/export_shar.py --splits train dev \\
        --cuts data/fbank/x_cuts_{split}.jsonl.gz --out data/shar/{split}

A data config entry then names the folder instead of the manifest::

    - {shar_dir: data/shar/train, task: transcribe, weight: 1}
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

os.environ.setdefault("OMP_NUM_THREADS", "1")

from auden.data.shar import FIELD_FORMATS, export_shar  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cuts", required=True, help="Lhotse cuts manifest (.jsonl.gz)")
    parser.add_argument("--out", required=True, help="output Shar folder")
    parser.add_argument("--shard-size", type=int, default=1000, help="cuts per shard")
    parser.add_argument(
        "--fields", nargs="+", choices=sorted(FIELD_FORMATS), default=None,
        help="data to store beside the cuts (default: features if the cuts have them, "
        "else recording)",
    )
    parser.add_argument("--splits", nargs="+", default=None,
                        help="fill {split} in --cuts and --out with each of these")
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(format="%(asctime)s %(levelname)s %(message)s", level=logging.INFO)
    args = build_parser().parse_args(argv)
    splits = args.splits or [None]
    for split in splits:
        cuts = args.cuts.format(split=split) if split else args.cuts
        out = args.out.format(split=split) if split else args.out
        try:
            shards = export_shar(cuts, out, shard_size=args.shard_size,
                                 fields=tuple(args.fields or ()))
        except (OSError, ValueError) as e:
            print(f"export_shar.py: error: {e}", file=sys.stderr)
            return 1
        logging.info("%s -> %s: %d shards, %d cuts", cuts, out, len(shards),
                     sum(s.num_cuts for s in shards))
    return 0


if __name__ == "__main__":
    sys.exit(main())
