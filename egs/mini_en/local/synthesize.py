#!/usr/bin/env python3
"""Stage 0 of mini_en: synthesise the planned corpus into 16 kHz mono wav files.

Speech comes from espeak-ng piped into sox (resample to 16 kHz mono, band limits,
padding, gain); sound events are made by sox alone. Each split's plan (every target
and attribute) is written beside the audio as ``<local-dir>/<split>.jsonl``, which
``make_manifests.py`` reads.

    python local/synthesize.py --num-utts 200 --audio-dir data/audio --local-dir data/local --nj 2
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from corpus import Utterance, plan_corpus

log = logging.getLogger("synthesize")

INSTALL_HINT = {
    "espeak-ng": "install it with `sudo apt-get install espeak-ng` (or run `make setup`)",
    "sox": "install it with `sudo apt-get install sox` (or run `make setup`)",
}
SAMPLE_RATE = 16000


class SynthesisError(RuntimeError):
    pass


def require_programs(*names: str) -> None:
    """Fail early, saying how to install what is missing."""
    missing = [n for n in names if shutil.which(n) is None]
    if missing:
        raise SynthesisError(
            "; ".join(f"'{n}' was not found on PATH: {INSTALL_HINT[n]}" for n in missing)
        )


def speech_commands(utt: Utterance, wav: Path) -> tuple[list[str], list[str]]:
    """The espeak-ng command and the sox command it is piped into."""
    espeak = ["espeak-ng", "-v", utt.voice, "-s", str(utt.rate_wpm), "-p", str(utt.pitch_value),
              "--stdout", utt.text]
    s = utt.sox
    sox = ["sox", "-t", "wav", "-", "-r", str(SAMPLE_RATE), "-c", "1", "-b", "16", str(wav),
           "highpass", str(s["highpass"]), "lowpass", str(s["lowpass"]),
           "pad", str(s["pad_start"]), str(s["pad_end"]), "gain", "-n", f"{s['gain_db']:.2f}"]
    return espeak, sox


def event_command(utt: Utterance, wav: Path) -> list[str]:
    s = utt.sox
    head = ["sox", "-n", "-r", str(SAMPLE_RATE), "-c", "1", "-b", "16", str(wav)]
    fade = ["fade", "q", "0.01", "-0", "0.01"]  # no clicks at the edges
    if utt.event in ("rising tone", "falling tone"):
        body = ["synth", str(s["duration"]), "sine", f"{s['from_hz']}-{s['to_hz']}", *fade]
    elif utt.event == "steady tone":
        body = ["synth", str(s["duration"]), "sine", str(s["from_hz"]), *fade]
    elif utt.event == "burst of noise":
        body = ["synth", str(s["duration"]), s["noise"], *fade]
    elif utt.event in ("two beeps", "three beeps"):
        body = ["synth", str(s["beep"]), "sine", str(s["from_hz"]), *fade,
                "pad", "0", str(s["gap"]), "repeat", str(s["count"] - 1)]
    elif utt.event == "low hum":
        body = ["synth", str(s["duration"]), "square", str(s["from_hz"]), "lowpass", "400", *fade]
    else:
        raise SynthesisError(f"utterance '{utt.id}': unknown sound event '{utt.event}'")
    return head + body + ["pad", str(s["pad_start"]), str(s["pad_end"]),
                          "gain", "-n", f"{s['gain_db']:.2f}"]


def synthesise_one(utt: Utterance, wav: Path) -> None:
    if utt.kind == "event":
        run = subprocess.run(event_command(utt, wav), capture_output=True, text=True)
        if run.returncode != 0:
            raise SynthesisError(f"utterance '{utt.id}': sox failed: {run.stderr.strip()}")
        return
    espeak_cmd, sox_cmd = speech_commands(utt, wav)
    espeak = subprocess.Popen(espeak_cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    sox = subprocess.run(sox_cmd, stdin=espeak.stdout, capture_output=True, text=True)
    espeak.stdout.close()
    espeak_err = espeak.stderr.read().decode(errors="replace")
    espeak.stderr.close()
    if espeak.wait() != 0 or sox.returncode != 0:
        raise SynthesisError(
            f"utterance '{utt.id}' (voice {utt.voice}): espeak-ng|sox failed: "
            f"{espeak_err.strip()} {sox.stderr.strip()}"
        )


def synthesise_corpus(num_utts: int, audio_dir: Path, local_dir: Path, nj: int, seed: int) -> None:
    require_programs("espeak-ng", "sox")
    plan = plan_corpus(num_utts, seed)
    jobs: list[tuple[Utterance, Path]] = []
    for split, utts in plan.items():
        split_dir = audio_dir / split
        if split_dir.exists():
            shutil.rmtree(split_dir)  # a redo starts clean: no file from another plan survives
        split_dir.mkdir(parents=True)
        jobs += [(u, split_dir / f"{u.id}.wav") for u in utts]

    start = time.monotonic()
    done = 0
    with ThreadPoolExecutor(max_workers=max(1, nj)) as pool:
        for _ in pool.map(lambda job: synthesise_one(*job), jobs):
            done += 1
            if done % max(1, len(jobs) // 10) == 0 or done == len(jobs):
                elapsed = time.monotonic() - start
                log.info("synthesised %d/%d utterances (%.1f s, ETA %.0f s)", done, len(jobs),
                         elapsed, elapsed / done * (len(jobs) - done))

    local_dir.mkdir(parents=True, exist_ok=True)
    for split, utts in plan.items():
        path = local_dir / f"{split}.jsonl"
        tmp = path.with_suffix(".jsonl.tmp")
        with tmp.open("w") as f:
            for u in utts:
                f.write(json.dumps({**u.to_dict(), "wav": str(audio_dir / split / f"{u.id}.wav")})
                        + "\n")
        tmp.replace(path)
    log.info("wrote %s in %.1f s", ", ".join(f"{s}: {len(u)}" for s, u in plan.items()),
             time.monotonic() - start)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--num-utts", type=int, required=True, help="utterances in all splits")
    parser.add_argument("--audio-dir", type=Path, required=True)
    parser.add_argument("--local-dir", type=Path, required=True)
    parser.add_argument("--nj", type=int, default=2)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        synthesise_corpus(args.num_utts, args.audio_dir, args.local_dir, args.nj, args.seed)
    except (SynthesisError, ValueError) as err:
        log.error("%s", err)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
