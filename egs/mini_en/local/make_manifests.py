#!/usr/bin/env python3
"""Stage 1 of mini_en: Lhotse manifests from the synthesised audio and its plan.

Writes ``<out-dir>/mini_en_{recordings,supervisions}_<split>.jsonl.gz``. Each
supervision covers its whole recording; ``text`` is the spoken words and ``custom``
holds every other target and attribute (see corpus.py for the table).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from corpus import SPLITS
from instruct import make_instruction
from lhotse import Recording, RecordingSet, SupervisionSegment, SupervisionSet

log = logging.getLogger("make_manifests")

# Plan fields that become supervision.custom (the rest are synthesis settings).
CUSTOM_FIELDS = ("kind", "description", "voice", "gender", "speed", "pitch", "rate_wpm",
                 "pitch_value", "reply", "answer", "event")


def supervision_for(utt: dict, recording: Recording, split: str) -> SupervisionSegment:
    custom = {k: utt[k] for k in CUSTOM_FIELDS if utt.get(k) is not None}
    instruct = make_instruction(utt, split)
    if instruct is not None:
        custom["instruction"], custom["response"] = instruct
    return SupervisionSegment(
        id=utt["id"], recording_id=recording.id, start=0.0, duration=recording.duration,
        channel=0, text=utt["text"], language="English", speaker=utt.get("voice") or "sox",
        gender={"male": "m", "female": "f"}.get(utt.get("gender")), custom=custom,
    )


def make_split(plan_file: Path, out_dir: Path, split: str) -> tuple[Path, Path]:
    if not plan_file.is_file():
        raise FileNotFoundError(f"'{plan_file}' does not exist: run stage 0 first")
    recordings, supervisions = [], []
    with plan_file.open() as f:
        for line_no, line in enumerate(f, 1):
            utt = json.loads(line)
            wav = Path(utt["wav"])
            if not wav.is_file():
                raise FileNotFoundError(f"{plan_file}:{line_no}: audio '{wav}' does not exist")
            rec = Recording.from_file(wav, recording_id=utt["id"])
            recordings.append(rec)
            supervisions.append(supervision_for(utt, rec, split))
    paths = (out_dir / f"mini_en_recordings_{split}.jsonl.gz",
             out_dir / f"mini_en_supervisions_{split}.jsonl.gz")
    for manifest, path in zip((RecordingSet.from_recordings(recordings),
                               SupervisionSet.from_segments(supervisions)), paths):
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}.jsonl.gz")
        manifest.to_file(tmp)
        os.replace(tmp, path)
    log.info("%s: %d recordings, %.1f minutes", split, len(recordings),
             sum(r.duration for r in recordings) / 60)
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--local-dir", type=Path, required=True, help="stage 0's plans")
    parser.add_argument("--out-dir", type=Path, required=True, help="manifest folder")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    try:
        for split in SPLITS:
            make_split(args.local_dir / f"{split}.jsonl", args.out_dir, split)
    except FileNotFoundError as err:
        log.error("%s", err)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
