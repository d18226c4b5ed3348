#!/usr/bin/env python3
"""Encoder forward throughput and achieved GFLOP/s, against this machine's matmul peak.

    python benchmarks/bench_encoders.py [--zipformer xs tiny small medium] [--whisper tiny base]

Every encoder gets the same audio: ``--batch-size`` clips of ``--seconds`` s (100 Hz,
80-bin features, random values: speed does not depend on them), forward only, eval mode,
no autograd, one torch thread. FLOPs are counted once per encoder with
``torch.utils.flop_counter.FlopCounterMode`` (matmuls, convolutions, attention; not the
elementwise ops), so "achieved GFLOP/s" is counted FLOPs over the median wall time and
the ratio is its fraction of the peak: a float32 ``--matmul-size`` square matmul on one
thread, measured in the same run. Whisper runs on the clip's own length (auden's
default); ``whisper-<size> pad 30 s`` also shows what padding every clip to 30 s costs.
"""

from __future__ import annotations

import torch
from benchlib import Recorder, bench_parser, repeat
from torch.utils.flop_counter import FlopCounterMode

from auden.models.encoders.whisper import WhisperEncoder
from auden.models.encoders.zipformer import ZipformerEncoder

PEAK = "matmul peak (1 thread)"


def matmul_gflops(n: int, repeats: int, group: int = 5) -> list[float]:
    """The best of each group of ``group`` timed matmuls: a peak, not the average under load."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    times = repeat(lambda: torch.mm(a, b), repeats * group, warmup=2)
    best = [min(times[i : i + group]) for i in range(0, len(times), group)]
    return [2 * n**3 / t / 1e9 for t in best]


def count_flops(encoder: torch.nn.Module, features: torch.Tensor, lens: torch.Tensor) -> int:
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        encoder(features, lens)
    return counter.get_total_flops()


def main(argv: list[str] | None = None) -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--zipformer", nargs="*", default=["xs", "tiny", "small", "medium"])
    parser.add_argument("--whisper", nargs="*", default=["tiny", "base"])
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--matmul-size", type=int, default=1024)
    args = parser.parse_args(argv)
    if args.quick:
        args.zipformer, args.whisper, args.seconds, args.batch_size = ["xs"], ["tiny-test"], 2.0, 1
    repeats = args.repeats or 2  # full runs' spread was within 5% at 3 (issue 14)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    frames = int(args.seconds * 100)
    features = torch.randn(args.batch_size, frames, 80)
    lens = torch.full((args.batch_size,), frames, dtype=torch.int64)
    audio_s = args.batch_size * args.seconds

    encoders = [(f"zipformer-{p}", lambda p=p: ZipformerEncoder(p)) for p in args.zipformer]
    for size in args.whisper:
        encoders.append((f"whisper-{size}", lambda s=size: WhisperEncoder(s)))
        encoders.append(
            (f"whisper-{size} pad 30 s", lambda s=size: WhisperEncoder(s, pad_to_30s=True))
        )

    title = "Encoders: forward throughput and fraction of the matmul peak"
    with Recorder("encoders", title, args, order=60) as rec:
        rec.figure(PEAK, "GFLOP/s", matmul_gflops(args.matmul_size, repeats))
        for name, build in encoders:
            encoder = build().eval()
            params = sum(p.numel() for p in encoder.parameters())
            flops = count_flops(encoder, features, lens)

            def forward(encoder=encoder):
                with torch.no_grad():
                    encoder(features, lens)

            times = repeat(forward, repeats, warmup=1)
            rec.figure(f"{name}: forward", "audio s / s", [audio_s / t for t in times])
            rec.figure(
                f"{name}: achieved",
                "GFLOP/s",
                [flops / t / 1e9 for t in times],
                anchor=PEAK,
                note=f"{params / 1e6:.1f}M params, {flops / 1e9 / audio_s:.2f} counted GFLOP per audio second",
            )
            rec.details[f"gflop_per_audio_s[{name}]"] = round(flops / 1e9 / audio_s, 3)
            rec.details[f"params[{name}]"] = params
        rec.note(
            f"batch {args.batch_size} x {args.seconds:g} s, forward only (eval, no autograd), "
            f"peak = a {args.matmul_size}^3 float32 matmul, best of each 5; ratio = fraction of that peak"
        )


if __name__ == "__main__":
    main()
