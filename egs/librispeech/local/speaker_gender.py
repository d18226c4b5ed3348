#!/usr/bin/env python3
"""Write each LibriSpeech speaker's gender into the supervisions, for CTC label heads.

LibriSpeech/SPEAKERS.TXT gives every reader's sex (``14 | F | train-clean-360 | ...``);
``supervision.custom["gender"]`` becomes ``female`` or ``male``, the field that
``model.labels=[{field: gender, classes: [male, female]}]`` reads (auden/models/heads.py)::

    python local/speaker_gender.py --speakers /corpora/LibriSpeech/SPEAKERS.TXT \
        data/manifests/librispeech_supervisions_train-clean-100.jsonl.gz ...
"""

from __future__ import annotations

import argparse
import gzip
import json
from pathlib import Path

from lhotse import load_manifest

from auden.atomic import atomic_file

GENDERS = {"F": "female", "M": "male"}


def read_speakers(path: Path) -> dict[str, str]:
    """Speaker id -> ``female`` | ``male``; comment lines start with ``;``."""
    genders = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith(";"):
            continue
        fields = [f.strip() for f in line.split("|")]
        if len(fields) < 2 or fields[1] not in GENDERS:
            raise ValueError(f"{path}:{number}: expected 'ID | F or M | ...', got {line!r}")
        genders[fields[0]] = GENDERS[fields[1]]
    return genders


def add_gender(manifest: Path, genders: dict[str, str], speakers_file: Path) -> int:
    """Rewrite ``manifest`` (atomically) with ``custom.gender`` on every supervision."""
    rows = []
    for sup in load_manifest(manifest):
        if sup.speaker not in genders:
            raise KeyError(f"{manifest}: supervision '{sup.id}' has speaker '{sup.speaker}', "
                           f"who is not in {speakers_file}")
        sup.custom = {**(sup.custom or {}), "gender": genders[sup.speaker]}
        rows.append(json.dumps(sup.to_dict(), ensure_ascii=False))
    with atomic_file(manifest) as tmp, gzip.open(tmp, "wt", encoding="utf-8") as f:
        f.write("\n".join(rows) + "\n")
    return len(rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--speakers", type=Path, required=True, help="LibriSpeech/SPEAKERS.TXT")
    parser.add_argument("manifests", nargs="+", type=Path, help="supervision manifests")
    args = parser.parse_args(argv)
    genders = read_speakers(args.speakers)
    for manifest in args.manifests:
        print(f"{manifest}: gender on {add_gender(manifest, genders, args.speakers)} supervisions")


if __name__ == "__main__":
    main()
