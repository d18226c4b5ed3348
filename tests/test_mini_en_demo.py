"""`make demo` in miniature: egs/mini_en/run.sh end to end at a reduced size (slow).

Every stage must leave its outputs (encoder export, pretrained LLM, checkpoints, decoding
results, the exported audio LLM) and the audio LLM must beat a trivial baseline.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from recipe_fixtures import copy_recipe


@pytest.mark.slow
def test_run_sh_walks_every_stage_and_beats_a_trivial_baseline(tmp_path):
    recipe = copy_recipe("mini_en", tmp_path)
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    # Big enough for the encoder to start hearing (CTC WER falls below ~60% by 400 steps).
    args = ["--num-utts", "1000", "--ctc-steps", "400", "--llm-steps", "200",
            "--audio-llm-steps", "200", "--avg", "2"]
    run = subprocess.run(
        ["bash", str(recipe / "run.sh"), *args], cwd=recipe, env=env,
        capture_output=True, text=True, timeout=1800,
    )
    log = run.stdout + run.stderr
    assert run.returncode == 0, log[-5000:]

    exp = recipe / "exp"
    for folder in (exp / "ctc" / "export", exp / "llm" / "export", exp / "audio_llm" / "export"):
        assert (folder / "config.json").is_file(), folder
    assert (exp / "audio_llm" / "averaged-iter-200-avg-2.pt").is_file()
    results = exp / "audio_llm" / "greedy_search"
    for split in ("test-seen", "test-unseen"):
        for task in ("transcribe", "continue", "describe", "answer"):
            assert list(results.glob(f"wer-summary-{split}_{task}-*.txt")), (split, task)
    # Stage 5 transcribed a file; stage 6 printed the table; every stage reported its time.
    assert re.search(r"test-unseen/\S+\.wav\t\S", log)
    assert "test-seen_transcribe" in log and "Time per stage" in log
    wers = [float(m) for m in re.findall(r"test-\w+_transcribe\s+transcribe\s+WER\s+([\d.]+)", log)]
    assert wers and max(wers) < 80.0, (wers, log[-4000:])
