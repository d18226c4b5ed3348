"""What one row of a Hugging Face dataset becomes: a cut whose supervision holds the target.

:class:`ColumnMapping` names the columns; :func:`row_to_cut` reads them, puts the target
in the supervision field :mod:`auden.data.tasks` reads for the task (``text`` for
transcribe, ``custom["reply"]`` for continue, ...), decodes the audio and writes it as
flac (or keeps the flac bytes in memory for Shar).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from auden.atomic import atomic_file
from auden.data.hf_audio import decode_audio, encode_flac
from auden.data.tasks import get_task


@dataclass(frozen=True)
class ColumnMapping:
    """Which columns of a row become a cut, and for which task.

    A column may be a dotted path into nested values, with integer list indices:
    ``answers.text.0`` is the first answer of a SQuAD-style row.
    """

    audio: str
    target: str
    task: str
    instruction: str | None = None  # the per-row prompt of the "instruct" task
    text: str | None = None  # a transcript kept in supervision.text for non-transcribe tasks
    id: str | None = None  # a column of unique row ids; the row index otherwise
    language: str | None = None  # a fixed language tag for every supervision
    # "COLUMN[:FIELD]": kept in supervision.custom[FIELD] (default: the path's last part),
    # e.g. a corpus's emotion or speaker labels, for `auden sift`
    keep: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        task = get_task(self.task)  # rejects unknown tasks with the known ones listed
        if task.instruction_field is not None and self.instruction is None:
            raise ValueError(
                f"task '{self.task}' needs an instruction column (--instruction-column)"
            )
        if task.instruction_field is None and self.instruction is not None:
            raise ValueError(f"task '{self.task}' takes no instruction column")

    def columns(self) -> list[str]:
        """The top-level columns this mapping reads, in a stable order."""
        paths = [self.audio, self.target, self.instruction, self.text, self.id]
        paths += [spec.split(":")[0] for spec in self.keep]
        tops = [p.split(".")[0] for p in paths if p]
        return list(dict.fromkeys(tops))

    def check(self, available: list[str], source: Path) -> None:
        missing = [c for c in self.columns() if c not in available]
        if missing:
            raise ValueError(
                f"{source}: no column(s) {missing}; the dataset has columns {available}"
            )


def field_value(row: dict, path: str):
    """The value at a dotted ``path`` of ``row`` (``answers.text.0``); KeyError when absent."""
    value = row
    for key in path.split("."):
        if isinstance(value, dict) and key in value:
            value = value[key]
        elif isinstance(value, (list, tuple)) and key.lstrip("-").isdigit():
            index = int(key)
            if not -len(value) <= index < len(value):
                raise KeyError(f"'{path}': index {index} out of range (length {len(value)})")
            value = value[index]
        else:
            raise KeyError(f"'{path}': no '{key}' in {type(value).__name__}")
    return value


def row_to_cut(
    row: dict,
    row_index: int,
    source: Path,
    mapping: ColumnMapping,
    cut_id_prefix: str,
    sampling_rate: int | None,
    audio_dir: Path | None,
):
    """The cut of one row; its audio goes to ``audio_dir/<id>.flac``, or stays in memory if None.

    Raises KeyError, ValueError or TypeError (bad text) and AudioDecodeError (bad audio),
    each naming the column.
    """
    from lhotse import AudioSource, Recording, SupervisionSegment

    task = get_task(mapping.task)
    target = _text(row, mapping.target)
    custom: dict[str, object] = {}
    text = target if task.target_field == "text" else None
    if task.target_field != "text":
        custom[task.target_field] = target
    if mapping.instruction is not None:
        custom[task.instruction_field] = _text(row, mapping.instruction)
    for spec in mapping.keep:
        column, _, name = spec.partition(":")
        try:
            value = field_value(row, column)
        except KeyError:  # metadata a row lacks is left out, not an error
            continue
        if value is not None and not isinstance(value, (dict, list)):
            custom[name or column.split(".")[-1]] = value
    if mapping.text is not None and text is None:
        text = _text(row, mapping.text)
    row_id = str(field_value(row, mapping.id)) if mapping.id else f"{row_index:08d}"
    cut_id = f"{cut_id_prefix}-{_safe_id(row_id)}"

    base_dir = source if source.is_dir() else source.parent
    samples, sampling_rate = decode_audio(field_value(row, mapping.audio), base_dir, sampling_rate)
    flac = encode_flac(samples, sampling_rate)
    if audio_dir is None:
        recording = Recording.from_bytes(flac, recording_id=cut_id)
    else:
        path = audio_dir / f"{cut_id}.flac"
        with atomic_file(path) as tmp:
            tmp.write_bytes(flac)
        recording = Recording(
            id=cut_id,
            sources=[AudioSource(type="file", channels=[0], source=str(path))],
            sampling_rate=sampling_rate,
            num_samples=len(samples),
            duration=len(samples) / sampling_rate,
        )
    supervision = SupervisionSegment(
        id=cut_id,
        recording_id=cut_id,
        start=0.0,
        duration=recording.duration,
        channel=0,
        text=text,
        language=mapping.language,
        custom=custom or None,
    )
    cut = recording.to_cut()
    cut.supervisions = [supervision]
    return cut


def _text(row: dict, path: str) -> str:
    value = field_value(row, path)
    if value is None:
        raise ValueError(f"column '{path}' is empty")
    if isinstance(value, (list, dict)):
        raise TypeError(
            f"column '{path}' holds a {type(value).__name__}, not text; "
            f"index into it (e.g. '{path}.0')"
        )
    value = str(value).strip()
    if not value:
        raise ValueError(f"column '{path}' is empty")
    return value


def _safe_id(value: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in value)
