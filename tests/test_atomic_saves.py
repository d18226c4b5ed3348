"""Every kind of artefact survives SIGKILL in the middle of its save: a reader then finds
the previous complete version or the new one, never a mix of two saves.

Each test starts a process that saves two alternating versions of one artefact to the
same path, in a loop; once one save has finished, the process is killed the moment a
save's temporary file or folder appears beside the target. The versions differ in every
part (config and weight shapes), so a folder that mixed them would not load.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from auden.atomic import TEMP_PREFIX, atomic_file, atomic_folder
from auden.checkpoint import CheckpointSpec, load_checkpoint, resolve_checkpoint, save_checkpoint

TESTS = Path(__file__).resolve().parent


def kill_during_a_save(script: str, work: Path, target: Path) -> None:
    """Run ``script`` (argv[1] = work) until it has saved once, kill it mid-save."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script), str(work)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout.readline().strip() == "saved", "the saver did not finish a first save"
        deadline = time.monotonic() + 120
        while not any(p.name.startswith(TEMP_PREFIX) for p in target.parent.iterdir()):
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.001)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -9


def test_averaged_checkpoint_is_whole_after_a_kill(tmp_path):
    exp = tmp_path / "exp"
    for step in (1, 2, 3):  # big enough that writing the average takes a while
        save_checkpoint({"model": {"w": torch.full((1_000_000,), float(step))},
                         "batch_idx_train": step}, exp / f"checkpoint-{step}.pt")
    saver = """
        import sys
        from pathlib import Path
        from auden.checkpoint import CheckpointSpec, resolve_checkpoint
        exp = Path(sys.argv[1]) / "exp"
        target = exp / "averaged-iter-3-avg-2.pt"
        while True:
            target.unlink(missing_ok=True)  # remake it every time
            resolve_checkpoint(exp, CheckpointSpec(iter=3, avg=2))
            print("saved", flush=True)
        """
    target = exp / "averaged-iter-3-avg-2.pt"
    kill_during_a_save(saver, tmp_path, target)
    if target.exists():  # the kill may fall between unlink and the next rename
        ckpt = load_checkpoint(target)
        assert torch.equal(ckpt["model"]["w"], torch.full((1_000_000,), 2.5))
    # the next evaluation makes or reuses a whole file
    path = resolve_checkpoint(exp, CheckpointSpec(iter=3, avg=2))
    assert torch.equal(load_checkpoint(path)["model"]["w"], torch.full((1_000_000,), 2.5))


ZIPFORMER_SAVER = """
    import sys
    from pathlib import Path
    from tiny_training import MICRO_ZIPFORMER
    from auden.models.encoders.zipformer import ZipformerEncoder
    versions = [ZipformerEncoder({**MICRO_ZIPFORMER, "encoder_dims": [d, d]}) for d in (32, 48)]
    i = 0
    while True:
        versions[i % 2].save_pretrained(Path(sys.argv[1]) / "encoder")
        print("saved", flush=True)
        i += 1
    """


def test_encoder_folder_is_one_version_after_a_kill(tmp_path):
    from auden.models.encoders.zipformer import ZipformerEncoder

    kill_during_a_save(ZIPFORMER_SAVER, tmp_path, tmp_path / "encoder")
    encoder = ZipformerEncoder.from_pretrained(tmp_path / "encoder")  # a mix would not load
    assert list(encoder.config.encoder_dims) in ([32, 32], [48, 48])


LLM_SAVER = """
    import sys
    from pathlib import Path
    from tiny_audio_llm import TEXTS
    from auden.models.tiny_llm import TinyLlmSize, build_tiny_llm, save_llm_folder, train_chat_tokenizer
    tokenizer = train_chat_tokenizer(TEXTS, vocab_size=300)
    versions = [build_tiny_llm(tokenizer, TinyLlmSize(hidden_size=h, intermediate_size=2 * h))
                for h in (32, 64)]
    i = 0
    while True:
        save_llm_folder(Path(sys.argv[1]) / "llm", versions[i % 2], tokenizer)
        print("saved", flush=True)
        i += 1
    """


def test_text_pretrained_llm_folder_is_one_version_after_a_kill(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kill_during_a_save(LLM_SAVER, tmp_path, tmp_path / "llm")
    llm = AutoModelForCausalLM.from_pretrained(tmp_path / "llm")
    assert llm.config.hidden_size in (32, 64)
    assert AutoTokenizer.from_pretrained(tmp_path / "llm") is not None


EXPORT_SAVER = """
    import sys
    from pathlib import Path
    from tiny_audio_llm import make_tiny_llm, tiny_config
    from auden.models.audio_llm import AudioLlm
    from auden.models.projector import ProjectorConfig
    work = Path(sys.argv[1])
    llm = make_tiny_llm(work / "base_llm")
    versions = [AudioLlm.from_config(tiny_config(llm, projector=ProjectorConfig(ds_rate=r)))
                for r in (2, 4)]
    i = 0
    while True:
        versions[i % 2].save_pretrained(work / "export")
        print("saved", flush=True)
        i += 1
    """


def test_exported_model_folder_is_one_version_after_a_kill(tmp_path):
    from auden.auto.auto_model import AutoModel

    kill_during_a_save(EXPORT_SAVER, tmp_path, tmp_path / "export")
    model = AutoModel.from_pretrained(tmp_path / "export")  # a mix would not load
    assert model.config.projector.ds_rate in (2, 4)


def test_a_failed_write_leaves_the_old_file_and_folder(tmp_path):
    (tmp_path / "f.txt").write_text("old")
    with pytest.raises(RuntimeError), atomic_file(tmp_path / "f.txt") as tmp:
        tmp.write_text("new, half")
        raise RuntimeError("disk full")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a").write_text("old")
    with pytest.raises(RuntimeError), atomic_folder(tmp_path / "d") as tmp:
        (tmp / "a").write_text("new")
        raise RuntimeError("disk full")
    assert (tmp_path / "f.txt").read_text() == "old"
    assert [p.name for p in (tmp_path / "d").iterdir()] == ["a"]
    assert (tmp_path / "d" / "a").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d", "f.txt"]  # no temp left


def test_a_folder_save_replaces_the_whole_folder(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "stale").write_text("from an older save")
    with atomic_folder(tmp_path / "d") as tmp:
        (tmp / "new").write_text("x")
    assert [p.name for p in (tmp_path / "d").iterdir()] == ["new"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]
