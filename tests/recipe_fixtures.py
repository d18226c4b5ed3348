"""Fake corpora in their real on-disk layouts, and a way to run a recipe's prepare.sh on them.

The recipe is copied with the repository's tools into a temporary tree (``tmp/egs/<name>``
beside ``tmp/tools``), so its ``data/`` folder is written there and not into the
checkout; the script itself runs unchanged.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
SAMPLING_RATE = 16000


def write_tone(path: Path, duration: float, seed: int, fmt: str | None = None) -> None:
    """A real audio file: a tone plus a little noise, 16 kHz mono."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(duration * SAMPLING_RATE)) / SAMPLING_RATE
    freq = 150 + 40 * (seed % 11)
    samples = 0.3 * np.sin(2 * np.pi * freq * t) + 0.02 * rng.standard_normal(t.size)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, samples.astype(np.float32), SAMPLING_RATE, format=fmt)


def copy_recipe(name: str, root: Path) -> Path:
    """``root/egs/<name>`` with the repository's recipe files, beside ``root/tools`` and the
    configs recipes share (``root/egs/shared``)."""
    shutil.copytree(REPO / "tools", root / "tools", ignore=shutil.ignore_patterns("__pycache__"))
    if not (root / "egs" / "shared").exists():
        shutil.copytree(REPO / "egs" / "shared", root / "egs" / "shared")
    recipe = root / "egs" / name
    shutil.copytree(
        REPO / "egs" / name, recipe, ignore=shutil.ignore_patterns("data", "exp", "download")
    )
    return recipe


def run_prepare(recipe: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run ``bash prepare.sh args`` with the venv's python and lhotse first on PATH."""
    return run_script(recipe / "prepare.sh", *args, cwd=cwd or recipe)


def run_script(script: Path, *args: str, cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run ``bash script args`` with the venv's commands (python, lhotse, torchrun) first on PATH."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("OMP_NUM_THREADS", "1")
    return subprocess.run(
        ["bash", str(script), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# ---- AISHELL-2: AISHELL-2/iOS/{data,dev,test}/{wav/<speaker>/<utt>.wav, trans.txt} ----

AISHELL2_TEXT = {
    "train": ["厨房用具", "电蒸锅", "电蒸锅的价格", "打开空调", "今天天气很好", "播放音乐"],
    "dev": ["明天会下雨吗", "关闭窗帘"],
    "test": ["我想听一首歌", "北京的天气"],
}


def make_aishell2(dl_dir: Path) -> dict[str, dict[str, str]]:
    """A tiny AISHELL-2 under ``dl_dir/aishell2``; returns {part: {utt id: text}}."""
    folders = {"train": "data", "dev": "dev", "test": "test"}
    written: dict[str, dict[str, str]] = {}
    seed = 0
    for part, texts in AISHELL2_TEXT.items():
        part_dir = dl_dir / "aishell2" / "AISHELL-2" / "iOS" / folders[part]
        lines = []
        written[part] = {}
        for i, text in enumerate(texts):
            speaker = f"{part[0].upper()}{i % 2 + 1:04d}"
            utt = f"I{speaker}W{i:04d}"
            write_tone(part_dir / "wav" / speaker / f"{utt}.wav", 0.6 + 0.1 * i, seed)
            seed += 1
            lines.append(f"{utt}\t{text}")
            written[part][utt] = text
        (part_dir / "trans.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return written


# ---- LibriSpeech: LibriSpeech/<part>/<speaker>/<chapter>/{<spk>-<ch>-<utt>.flac, <spk>-<ch>.trans.txt}

LIBRISPEECH_TEXT = {
    "train-clean-100": ["HELLO WORLD", "THE CAT SAT ON THE MAT", "A TINY CORPUS"],
    "dev-clean": ["GOOD MORNING"],
    "test-clean": ["SEE YOU LATER"],
}


def make_librispeech(dl_dir: Path) -> dict[str, dict[str, str]]:
    """A tiny LibriSpeech under ``dl_dir/LibriSpeech`` with its SPEAKERS.TXT; returns
    {part: {utt id: text}}."""
    written: dict[str, dict[str, str]] = {}
    speakers = ["; ID  |SEX| SUBSET           |MINUTES| NAME"]
    seed = 100
    for part, texts in LIBRISPEECH_TEXT.items():
        speaker, chapter = 100 + seed % 7, 2000 + seed
        sex = "FM"[speaker % 2]
        speakers.append(f"{speaker:<5}| {sex} | {part:<16} | 25.03 | Reader {speaker}")
        chapter_dir = dl_dir / "LibriSpeech" / part / str(speaker) / str(chapter)
        lines = []
        written[part] = {}
        for i, text in enumerate(texts):
            utt = f"{speaker}-{chapter}-{i:04d}"
            write_tone(chapter_dir / f"{utt}.flac", 0.7 + 0.1 * i, seed, fmt="FLAC")
            seed += 1
            lines.append(f"{utt} {text}")
            written[part][utt] = text
        (chapter_dir / f"{speaker}-{chapter}.trans.txt").write_text("\n".join(lines) + "\n")
    (dl_dir / "LibriSpeech" / "SPEAKERS.TXT").write_text("\n".join(speakers) + "\n")
    return written


def compose_recipe_config(recipe: Path, name: str, overrides: list[str] | None = None):
    """The recipe's Hydra config ``configs/<name>.yaml`` as train.py/evaluate.py would see it."""
    from hydra import compose, initialize_config_dir

    from auden.decoding import register_configs as register_eval_configs
    from auden.training import register_configs as register_train_configs

    register_train_configs(shared=recipe.parent / "shared" / "configs")
    register_eval_configs()
    with initialize_config_dir(config_dir=str(recipe / "configs"), version_base="1.3"):
        return compose(config_name=name, overrides=overrides or [])


def tiny_run_args(llm: Path, zipformer_config: Path) -> list[str]:
    """``run.sh`` options that walk every stage in seconds: a micro Zipformer and a tiny
    LLM, a few steps each, float32 and no loader workers (CPU)."""
    cpu = "data.num_workers=0 trainer.dtype=float32 data.sampler.num_buckets=2"
    return [
        "--llm", str(llm),
        "--nproc", "1",
        "--ctc-steps", "3",
        "--audio-llm-steps", "3",
        "--save-every", "1",
        "--avg", "2",
        "--ctc-args", f"{cpu} model.encoder.config={zipformer_config} data.sampler.max_duration=4",
        "--audio-llm-args", f"{cpu} model.llm.dtype=float32 model.llm.lora.r=4",
        "--eval-args", "data.num_workers=0 max_new_tokens=8",
    ]
