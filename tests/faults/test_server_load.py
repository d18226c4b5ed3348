"""`auden serve` under a small load: 200 requests from 10 clients, one in ten malformed.
The issue's figure (2,000 from 20) is ``python tests/faults/server_load.py``."""

from __future__ import annotations

import pytest
from inference_fixtures import export_tiny_model
from server_load import BAD_KINDS, run_load

pytestmark = pytest.mark.slow  # a server start and ~200 tiny generations: under a minute


def test_every_good_request_is_answered_and_every_malformed_one_named(tmp_path):
    model_dir = export_tiny_model(tmp_path / "tiny")
    report, results = run_load(model_dir, requests=200, clients=10, bad_every=10, window=50,
                               log=tmp_path / "serve.log")
    assert report.server_alive, (tmp_path / "serve.log").read_text()[-2000:]
    assert report.good_answered == report.good_total == 180, report.failures
    assert report.bad_named_4xx == report.bad == 20, report.failures
    assert {r.kind for r in results} == {"good", *BAD_KINDS}
    statuses = {r.kind: r.status for r in results if r.kind != "good"}
    assert statuses["oversize body"] == 413 and statuses["unknown model"] == 404
    print(report.summary())
