#!/usr/bin/env python3
"""Long audio: WER of one long file made of known clips against the same clips one by one.

Test clips with words (a Lhotse recordings + supervisions pair, in manifest order) are joined end to
end until the file reaches ``--seconds``; the exported model transcribes the whole file
(``task="transcribe"``, cut into encoder windows by the pipeline) and each clip alone
(batched). Both are scored against the clips' reference texts joined in order, and against
each other::

    cd egs/mini_en && python ../../benchmarks/long_audio_wer.py --model exp/a3_export \
        --recordings data/manifests/mini_en_recordings_test-unseen.jsonl.gz \
        --supervisions data/manifests/mini_en_supervisions_test-unseen.jsonl.gz
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from lhotse import CutSet, load_manifest

from auden import pipeline
from auden.atomic import atomic_file
from auden.decoding.metrics import ErrorCounts, align, count_errors, normalize_english

SR = 16000


def words_errors(ref: str, hyp: str) -> ErrorCounts:
    return count_errors(align(normalize_english(ref).split(), normalize_english(hyp).split()))


def pick_clips(recordings: Path, supervisions: Path, seconds: float):
    """The first clips of the manifests, in order, whose total reaches ``seconds``."""
    cuts = CutSet.from_manifests(
        recordings=load_manifest(recordings), supervisions=load_manifest(supervisions)
    )
    picked, total = [], 0.0
    for cut in cuts:
        if total >= seconds:
            break
        text = " ".join(s.text for s in cut.supervisions if s.text).strip()
        if not text:  # a sound without words: nothing to transcribe
            continue
        audio = cut.resample(SR).load_audio()[0].astype(np.float32)
        picked.append((cut.id, audio, text))
        total += len(audio) / SR
    if total < seconds:
        raise SystemExit(f"'{supervisions}': its clips last {total:.1f} s, under --seconds")
    return picked


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="an `auden export` folder")
    parser.add_argument("--recordings", type=Path, required=True)
    parser.add_argument("--supervisions", type=Path, required=True)
    parser.add_argument("--seconds", type=float, default=180.0)
    parser.add_argument("--window-s", type=float, help="encoder window (default: 30 s)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--out", type=Path, help="write the figures and texts as JSON here")
    args = parser.parse_args(argv)

    clips = pick_clips(args.recordings, args.supervisions, args.seconds)
    reference = " ".join(text for _, _, text in clips)
    long = np.concatenate([audio for _, audio, _ in clips])
    p = pipeline("audio-text-to-text", model=args.model, window_s=args.window_s)
    # Room for every word of the file: the tokenizer's count of the reference, doubled.
    budget = 2 * len(p.tokenizer(reference)["input_ids"]) + 32

    start = time.perf_counter()
    whole = p({"audio": long, "sampling_rate": SR}, task="transcribe", max_new_tokens=budget)
    whole = whole[0]["generated_text"]
    whole_s = time.perf_counter() - start
    start = time.perf_counter()
    inputs = [{"audio": audio, "sampling_rate": SR} for _, audio, _ in clips]
    each = p(inputs, task="transcribe", batch_size=args.batch_size, max_new_tokens=64)
    each = [r[0]["generated_text"] for r in each]
    each_s = time.perf_counter() - start
    joined = " ".join(each)

    result = {
        "model": str(args.model),
        "clips": len(clips),
        "seconds": round(len(long) / SR, 2),
        "reference_words": len(normalize_english(reference).split()),
        "window_s": p.windowing.window_frames / 100,
        "wer_whole_file": round(words_errors(reference, whole).rate, 2),
        "wer_clips_one_by_one": round(words_errors(reference, joined).rate, 2),
        "wer_whole_vs_one_by_one": round(words_errors(joined, whole).rate, 2),
        "whole_file_wall_s": round(whole_s, 1),
        "clips_one_by_one_wall_s": round(each_s, 1),
        "reference": reference,
        "whole_file": whole,
        "clips_one_by_one": joined,
    }
    summary = {k: v for k, v in result.items() if not isinstance(v, str) or k == "model"}
    print(json.dumps(summary, indent=1))
    if args.out:
        with atomic_file(args.out) as tmp:
            tmp.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
