"""The benchmark suite: every script runs at its smoke size and writes the common JSON.

The slow tests run each ``benchmarks/bench_*.py --quick`` (what ``make bench-quick``
runs) so the scripts cannot rot; the fast ones check the format and the RESULTS.md
generator on a hand-written result.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

from benchlib import FIGURE_FIELDS, RESULT_FIELDS, Goal, Recorder, check_result  # noqa: E402
from make_results import load_results, render  # noqa: E402

SCRIPTS = sorted(p.stem for p in BENCH.glob("bench_*.py"))
# Scripts that need a prepared recipe have their own slow test below, which prepares one.
NEEDS_CORPUS = {"bench_data_formats"}


def _result(tmp_path: Path) -> dict:
    import argparse

    args = argparse.Namespace(quick=True, out=tmp_path / "demo.json")
    with Recorder("demo", "A demo benchmark", args, order=5) as rec:
        rec.figure("anchor", "x", [2.0, 4.0, 3.0])
        rec.figure("ours", "x", [6.0, 7.0, 5.0], anchor="anchor", goal=Goal(">=", 2.5, on="ratio"))
        rec.figure("slow", "s", [1.0], goal=Goal("<=", 0.5), note="too slow")
    return json.loads((tmp_path / "demo.json").read_text())


def test_a_figure_records_median_range_and_ratio_against_its_anchor(tmp_path):
    result = _result(tmp_path)
    anchor, ours, slow = result["figures"]
    assert (anchor["median"], anchor["min"], anchor["max"], anchor["repeats"]) == (3.0, 2.0, 4.0, 3)
    assert ours["ratio"] == pytest.approx(2.0) and ours["met"] is False  # 2.0 < 2.5
    assert slow["met"] is False and anchor["met"] is None
    assert result["machine"]["cpus"] == os.cpu_count()
    assert len(result["load"]["before"]) == 3


def test_results_page_lists_every_benchmark_and_the_missed_goals(tmp_path):
    _result(tmp_path)
    page = render(load_results(tmp_path))
    assert "## A demo benchmark" in page
    assert "A demo benchmark: ours" in page.split("## A demo")[0]  # in the missed-goals list
    assert "slow: too slow" in page


def test_a_result_missing_a_field_is_refused_naming_the_file(tmp_path):
    result = _result(tmp_path)
    del result["figures"][0]["ratio"]
    (tmp_path / "demo.json").write_text(json.dumps(result))
    with pytest.raises(ValueError, match=r"demo\.json.*'anchor'.*lacks \['ratio'\]"):
        load_results(tmp_path)


def test_a_two_sided_goal_fails_below_as_well_as_above():
    fair = Goal("within", 1.0, on="ratio", tolerance=0.1)
    assert fair.met(0.0, 0.95) and fair.met(0.0, 1.1)
    assert fair.met(0.0, 0.85) is False  # the one-sided check this replaces passed it
    assert fair.met(0.0, 1.15) is False
    with pytest.raises(ValueError, match="tolerance"):
        Goal("<=", 1.1, tolerance=0.1)


def _extra_args(script: str, tmp_path: Path) -> list[str]:
    if script != "bench_demo":
        return []
    # What egs/mini_en/run.sh writes at the end of a run (the suite never runs the demo).
    summary = tmp_path / "stage_timings.tsv"
    summary.write_text("stage\tseconds\n0: prepare data\t61.2\n1: pretrain\t300.5\ntotal\t361.7\n")
    return ["--summary", str(summary)]


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(set(SCRIPTS) - NEEDS_CORPUS))
def test_benchmark_script_quick_run_writes_every_field(script, tmp_path):
    out = tmp_path / f"{script}.json"
    result = _quick_run(script, out, _extra_args(script, tmp_path))
    assert result["title"] in render(load_results(tmp_path))


def _quick_run(script: str, out: Path, extra_args: list[str]) -> dict:
    """``script --quick --out out``; its JSON, checked field by field."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(
        [sys.executable, str(BENCH / f"{script}.py"), "--quick", "--out", str(out)] + extra_args,
        check=True,
        env=env,
        timeout=900,  # generous: a shared CI machine can be slow; the scripts take seconds of CPU
    )
    result = json.loads(out.read_text())
    check_result(result, source=str(out))
    assert set(RESULT_FIELDS) <= set(result) and result["quick"] is True
    for fig in result["figures"]:
        assert set(FIGURE_FIELDS) <= set(fig)
        assert all(isinstance(v, float) for v in fig["values"]), fig
        assert fig["min"] <= fig["median"] <= fig["max"], fig
    return result


def test_data_formats_bench_without_a_prepared_recipe_says_so_and_writes_nothing(tmp_path, capsys):
    import bench_data_formats

    out = tmp_path / "data_formats.json"
    with pytest.raises(SystemExit) as stop:
        bench_data_formats.main(["--recipe-dir", str(tmp_path), "--out", str(out)])
    assert stop.value.code == 0
    assert "run `bash prepare.sh` there" in capsys.readouterr().out
    assert not out.exists()


@pytest.mark.slow
def test_data_formats_bench_trains_from_jsonl_and_from_shar_on_a_tiny_mini_en(tmp_path):
    from recipe_fixtures import copy_recipe, run_prepare

    recipe = copy_recipe("mini_en", tmp_path / "repo")
    prepared = run_prepare(recipe, "--num-utts", "64")  # the smallest corpus with every kind
    assert prepared.returncode == 0, prepared.stdout[-3000:] + prepared.stderr[-3000:]
    before = {p: p.stat().st_mtime_ns for p in recipe.rglob("*")}
    results = tmp_path / "results"
    result = _quick_run(
        "bench_data_formats", results / "data_formats.json", ["--recipe-dir", str(recipe)]
    )
    figures = {f["name"]: f for f in result["figures"]}
    shar = figures["Shar: training"]
    assert shar["anchor"] == "jsonl + Lilcom: training" and shar["ratio"] > 0
    assert figures["jsonl + Lilcom: training"]["median"] > 0
    assert figures["Shar: start-up to the first batch"]["ratio"] > 0
    assert sum(result["details"]["shards"].values()) >= 2  # one Shar folder per manifest
    # The recipe is only read: nothing written, nothing changed.
    assert {p: p.stat().st_mtime_ns for p in recipe.rglob("*")} == before
    assert result["title"] in render(load_results(results))
