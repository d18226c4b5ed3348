#!/usr/bin/env python3
"""Convert a Hugging Face dataset already on disk into Lhotse cuts for one auden task.

The source is a folder written by `save_to_disk` or parquet files as downloaded from the
Hub (`huggingface-cli download --repo-type dataset ...`). Nothing is downloaded here.

  python tools/hf_to_lhotse.py downloads/soda-audio data/manifests \\
      --prefix soda_audio --split train --split validation:dev --task continue \\
      --audio-column audio_second_last_turn --target-column alt_last_turn

writes, for each split (the source's split name, then the output's after a colon),
data/manifests/soda_audio_cuts_<split>.jsonl.gz, the same as a recordings and a
supervisions manifest, and the flac files under data/manifests/soda_audio_<split>/audio/
(or a Shar folder with --storage shar). Run it again after an interruption and it carries
on where it stopped. `--list-columns` prints the dataset's columns and a first row, to
choose the mapping.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from auden.data.hf_convert import ColumnMapping, ConvertOptions, convert_hf_dataset
from auden.data.hf_source import open_hf_rows
from auden.data.tasks import TASKS


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("source", help="save_to_disk folder, parquet file or folder of parquet files")
    p.add_argument("out_dir", nargs="?", help="where the manifest (and audio) go")
    p.add_argument("--prefix", help="names the manifest <prefix>_cuts_<split>.jsonl.gz and cut ids")
    p.add_argument(
        "--split",
        action="append",
        metavar="SPLIT[:OUT]",
        help="a split of the source (DatasetDict key or parquet split), optionally renamed in "
        "the output (validation:dev); repeat for several; default: the only one, as 'train'",
    )
    p.add_argument("--task", choices=sorted(TASKS), help="the task the target serves")
    p.add_argument("--audio-column", help="column with the input audio")
    p.add_argument(
        "--target-column",
        help="column with the target text; dotted paths index nested values, e.g. answers.text.0",
    )
    p.add_argument("--instruction-column", help="column with the prompt (task instruct)")
    p.add_argument("--text-column", help="a transcript to keep in supervision.text")
    p.add_argument("--id-column", help="column with unique row ids (default: the row index)")
    p.add_argument("--language", help="language tag for every supervision")
    p.add_argument("--storage", choices=["flac", "shar"], default="flac")
    p.add_argument("--part-size", type=int, default=1000, help="rows per part (and Shar shard)")
    p.add_argument(
        "--sampling-rate",
        type=int,
        default=16000,
        help="resample to this rate; 0 keeps each clip's rate",
    )
    p.add_argument("--num-jobs", type=int, default=1, help="parts converted in parallel")
    p.add_argument("--strict", action="store_true", help="stop at the first bad row")
    p.add_argument(
        "--list-columns",
        action="store_true",
        help="print the columns and the first row's non-audio values, then exit",
    )
    return p


def list_columns(source: str, split: str | None) -> None:
    rows = open_hf_rows(source, split)
    print(f"{source}: {rows.num_rows} rows")
    first = rows.read(0, 1, rows.column_names)[0] if rows.num_rows else {}
    for name in rows.column_names:
        value = first.get(name)
        if isinstance(value, dict) and "bytes" in value:
            shown = f"<audio {value.get('path') or ''}>"
        else:
            shown = json.dumps(value, ensure_ascii=False, default=str)[:120]
        print(f"  {name}: {shown}")


def main(argv: list[str] | None = None) -> int:
    args = get_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if args.list_columns:
        list_columns(args.source, args.split[0].split(":")[0] if args.split else None)
        return 0
    needed = {
        "out_dir": args.out_dir,
        "--prefix": args.prefix,
        "--task": args.task,
        "--audio-column": args.audio_column,
        "--target-column": args.target_column,
    }
    missing = [name for name, value in needed.items() if not value]
    if missing:
        get_parser().error(f"missing {', '.join(missing)}")
    for split in args.split or [None]:
        source_split, _, out_split = (split or "").partition(":")
        try:
            result = _convert(args, source_split or None, out_split or None)
        except (ValueError, FileNotFoundError) as e:
            print(f"hf_to_lhotse.py: error: {e}", file=sys.stderr)
            return 1
        print(
            f"{result.manifest}: {result.num_cuts} cuts, {result.duration_hours:.3f} h, "
            f"{result.num_skipped} rows skipped"
        )
    return 0


def _convert(args, split: str | None, out_split: str | None):
    mapping = ColumnMapping(
        audio=args.audio_column,
        target=args.target_column,
        task=args.task,
        instruction=args.instruction_column,
        text=args.text_column,
        id=args.id_column,
        language=args.language,
    )
    options = ConvertOptions(
        out_dir=args.out_dir,
        prefix=args.prefix,
        split=split,
        out_split=out_split,
        storage=args.storage,
        part_size=args.part_size,
        sampling_rate=args.sampling_rate or None,
        num_jobs=args.num_jobs,
        strict=args.strict,
    )
    return convert_hf_dataset(args.source, mapping, options)


if __name__ == "__main__":
    sys.exit(main())
