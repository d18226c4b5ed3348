"""What every ``benchmarks/bench_*.py`` shares: repeats, the machine, and one JSON format.

A benchmark script is any ``benchmarks/bench_<name>.py`` that takes ``--quick`` (a smoke
size, seconds) and ``--out PATH`` and writes one JSON file in the format below;
``benchmarks/run_all.py`` (``make bench``) runs them all and ``benchmarks/make_results.py``
turns every such file into a section of ``benchmarks/RESULTS.md``. The easiest way to
follow the format is to use :class:`Recorder`::

    with Recorder("features", "Fbank throughput by backend", args) as rec:
        rec.figure("kaldifeat", "x real time", [3050.0, 3120.0, 3101.0])
        rec.figure("Lhotse Fbank", "x real time", values, anchor="kaldifeat",
                   goal=Goal(">=", 3000.0))
        rec.note("the largest difference from kaldifeat: 2e-5")

The JSON (``schema: auden-bench/1``)::

    {"schema": "auden-bench/1", "benchmark": "features", "title": "...", "order": 10,
     "command": "python benchmarks/bench_features.py --clips 60", "commit": "<sha>[-dirty]",
     "date": "2026-11-29T12:00:00Z", "wall_s": 41.2, "quick": false,
     "machine": {"cpus": 2, "cpu_model": "...", "torch": "2.13.0", "torch_threads": 1,
                 "omp_num_threads": "1"},
     "load": {"before": [l1, l5, l15], "after": [l1, l5, l15]},
     "figures": [{"name": "...", "unit": "...", "values": [...], "median": m, "min": a,
                  "max": b, "repeats": n, "anchor": "<another figure's name>" | "",
                  "anchor_value": x | null, "ratio": median / anchor's median | null,
                  "goal": {"op": ">=", "target": 3000.0, "on": "median" | "ratio"} | null,
                  "met": true | false | null, "note": "..."}],
     "notes": ["..."], "details": {...anything else the script wants to keep}}

``ratio`` is always against a figure measured in the same run (``anchor``), or, where
the anchor cannot run here, against a fixed ``anchor_value`` with a note saying where it
came from. ``met`` is the goal evaluated on the median or on the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

SCHEMA = "auden-bench/1"
BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
FIGURE_FIELDS = (
    "name",
    "unit",
    "values",
    "median",
    "min",
    "max",
    "repeats",
    "anchor",
    "anchor_value",
    "ratio",
    "goal",
    "met",
    "note",
)
RESULT_FIELDS = (
    "schema",
    "benchmark",
    "title",
    "order",
    "command",
    "commit",
    "date",
    "wall_s",
    "quick",
    "machine",
    "load",
    "figures",
    "notes",
    "details",
)


@dataclass(frozen=True)
class Goal:
    """``median >= target`` (or ``<=``), or the same of the ratio against the anchor;
    ``op="within"``: ``|value - target| <= tolerance * target`` (both bounds, e.g. a
    fairness check that two costs match within 10%)."""

    op: str
    target: float
    on: str = "median"
    tolerance: float = 0.0

    def __post_init__(self) -> None:
        if self.op not in (">=", "<=", "within"):
            raise ValueError(f"goal op must be '>=', '<=' or 'within', got '{self.op}'")
        if self.on not in ("median", "ratio"):
            raise ValueError(f"goal 'on' must be 'median' or 'ratio', got '{self.on}'")
        if (self.op == "within") != (self.tolerance > 0):
            raise ValueError("a positive tolerance goes with op 'within', and only with it")

    def met(self, median: float, ratio: float | None) -> bool | None:
        value = median if self.on == "median" else ratio
        if value is None:
            return None
        if self.op == "within":
            return abs(value - self.target) <= self.tolerance * abs(self.target) + 1e-12
        return value >= self.target if self.op == ">=" else value <= self.target


def clock() -> float:
    """CPU seconds of this process: on a shared, loaded machine a one-thread benchmark
    is preempted for other jobs, and wall time would measure them, not us."""
    return time.process_time()


def repeat(fn: Callable[[], object], repeats: int, warmup: int = 1) -> list[float]:
    """CPU seconds (see :func:`clock`) of ``repeats`` calls of ``fn`` after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = clock()
        fn()
        times.append(clock() - start)
    return times


def machine() -> dict:
    """Cores, CPU model, torch version and threads: what a figure depends on."""
    import torch

    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            model = next(
                (line.split(":", 1)[1].strip() for line in f if line.startswith("model name")),
                model,
            )
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS", ""),
        "python": platform.python_version(),
    }


def git_commit() -> str:
    """The commit the scripts ran from, with ``-dirty`` if the tree had changes."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=BENCH_DIR, capture_output=True, text=True, check=False
        ).stdout.strip()

    sha = git("rev-parse", "--short=12", "HEAD")
    if not sha:
        return "unknown"
    # The results a run writes (results/, RESULTS.md) do not make the scripts dirty.
    dirty = git(
        "status",
        "--porcelain",
        "--untracked-files=no",
        "--",
        ".",
        "../auden",
        ":!results",
        ":!RESULTS.md",
    )
    return sha + ("-dirty" if dirty else "")


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def bench_parser(doc: str | None, *, profile: str = "") -> argparse.ArgumentParser:
    """The arguments every benchmark takes: ``--quick``, ``--out``, ``--repeats``, and
    ``--profile`` where ``profile`` says what it profiles (see :func:`parse_bench_args`)."""
    parser = argparse.ArgumentParser(
        description=(doc or "").split("\n")[0],
        epilog="Writes the auden-bench/1 JSON described in benchmarks/benchlib.py.",
    )
    parser.add_argument("--quick", action="store_true", help="a smoke-test size (seconds)")
    parser.add_argument(
        "--out", type=Path, help="JSON file (default benchmarks/results/<name>.json)"
    )
    parser.add_argument(
        "--repeats", type=int, default=0, help="timed repeats (0: the script's default)"
    )
    if profile:
        parser.add_argument(
            "--profile", action="store_true", help=f"{profile} (always in full runs)"
        )
    return parser


def parse_bench_args(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """Parse ``argv``; a full (not ``--quick``) run always profiles, so RESULTS.md can say
    where a missed goal's time goes."""
    args = parser.parse_args(argv)
    if hasattr(args, "profile"):
        args.profile = args.profile or not args.quick
    return args


def top_ops(fn: Callable[[], object], count: int = 6) -> list[str]:
    """The torch ops ``fn()`` spends its CPU time in (torch.profiler, self time), as shares."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events) or 1
    return [f"{e.key} {100 * e.self_cpu_time_total / total:.0f}%" for e in events[:count]]


def summarize(values: Sequence[float]) -> dict:
    if not values:
        raise ValueError("a figure needs at least one measured value")
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "repeats": len(values),
    }


class Recorder:
    """Collects one script's figures and writes its JSON (atomically) and a small table."""

    def __init__(
        self, benchmark: str, title: str, args: argparse.Namespace, order: int = 100
    ) -> None:
        self.benchmark = benchmark
        self.title = title
        self.order = order
        self.quick = bool(getattr(args, "quick", False))
        self.out = (
            Path(args.out) if getattr(args, "out", None) else RESULTS_DIR / f"{benchmark}.json"
        )
        self.figures: list[dict] = []
        self.notes: list[str] = []
        self.details: dict = {}

    def __enter__(self) -> Recorder:
        self._load_before = loadavg()
        self._start = time.perf_counter()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.write()

    def figure(
        self,
        name: str,
        unit: str,
        values: Sequence[float],
        *,
        anchor: str = "",
        anchor_value: float | None = None,
        goal: Goal | None = None,
        note: str = "",
    ) -> dict:
        """Record a figure; its ratio is against ``anchor`` (recorded earlier) or ``anchor_value``."""
        stats = summarize([float(v) for v in values])
        ratio = None
        if anchor:
            ref = next((f for f in self.figures if f["name"] == anchor), None)
            if ref is None:
                raise ValueError(f"figure '{name}': anchor '{anchor}' was not recorded before it")
            anchor_value = ref["median"]
        if anchor_value:
            ratio = stats["median"] / anchor_value
        fig = {
            "name": name,
            "unit": unit,
            "values": [_round(v) for v in values],
            **{k: (v if k == "repeats" else _round(v)) for k, v in stats.items()},
            "anchor": anchor,
            "anchor_value": _round(anchor_value) if anchor_value is not None else None,
            "ratio": _round(ratio) if ratio is not None else None,
            "goal": asdict(goal) if goal else None,
            "met": goal.met(stats["median"], ratio) if goal else None,
            "note": note,
        }
        self.figures.append(fig)
        return fig

    def note(self, text: str) -> None:
        self.notes.append(text)

    def result(self) -> dict:
        return {
            "schema": SCHEMA,
            "benchmark": self.benchmark,
            "title": self.title,
            "order": self.order,
            "command": _command(),
            "commit": git_commit(),
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "wall_s": round(time.perf_counter() - self._start, 1),
            "quick": self.quick,
            "machine": machine(),
            "load": {"before": self._load_before, "after": loadavg()},
            "figures": self.figures,
            "notes": self.notes,
            "details": self.details,
        }

    def write(self) -> Path:
        result = self.result()
        check_result(result, source=str(self.out))
        self.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.out.with_name(f".{self.out.name}.tmp-{os.getpid()}")
        tmp.write_text(json.dumps(result, indent=1) + "\n")
        os.replace(tmp, self.out)
        print(format_table(result), flush=True)
        print(f"wrote {self.out}", flush=True)
        return self.out


def check_result(result: dict, source: str = "result") -> None:
    """Raise if ``result`` lacks a field of the auden-bench/1 format (names the file and field)."""
    if result.get("schema") != SCHEMA:
        raise ValueError(f"{source}: schema is {result.get('schema')!r}, expected '{SCHEMA}'")
    missing = [k for k in RESULT_FIELDS if k not in result]
    if missing:
        raise ValueError(f"{source}: missing field(s) {missing}")
    if not result["figures"]:
        raise ValueError(f"{source}: no figures")
    for i, fig in enumerate(result["figures"]):
        missing = [k for k in FIGURE_FIELDS if k not in fig]
        if missing:
            raise ValueError(f"{source}: figure {i} ({fig.get('name')!r}) lacks {missing}")


def format_value(v: float | None) -> str:
    if v is None:
        return "-"
    a = abs(v)
    if a == 0:
        return "0"
    if a >= 1000:
        return f"{v:,.0f}"
    if a >= 100:
        return f"{v:.1f}"
    if a >= 1:
        return f"{v:.3g}" if a < 10 else f"{v:.1f}"
    if a >= 1e-3:
        return f"{v:.3g}"
    return f"{v:.1e}"


def goal_text(goal: dict | None) -> str:
    if not goal:
        return ""
    what = "ratio" if goal["on"] == "ratio" else "median"
    if goal["op"] == "within":
        return f"{what} {format_value(goal['target'])} ± {100 * goal.get('tolerance', 0):.0f}%"
    op = "≥" if goal["op"] == ">=" else "≤"
    return f"{what} {op} {format_value(goal['target'])}"


def format_table(result: dict) -> str:
    """The figures of one result as a Markdown table."""
    rows = [
        "| figure | median | min – max | n | unit | anchor | ratio | goal | met |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for f in result["figures"]:
        met = {True: "yes", False: "**no**", None: ""}[f["met"]]
        anchor = f["anchor"] or (
            f"fixed {format_value(f['anchor_value'])}" if f["anchor_value"] is not None else ""
        )
        rows.append(
            f"| {f['name']} | {format_value(f['median'])} | {format_value(f['min'])} – "
            f"{format_value(f['max'])} | {f['repeats']} | {f['unit']} | {anchor} | "
            f"{format_value(f['ratio'])} | {goal_text(f['goal'])} | {met} |"
        )
    return "\n".join(rows)


def _command() -> str:
    script = Path(sys.argv[0])
    try:
        script = script.resolve().relative_to(BENCH_DIR.parent)
    except ValueError:
        pass
    args = list(sys.argv[1:])
    if "--out" in args:  # where the JSON went is not part of the measurement
        i = args.index("--out")
        del args[i : i + 2]
    return shlex.join(["python", str(script), *args])


def _round(v: float) -> float:
    return float(f"{v:.6g}")
