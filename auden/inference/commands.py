"""What `auden transcribe` and `auden chat` do, given their parsed arguments.

``transcribe`` decodes many files in length-sorted batches and writes ``path<TAB>text``
(or JSON lines) as each batch finishes, so a long list shows results early; ``chat``
streams one reply about one or more files to the terminal.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from pathlib import Path
from typing import TextIO

from tqdm import tqdm

from auden.inference.pipeline import AudioTextToTextPipeline

logger = logging.getLogger(__name__)


def read_list(path: str | Path) -> list[str]:
    """Paths from a file, one a line (blank lines and ``#`` comments skipped)."""
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"--list file '{file}' not found")
    lines = [line.strip() for line in file.read_text().splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def one_line(text: str) -> str:
    """A reply on one TSV line: tabs and line breaks become spaces (--jsonl keeps them)."""
    return re.sub(r"[\t\r\n]+", " ", text)


def transcribe_files(
    p: AudioTextToTextPipeline,
    files: list[str],
    *,
    prompt: str | None,
    task: str | None,
    batch_size: int,
    jsonl: bool,
    out: TextIO | None = None,
    **generate_kwargs,
) -> int:
    """Write one line per file as its batch finishes (within a batch, in input order)."""
    out = out or sys.stdout
    p.tasks.prompt(task)  # an unknown task fails before any audio is read
    bar = None
    # Files are read a chunk at a time before that chunk is decoded: a bad file stops the
    # run with one line naming it (exit 2), and memory holds one chunk of audio, not all.
    chunk = max(256, 16 * batch_size)
    for start in range(0, len(files), chunk):
        paths = files[start : start + chunk]
        convs = [
            p.conversation({"audio": f, "text": prompt} if prompt else f, name=f"'{f}'", task=task)
            for f in paths
        ]
        if bar is None:  # only once audio was read: a bad first file prints one line
            bar = tqdm(total=len(files), desc="transcribing", unit="file", file=sys.stderr)
        p.generate(
            convs,
            batch_size=batch_size,
            on_batch=_writer(paths, out, jsonl, bar),
            **generate_kwargs,
        )
    if bar is not None:
        bar.close()
    return 0


def _writer(paths: list[str], out: TextIO, jsonl: bool, bar: tqdm):
    def write(indices: list[int], replies: list[str]) -> None:
        for i, reply in sorted(zip(indices, replies)):  # a batch in input order
            if jsonl:
                out.write(json.dumps({"path": paths[i], "text": reply}, ensure_ascii=False) + "\n")
            else:
                out.write(f"{paths[i]}\t{one_line(reply)}\n")
        out.flush()
        bar.update(len(indices))

    return write


def chat(
    p: AudioTextToTextPipeline,
    files: list[str],
    *,
    prompt: str | None,
    task: str | None,
    out: TextIO | None = None,
    **generate_kwargs,
) -> int:
    """Stream the reply about all ``files`` (one conversation, one clip each)."""
    out = out or sys.stdout
    content = [{"type": "audio", "path": f} for f in files]
    if prompt:
        content.append({"type": "text", "text": prompt})
    conv = p.conversation([{"role": "user", "content": content}], name="chat", task=task)
    for piece in p.stream(conv, **generate_kwargs):
        out.write(piece)
        out.flush()
    out.write("\n")
    return 0
