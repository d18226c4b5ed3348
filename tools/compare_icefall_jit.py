"""Check an imported icefall encoder against icefall's own TorchScript export of the same model.

icefall's released Zipformer repositories ship ``exp/jit_script.pt`` beside
``exp/pretrained.pt``; the TorchScript file runs without k2 or icefall's code, so it is
icefall's computation, frozen. After ``auden import-icefall exp/pretrained.pt --out DIR``:

    python tools/compare_icefall_jit.py --jit exp/jit_script.pt --auden DIR \
        test_wavs/1089-134686-0001.wav test_wavs/1221-135766-0001.wav

runs both encoders on each clip alone (80-bin fbank, auden's extractor; random
features of several lengths if no wav is given) and prints the largest difference per
clip. It exits with status 1 if any exceeds ``--tolerance``. icefall's batched output is
not compared: icefall lets padding reach the last frames of shorter clips, auden does not.
"""

from __future__ import annotations

import argparse
import sys

import torch

from auden.models.encoders.zipformer import ZipformerEncoder


def clips(paths: list[str], num_mel_bins: int) -> list[tuple[str, torch.Tensor]]:
    """(name, features [T, F]) for each wav, or for random inputs of awkward lengths."""
    if not paths:
        generator = torch.Generator().manual_seed(0)
        return [
            (f"random-{t}-frames", torch.randn(t, num_mel_bins, generator=generator))
            for t in (9, 100, 257, 1001)
        ]
    from lhotse import Recording  # noqa: PLC0415

    from auden.audio.features import build_feature_extractor, extract_padded  # noqa: PLC0415

    extractor = build_feature_extractor("fbank", num_mel_bins)
    out = []
    for path in paths:
        recording = Recording.from_file(path).resample(16000)
        feats, lens = extract_padded(extractor, [recording.load_audio()[0]], 16000)
        out.append((path, feats[0, : int(lens[0])]))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jit", required=True, help="icefall's exp/jit_script.pt")
    parser.add_argument("--auden", required=True, help="the folder `auden import-icefall` wrote")
    parser.add_argument("wavs", nargs="*", help="audio files (16 kHz or resampled)")
    parser.add_argument("--tolerance", type=float, default=1e-4)
    args = parser.parse_args(argv)

    icefall = torch.jit.load(args.jit, map_location="cpu").eval()
    encoder = ZipformerEncoder.from_pretrained(args.auden).eval()
    worst = 0.0
    for name, feats in clips(args.wavs, encoder.config.num_mel_bins):
        lens = torch.tensor([feats.shape[0]])
        with torch.no_grad():
            ref, ref_lens = icefall.encoder(features=feats[None], feature_lengths=lens)
            out = encoder(feats[None], lens)
        if int(ref_lens[0]) != int(out.lens[0]):
            print(f"{name}: icefall gives {int(ref_lens[0])} frames, auden {int(out.lens[0])}")
            return 1
        diff = (out.frames - ref).abs().max().item()
        scale = ref.abs().max().item()
        worst = max(worst, diff)
        print(f"{name}: {feats.shape[0]} frames -> {int(out.lens[0])}, max abs diff {diff:.3g} "
              f"(output max abs {scale:.3g})")
    verdict = "match" if worst <= args.tolerance else "DIFFER"
    print(f"{verdict}: largest difference {worst:.3g}, tolerance {args.tolerance:g}")
    return 0 if worst <= args.tolerance else 1


if __name__ == "__main__":
    sys.exit(main())
