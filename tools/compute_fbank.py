#!/usr/bin/env python3
"""Turn a split's recordings + supervisions manifests into cuts with stored fbank.

    python tools/compute_fbank.py \\
        --recordings data/manifests/mini_en_recordings_train.jsonl.gz \\
        --supervisions data/manifests/mini_en_supervisions_train.jsonl.gz \\
        --out data/fbank/mini_en_cuts_train.jsonl.gz \\
        --storage data/fbank/mini_en_feats_train [--whisper-fbank --num-mel-bins 128] \\
        [--speed-perturb] [--num-jobs 4] [--kaldifeat]

80-bin Kaldi-style fbank (Zipformer) by default; ``--whisper-fbank`` for Whisper's
log-mel. Features go to LilcomChunky archives under --storage; the cuts file is
written to a temporary name and renamed. A recording that cannot be read, or whose audio
is NaN/Inf or shorter than one frame, is skipped: the summary counts them and
``<out>.skipped.tsv`` lists each cut id with the reason (``--strict`` stops instead).

Several splits in one process (one start-up instead of one per split): put ``{split}``
in the four paths and list the splits::

    python tools/compute_fbank.py --splits train dev test \
        --recordings data/manifests/x_recordings_{split}.jsonl.gz \
        --supervisions data/manifests/x_supervisions_{split}.jsonl.gz \
        --out data/fbank/x_cuts_{split}.jsonl.gz --storage data/fbank/x_feats_{split}
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

# One thread per process, set before torch loads so that spawned workers inherit it:
# the parallelism is --num-jobs; intra-op threads would only oversubscribe the cores.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

from auden.audio.precompute import FbankJob, compute_features  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recordings", required=True, help="Lhotse RecordingSet manifest")
    parser.add_argument("--supervisions", required=True, help="Lhotse SupervisionSet manifest")
    parser.add_argument("--out", required=True, help="output cuts manifest (.jsonl.gz)")
    parser.add_argument("--storage", required=True, help="feature storage folder")
    parser.add_argument(
        "--whisper-fbank", action="store_true", help="Whisper log-mel instead of Kaldi fbank"
    )
    parser.add_argument("--num-mel-bins", type=int, default=80, help="80 (default) or 128")
    parser.add_argument(
        "--kaldifeat", action="store_true",
        help="compute Kaldi fbank with kaldifeat (C++; `make setup-kaldifeat`)",
    )
    parser.add_argument(
        "--speed-perturb", action="store_true", help="add 0.9x and 1.1x speed copies"
    )
    parser.add_argument("--num-jobs", type=int, default=1, help="parallel worker processes")
    parser.add_argument(
        "--strict", action="store_true",
        help="stop at the first unusable recording instead of skipping and listing it",
    )
    parser.add_argument(
        "--splits", nargs="+", default=None, help="fill {split} in the paths with each of these"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s [%(name)s] %(message)s"
    )
    # Each worker process is one job; more intra-op threads would only oversubscribe.
    torch.set_num_threads(1)
    paths = {k: getattr(args, k) for k in ("recordings", "supervisions", "out", "storage")}
    if args.splits is None:
        splits: list[str | None] = [None]
        templated = [k for k, v in paths.items() if "{split}" in v]
        if templated:
            logging.error("--%s holds '{split}' but no --splits were given", templated[0])
            return 1
    else:
        splits = list(args.splits)
        plain = [k for k, v in paths.items() if "{split}" not in v]
        if plain:
            logging.error("--splits given, but --%s has no '{split}' in it", plain[0])
            return 1
    try:
        for split in splits:
            compute_features(
                FbankJob(
                    **{k: v if split is None else v.replace("{split}", split)
                       for k, v in paths.items()},
                    kind="whisper_fbank" if args.whisper_fbank else "fbank",
                    num_mel_bins=args.num_mel_bins,
                    speed_perturb=args.speed_perturb,
                    num_jobs=args.num_jobs,
                    kaldifeat=args.kaldifeat,
                    strict=args.strict,
                )
            )
    except (FileNotFoundError, ValueError) as err:
        logging.error("%s", err)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
