"""Lhotse Shar folders: export a cuts manifest as shards, and list a folder's shards.

A Shar folder holds ``cuts.000000.jsonl.gz`` plus one tar per data field
(``features.000000.tar`` for precomputed fbank, ``recording.000000.tar`` for audio),
numbered alike. Each shard is read sequentially, cuts and data together, so a node
reads its own shards without touching anyone else's files::

    export_shar("data/fbank/mini_en_cuts_train.jsonl.gz", "data/shar/train", shard_size=1000)
    shards = list_shards("data/shar/train")   # [SharShard(cuts=..., fields=..., num_cuts=1000), ...]

The export writes ``shards.json`` (every shard's files and number of cuts) last, into a
temporary folder that is renamed into place: a folder with ``shards.json`` is complete.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from lhotse import CutSet, load_manifest_lazy

logger = logging.getLogger(__name__)

INDEX = "shards.json"
_CUTS_SHARD = re.compile(r"^cuts\.(\d+)\.jsonl(\.gz)?$")
# What each field is stored as: features keep their lilcom compression, audio goes to flac.
FIELD_FORMATS = {"features": "lilcom", "recording": "flac"}


@dataclass(frozen=True)
class SharShard:
    """One shard: its cuts file, one tar per data field, and how many cuts it holds."""

    cuts: Path
    fields: dict[str, Path] = field(default_factory=dict)
    num_cuts: int = 0


def export_shar(
    manifest: str | Path, out_dir: str | Path, shard_size: int = 1000, fields: tuple[str, ...] = ()
) -> list[SharShard]:
    """Write the cuts of ``manifest`` with their data as Shar shards of ``shard_size`` cuts.

    ``fields`` defaults to ``features`` when the cuts have features, else ``recording``.
    """
    manifest, out_dir = Path(manifest), Path(out_dir)
    if shard_size < 1:
        raise ValueError(f"shard size must be >= 1, got {shard_size}")
    cuts = load_manifest_lazy(manifest)
    if cuts is None:  # Lhotse's answer for a file without a single line
        raise ValueError(f"manifest '{manifest}' is empty (no cuts)")
    if not isinstance(cuts, CutSet):
        raise ValueError(f"manifest '{manifest}' holds a {type(cuts).__name__}, not a Lhotse CutSet")
    first = next(iter(cuts), None)
    if first is None:
        raise ValueError(f"manifest '{manifest}' holds no cuts")
    if not fields:
        fields = ("features",) if first.has_features else ("recording",)
    unknown = set(fields) - set(FIELD_FORMATS)
    if unknown:
        raise ValueError(f"unknown Shar field(s) {sorted(unknown)}; known: {sorted(FIELD_FORMATS)}")
    tmp = out_dir.parent / f".tmp-{out_dir.name}.{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        cuts.to_shar(
            tmp, fields={f: FIELD_FORMATS[f] for f in fields}, shard_size=shard_size,
            warn_unused_fields=False,
        )
        shards = _scan(tmp)
        _write_index(tmp, shards)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.info("%s: %d cuts in %d shards under %s", manifest, sum(s.num_cuts for s in shards),
                len(shards), out_dir)
    return list_shards(out_dir)


def _count_lines(path: Path) -> int:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        return sum(1 for line in f if line.strip())


def _scan(folder: Path) -> list[SharShard]:
    """The shards found in a Shar folder by their file names (cuts counted line by line)."""
    shards = []
    for cuts in sorted(folder.iterdir()):
        m = _CUTS_SHARD.match(cuts.name)
        if not m:
            continue
        number = m.group(1)
        fields = {
            p.name.split(".")[0]: p
            for p in folder.glob(f"*.{number}.tar")
        }
        shards.append(SharShard(cuts=cuts, fields=fields, num_cuts=_count_lines(cuts)))
    return shards


def _write_index(folder: Path, shards: list[SharShard]) -> None:
    index = {
        "shards": [
            {"cuts": s.cuts.name, "fields": {k: v.name for k, v in s.fields.items()},
             "num_cuts": s.num_cuts}
            for s in shards
        ]
    }
    tmp = folder / f".{INDEX}.tmp"
    tmp.write_text(json.dumps(index, indent=1))
    os.replace(tmp, folder / INDEX)


def list_shards(shar_dir: str | Path) -> list[SharShard]:
    """The shards of a Shar folder, in order: from its ``shards.json``, else by file names
    (a folder written by Lhotse itself), counting each shard's cuts once."""
    folder = Path(shar_dir)
    if not folder.is_dir():
        raise FileNotFoundError(f"Shar folder '{folder}' not found")
    index = folder / INDEX
    if index.is_file():
        entries = json.loads(index.read_text())["shards"]
        shards = [
            SharShard(
                cuts=folder / e["cuts"],
                fields={k: folder / v for k, v in e["fields"].items()},
                num_cuts=int(e["num_cuts"]),
            )
            for e in entries
        ]
    else:
        shards = _scan(folder)
    if not shards:
        raise ValueError(f"Shar folder '{folder}' holds no cuts.NNNNNN.jsonl.gz shard")
    return shards


def read_shard(shard: SharShard) -> CutSet:
    """The cuts of one shard with their data attached in memory, read sequentially."""
    fields = {"cuts": [str(shard.cuts)], **{k: [str(v)] for k, v in shard.fields.items()}}
    return CutSet.from_shar(fields=fields)
