"""SIFT data for a corpus: a cut manifest in, an ``instruct`` manifest and its data config out.

For every input cut and every mode, the text LLM writes a target from the cut's
transcript (and, in the voice-aware modes, its normalised metadata); each kept target
becomes one output cut ``<cut id>-<mode>`` over the same audio, whose first supervision
carries ``custom["instruction"]`` and ``custom["response"]`` (what the ``instruct`` task
reads), ``custom["sift_mode"]`` and ``custom["sift_metadata"]`` (the fields the LLM saw).

Work is split into parts of ``part_size`` input cuts. A part is finished when its stats
file is written, after its cuts (each under a temporary name, then renamed); a re-run
skips finished parts and refuses a folder that holds a different job. Every cut samples
from its own seed, so a re-run, or a resumed run, writes the same manifest, byte for byte.

    result = make_sift("data/fbank/cv_cuts_train.jsonl.gz",
                       "data/sift/cv_sift_cuts_train.jsonl.gz", "models/Qwen2.5-3B-Instruct")
    result.dropped  # {"too_long": 12, "leaked_tags": 3, ...}
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from itertools import islice
from pathlib import Path

import yaml
from lhotse import load_manifest_lazy
from lhotse.cut import Cut
from lhotse.utils import fastcopy
from tqdm.auto import tqdm

from auden.atomic import atomic_file
from auden.data.job_folder import check_same_job, write_text_atomically
from auden.data.prompts import stable_seed
from auden.data.sift.generate import ChatWriter, Request
from auden.data.sift.metadata import MetadataMapping, MetadataNormalizer
from auden.data.sift.modes import get_mode
from auden.data.sift.options import SamplingConfig, SiftOptions
from auden.data.sift.screen import screen

logger = logging.getLogger(__name__)


@dataclass
class SiftResult:
    manifest: Path
    data_config: Path | None
    num_input_cuts: int
    kept: dict[str, int] = field(default_factory=dict)  # mode -> output cuts
    dropped: dict[str, int] = field(default_factory=dict)  # reason -> count
    unmapped: dict[str, int] = field(default_factory=dict)  # "emotion=xyz" -> count
    llm_seconds: float = 0.0  # time spent in the parts done by this call


def make_sift(
    cuts: str | Path,
    out: str | Path,
    llm: str | Path,
    sampling: SamplingConfig | None = None,
    options: SiftOptions | None = None,
    mapping: MetadataMapping | None = None,
    data_config: str | Path | None = None,
    weight: float = 1.0,
    progress: bool = True,
) -> SiftResult:
    """Write the SIFT ``instruct`` manifest ``out`` (jsonl.gz) from the cut manifest ``cuts``."""
    cuts, out, llm = Path(cuts), Path(out), Path(llm)
    sampling = sampling or SamplingConfig()
    options = options or SiftOptions()
    mapping = mapping or MetadataMapping()
    if not cuts.is_file():
        raise FileNotFoundError(f"cut manifest '{cuts}' not found")
    if not out.name.endswith(".jsonl.gz"):
        raise ValueError(f"output '{out}' must be a .jsonl.gz cut manifest")
    work = _work_dir(out)
    work.mkdir(parents=True, exist_ok=True)
    num_cuts = _count_lines(cuts)
    _check_same_job(work / "job.json", cuts, llm, sampling, options, mapping, num_cuts)

    parts = list(range((num_cuts + options.part_size - 1) // options.part_size))
    todo = [p for p in parts if not _stats_file(work, p).is_file()]
    logger.info(
        "%s: %d cuts, modes %s, %d parts of %d, %d to do -> %s",
        cuts,
        num_cuts,
        ",".join(options.modes),
        len(parts),
        options.part_size,
        len(todo),
        out,
    )
    seconds = 0.0
    if todo:
        writer = ChatWriter.from_pretrained(llm, sampling, options.device, options.dtype)
        remaining = sum(
            min(options.part_size, num_cuts - p * options.part_size) for p in todo
        ) * len(options.modes)
        source = iter(load_manifest_lazy(cuts))
        with tqdm(
            total=remaining, desc=f"sift {out.name}", unit="target", disable=not progress
        ) as bar:
            for part in parts:
                part_cuts = list(islice(source, options.part_size))
                if part not in todo:
                    continue
                start = time.perf_counter()
                _make_part(part_cuts, writer, options, mapping, work, part, bar)
                seconds += time.perf_counter() - start

    result = SiftResult(
        manifest=out, data_config=None, num_input_cuts=num_cuts, llm_seconds=seconds
    )
    kept, dropped, unmapped = Counter(), Counter(), Counter()
    for part in parts:
        stats = json.loads(_stats_file(work, part).read_text())
        kept.update(stats["kept"])
        dropped.update(stats["dropped"])
        unmapped.update(stats["unmapped"])
    result.kept = {m: kept[m] for m in options.modes}
    result.dropped = dict(sorted(dropped.items()))
    result.unmapped = dict(sorted(unmapped.items()))
    _join_parts(work, parts, out)
    if data_config is not None:
        result.data_config = write_data_config(Path(data_config), out, weight)
    logger.info(
        "%s: %d cuts in; kept %s; dropped %s%s",
        out,
        num_cuts,
        result.kept,
        result.dropped or "nothing",
        f"; unmapped metadata values {result.unmapped}" if result.unmapped else "",
    )
    return result


def write_data_config(path: Path, manifest: Path, weight: float = 1.0) -> Path:
    """A one-entry data config for ``manifest`` as an ``instruct`` source (the path relative to it)."""
    entry = {
        "name": manifest.name.removesuffix(".jsonl.gz"),
        "manifest": os.path.relpath(manifest.resolve(), path.parent.resolve()),
        "task": "instruct",
        "weight": weight,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    header = "# Written by `auden sift`: LLM-made instruct targets (custom instruction/response).\n"
    write_text_atomically(path, header + yaml.safe_dump([entry], sort_keys=False))
    return path


def _make_part(
    cuts: list[Cut],
    writer: ChatWriter,
    options: SiftOptions,
    mapping: MetadataMapping,
    work: Path,
    part: int,
    bar,
) -> None:
    normalizer = MetadataNormalizer(mapping)
    metas = [normalizer(cut) for cut in cuts]
    texts = [(cut.supervisions[0].text or "").strip() if cut.supervisions else "" for cut in cuts]
    # outcome[i][mode]: the kept response, or ("drop", reason)
    outcome: list[dict[str, str | tuple[str, str]]] = [{} for _ in cuts]
    for name in options.modes:
        mode = get_mode(name)
        pending: list[tuple[int, Request]] = []
        for i, cut in enumerate(cuts):
            if not texts[i]:
                outcome[i][name] = ("drop", "no_text")
            elif mode.uses_metadata and not metas[i]:
                outcome[i][name] = ("drop", "no_metadata")
            else:
                seed = stable_seed(options.seed, name, cut.id)
                user = mode.llm_input(texts[i], metas[i])
                pending.append((i, Request(mode.system_prompt, user, seed, mode.assistant_prefix)))
        bar.update(len(cuts) - len(pending))
        # Similar lengths batch together (less padding); the order is fixed by the input.
        pending.sort(key=lambda item: len(item[1].user))
        for start in range(0, len(pending), options.batch_size):
            batch = pending[start : start + options.batch_size]
            for (i, _), gen in zip(batch, writer.generate([r for _, r in batch])):
                reason = screen(
                    gen.text,
                    finished=gen.finished,
                    transcript=texts[i],
                    max_words=options.max_words,
                    prefix=mode.assistant_prefix,
                    may_repeat_transcript=mode.may_repeat_transcript,
                )
                outcome[i][name] = ("drop", reason) if reason else gen.text
            bar.update(len(batch))

    kept, dropped = Counter(), Counter()
    lines = []
    for i, cut in enumerate(cuts):
        for name in options.modes:
            result = outcome[i][name]
            if isinstance(result, tuple):
                dropped[result[1]] += 1
                continue
            kept[name] += 1
            instruction = get_mode(name).instruction(cut.id, options.seed)
            lines.append(json.dumps(_sift_cut(cut, name, instruction, result, metas[i]).to_dict()))
    cuts_file = _cuts_file(work, part)
    write_text_atomically(cuts_file, "".join(line + "\n" for line in lines))
    stats = {"kept": kept, "dropped": dropped, "unmapped": normalizer.unmapped}
    write_text_atomically(_stats_file(work, part), json.dumps(stats, sort_keys=True))


def _sift_cut(cut: Cut, mode: str, instruction: str, response: str, meta: dict[str, str]) -> Cut:
    sup = cut.supervisions[0]
    custom = {
        **(sup.custom or {}),
        "instruction": instruction,
        "response": response,
        "sift_mode": mode,
        "sift_metadata": meta,
    }
    new_id = f"{cut.id}-{mode}"
    first = fastcopy(sup, id=f"{sup.id}-{mode}", custom=custom)
    return fastcopy(cut, id=new_id, supervisions=[first, *cut.supervisions[1:]])


def _check_same_job(job_file: Path, cuts, llm, sampling, options, mapping, num_cuts) -> None:
    """Refuse to resume into a folder that holds a different job."""
    job = {
        "cuts": str(cuts.resolve()),
        "num_cuts": num_cuts,
        "llm": str(llm.resolve()),
        "sampling": asdict(sampling),
        "options": {k: v for k, v in asdict(options).items() if k not in ("device",)},
        "mapping": {k: asdict(v) for k, v in mapping.sources.items()},
    }
    check_same_job(job_file, job, "SIFT job", "remove that folder or write to another output")


def _join_parts(work: Path, parts: list[int], out: Path) -> None:
    """The parts' cuts, in order, as one gzip file without a timestamp (re-runs are identical)."""
    with atomic_file(out) as tmp, open(tmp, "wb") as raw:
        # No name (the temporary one) and no time in the header: the same cuts, the same bytes.
        with gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=0) as gz:
            for part in parts:
                gz.write(_cuts_file(work, part).read_bytes())


def _work_dir(out: Path) -> Path:
    return out.with_name(out.name.removesuffix(".jsonl.gz") + ".parts")


def _cuts_file(work: Path, part: int) -> Path:
    return work / f"cuts.{part:06d}.jsonl"


def _stats_file(work: Path, part: int) -> Path:
    # Written last: its presence marks the part finished.
    return work / f"stats.{part:06d}.json"


def _count_lines(path: Path) -> int:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        return sum(1 for line in f if line.strip())
