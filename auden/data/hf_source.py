"""Rows of a Hugging Face dataset already on disk, read without decoding audio through `datasets`.

Two layouts are understood: a folder written by ``Dataset.save_to_disk`` (or
``DatasetDict.save_to_disk``), and parquet files as they come from the Hub
(``data/train-00000-of-00004.parquet``, ``<config>/train/0000.parquet``, ...). Rows come
back as plain dicts; an Audio column is its stored form ``{"bytes": ..., "path": ...}``,
which :mod:`auden.data.hf_convert` decodes with soundfile. This keeps conversion
independent of the decoding backend that ``datasets`` wants (torchcodec), and never
downloads anything.

    >>> rows = open_hf_rows("downloads/soda-audio", split="train")
    >>> rows.num_rows, rows.column_names[:2]
    (1000, ['dialogue', 'alt_last_turn'])
    >>> batch = rows.read(0, 100, columns=["audio_second_last_turn", "alt_last_turn"])
"""

from __future__ import annotations

import logging
from bisect import bisect_right
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

log = logging.getLogger(__name__)


class HfRows(Protocol):
    """Random access to a range of rows of an on-disk dataset."""

    path: Path
    num_rows: int
    column_names: list[str]

    def read(self, start: int, stop: int, columns: list[str]) -> list[dict]:
        """Rows ``start`` (inclusive) to ``stop`` (exclusive), only the given top-level columns."""
        ...


def open_hf_rows(path: str | Path, split: str | None = None) -> HfRows:
    """Open a ``save_to_disk`` folder or parquet file(s) at ``path``.

    ``split`` picks a split of a DatasetDict folder, or the parquet files of that split;
    it may be omitted when there is only one.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"Hugging Face dataset not found: {path}")
    if path.is_dir() and _is_save_to_disk_folder(path):
        return _ArrowRows.open(path, split)
    files = _parquet_files(path, split)
    return _ParquetRows(path, files)


def _is_save_to_disk_folder(path: Path) -> bool:
    return (path / "dataset_dict.json").is_file() or (path / "state.json").is_file()


def _import_datasets():
    try:
        import datasets
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(
            "reading a save_to_disk folder needs the 'datasets' package: pip install 'auden[hf]'"
        ) from e
    return datasets


@dataclass
class _ArrowRows:
    """A ``save_to_disk`` folder: memory-mapped arrow files, read through `datasets`."""

    path: Path
    dataset: object  # datasets.Dataset in arrow format

    @classmethod
    def open(cls, path: Path, split: str | None) -> _ArrowRows:
        datasets = _import_datasets()
        loaded = datasets.load_from_disk(str(path))
        if isinstance(loaded, datasets.DatasetDict):
            splits = sorted(loaded.keys())
            if split is None:
                if len(splits) != 1:
                    raise ValueError(
                        f"{path} holds splits {splits}; choose one with split=... (--split)"
                    )
                split = splits[0]
            if split not in loaded:
                raise ValueError(f"{path} has no split '{split}'; it holds splits {splits}")
            loaded = loaded[split]
        elif split is not None:
            log.info(
                "%s holds one dataset, not a DatasetDict: all its rows are split '%s'", path, split
            )
        return cls(path=path, dataset=loaded.with_format("arrow"))

    @property
    def num_rows(self) -> int:
        return self.dataset.num_rows

    @property
    def column_names(self) -> list[str]:
        return list(self.dataset.column_names)

    def read(self, start: int, stop: int, columns: list[str]) -> list[dict]:
        table = self.dataset.select_columns(columns)[start:stop]
        return table.to_pylist()


@dataclass
class _ParquetRows:
    """Parquet files read row group by row group with pyarrow, in file order."""

    path: Path
    files: list[Path]

    def __post_init__(self) -> None:
        import pyarrow.parquet as pq

        self._files = [pq.ParquetFile(f) for f in self.files]
        # Global row offset of every row group, so a range maps to the groups it touches.
        self._groups: list[tuple[int, int]] = []  # (file index, row group index)
        self._group_starts: list[int] = []
        total = 0
        for fi, pf in enumerate(self._files):
            for gi in range(pf.metadata.num_row_groups):
                self._groups.append((fi, gi))
                self._group_starts.append(total)
                total += pf.metadata.row_group(gi).num_rows
        self._num_rows = total
        names = self._files[0].schema_arrow.names
        for f, pf in zip(self.files[1:], self._files[1:]):
            if pf.schema_arrow.names != names:
                raise ValueError(
                    f"parquet file {f} has columns {pf.schema_arrow.names}, "
                    f"but {self.files[0]} has {names}"
                )
        self._names = list(names)

    @property
    def num_rows(self) -> int:
        return self._num_rows

    @property
    def column_names(self) -> list[str]:
        return self._names

    def read(self, start: int, stop: int, columns: list[str]) -> list[dict]:
        rows: list[dict] = []
        g = max(bisect_right(self._group_starts, start) - 1, 0)
        while g < len(self._groups) and self._group_starts[g] < stop:
            fi, gi = self._groups[g]
            table = self._files[fi].read_row_group(gi, columns=columns)
            first = self._group_starts[g]
            lo = max(start - first, 0)
            hi = min(stop - first, table.num_rows)
            rows.extend(table.slice(lo, hi - lo).to_pylist())
            g += 1
        return rows


def _parquet_files(path: Path, split: str | None) -> list[Path]:
    if path.is_file():
        if path.suffix != ".parquet":
            raise ValueError(
                f"{path} is neither a save_to_disk folder (state.json or dataset_dict.json) "
                "nor a .parquet file"
            )
        return [path]
    files = sorted(path.rglob("*.parquet"))
    if not files:
        raise ValueError(
            f"{path} is neither a save_to_disk folder (no state.json or dataset_dict.json) "
            "nor a folder of .parquet files"
        )
    if split is not None:
        chosen = [f for f in files if _in_split(f.relative_to(path), split)]
        if not chosen:
            raise ValueError(
                f"no parquet file of split '{split}' under {path} (looked for a folder named "
                f"'{split}' or files named '{split}-*.parquet'); found e.g. {files[0]}"
            )
        files = chosen
    log.info("reading %d parquet file(s) under %s", len(files), path)
    return files


def _in_split(relative: Path, split: str) -> bool:
    name = relative.name
    return (
        split in relative.parts[:-1]
        or name.startswith(f"{split}-")
        or name.startswith(f"{split}.")
        or name.startswith(f"{split}_")
    )
