"""Damaged model folders, checkpoints and tokenizers: an error naming the file, never a
half-loaded model. Rows of the bad-input catalogue (``tests/bad_inputs.py``)."""

from __future__ import annotations

import logging
import shutil

import pytest
import torch
from bad_inputs import record
from tiny_audio_llm import make_tiny_llm, tiny_config

from auden.auto.auto_model import AutoModel
from auden.checkpoint import load_checkpoint, load_trainable_state_dict
from auden.cli import main as auden_main


@pytest.fixture(scope="module")
def exported(exported_audio_llm):
    return exported_audio_llm


@pytest.fixture(scope="module")
def wav(tmp_path_factory, tiny_corpus):
    return sorted((tiny_corpus.root / "wav").glob("*.wav"))[0]


@pytest.mark.parametrize("missing", ["config.json", "model.safetensors", "tokenizer.json"])
def test_model_folder_missing_one_file_is_named(missing, exported, wav, tmp_path, capsys):
    folder = tmp_path / "model"
    shutil.copytree(exported, folder)
    (folder / missing).unlink()
    code = auden_main(["transcribe", str(folder), str(wav)])
    err = capsys.readouterr().err
    record(f"model folder without {missing}", "auden transcribe",
           "exit 2, one line naming the folder or file", f"exit {code}: {err}")
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert str(folder) in err


def _exp_with(tmp_path, payload: bytes | None = None, obj=None):
    exp = tmp_path / "exp"
    exp.mkdir()
    path = exp / "checkpoint-4.pt"
    if obj is not None:
        torch.save(obj, path)
    else:
        path.write_bytes(payload)
    return exp, path


def _export(exp, tmp_path, capsys) -> tuple[int, str]:
    out = tmp_path / "out"
    code = auden_main(["export", str(exp), "--filename", "checkpoint-4.pt", "--out", str(out)])
    assert not out.exists()  # nothing half-exported
    return code, capsys.readouterr().err


def test_truncated_checkpoint_is_named(tmp_path, capsys):
    good = tmp_path / "good.pt"
    torch.save({"model": {"w": torch.zeros(1000)}, "batch_idx_train": 4}, good)
    exp, path = _exp_with(tmp_path, good.read_bytes()[:700])
    code, err = _export(exp, tmp_path, capsys)
    record("truncated checkpoint", "auden export / evaluate.py",
           "error naming the file, nothing written", f"exit {code}: {err}")
    assert code == 2 and f"checkpoint '{path}' cannot be loaded" in err


class _Payload:
    def __reduce__(self):
        return (print, ("code ran while loading",))


def test_checkpoint_with_code_in_its_pickle_is_refused(tmp_path, capsys):
    exp, path = _exp_with(tmp_path, obj={"model": {}, "payload": _Payload()})
    code, err = _export(exp, tmp_path, capsys)
    record("pickle with code in it", "auden export / evaluate.py",
           "refused unrun (weights_only), file named", f"exit {code}: {err}")
    assert code == 2 and f"checkpoint '{path}' cannot be loaded" in err
    assert "code ran while loading" not in capsys.readouterr().out
    with pytest.raises(ValueError, match="cannot be loaded"):
        load_checkpoint(path)


def test_checkpoint_from_another_model_type_is_named(tmp_path, training_setup):
    audio_llm = AutoModel.from_config(tiny_config(make_tiny_llm(tmp_path / "llm")))
    ctc = AutoModel.from_config(training_setup.model_config())
    with pytest.raises(ValueError, match="checkpoint 'exp/checkpoint-4.pt' does not match") as e:
        load_trainable_state_dict(ctc, audio_llm.trainable_state_dict(), "exp/checkpoint-4.pt")
    record("checkpoint of another model type", "train.py (resume) / evaluate.py",
           "error naming the checkpoint and the keys", str(e.value))


def test_checkpoint_of_another_size_is_named(tmp_path):
    small = AutoModel.from_config(tiny_config(make_tiny_llm(tmp_path / "llm")))
    config = tiny_config(make_tiny_llm(tmp_path / "llm"))
    config.projector.hidden_size = 96  # the LLM's width (64) in the small one
    big = AutoModel.from_config(config)
    with pytest.raises(ValueError, match="checkpoint 'exp/checkpoint-4.pt' does not match") as e:
        load_trainable_state_dict(big, small.trainable_state_dict(), "exp/checkpoint-4.pt")
    record("checkpoint of another size", "train.py (resume) / evaluate.py",
           "error naming the checkpoint and the shapes", str(e.value))
    assert "shape" in str(e.value)


def test_tokenizer_without_the_audio_token_gets_it_added_and_logged(tmp_path, caplog):
    llm = make_tiny_llm(tmp_path / "llm", with_audio_token=False)
    with caplog.at_level(logging.INFO, logger="auden.models.audio_llm"):
        model = AutoModel.from_config(tiny_config(llm))
    added = [r.getMessage() for r in caplog.records if "audio token" in r.getMessage()]
    record("tokenizer without the audio token", "train.py (model.llm.pretrained_model)",
           "the token is added (embeddings grown), logged", added[0] if added else "(silent)")
    assert added
    token_id = model.tokenizer.convert_tokens_to_ids(model.config.audio_token)
    assert token_id < model.llm.get_input_embeddings().num_embeddings


def test_checkpoint_spec_names_a_missing_file(tmp_path, capsys):
    (tmp_path / "exp").mkdir()
    code = auden_main(["export", str(tmp_path / "exp"), "--filename", "nope.pt",
                       "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    record("missing checkpoint", "auden export / evaluate.py", "error naming the file",
           f"exit {code}: {err}")
    assert code == 2 and "nope.pt" in err
