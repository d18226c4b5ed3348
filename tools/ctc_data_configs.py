#!/usr/bin/env python3
"""Write the transcribe-only data configs that CTC pretraining reads (run.sh stage 1).

A recipe's ``train_data.yaml`` may mix tasks (answer, describe...) whose targets are not
the words spoken; CTC learns from transcripts only, so stage 1 reads its own copies that
keep the ``transcribe`` entries as they are::

    python tools/ctc_data_configs.py configs/train_data.yaml configs/valid_data.yaml \
        configs/test_data.yaml
    # -> configs/ctc_train_data.yaml, configs/ctc_valid_data.yaml, configs/ctc_test_data.yaml
"""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from auden.atomic import atomic_file


def transcribe_entries(config: Path) -> list[dict]:
    """The ``task: transcribe`` entries of a data config; an error names a config without any."""
    entries = yaml.safe_load(config.read_text(encoding="utf-8"))
    if not isinstance(entries, list):
        raise ValueError(f"data config '{config}' is not a yaml list")
    kept = [e for e in entries if isinstance(e, dict) and e.get("task") == "transcribe"]
    if not kept:
        raise ValueError(f"data config '{config}' has no 'task: transcribe' entry for CTC")
    return kept


def write_ctc_config(config: Path) -> Path:
    out = config.with_name(f"ctc_{config.name}")
    lines = [f"# Written by tools/ctc_data_configs.py: the transcribe entries of {config.name}."]
    lines += [
        "- " + yaml.safe_dump(e, default_flow_style=True, allow_unicode=True, width=1000).strip()
        for e in transcribe_entries(config)
    ]
    with atomic_file(out) as tmp:
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("configs", nargs="+", type=Path, help="data configs to copy from")
    for config in parser.parse_args(argv).configs:
        if not config.is_file():
            parser.error(f"data config '{config}' not found")
        print(f"wrote {write_ctc_config(config)}")


if __name__ == "__main__":
    main()
