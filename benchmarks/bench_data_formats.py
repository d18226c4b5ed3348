#!/usr/bin/env python3
"""Training throughput by data format: jsonl manifests + Lilcom archives against Lhotse Shar.

    python benchmarks/bench_data_formats.py [--recipe-dir egs/mini_en] [--steps 100]

Reads a prepared mini_en recipe folder (``bash prepare.sh`` done) and writes nothing
into it; without its data it says so and writes no JSON. The CTC training data
(``configs/ctc_train_data.yaml``: manifests whose fbank sits in Lilcom archives) is
exported with ``tools/export_shar.py`` into a temporary folder, one Shar folder per
manifest (cuts and features), and a second data config names those folders
(``shar_dir:``) with the same tasks, weights and prompts. The same model then trains
from each: ``configs/train_ctc.yaml`` as the recipe's stage 1 runs it (the ``xs``
Zipformer with its label heads, ScaledAdam, one loader worker), in one process, seed 42,
``--steps`` steps, no validation, no checkpoint before the last step.

The figure is audio seconds per wall-clock second over the steps after the first
``--warmup`` (start-up excluded: model, data plan, loader worker, first Shar segment),
timed from the moment each batch reaches the training loop; the time from building the
trainer to its first batch is a figure of its own. A jsonl source trains with the
default reader (one mixture, bucketed by Lhotse's sampler), a Shar source with the
sharded reader (what any ``shar_dir`` source takes). Runs alternate between the two
formats so that a change in the machine's load falls on both.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median

import yaml
from benchlib import BENCH_DIR, Recorder, bench_parser, loadavg

REPO = BENCH_DIR.parent
EXPORT_SHAR = REPO / "tools" / "export_shar.py"
DATA_CONFIG = Path("configs") / "ctc_train_data.yaml"  # written by prepare.sh stage 4
TRAIN_CONFIG = "train_ctc"  # the recipe's stage 1
FORMATS = ("jsonl + Lilcom", "Shar")
NEVER = 10**9  # save_every_n / valid_interval: not within the timed steps
SEED = 42


@contextlib.contextmanager
def working_dir(path: Path) -> Iterator[None]:
    """``cd path`` for the block (contextlib.chdir needs Python 3.11)."""
    previous = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)


def missing_data(recipe: Path) -> str:
    """Why ``recipe`` cannot be benchmarked (empty if it can)."""
    config = recipe / DATA_CONFIG
    if not config.is_file():
        return f"'{config}' not found"
    if not (recipe / "data" / "llm").is_dir():
        return f"'{recipe / 'data' / 'llm'}' not found"
    for entry in yaml.safe_load(config.read_text()) or []:
        manifest = recipe / str(entry.get("manifest", ""))
        if "manifest" not in entry or not manifest.is_file():
            return f"'{config}': manifest '{entry.get('manifest')}' not found"
    return ""


def _absolute(entry: dict, recipe: Path) -> dict:
    """A data config entry with its paths made absolute (they are relative to the recipe)."""
    return {
        k: str((recipe / v).resolve()) if k in ("manifest", "prompt_file", "shar_dir") else v
        for k, v in entry.items()
    }


def export_to_shar(recipe: Path, out: Path, shard_size: int) -> tuple[Path, Path, dict]:
    """The recipe's CTC data config with absolute paths, its Shar twin, and export facts.

    tools/export_shar.py runs in the recipe folder: the manifests name their Lilcom
    archives relative to it.
    """
    entries = [_absolute(e, recipe) for e in yaml.safe_load((recipe / DATA_CONFIG).read_text())]
    shar_entries, exported = [], {}
    start = time.perf_counter()
    for entry in entries:
        manifest = Path(entry["manifest"])
        shar_dir = out / "shar" / manifest.name.split(".")[0]
        if shar_dir not in exported.values():
            done = subprocess.run(
                [
                    sys.executable,
                    str(EXPORT_SHAR),
                    "--cuts",
                    str(manifest),
                    "--out",
                    str(shar_dir),
                    "--shard-size",
                    str(shard_size),
                ],
                cwd=recipe,
                capture_output=True,
                text=True,
                check=False,
            )
            if done.returncode != 0:
                raise RuntimeError(
                    f"tools/export_shar.py on '{manifest}' failed:\n{done.stderr[-2000:]}"
                )
            exported[str(manifest)] = shar_dir
        shar_entries.append(
            {**{k: v for k, v in entry.items() if k != "manifest"}, "shar_dir": str(shar_dir)}
        )
    seconds = time.perf_counter() - start
    jsonl_config, shar_config = out / "jsonl_data.yaml", out / "shar_data.yaml"
    jsonl_config.write_text(yaml.safe_dump(entries, sort_keys=False))
    shar_config.write_text(yaml.safe_dump(shar_entries, sort_keys=False))
    shards = {Path(m).name: len(list(d.glob("cuts.*.jsonl.gz"))) for m, d in exported.items()}
    return jsonl_config, shar_config, {"export_s": round(seconds, 1), "shards": shards}


def train_config(recipe: Path, data_config: Path, exp_dir: Path, steps: int):
    """configs/train_ctc.yaml as the recipe's train.py composes it, reading ``data_config``."""
    from hydra import compose, initialize_config_dir

    from auden.training.config import as_train_config, register_configs

    register_configs()  # what the recipe's train.py registers
    overrides = [
        f"exp_dir={exp_dir}",
        f"data.train_data_config={data_config}",
        "data.valid_data_config=''",
        f"model.tokenizer={(recipe / 'data' / 'llm').resolve()}",
        f"trainer.num_steps={steps}",
        f"trainer.save_every_n={NEVER}",
        f"trainer.valid_interval={NEVER}",
        f"trainer.seed={SEED}",
    ]
    with initialize_config_dir(config_dir=str((recipe / "configs").resolve()), version_base="1.3"):
        return as_train_config(compose(config_name=TRAIN_CONFIG, overrides=overrides))


def segment_cuts(recipe: Path, data_config: Path) -> int:
    """``data.segment_cuts`` as the recipe sets it: the cuts the sharded reader buckets at once."""
    return train_config(recipe, data_config, Path("never-written"), 1).data.segment_cuts


@dataclass
class Run:
    """When each batch reached the training loop (wall clock) and its audio seconds."""

    start: float  # before the trainer was built
    arrivals: list[float] = field(default_factory=list)
    audio: list[float] = field(default_factory=list)
    cuts: list[int] = field(default_factory=list)

    def timed(self, loader: Callable) -> Callable:
        def wrapped(epoch: int, skip_batches: int = 0) -> Iterator:
            for batch in loader(epoch, skip_batches=skip_batches):
                self.audio.append(sum(c.duration for c in batch.cuts))
                self.cuts.append(len(batch.cuts))
                self.arrivals.append(time.perf_counter())
                yield batch

        return wrapped

    def throughput(self, warmup: int) -> float:
        """Audio seconds per second of the steps after ``warmup``: batch k's step (and the
        loading of batch k+1) lie between the arrivals of batches k and k+1."""
        if len(self.arrivals) < warmup + 2:
            raise ValueError(f"{len(self.arrivals)} steps: too few to time after {warmup} warm-up")
        return sum(self.audio[warmup:-1]) / (self.arrivals[-1] - self.arrivals[warmup])

    def startup(self) -> float:
        return self.arrivals[0] - self.start


def train_once(recipe: Path, data_config: Path, exp_dir: Path, steps: int) -> Run:
    """Train the recipe's CTC model for ``steps`` steps from ``data_config``, timed."""
    from auden.training.distributed import init_distributed
    from auden.training.loop import fit
    from auden.training.trainer import Trainer

    cfg = train_config(recipe, data_config, exp_dir, steps)
    run = Run(start=time.perf_counter())
    trainer = Trainer(cfg, init_distributed())
    trainer.train_data.loader = run.timed(trainer.train_data.loader)
    fit(trainer)
    trainer.tensorboard.close()
    del trainer
    gc.collect()
    return run


def main(argv: list[str] | None = None) -> None:
    parser = bench_parser(__doc__)
    parser.add_argument(
        "--recipe-dir",
        type=Path,
        default=REPO / "egs" / "mini_en",
        help="a mini_en recipe folder that prepare.sh has prepared (only read)",
    )
    parser.add_argument("--steps", type=int, default=100, help="training steps per run")
    parser.add_argument("--warmup", type=int, default=10, help="first steps left out of the timing")
    parser.add_argument("--shard-size", type=int, default=1000, help="cuts per Shar shard")
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.warmup = 6, 2
    repeats = args.repeats or (1 if args.quick else 3)
    recipe = args.recipe_dir.resolve()
    why = missing_data(recipe)
    if why:
        print(
            f"no prepared mini_en data in '{recipe}' ({why}): run `bash prepare.sh` there "
            "first; nothing to report"
        )
        sys.exit(0)
    import torch

    torch.set_num_threads(1)
    logging.basicConfig(level=logging.WARNING)
    title = "Training throughput by data format: jsonl + Lilcom against Lhotse Shar (mini_en CTC)"
    with (
        Recorder("data_formats", title, args, order=35) as rec,
        tempfile.TemporaryDirectory() as tmp,
        working_dir(recipe),
    ):
        # In the recipe folder, as its train.py runs: manifests name their archives from there.
        jsonl_config, shar_config, exported = export_to_shar(recipe, Path(tmp), args.shard_size)
        configs = dict(zip(FORMATS, (jsonl_config, shar_config)))
        runs: dict[str, list[Run]] = {f: [] for f in FORMATS}
        load_during = []
        for r in range(repeats):
            for fmt in FORMATS if r % 2 == 0 else FORMATS[::-1]:
                exp = Path(tmp) / f"exp-{len(runs[fmt])}-{fmt.split()[0]}"
                runs[fmt].append(train_once(recipe, configs[fmt], exp, args.steps))
                load_during.append(loadavg()[0])
        jsonl, shar = FORMATS
        for fmt in FORMATS:
            rec.figure(
                f"{fmt}: training",
                "audio s / s",
                [run.throughput(args.warmup) for run in runs[fmt]],
                anchor=f"{jsonl}: training" if fmt == shar else "",
                note=f"steps {args.warmup + 1}-{args.steps}, wall clock; median batch "
                f"{median(a for run in runs[fmt] for a in run.audio):.1f} audio s",
            )
        rec.figure(
            "Shar / jsonl + Lilcom, run by run",
            "ratio",
            [
                s.throughput(args.warmup) / j.throughput(args.warmup)
                for j, s in zip(runs[jsonl], runs[shar])
            ],
            note="each Shar run against the jsonl run beside it (same repeat): a change "
            "in the machine's load between repeats falls on both",
        )
        for fmt in FORMATS:
            rec.figure(
                f"{fmt}: start-up to the first batch",
                "s",
                [run.startup() for run in runs[fmt]],
                anchor=f"{jsonl}: start-up to the first batch" if fmt == shar else "",
            )
        rec.details.update(
            recipe=recipe.name,
            data_config=str(DATA_CONFIG),
            train_config=TRAIN_CONFIG,
            steps=args.steps,
            warmup=args.warmup,
            shard_size=args.shard_size,
            load_after_each_run=load_during,
            **exported,
        )
        segment = segment_cuts(recipe, shar_config)
        per_step = median(n for run in runs["Shar"] for n in run.cuts)
        rec.note(
            f"the sharded reader (Shar) reads a segment of {segment} cuts before bucketing it: "
            "the first lies in its start-up figure, the next one would come after about "
            f"{segment / per_step:.0f} steps ({per_step:.0f} cuts per step), "
            + ("beyond" if segment / per_step > args.steps else "within")
            + " these runs"
        )
        rec.note(
            f"{args.steps} steps per run, the first {args.warmup} untimed; {repeats} runs per "
            "format, alternating; 1 training process (torch 1 thread) + the recipe's 1 loader "
            f"worker, seed {SEED}; Shar export ({exported['export_s']} s, shards of "
            f"{args.shard_size} cuts) not timed; 1-minute load average after each run: "
            + ", ".join(f"{x:.1f}" for x in load_during)
        )


if __name__ == "__main__":
    main()
