"""A tiny on-disk Lhotse corpus for tests: real wav files, manifests, precomputed fbank.

Every clip is a real 16 kHz wav written with soundfile; every supervision carries the
fields of every task in :mod:`auden.data.tasks`, so one manifest serves all tasks. Cuts
have 80-bin Lhotse Fbank features stored with ``LilcomChunkyWriter`` (100 frames/s).

Used through the fixtures in ``tests/conftest.py`` (``tiny_corpus``), or directly:

    corpus = make_tiny_corpus(tmp_path / "corpus", num_cuts=16)
    cuts = lhotse.load_manifest(corpus.cuts)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import yaml
from lhotse import (
    CutSet,
    Fbank,
    FbankConfig,
    LilcomChunkyWriter,
    Recording,
    RecordingSet,
    SupervisionSegment,
    SupervisionSet,
)

SAMPLING_RATE = 16000
WORDS = ["hello", "world", "audio", "model", "tiny", "speech", "test", "data", "cat", "dog"]
TASK_PROMPTS = {
    "transcribe": ["Transcribe the audio.", "Write down what is said."],
    "describe": ["Describe the sound."],
    "continue": ["Continue the conversation."],
    "answer": ["Answer the question."],
}


@dataclass(frozen=True)
class TinyCorpus:
    """Paths of a corpus made by :func:`make_tiny_corpus`."""

    root: Path
    cuts: Path  # cuts with precomputed fbank (jsonl.gz)
    recordings: Path
    supervisions: Path
    train_data_config: Path  # yaml list: transcribe (weight 2) + describe (weight 1)
    valid_data_config: Path  # yaml list: transcribe on the same cuts
    prompt_files: dict[str, Path]  # task -> prompt file
    cut_ids: list[str]


def _sentence(rng: np.random.Generator, n: int) -> str:
    return " ".join(rng.choice(WORDS, size=n))


def _write_audio(path: Path, duration: float, freq: float, rng: np.random.Generator) -> None:
    t = np.arange(int(duration * SAMPLING_RATE)) / SAMPLING_RATE
    samples = 0.3 * np.sin(2 * math.pi * freq * t) + 0.05 * rng.standard_normal(t.shape)
    sf.write(str(path), samples.astype(np.float32), SAMPLING_RATE)


# Recordings that cannot give features, by cut id: what each one is.
BAD_RECORDINGS = {
    "emptied": "0-byte file",
    "five_ms": "5 ms clip",
    "gone": "missing file",
    "inf": "Inf sample",
    "nan": "NaN samples",
    "notaudio": "text file named .wav",
}


def write_bad_recordings(folder: Path) -> tuple[Path, Path]:
    """Recordings + supervisions manifests of ``good0``, the :data:`BAD_RECORDINGS` and
    ``good1``; each bad file is spoiled after its manifest entry was made from a good one,
    as when files change after ``prepare.sh`` listed them."""
    rng = np.random.default_rng(1)
    folder.mkdir(parents=True, exist_ok=True)
    recs, sups = [], []
    for name in ["good0", *BAD_RECORDINGS, "good1"]:
        wav = folder / f"{name}.wav"
        samples = (0.1 * rng.standard_normal(SAMPLING_RATE)).astype(np.float32)
        samples[: 4 if name == "inf" else 0] = np.inf
        samples[4000 : 4100 if name == "nan" else 4000] = np.nan
        sf.write(wav, samples[: 80 if name == "five_ms" else None], SAMPLING_RATE, subtype="FLOAT")
        rec = Recording.from_file(wav, recording_id=name)
        recs.append(rec)
        sups.append(SupervisionSegment(name, name, 0.0, rec.duration, text=name))
    (folder / "emptied.wav").write_bytes(b"")
    (folder / "notaudio.wav").write_text("not audio\n")
    (folder / "gone.wav").unlink()
    rec_path, sup_path = folder / "bad_recs.jsonl.gz", folder / "bad_sups.jsonl.gz"
    RecordingSet.from_recordings(recs).to_file(rec_path)
    SupervisionSet.from_segments(sups).to_file(sup_path)
    return rec_path, sup_path


def write_prompt_files(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    for task, prompts in TASK_PROMPTS.items():
        files[task] = folder / f"{task}.txt"
        files[task].write_text("\n".join(prompts) + "\n")
    return files


def write_data_config(path: Path, entries: list[dict]) -> Path:
    path.write_text(yaml.safe_dump(entries, sort_keys=False))
    return path


def make_tiny_corpus(
    root: str | Path, num_cuts: int = 24, seed: int = 0, prefix: str = "tiny"
) -> TinyCorpus:
    """Write ``num_cuts`` clips of 0.6-2.0 s with manifests, fbank and data configs."""
    root = Path(root)
    (root / "wav").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    recordings, supervisions = [], []
    for i in range(num_cuts):
        rec_id = f"{prefix}-{i:04d}"
        duration = round(float(rng.uniform(0.6, 2.0)), 2)
        wav = root / "wav" / f"{rec_id}.wav"
        _write_audio(wav, duration, freq=200.0 + 40 * i, rng=rng)
        recording = Recording.from_file(wav, recording_id=rec_id)
        recordings.append(recording)
        supervisions.append(
            SupervisionSegment(
                id=rec_id,
                recording_id=rec_id,
                start=0.0,
                duration=recording.duration,
                channel=0,
                text=_sentence(rng, int(rng.integers(1, 4))),
                language="en",
                speaker=f"spk{i % 3}",
                custom={
                    "reply": _sentence(rng, 2),
                    "description": f"a tone of {200 + 40 * i} hertz",
                    "answer": _sentence(rng, 1),
                    "instruction": "Say something about the clip.",
                    "response": _sentence(rng, 2),
                    # an utterance label for label heads; the first cut has none
                    **({"pitch": "low" if i < num_cuts // 2 else "high"} if i else {}),
                },
            )
        )
    recording_set = RecordingSet.from_recordings(recordings)
    supervision_set = SupervisionSet.from_segments(supervisions)
    rec_path = root / f"{prefix}_recordings.jsonl.gz"
    sup_path = root / f"{prefix}_supervisions.jsonl.gz"
    recording_set.to_file(rec_path)
    supervision_set.to_file(sup_path)

    cuts = CutSet.from_manifests(recordings=recording_set, supervisions=supervision_set)
    cuts = cuts.compute_and_store_features(
        extractor=Fbank(FbankConfig(num_mel_bins=80)),
        storage_path=root / "fbank",
        storage_type=LilcomChunkyWriter,
        num_jobs=1,
        progress_bar=False,
    )
    cuts_path = root / f"{prefix}_cuts.jsonl.gz"
    cuts.to_file(cuts_path)

    prompt_files = write_prompt_files(root / "prompts")
    train_cfg = write_data_config(
        root / "train_data.yaml",
        [
            {"manifest": str(cuts_path), "task": "transcribe", "weight": 2.0},
            {
                "manifest": str(cuts_path),
                "task": "describe",
                "weight": 1.0,
                "prompt_file": str(prompt_files["describe"]),
            },
        ],
    )
    valid_cfg = write_data_config(
        root / "valid_data.yaml", [{"manifest": str(cuts_path), "task": "transcribe"}]
    )
    return TinyCorpus(
        root=root,
        cuts=cuts_path,
        recordings=rec_path,
        supervisions=sup_path,
        train_data_config=train_cfg,
        valid_data_config=valid_cfg,
        prompt_files=prompt_files,
        cut_ids=[c.id for c in cuts],
    )
