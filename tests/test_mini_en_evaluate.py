"""egs/mini_en as a user runs it: prepare a small corpus, train briefly, evaluate.py iter/avg."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "egs" / "mini_en"
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _run(args: list[str], timeout: int = 900) -> subprocess.CompletedProcess:
    out = subprocess.run(args, cwd=RECIPE, env=ENV, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out


@pytest.mark.slow
def test_evaluate_py_writes_files_for_every_test_set_after_a_short_training(tmp_path):
    data, configs, exp = tmp_path / "data", tmp_path / "configs", tmp_path / "exp"
    _run(
        [
            "bash",
            "prepare.sh",
            "--num-utts",
            "200",
            "--data-dir",
            str(data),
            "--config-dir",
            str(configs),
        ]
    )
    _run(
        [
            sys.executable,
            "train.py",
            f"exp_dir={exp}",
            f"data.train_data_config={configs / 'train_data.yaml'}",
            f"data.valid_data_config={configs / 'valid_data.yaml'}",
            f"model.llm.pretrained_model={data / 'llm'}",
            "data.num_workers=0",
            "trainer.num_steps=12",
            "trainer.save_every_n=4",
            "trainer.average_period=2",
            "trainer.valid_interval=100",
        ]
    )
    out = _run(
        [
            sys.executable,
            "evaluate.py",
            f"exp_dir={exp}",
            "checkpoint.model.iter=12",
            "checkpoint.model.avg=2",
            f"data.test_data_config={configs / 'test_data.yaml'}",
            "max_new_tokens=16",
        ]
    )

    assert (exp / "averaged-iter-12-avg-2.pt").is_file()
    suffix = "iter-12-avg-2-use-averaged-model"
    test_sets = yaml.safe_load((configs / "test_data.yaml").read_text())
    assert {t["task"] for t in test_sets} == {
        "transcribe", "continue", "describe", "answer", "instruct"
    }
    for t in test_sets:
        for kind in ("recogs", "errs", "wer-summary"):
            path = exp / "greedy_search" / f"{kind}-{t['name']}-{suffix}.txt"
            assert path.is_file() and path.stat().st_size > 0, path
        table_rows = [
            line.split() for line in out.stdout.splitlines() if line.startswith(t["name"] + " ")
        ]
        metrics = {row[2] for row in table_rows}
        expected = {"transcribe": {"WER"}, "answer": {"exact_match"}}.get(
            t["task"], {"WER", "exact_match"}
        )
        assert metrics == expected, (t, table_rows)
