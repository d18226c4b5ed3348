"""SIGKILL a 2-rank torchrun run at seeded moments, resume it, and compare with an unbroken run.

Each trial kills torchrun and both ranks (``kill -9`` of the process group) at a moment
drawn from the seed: inside a training step, while a checkpoint is being written (its
temporary file exists), or during validation. The run is then restarted from its newest
checkpoint (from scratch if there is none) and must end with the same weights and running
average as the unbroken run (max abs difference <= 1e-6). Every checkpoint left by the
killed run must load: a half-written one would be picked up by the resume.

    python tests/faults/kill_resume.py --kills 10 --seed 0   # the figure in RELIABILITY.md

The slow test ``test_kill_resume.py`` runs two of these trials.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: tiny corpus helpers

from torchrun_faults import TorchrunRun, wait_for  # noqa: E402

from auden.checkpoint import find_checkpoints, load_checkpoint  # noqa: E402

NUM_STEPS = 12  # an epoch is 5 steps per rank on the tiny corpus: two epoch ends inside
TRAINER = dict(num_steps=NUM_STEPS, save_every_n=3, valid_interval=4, average_period=1,
               log_interval=1, keep_last_k=0)
PHASES = ("step", "save", "validation")


@dataclass(frozen=True)
class KillPlan:
    phase: str  # step | save | validation
    step: int  # the step it happens at (or after, for "step")
    delay: float  # seconds after the step's log line ("step" only)


@dataclass
class Trial:
    plan: KillPlan
    landed: str  # what was in progress when the kill landed
    resumed_from: int  # the checkpoint step the rerun started from (0: from scratch)
    max_diff_model: float
    max_diff_avg: float
    leftovers_loadable: bool  # every checkpoint-*.pt / epoch-*.pt left by the kill loads
    same_last_batch: bool
    seconds: float

    @property
    def identical(self) -> bool:
        return (self.max_diff_model <= 1e-6 and self.max_diff_avg <= 1e-6
                and self.leftovers_loadable and self.same_last_batch)


def plan_kills(n: int, seed: int) -> list[KillPlan]:
    """``n`` kill moments from ``seed``: the phases in turn, the step and delay drawn."""
    rng = random.Random(seed)
    saves = list(range(TRAINER["save_every_n"], NUM_STEPS, TRAINER["save_every_n"]))
    valids = list(range(TRAINER["valid_interval"], NUM_STEPS, TRAINER["valid_interval"]))
    plans = []
    for i in range(n):
        phase = PHASES[i % len(PHASES)]
        if phase == "save":
            plans.append(KillPlan(phase, rng.choice(saves), 0.0))
        elif phase == "validation":
            plans.append(KillPlan(phase, rng.choice(valids), 0.0))
        else:
            plans.append(KillPlan(phase, rng.randrange(1, NUM_STEPS), round(rng.uniform(0, 0.5), 3)))
    return plans


def _args(setup, exp: Path, **trainer) -> list[str]:
    return setup.overrides(exp, **{**TRAINER, **trainer})


def run_reference(setup, exp: Path, log: Path) -> None:
    run = TorchrunRun.start(_args(setup, exp), log)
    if run.wait(timeout=600) != 0:
        raise AssertionError(f"the unbroken run failed:\n{run.text()[-3000:]}")


def _step_logged(run: TorchrunRun, step: int) -> bool:
    return re.search(rf"step {step}: loss", run.text()) is not None


def _kill_at(plan: KillPlan, run: TorchrunRun, exp: Path) -> str:
    """Wait for the planned moment, SIGKILL everything, and say what was in progress."""
    if plan.phase == "save":
        temp = f".tmp-checkpoint-{plan.step}.pt.*"
        final = exp / f"checkpoint-{plan.step}.pt"
        wait_for(lambda: any(exp.glob(temp)) or final.exists(), run, timeout=1800, poll=0.001)
        writing = any(exp.glob(temp)) and not final.exists()
        run.kill()
        return "mid-save" if writing else "just after a save"
    wait_for(lambda: _step_logged(run, plan.step), run, timeout=1800, poll=0.005)
    if plan.phase == "step":
        time.sleep(plan.delay)
        run.kill()
        done = [int(m) for m in re.findall(r"step (\d+): loss", run.text())]
        return f"mid-step {max(done) + 1}" if done else "before the first step"
    run.kill()  # validation starts right after the step's log line
    done = f"validation at step {plan.step}:" in run.text()
    return "after validation" if done else "mid-validation"


def _max_diff(a: dict, b: dict) -> float:
    if a.keys() != b.keys():
        return float("inf")
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a)


def _leftovers_load(exp: Path) -> bool:
    for path in list(exp.glob("checkpoint-*.pt")) + list(exp.glob("epoch-*.pt")):
        try:
            load_checkpoint(path)
        except Exception:
            return False
    return True


def run_trial(setup, plan: KillPlan, reference: Path, work: Path) -> Trial:
    """Kill a run as planned, resume it from its newest checkpoint, compare with ``reference``."""
    started = time.monotonic()
    exp = work / "exp"
    killed = TorchrunRun.start(_args(setup, exp), work / "killed.log")
    try:
        landed = _kill_at(plan, killed, exp)
    finally:
        killed.kill()
    loadable = _leftovers_load(exp)
    newest = find_checkpoints(exp)
    resume_from = int(newest[0].stem.split("-")[1]) if newest else 0
    resumed = TorchrunRun.start(_args(setup, exp, start_batch=resume_from), work / "resumed.log")
    if resumed.wait(timeout=600) != 0:
        raise AssertionError(f"the resumed run failed ({plan}):\n{resumed.text()[-3000:]}")
    a = load_checkpoint(reference / f"checkpoint-{NUM_STEPS}.pt")
    b = load_checkpoint(exp / f"checkpoint-{NUM_STEPS}.pt")
    return Trial(
        plan=plan,
        landed=landed,
        resumed_from=resume_from,
        max_diff_model=_max_diff(a["model"], b["model"]),
        max_diff_avg=_max_diff(a["model_avg"], b["model_avg"]),
        leftovers_loadable=loadable,
        same_last_batch=a["last_cut_ids"] == b["last_cut_ids"],
        seconds=round(time.monotonic() - started, 1),
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default="", help="also write the trials here")
    args = parser.parse_args()

    from conftest import pytest_configure  # one torch thread, as in the tests
    from tiny_training import make_training_setup
    from tinycorpus import make_tiny_corpus

    pytest_configure(None)
    root = Path(tempfile.mkdtemp(prefix="kill_resume_"))
    try:
        setup = make_training_setup(root / "setup", make_tiny_corpus(root / "corpus"))
        reference = root / "reference"
        t0 = time.monotonic()
        run_reference(setup, reference, root / "reference.log")
        print(f"unbroken run: {time.monotonic() - t0:.1f} s", flush=True)
        trials = []
        for i, plan in enumerate(plan_kills(args.kills, args.seed)):
            work = root / f"trial{i}"
            work.mkdir()
            trial = run_trial(setup, plan, reference, work)
            trials.append(trial)
            print(f"{i + 1:2d}. {plan.phase:10s} step {plan.step:2d}: landed {trial.landed:18s} "
                  f"resumed from {trial.resumed_from:2d}, max |diff| model "
                  f"{trial.max_diff_model:.1e} avg {trial.max_diff_avg:.1e}, "
                  f"{'identical' if trial.identical else 'DIFFERENT'} ({trial.seconds} s)",
                  flush=True)
        same = sum(t.identical for t in trials)
        print(f"{same}/{len(trials)} kills resumed identically; "
              f"{sum(not t.leftovers_loadable for t in trials)} left a checkpoint that "
              "does not load (a half-written file under a final name)")
        if args.json:
            Path(args.json).write_text(json.dumps([asdict(t) for t in trials], indent=1))
        return 0 if same == len(trials) else 1
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.default_int_handler)
    raise SystemExit(main())
