"""kill -9 of a 2-rank torchrun run, then a restart from its newest checkpoint, ends exactly
where an unbroken run ends. Two seeded kills here (one mid-save, one mid-step); the full
ten, with their figure, are ``python tests/faults/kill_resume.py --kills 10``."""

from __future__ import annotations

import pytest
from kill_resume import KillPlan, plan_kills, run_reference, run_trial

pytestmark = pytest.mark.slow  # three torchrun runs and two restarts: 1-3 minutes


def test_plan_covers_every_phase_and_is_seeded():
    plans = plan_kills(10, seed=0)
    assert plans == plan_kills(10, seed=0) and plans != plan_kills(10, seed=1)
    assert {p.phase for p in plans} == {"step", "save", "validation"}


def test_sigkill_mid_save_and_mid_step_resume_identically(training_setup, tmp_path):
    reference = tmp_path / "reference"
    run_reference(training_setup, reference, tmp_path / "reference.log")
    for i, plan in enumerate([KillPlan("save", 6, 0.0), plan_kills(3, seed=0)[0]]):
        work = tmp_path / f"trial{i}"
        work.mkdir()
        trial = run_trial(training_setup, plan, reference, work)
        assert trial.leftovers_loadable, trial
        assert trial.identical, trial
