"""tools/hf_to_lhotse.py: a Hugging Face dataset on disk becomes Lhotse cuts for a task."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf
from hf_dataset_fixtures import SOURCES, FakeSource, expected_target, make_hf_dataset
from lhotse import CutSet, load_manifest

import auden.data.hf_mapping as hf_mapping
from auden.data.hf_convert import ColumnMapping, ConvertOptions, convert_hf_dataset
from auden.data.tasks import get_task

REPO = Path(__file__).resolve().parents[1]
TOOL = REPO / "tools" / "hf_to_lhotse.py"


def _load_tool():
    spec = importlib.util.spec_from_file_location("hf_to_lhotse", TOOL)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _args(source: FakeSource) -> list[str]:
    args = [
        "--prefix",
        source.name,
        "--task",
        source.task,
        "--audio-column",
        source.audio_column,
        "--target-column",
        source.target_column,
    ]
    if source.instruction_column:
        args += ["--instruction-column", source.instruction_column]
    return args


@pytest.mark.parametrize("source", SOURCES, ids=[s.name for s in SOURCES])
def test_each_task_mapping_puts_the_target_where_the_task_reads_it(tmp_path, source):
    dataset = make_hf_dataset(tmp_path / "hf", source)
    out = tmp_path / "manifests"
    rc = _load_tool().main(
        [str(dataset), str(out), "--split", f"{source.valid_split}:dev", *_args(source)]
    )
    assert rc == 0
    cuts = CutSet.from_file(out / f"{source.name}_cuts_dev.jsonl.gz").to_eager()
    assert len(cuts) == 2
    task = get_task(source.task)
    for k, cut in enumerate(cuts):
        assert cut.id == f"{source.name}-dev-{k:08d}"
        assert task.target(cut) == expected_target(source, 6 + k)
        if source.instruction_column:
            assert task.instruction(cut) == f"count the beeps in clip {6 + k}"
        original, rate = sf.read(
            tmp_path / "hf" / f"{source.name}_wavs" / f"{source.valid_split}-{6 + k}.wav"
        )
        audio = cut.load_audio()
        assert audio.shape == (1, len(original)) and cut.sampling_rate == rate == 16000
        assert abs(audio[0] - original).max() < 1e-3  # 16-bit flac of the same samples


def test_command_line_converts_two_splits_of_soda_audio_and_resamples(tmp_path):
    source = SOURCES[1]
    dataset = make_hf_dataset(tmp_path / "hf", source, n_train=3, n_valid=1)
    out = tmp_path / "manifests"
    proc = subprocess.run(
        [
            sys.executable,
            str(TOOL),
            str(dataset),
            str(out),
            "--split",
            "train",
            "--split",
            "validation:dev",
            "--sampling-rate",
            "8000",
            *_args(source),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert "3 cuts" in proc.stdout and "1 cuts" in proc.stdout
    assert "soda_audio train: 100%" in proc.stderr  # the progress bar
    cuts = CutSet.from_file(out / "soda_audio_cuts_train.jsonl.gz").to_eager()
    assert [c.supervisions[0].custom["reply"] for c in cuts] == [
        f"glad to hear it {i}" for i in range(3)
    ]
    assert all(c.sampling_rate == 8000 and c.load_audio().shape[1] == c.num_samples for c in cuts)
    # The same data as recordings + supervisions, what tools/compute_fbank.py reads.
    recordings = load_manifest(out / "soda_audio_recordings_train.jsonl.gz")
    supervisions = load_manifest(out / "soda_audio_supervisions_train.jsonl.gz")
    assert [r.id for r in recordings] == [c.id for c in cuts]
    assert [s.custom["reply"] for s in supervisions] == [
        c.supervisions[0].custom["reply"] for c in cuts
    ]
    dev = CutSet.from_file(out / "soda_audio_cuts_dev.jsonl.gz").to_eager()
    assert [c.id for c in dev] == ["soda_audio-dev-00000000"]


def test_shar_storage_reads_back_with_from_shar(tmp_path):
    source = SOURCES[0]
    dataset = make_hf_dataset(tmp_path / "hf", source, n_train=5, n_valid=1)
    mapping = ColumnMapping(audio="wav", target="text", task="transcribe", id="ID")
    result = convert_hf_dataset(
        dataset,
        mapping,
        ConvertOptions(
            out_dir=tmp_path / "out", prefix="loq", split="train", storage="shar", part_size=2
        ),
        progress=False,
    )
    assert result.manifest == tmp_path / "out" / "loq_shar_train"
    assert sorted(p.name for p in result.manifest.iterdir()) == [
        f"{field}.{i:06d}.{ext}"
        for field, ext in (("cuts", "jsonl.gz"), ("recording", "tar"))
        for i in range(3)
    ]
    cuts = list(CutSet.from_shar(in_dir=result.manifest))
    assert [c.id for c in cuts] == [f"loq-train-spk{i % 3}-{i}" for i in range(5)]
    assert [c.supervisions[0].text for c in cuts] == [f"utterance number {i}" for i in range(5)]
    assert all(c.load_audio().shape == (1, c.num_samples) for c in cuts)


def test_parquet_files_of_a_split_are_read_in_order_by_two_workers(tmp_path):
    from datasets import load_from_disk

    source = SOURCES[2]
    dataset = load_from_disk(str(make_hf_dataset(tmp_path / "hf", source, n_train=5)))
    hub = tmp_path / "hub" / "data"
    hub.mkdir(parents=True)
    dataset["train"].select(range(3)).to_parquet(hub / "train-00000-of-00002.parquet")
    dataset["train"].select(range(3, 5)).to_parquet(hub / "train-00001-of-00002.parquet")
    dataset["validation"].to_parquet(hub / "validation-00000-of-00001.parquet")
    result = convert_hf_dataset(
        tmp_path / "hub",
        ColumnMapping(audio="audio", target="caption", task="describe"),
        ConvertOptions(
            out_dir=tmp_path / "out", prefix="as", split="train", part_size=2, num_jobs=2
        ),
        progress=False,
    )
    cuts = CutSet.from_file(result.manifest)
    assert [c.supervisions[0].custom["description"] for c in cuts] == [
        f"a dog barks {i} times" for i in range(5)
    ]


def test_an_interrupted_conversion_resumes_without_redoing_finished_parts(tmp_path, monkeypatch):
    source = SOURCES[4]
    dataset = make_hf_dataset(tmp_path / "hf", source, n_train=6)
    mapping = ColumnMapping(
        audio="audio", target="response", task="instruct", instruction="instruction"
    )
    options = ConvertOptions(out_dir=tmp_path / "out", prefix="sift", split="train", part_size=2)
    real_encode = hf_mapping.encode_flac
    calls = []

    def encode_then_die(*args):
        calls.append(1)
        if len(calls) == 5:  # in the middle of the third part
            raise KeyboardInterrupt
        return real_encode(*args)

    monkeypatch.setattr(hf_mapping, "encode_flac", encode_then_die)
    with pytest.raises(KeyboardInterrupt):
        convert_hf_dataset(dataset, mapping, options, progress=False)
    work = tmp_path / "out" / "sift_train"
    assert sorted(p.name for p in (work / "parts").glob("stats.*")) == [
        "stats.000000.json",
        "stats.000001.json",
    ]
    assert not (tmp_path / "out" / "sift_cuts_train.jsonl.gz").exists()
    finished = {p: p.stat().st_mtime_ns for p in (work / "audio").glob("00000[01]/*.flac")}
    assert len(finished) == 4

    monkeypatch.setattr(hf_mapping, "encode_flac", real_encode)
    result = convert_hf_dataset(dataset, mapping, options, progress=False)
    assert {p: p.stat().st_mtime_ns for p in finished} == finished  # not rewritten
    cuts = CutSet.from_file(result.manifest).to_eager()
    assert [c.supervisions[0].custom["response"] for c in cuts] == [
        f"{i % 5} beeps" for i in range(6)
    ]
    assert not list((tmp_path / "out").rglob(".tmp-*"))


def test_resuming_with_a_different_mapping_is_refused(tmp_path):
    source = SOURCES[0]
    dataset = make_hf_dataset(tmp_path / "hf", source, n_train=2)
    options = ConvertOptions(out_dir=tmp_path / "out", prefix="loq", split="train")
    convert_hf_dataset(
        dataset,
        ColumnMapping(audio="wav", target="text", task="transcribe"),
        options,
        progress=False,
    )
    with pytest.raises(ValueError, match=r"different \['mapping'\]"):
        convert_hf_dataset(
            dataset,
            ColumnMapping(audio="wav", target="ID", task="transcribe"),
            options,
            progress=False,
        )


def test_a_missing_column_is_named_with_the_columns_that_exist(tmp_path, capsys):
    source = SOURCES[1]
    dataset = make_hf_dataset(tmp_path / "hf", source, n_train=2)
    rc = _load_tool().main(
        [
            str(dataset),
            str(tmp_path / "out"),
            "--split",
            "train",
            "--prefix",
            "soda",
            "--task",
            "continue",
            "--audio-column",
            "audio",
            "--target-column",
            "alt_last_turn",
        ]
    )
    assert rc == 1
    err = capsys.readouterr().err
    assert "no column(s) ['audio']" in err and "audio_second_last_turn" in err


def test_bad_rows_are_skipped_and_counted_or_stop_a_strict_run(tmp_path):
    from datasets import Audio, Dataset

    wav = tmp_path / "a.wav"
    sf.write(wav, [0.1] * 1600, 16000)
    Dataset.from_dict(
        {"audio": [str(wav)] * 3, "caption": ["a beep", "", "another beep"]}
    ).cast_column("audio", Audio()).save_to_disk(str(tmp_path / "ds"))
    mapping = ColumnMapping(audio="audio", target="caption", task="describe")
    result = convert_hf_dataset(
        tmp_path / "ds",
        mapping,
        ConvertOptions(out_dir=tmp_path / "out", prefix="x"),
        progress=False,
    )
    assert (result.num_cuts, result.num_skipped) == (2, 1)
    with pytest.raises(ValueError, match=r"ds row 1: column 'caption' is empty"):
        convert_hf_dataset(
            tmp_path / "ds",
            mapping,
            ConvertOptions(out_dir=tmp_path / "strict", prefix="x", strict=True),
            progress=False,
        )


def test_a_table_converts_several_datasets_and_names_a_bad_line(tmp_path, capsys):
    for source in SOURCES[:2]:
        make_hf_dataset(tmp_path / "dl", source, n_train=2, n_valid=1)
    table = tmp_path / "sources.txt"
    table.write_text(
        "# name dataset task weight splits audio target\n"
        "loquacious x/loq transcribe 0.5 train,dev wav text --id-column ID\n"
        "soda_audio x/soda continue 0.5 train audio_second_last_turn alt_last_turn\n"
    )
    tool = _load_tool()
    out = tmp_path / "out"
    assert tool.main(["--table", str(table), "--dl-dir", str(tmp_path / "dl"), str(out)]) == 0
    assert sorted(p.name for p in out.glob("*_cuts_*")) == [
        "loquacious_cuts_dev.jsonl.gz",
        "loquacious_cuts_train.jsonl.gz",
        "soda_audio_cuts_train.jsonl.gz",
    ]
    assert load_manifest(out / "loquacious_cuts_dev.jsonl.gz")[0].id == "loquacious-dev-spk2-2"

    table.write_text("soda_audio x/soda continue heavy train audio alt_last_turn\n")
    assert tool.main(["--table", str(table), "--dl-dir", str(tmp_path / "dl"), str(out)]) == 1
    assert f"{table}:1: could not convert string to float: 'heavy'" in capsys.readouterr().err


def test_kept_columns_land_in_custom_for_auden_sift(tmp_path):
    source = SOURCES[3]  # heysquad: nested answers, a question column
    dataset = make_hf_dataset(tmp_path / "hf", source)
    out = tmp_path / "manifests"
    keep = ["--keep-column", "question", "--keep-column", "answers.answer_start.0:start"]
    rc = _load_tool().main([str(dataset), str(out), "--split", "train", *_args(source), *keep])
    assert rc == 0
    cuts = CutSet.from_file(out / f"{source.name}_cuts_train.jsonl.gz").to_eager()
    for k, cut in enumerate(cuts):
        custom = cut.supervisions[0].custom
        assert custom["question"] == f"what is {k} plus one"
        assert custom["start"] == 0
        assert get_task("answer").target(cut) == str(k + 1)
