"""Peak memory of averaging many checkpoints, as a multiple of one checkpoint file.

    python benchmarks/average_memory.py --num-checkpoints 20 --megabytes 64

Writes ``num`` checkpoints of ``megabytes`` of float32 weights each, then, in a fresh
process, resolves ``iter=<newest> avg=<num>`` (plain mean; and, with ``--running``, the
checkpoints also carry a float64 ``model_avg`` and icefall's method is used) and reports
the rise of peak RSS (VmHWM, reset just before) over the RSS before averaging, divided by the size of one file.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

_TENSORS = 16  # a model is many tensors; per-tensor temporaries stay small

_CHILD = r"""
import json, sys
import torch
from auden.checkpoint import CheckpointSpec, resolve_checkpoint

def status_kib(key):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(key + ":"))

exp_dir, iter_, avg, running = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1"
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # reset the peak RSS (VmHWM) to the current RSS
before = status_kib("VmRSS")
spec = CheckpointSpec(iter=iter_, avg=avg, use_averaged_model=running)
path = resolve_checkpoint(exp_dir, spec)
peak = status_kib("VmHWM")
method = torch.load(path, weights_only=True, mmap=True)["averaged_from"]["method"]
print(json.dumps({"rise_bytes": (peak - before) * 1024, "method": method}))
"""


def write_checkpoints(exp_dir: Path, num: int, megabytes: float, running: bool) -> int:
    """``num`` checkpoints (plus one start checkpoint when ``running``); returns one's size."""
    numel = int(megabytes * 2**20 / 4 / _TENSORS)
    steps = range(10, 10 * (num + 2), 10) if running else range(10, 10 * (num + 1), 10)
    for step in steps:
        names = [f"layer{i}.weight" for i in range(_TENSORS)]
        ckpt = {
            "model": {n: torch.full((numel,), float(step)) for n in names},
            "batch_idx_train": step,
            "epoch": 1,
            "config": {},
        }
        if running:
            ckpt["model_avg"] = {
                n: torch.full((numel,), step / 2, dtype=torch.float64) for n in names
            }
        torch.save(ckpt, exp_dir / f"checkpoint-{step}.pt")
    return (exp_dir / "checkpoint-10.pt").stat().st_size


def measure(num: int = 20, megabytes: float = 64, running: bool = False) -> dict:
    """Peak RSS rise of averaging ``num`` checkpoints in a fresh process, in checkpoint sizes."""
    with tempfile.TemporaryDirectory() as tmp:
        exp_dir = Path(tmp)
        size = write_checkpoints(exp_dir, num, megabytes, running)
        newest = 10 * (num + 1) if running else 10 * num
        start = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-c", _CHILD, str(exp_dir), str(newest), str(num), str(int(running))],
            capture_output=True,
            text=True,
            check=True,
        )
        seconds = time.perf_counter() - start
        result = json.loads(out.stdout.strip().splitlines()[-1])
    result.update(
        average_s=seconds, checkpoint_bytes=size, ratio=result["rise_bytes"] / size, num=num
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-checkpoints", type=int, default=20)
    parser.add_argument("--megabytes", type=float, default=64)
    parser.add_argument("--running", action="store_true")
    args = parser.parse_args()
    r = measure(args.num_checkpoints, args.megabytes, args.running)
    print(
        f"averaged {r['num']} checkpoints of {r['checkpoint_bytes'] / 2**20:.1f} MiB "
        f"({r['method']}): peak RSS rise {r['rise_bytes'] / 2**20:.1f} MiB = "
        f"{r['ratio']:.2f}x one checkpoint"
    )


if __name__ == "__main__":
    main()
