#!/usr/bin/env python3
"""Fbank throughput of every backend auden offers, on the same clips, and how far apart they are.

    python benchmarks/bench_features.py [--clips 60]

Throughput is audio seconds per CPU second of this process on one torch thread (CPU
time, so a loaded machine skews it less than wall time). The clips are synthetic speech-like
signals (a gliding harmonic voice, syllable-rate envelope, background noise) of 2-15 s at
16 kHz, the same for every backend. "Largest difference" is the largest absolute
difference of any log-mel value from the reference of the same kind of features
(Lhotse ``Fbank`` per clip for Kaldi fbank, transformers' ``WhisperFeatureExtractor``
for Whisper's log-mel), over the frames both produce. auden's default for Kaldi fbank is
``auden.audio.fbank.FastFbank`` (Lhotse's ``Fbank`` with a faster ``extract``), what
``prepare.sh`` and on-the-fly features use. The anchor is kaldifeat, measured in
the same run when it is installed (``make setup-kaldifeat``), else the figure measured on
this machine before (3100x per thread).
"""

from __future__ import annotations

import importlib.util

import numpy as np
import torch
from benchlib import Goal, Recorder, bench_parser, parse_bench_args, repeat, top_ops
from lhotse import Fbank

from auden.audio.features import build_feature_extractor

SR = 16000
KALDIFEAT_PER_THREAD = 3100.0  # x real time, measured here before auden existed (issue 14)


def make_clips(num: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    clips = []
    for _ in range(num):
        seconds = rng.uniform(2.0, 15.0)
        t = np.arange(int(seconds * SR)) / SR
        f0 = rng.uniform(90, 220) * (1 + 0.15 * np.sin(2 * np.pi * rng.uniform(0.2, 1.0) * t))
        phase = 2 * np.pi * np.cumsum(f0) / SR
        voice = sum(np.sin(k * phase) / k for k in range(1, 12))
        envelope = 0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(3, 6) * t) ** 2
        noise = rng.normal(0, 0.02, t.shape)
        clips.append((0.1 * voice * envelope + noise).astype(np.float32))
    return clips


def lhotse_per_clip(kind: str):
    extractor = build_feature_extractor(kind, 80)
    return lambda clips: [np.asarray(extractor.extract(c, SR)) for c in clips]


def lhotse_fbank(clips: list[np.ndarray]) -> list[np.ndarray]:
    extractor = Fbank()
    return [extractor.extract(c, SR) for c in clips]


def lhotse_batch(clips: list[np.ndarray]) -> list[np.ndarray]:
    """Lhotse's own batch path (what its ``OnTheFlyFeatures`` calls)."""
    return [np.asarray(f) for f in Fbank().extract_batch(clips, sampling_rate=SR)]


def kaldi_options(opts):
    """Lhotse ``Fbank``'s settings on kaldi-native-fbank's or kaldifeat's (same) options."""
    opts.frame_opts.dither = 0.0
    opts.frame_opts.snip_edges = False
    opts.frame_opts.samp_freq = SR
    opts.mel_opts.num_bins = 80
    opts.mel_opts.high_freq = -400
    opts.energy_floor = 1e-10
    return opts


def knf_fbank():
    import kaldi_native_fbank as knf

    opts = kaldi_options(knf.FbankOptions())

    def run(clips: list[np.ndarray]) -> list[np.ndarray]:
        out = []
        for c in clips:
            fbank = knf.OnlineFbank(opts)
            fbank.accept_waveform(SR, c)
            fbank.input_finished()
            out.append(np.array([fbank.get_frame(i) for i in range(fbank.num_frames_ready)]))
        return out

    return run


def kaldifeat_fbank():
    import kaldifeat

    opts = kaldi_options(kaldifeat.FbankOptions())
    fbank = kaldifeat.Fbank(opts)
    return lambda clips: [fbank(torch.from_numpy(c)).numpy() for c in clips]


def hf_whisper():
    from transformers import WhisperFeatureExtractor

    extractor = WhisperFeatureExtractor(feature_size=80)

    def run(clips: list[np.ndarray]) -> list[np.ndarray]:
        out = []
        for c in clips:
            feats = extractor(c, sampling_rate=SR, padding=False, return_tensors="np")
            out.append(feats["input_features"][0].T)
        return out

    return run


def max_difference(a: list[np.ndarray], b: list[np.ndarray], skip_last: int = 0) -> float:
    """Largest absolute difference over the frames both have (less the last ``skip_last``)."""
    worst = 0.0
    for x, y in zip(a, b):
        n = min(len(x), len(y)) - skip_last
        if n > 0:
            worst = max(worst, float(np.abs(x[:n] - y[:n]).max()))
    return worst


def main(argv: list[str] | None = None) -> None:
    parser = bench_parser(__doc__, profile="where the default path's time goes")
    parser.add_argument("--clips", type=int, default=60)
    args = parse_bench_args(parser, argv)
    num_clips = 3 if args.quick else args.clips
    repeats = args.repeats or (1 if args.quick else 3)
    torch.set_num_threads(1)
    clips = make_clips(num_clips)
    audio_s = sum(len(c) for c in clips) / SR

    default = "auden FastFbank per clip (default)"
    backends: dict[str, tuple[str, object]] = {}  # name -> (feature kind, run(clips))
    has_kaldifeat = importlib.util.find_spec("kaldifeat") is not None
    if has_kaldifeat:
        backends["kaldifeat"] = ("fbank", kaldifeat_fbank())
    backends[default] = ("fbank", lhotse_per_clip("fbank"))
    backends["Lhotse Fbank per clip"] = ("fbank", lhotse_fbank)
    backends["Lhotse Fbank extract_batch"] = ("fbank", lhotse_batch)
    backends["kaldi-native-fbank"] = ("fbank", knf_fbank())
    backends["transformers WhisperFeatureExtractor"] = ("whisper", hf_whisper())
    backends["Lhotse WhisperFbank per clip (auden default)"] = (
        "whisper",
        lhotse_per_clip("whisper_fbank"),
    )
    reference = {
        "fbank": "Lhotse Fbank per clip",
        "whisper": "transformers WhisperFeatureExtractor",
    }

    title = "Features: fbank throughput per thread by backend"
    with Recorder("features", title, args, order=10) as rec:
        outputs = {name: run(clips) for name, (_, run) in backends.items()}
        anchor = "kaldifeat" if has_kaldifeat else ""
        for name, (_, run) in backends.items():
            times = repeat(lambda run=run: run(clips), repeats, warmup=0)
            rec.figure(
                name,
                "x real time (CPU s)",
                [audio_s / t for t in times],
                anchor=anchor if name != anchor else "",
                anchor_value=None if anchor else KALDIFEAT_PER_THREAD,
                goal=Goal(">=", 3000.0) if name == default else None,
            )
        for name, (kind, _) in backends.items():
            ref = reference[kind]
            if name == ref:
                continue
            diff = max_difference(outputs[name], outputs[ref])
            inner = max_difference(outputs[name], outputs[ref], skip_last=2)
            rec.details[f"max_abs_diff[{name}]"] = diff
            rec.details[f"max_abs_diff_but_last_two_frames[{name}]"] = inner
            batch = name == "Lhotse Fbank extract_batch"
            rec.figure(
                f"{name}: largest difference from {ref}"
                + (" (without each clip's last two frames)" if batch else ""),
                "log-mel",
                [inner if batch else diff],
                goal=Goal("<=", 1e-3),
                note=(
                    f"{diff:.1e} with them: Lhotse's batch path zero-pads every clip to the "
                    "longest before framing, so a shorter clip's last two frames (the ones "
                    "whose 25 ms window passes its end) see zeros where the clip alone sees "
                    "its reflected end (snip_edges=false); every other frame is compared"
                    if batch
                    else ""
                ),
            )
        if args.profile:
            run = backends[default][1]
            ops = top_ops(lambda: run(clips))
            rec.note(
                "where the default path's CPU time goes (torch.profiler, self time): "
                + ", ".join(ops)
            )
            rec.details["profile_default_path"] = ops
        rec.details["clips"] = num_clips
        rec.details["audio_seconds"] = round(audio_s, 1)
        rec.note(
            f"{num_clips} clips, {audio_s:.0f} s of audio; goal: the default path >= 3000x "
            "per thread, and <= 1e-3 between backends that claim the same features"
        )
        if not has_kaldifeat:
            rec.note("kaldifeat is not installed: its ratio is against the fixed 3100x anchor")


if __name__ == "__main__":
    main()
