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

Several datasets in one run, from a table with one dataset per line (egs/multitask's
configs/hf_sources.txt: name, Hub id, task, weight, splits, audio column, target column,
further options), each read from <dl-dir>/<name>:

  python tools/hf_to_lhotse.py --table configs/hf_sources.txt --dl-dir download data/manifests
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

from auden.data.hf_convert import ColumnMapping, ConvertOptions, convert_hf_dataset
from auden.data.hf_source import open_hf_rows
from auden.data.tasks import TASKS


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "paths",
        nargs="*",
        metavar="[SOURCE] OUT_DIR",
        help="the dataset (save_to_disk folder, parquet file or folder of parquet files; "
        "not with --table) and where the manifests and audio go",
    )
    p.add_argument("--table", help="convert every dataset of this table (see above)")
    p.add_argument("--dl-dir", help="with --table: the folder holding <dl-dir>/<name>")
    p.add_argument("--datasets", help="with --table: only these names (space-separated)")
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
    p.add_argument(
        "--keep-column",
        action="append",
        default=[],
        metavar="COLUMN[:FIELD]",
        help="also keep this column in supervision.custom[FIELD] (e.g. emotion or speaker "
        "labels for `auden sift`); repeat for several",
    )
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


@dataclass(frozen=True)
class Job:
    """One dataset to convert: where it is, how its rows map to cuts, which splits."""

    source: Path
    prefix: str
    mapping: ColumnMapping
    splits: list[str | None]  # "train", "validation:dev", or None for a lone dataset
    label: str = ""  # the Hub id, for messages


def _split_names(split: str | None) -> tuple[str | None, str | None]:
    source_split, _, out_split = (split or "").partition(":")
    return source_split or None, out_split or None


def _mapping_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False, exit_on_error=False)
    for option in ("--instruction-column", "--text-column", "--id-column", "--language"):
        p.add_argument(option)
    p.add_argument("--keep-column", action="append", default=[])
    return p


def read_table(table: Path, dl_dir: Path, only: list[str] | None) -> list[Job]:
    """The jobs of a sources table; every dataset folder must exist before any is converted."""
    jobs = []
    for number, line in enumerate(table.read_text(encoding="utf-8").splitlines(), start=1):
        fields = shlex.split(line, comments=True)
        if not fields:
            continue
        where = f"{table}:{number}"
        if len(fields) < 7:
            raise ValueError(
                f"{where}: expected name, dataset, task, weight, splits, audio column, "
                f"target column [options], got {fields}"
            )
        name, label, task, weight, splits, audio, target, *rest = fields
        try:
            float(weight)
            extra = _mapping_parser().parse_args(rest)
        except (ValueError, argparse.ArgumentError) as e:
            raise ValueError(f"{where}: {e}") from None
        mapping = ColumnMapping(
            audio=audio,
            target=target,
            task=task,
            instruction=extra.instruction_column,
            text=extra.text_column,
            id=extra.id_column,
            language=extra.language,
            keep=tuple(extra.keep_column),
        )
        jobs.append(Job(dl_dir / name, name, mapping, splits.split(","), label))
    names = [job.prefix for job in jobs]
    if only:
        unknown = [n for n in only if n not in names]
        if unknown:
            raise ValueError(f"--datasets: {unknown} not in {table} (it has {names})")
        jobs = [job for job in jobs if job.prefix in only]
    missing = [job for job in jobs if not job.source.exists()]
    if missing:
        job = missing[0]
        raise FileNotFoundError(
            f"dataset '{job.prefix}' not found: expected {job.source}, a save_to_disk folder or "
            f"the parquet files of {job.label} (e.g. huggingface-cli download --repo-type dataset "
            f"{job.label} --local-dir {job.source}); missing: {[j.prefix for j in missing]}"
        )
    return jobs


def _jobs(args, parser: argparse.ArgumentParser) -> tuple[list[Job], str]:
    if args.table:
        if len(args.paths) != 1 or not args.dl_dir:
            parser.error("--table takes --dl-dir and one path, OUT_DIR")
        only = args.datasets.split() if args.datasets else None
        return read_table(Path(args.table), Path(args.dl_dir), only), args.paths[0]
    if len(args.paths) != 2:
        parser.error("give SOURCE and OUT_DIR (or --table)")
    needed = {
        "--prefix": args.prefix,
        "--task": args.task,
        "--audio-column": args.audio_column,
        "--target-column": args.target_column,
    }
    missing = [name for name, value in needed.items() if not value]
    if missing:
        parser.error(f"missing {', '.join(missing)}")
    mapping = ColumnMapping(
        audio=args.audio_column,
        target=args.target_column,
        task=args.task,
        instruction=args.instruction_column,
        text=args.text_column,
        id=args.id_column,
        language=args.language,
        keep=tuple(args.keep_column),
    )
    return [Job(Path(args.paths[0]), args.prefix, mapping, args.split or [None])], args.paths[1]


def main(argv: list[str] | None = None) -> int:
    parser = get_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if args.list_columns:
        if not args.paths:
            parser.error("--list-columns needs SOURCE")
        list_columns(args.paths[0], _split_names(args.split[0])[0] if args.split else None)
        return 0
    try:
        jobs, out_dir = _jobs(args, parser)
        for job in jobs:
            for split in job.splits:
                source_split, out_split = _split_names(split)
                options = ConvertOptions(
                    out_dir=out_dir,
                    prefix=job.prefix,
                    split=source_split,
                    out_split=out_split,
                    storage=args.storage,
                    part_size=args.part_size,
                    sampling_rate=args.sampling_rate or None,
                    num_jobs=args.num_jobs,
                    strict=args.strict,
                )
                result = convert_hf_dataset(job.source, job.mapping, options)
                print(
                    f"{result.manifest}: {result.num_cuts} cuts, "
                    f"{result.duration_hours:.3f} h, {result.num_skipped} rows skipped"
                )
    except (ValueError, FileNotFoundError) as e:
        print(f"hf_to_lhotse.py: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
