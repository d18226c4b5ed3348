import subprocess
import sys

import auden


def test_auden_version_and_help():
    out = subprocess.run(
        [sys.executable, "-m", "auden.cli", "--version"], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == f"auden {auden.__version__}"
    out = subprocess.run(
        [sys.executable, "-m", "auden.cli", "--help"], capture_output=True, text=True, check=True
    )
    assert "usage: auden" in out.stdout
