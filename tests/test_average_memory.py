import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from average_memory import measure  # noqa: E402


def test_averaging_20_checkpoints_peaks_under_two_and_a_half_checkpoints():
    # 40 MiB each, so the ~9 MiB fixed cost of loading and saving is not what is measured.
    result = measure(num=20, megabytes=40, running=False)
    assert result["method"] == "mean"
    assert result["ratio"] <= 2.5, result


def test_running_average_of_20_intervals_peaks_under_two_and_a_half_checkpoints():
    result = measure(num=20, megabytes=16, running=True)  # files of 48 MiB (model_avg is float64)
    assert result["method"] == "running_average"
    assert result["ratio"] <= 2.5, result
