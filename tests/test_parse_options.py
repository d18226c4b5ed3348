"""tools/parse_options.sh, as a recipe script uses it: defaults first, then options."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

PARSE_OPTIONS = Path(__file__).resolve().parents[1] / "tools" / "parse_options.sh"

SCRIPT = f"""#!/usr/bin/env bash
# A comment that mentions parse_options.sh must not end the option block.
set -euo pipefail
stage=0          # first stage to run
stop_stage=100   # last stage to run
nj=4             # parallel jobs
use_gpu=false    # true|false
dataset="mini en"
. {PARSE_OPTIONS}
echo "stage=$stage stop_stage=$stop_stage nj=$nj use_gpu=$use_gpu dataset=$dataset"
echo "args=$*"
"""


@pytest.fixture(scope="module")
def recipe_script(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("recipe") / "prepare.sh"
    path.write_text(SCRIPT)
    return path


def run(script: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(script), *args], capture_output=True, text=True, timeout=30)


def test_options_set_the_script_variables(recipe_script):
    out = run(recipe_script, "--stage", "2", "--stop-stage", "4", "--nj", "8")
    assert out.returncode == 0, out.stderr
    assert "stage=2 stop_stage=4 nj=8 use_gpu=false" in out.stdout


def test_defaults_hold_without_options(recipe_script):
    out = run(recipe_script)
    assert out.returncode == 0, out.stderr
    assert "stage=0 stop_stage=100 nj=4 use_gpu=false dataset=mini en" in out.stdout


def test_equals_form_values_with_spaces_and_positional_args_survive(recipe_script):
    out = run(recipe_script, "--nj=3", "--dataset", "a b", "--", "--not-an-option", "x")
    assert out.returncode == 0, out.stderr
    assert "nj=3" in out.stdout and "dataset=a b" in out.stdout
    assert "args=--not-an-option x" in out.stdout


def test_underscore_spelling_is_accepted_too(recipe_script):
    out = run(recipe_script, "--stop_stage", "7")
    assert out.returncode == 0, out.stderr
    assert "stop_stage=7" in out.stdout


def test_unknown_option_is_an_error_naming_it(recipe_script):
    out = run(recipe_script, "--num-epochs", "3")
    assert out.returncode != 0
    assert "--num-epochs" in out.stderr and "num_epochs" in out.stderr
    assert "stage=" not in out.stdout


def test_boolean_option_accepts_only_true_or_false(recipe_script):
    assert "use_gpu=true" in run(recipe_script, "--use-gpu", "true").stdout
    out = run(recipe_script, "--use-gpu", "yes")
    assert out.returncode != 0
    assert "--use-gpu" in out.stderr and "true or false" in out.stderr


def test_option_without_value_is_an_error(recipe_script):
    out = run(recipe_script, "--nj")
    assert out.returncode != 0
    assert "--nj" in out.stderr


def test_help_lists_every_option_with_its_default_and_comment(recipe_script):
    out = run(recipe_script, "--help")
    assert out.returncode == 0, out.stderr
    lines = {line.split()[0]: line for line in out.stdout.splitlines() if line.startswith("  --")}
    assert list(lines) == ["--stage", "--stop-stage", "--nj", "--use-gpu", "--dataset", "--help"]
    assert "[100]" in lines["--stop-stage"] and "last stage to run" in lines["--stop-stage"]
    assert "[mini en]" in lines["--dataset"]
    assert "stage=" not in out.stdout  # --help exits before the script body


def test_help_shows_the_value_in_force_when_it_is_read(recipe_script):
    out = run(recipe_script, "--nj", "9", "--help")
    assert "[9]" in out.stdout  # the value in force when --help is read, as Kaldi does


def test_script_can_tell_which_options_were_given(tmp_path):
    script = tmp_path / "s.sh"
    script.write_text(f'stage=0\nnj=1\n. {PARSE_OPTIONS}\necho "given=[$parse_options_given]"\n')
    assert "given=[ stage ]" in run(script, "--stage", "0").stdout
    assert "given=[ ]" in run(script).stdout
