"""Convert a Hugging Face dataset on disk into Lhotse cuts for one auden task.

The user names the column that holds the audio, the column that holds the target and
the task; the target lands in the supervision field that :mod:`auden.data.tasks` reads
(``text`` for transcribe, ``custom["reply"]`` for continue, and so on). Audio is decoded
once with soundfile, down-mixed to mono, resampled when asked, and written once: as flac
files next to a ``jsonl.gz`` manifest, or as Lhotse Shar shards.

Work is split into parts of ``part_size`` rows. A part is finished when its small stats
file is written, after its audio and cuts are in place (each under a temporary name,
then renamed), so an interrupted conversion redoes only the parts it had not finished.

    >>> mapping = ColumnMapping(audio="audio_second_last_turn", target="alt_last_turn",
    ...                         task="continue")
    >>> result = convert_hf_dataset("downloads/soda-audio", mapping,
    ...                             ConvertOptions(out_dir="data/manifests", prefix="soda"))
    >>> result.manifest
    PosixPath('data/manifests/soda_cuts_train.jsonl.gz')
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import shutil
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from tqdm.auto import tqdm

from auden.atomic import atomic_file
from auden.data.hf_audio import AudioDecodeError
from auden.data.hf_mapping import ColumnMapping, row_to_cut
from auden.data.hf_source import HfRows, open_hf_rows
from auden.data.job_folder import check_same_job, write_text_atomically

__all__ = ["ColumnMapping", "ConversionResult", "ConvertOptions", "convert_hf_dataset"]

log = logging.getLogger(__name__)

Storage = Literal["flac", "shar"]


@dataclass(frozen=True)
class ConvertOptions:
    """Where the cuts go, what they are called, and how the audio is stored."""

    out_dir: str | Path
    prefix: str  # names the manifest and starts every cut id
    split: str | None = None  # the source split (a DatasetDict key, a parquet split)
    out_split: str | None = None  # names the output; the source split, or "train", if None
    storage: Storage = "flac"
    part_size: int = 1000
    sampling_rate: int | None = 16000  # None keeps each clip's own rate
    num_jobs: int = 1
    strict: bool = False  # raise on a bad row instead of skipping it

    @property
    def output_split(self) -> str:
        return self.out_split or self.split or "train"


@dataclass
class ConversionResult:
    """What a conversion produced (finished parts of an earlier run included)."""

    manifest: Path  # a jsonl.gz cut manifest (flac) or a Shar folder (shar)
    num_cuts: int
    num_skipped: int
    duration_hours: float


@dataclass
class _PartStats:
    num_cuts: int = 0
    num_skipped: int = 0
    duration: float = 0.0
    skipped: list[str] = field(default_factory=list)


def convert_hf_dataset(
    source: str | Path,
    mapping: ColumnMapping,
    options: ConvertOptions,
    progress: bool = True,
) -> ConversionResult:
    """Convert the dataset at ``source`` (save_to_disk folder or parquet) into cuts."""
    source = Path(source)
    rows = open_hf_rows(source, options.split)
    mapping.check(rows.column_names, source)
    if options.part_size <= 0:
        raise ValueError(f"part_size must be positive, got {options.part_size}")
    layout = _Layout(Path(options.out_dir), options.prefix, options.output_split, options.storage)
    layout.work_dir.mkdir(parents=True, exist_ok=True)
    _check_same_job(layout.job_file, source, mapping, options, rows.num_rows)

    parts = [
        (i, start, min(start + options.part_size, rows.num_rows))
        for i, start in enumerate(range(0, rows.num_rows, options.part_size))
    ]
    todo = [p for p in parts if not layout.part_done(p[0])]
    log.info(
        "%s: %d rows, %d parts of %d, %d to do -> %s",
        source,
        rows.num_rows,
        len(parts),
        options.part_size,
        len(todo),
        layout.manifest,
    )
    remaining = sum(stop - start for _, start, stop in todo)
    with tqdm(
        total=remaining,
        desc=f"{options.prefix} {options.output_split}",
        unit="row",
        disable=not progress,
    ) as bar:
        if options.num_jobs > 1 and len(todo) > 1:
            jobs = [(source, mapping, options, layout, p) for p in todo]
            with ProcessPoolExecutor(options.num_jobs) as pool:
                for _, start, stop in pool.map(_convert_part_job, jobs):
                    bar.update(stop - start)
        else:
            for part in todo:
                _convert_part(rows, mapping, options, layout, part, on_row=bar.update)

    stats = [layout.read_stats(i) for i, _, _ in parts]
    if options.storage == "flac":
        _join_parts(layout, [i for i, _, _ in parts])
    result = ConversionResult(
        manifest=layout.manifest,
        num_cuts=sum(s.num_cuts for s in stats),
        num_skipped=sum(s.num_skipped for s in stats),
        duration_hours=sum(s.duration for s in stats) / 3600,
    )
    log.info(
        "%s: %d cuts (%.2f h), %d rows skipped -> %s",
        source,
        result.num_cuts,
        result.duration_hours,
        result.num_skipped,
        result.manifest,
    )
    return result


@dataclass(frozen=True)
class _Layout:
    """Where a conversion writes: the work folder of parts, the audio, the final manifest."""

    out_dir: Path
    prefix: str
    split: str
    storage: Storage

    @property
    def name(self) -> str:
        return f"{self.prefix}_{self.split}"

    @property
    def work_dir(self) -> Path:
        """Bookkeeping (job description, finished parts) and, for flac, the audio."""
        return self.out_dir / self.name

    @property
    def shar_dir(self) -> Path:
        # Only shard files may live here: Lhotse reads every file in it as a Shar field.
        return self.out_dir / f"{self.prefix}_shar_{self.split}"

    @property
    def manifest(self) -> Path:
        if self.storage == "shar":
            return self.shar_dir
        return self.out_dir / f"{self.prefix}_cuts_{self.split}.jsonl.gz"

    @property
    def job_file(self) -> Path:
        return self.work_dir / "conversion.json"

    def part_cuts(self, part: int) -> Path:
        if self.storage == "shar":
            return self.shar_dir / f"cuts.{part:06d}.jsonl.gz"
        return self.work_dir / "parts" / f"cuts.{part:06d}.jsonl.gz"

    def part_stats(self, part: int) -> Path:
        return self.work_dir / "parts" / f"stats.{part:06d}.json"

    def part_audio_dir(self, part: int) -> Path:
        return self.work_dir / "audio" / f"{part:06d}"

    def part_done(self, part: int) -> bool:
        # Stats are written last, after the cuts (and the audio) are in place.
        return self.part_stats(part).is_file()

    def read_stats(self, part: int) -> _PartStats:
        return _PartStats(**json.loads(self.part_stats(part).read_text()))


def _check_same_job(job_file: Path, source: Path, mapping, options, num_rows: int) -> None:
    """Refuse to resume a conversion into a folder that holds a different one."""
    job = {
        "source": str(source.resolve()),
        "num_rows": num_rows,
        "mapping": asdict(mapping),
        "split": options.split,
        "storage": options.storage,
        "part_size": options.part_size,
        "sampling_rate": options.sampling_rate,
    }
    check_same_job(
        job_file, job, "conversion", "remove that folder or choose another --out-dir/--prefix"
    )


_WORKER_ROWS: dict[tuple[str, str | None], HfRows] = {}


def _convert_part_job(args) -> tuple[int, int, int]:
    source, mapping, options, layout, part = args
    key = (str(source), options.split)
    if key not in _WORKER_ROWS:  # open the dataset once per worker process
        _WORKER_ROWS[key] = open_hf_rows(source, options.split)
    _convert_part(_WORKER_ROWS[key], mapping, options, layout, part, on_row=None)
    return part


def _convert_part(
    rows: HfRows,
    mapping: ColumnMapping,
    options: ConvertOptions,
    layout: _Layout,
    part: tuple[int, int, int],
    on_row: Callable[[int], object] | None,
) -> None:
    from lhotse import CutSet

    index, start, stop = part
    stats = _PartStats()
    cuts = []
    audio_dir = layout.part_audio_dir(index)
    if options.storage == "flac":
        audio_dir.mkdir(parents=True, exist_ok=True)
    for offset, row in enumerate(rows.read(start, stop, mapping.columns())):
        row_index = start + offset
        try:
            cut = row_to_cut(
                row,
                row_index,
                rows.path,
                mapping,
                cut_id_prefix=f"{options.prefix}-{options.output_split}",
                sampling_rate=options.sampling_rate,
                audio_dir=audio_dir if options.storage == "flac" else None,
            )
        except (KeyError, ValueError, TypeError, AudioDecodeError) as e:
            where = f"{rows.path} row {row_index}"
            if options.strict:
                raise ValueError(f"{where}: {e}") from e
            log.warning("skipping %s: %s", where, e)
            stats.num_skipped += 1
            stats.skipped.append(f"{row_index}: {e}")
        else:
            cuts.append(cut)
            stats.num_cuts += 1
            stats.duration += cut.duration
        if on_row is not None:
            on_row(1)
    layout.part_cuts(index).parent.mkdir(parents=True, exist_ok=True)
    if options.storage == "shar":
        _write_shar_part(CutSet.from_cuts(cuts), layout, index)
    else:
        with atomic_file(layout.part_cuts(index)) as tmp:
            CutSet.from_cuts(cuts).to_file(tmp)
    layout.part_stats(index).parent.mkdir(parents=True, exist_ok=True)
    write_text_atomically(layout.part_stats(index), json.dumps(asdict(stats), ensure_ascii=False))


def _write_shar_part(cuts, layout: _Layout, index: int) -> None:
    """Write one Shar shard under a temporary folder, then move it in, cuts file last."""
    from lhotse.shar import SharWriter

    tmp_dir = layout.work_dir / f".tmp-part-{index:06d}"
    shutil.rmtree(tmp_dir, ignore_errors=True)
    tmp_dir.mkdir(parents=True)
    with SharWriter(tmp_dir, fields={"recording": "flac"}, shard_size=None) as writer:
        for cut in cuts:
            writer.write(cut)
    if len(cuts):
        layout.shar_dir.mkdir(parents=True, exist_ok=True)
        os.replace(tmp_dir / "recording.tar", layout.shar_dir / f"recording.{index:06d}.tar")
        os.replace(tmp_dir / "cuts.jsonl.gz", layout.part_cuts(index))
    shutil.rmtree(tmp_dir)


def _join_parts(layout: _Layout, parts: list[int]) -> None:
    """Concatenate the parts' cuts into the final manifests, each written to a temp name first.

    Beside the cuts, the same data as a recordings and a supervisions manifest, the pair
    every recipe's feature stage (tools/compute_fbank.py) starts from.
    """
    outputs = {
        "cuts": layout.manifest,
        "recordings": layout.out_dir / f"{layout.prefix}_recordings_{layout.split}.jsonl.gz",
        "supervisions": layout.out_dir / f"{layout.prefix}_supervisions_{layout.split}.jsonl.gz",
    }
    with ExitStack() as stack:
        tmps = {k: stack.enter_context(atomic_file(p)) for k, p in outputs.items()}
        with ExitStack() as opened:
            files = {
                k: opened.enter_context(gzip.open(p, "wt", encoding="utf-8"))
                for k, p in tmps.items()
            }
            for part in parts:
                with gzip.open(layout.part_cuts(part), "rt", encoding="utf-8") as f:
                    for line in f:
                        files["cuts"].write(line)
                        cut = json.loads(line)
                        files["recordings"].write(_json_line(cut["recording"]))
                        for supervision in cut["supervisions"]:
                            files["supervisions"].write(_json_line(supervision))


def _json_line(item: dict) -> str:
    return json.dumps(item, ensure_ascii=False) + "\n"
