"""Text pretraining of the LLM runs through the one trainer as the ``text_llm`` model: each
clip's label words and transcript stand where its audio will be, and the export is an LLM
folder (with the audio token) that an audio LLM loads as ``model.llm.pretrained_model``."""

from __future__ import annotations

import torch
from tiny_audio_llm import make_batch, make_tiny_llm, tiny_config
from tinycorpus import write_data_config
from transformers import AutoModelForCausalLM, AutoTokenizer

from auden.checkpoint import CheckpointSpec, find_checkpoints, load_checkpoint
from auden.data.config import DataConfig
from auden.data.shar import export_shar
from auden.inference.export import export_model
from auden.models.audio_llm import AudioLlm
from auden.models.chat_inputs import IGNORE_INDEX
from auden.models.text_llm import TextLlm, TextLlmConfig
from auden.training.config import TrainConfig, TrainerConfig
from auden.training.loop import train


def _model(folder, **config) -> TextLlm:
    llm = make_tiny_llm(folder / "llm")
    return TextLlm.from_config(TextLlmConfig(pretrained_model=str(llm), **config))


def _batch(texts: list[str], targets: list[str], labels=None):
    batch = make_batch(torch.zeros(len(texts), 0, 0), torch.zeros(len(texts)), targets)
    batch.texts = list(texts)
    batch.labels = labels or {}
    return batch


def test_label_words_then_spoken_words_stand_where_the_audio_was(tmp_path):
    model = _model(tmp_path, label_fields=["gender", "speed", "event"])
    labels = {
        "gender": ["female", None, "male", None],
        "speed": ["fast", None, None, None],
        "event": [None, None, None, "rising tone"],
    }
    batch = _batch(
        ["the cat sat", "", "a dog", ""],
        ["the cat sat", "a dog barks", "a dog", "a rising tone"],
        labels,
    )
    rows, conversations = model.conversations(batch, for_generation=False)
    assert rows == [0, 2, 3]  # the sound no label names (row 1) adds nothing
    user, assistant = conversations[0]
    # The words evaluate.py's text baseline gives the same LLM (label words first).
    assert user["content"] == [
        {"type": "text", "text": " female fast the cat sat"},
        {"type": "text", "text": "Transcribe:"},
    ]
    assert assistant == {"role": "assistant", "content": "the cat sat"}
    assert conversations[1][0]["content"][0]["text"] == " male a dog"
    # A sound without words is read by its labels alone.
    assert conversations[2][0]["content"][0]["text"] == " rising tone"
    # Without label fields, only the spoken words are read.
    assert _model(tmp_path / "plain").words(batch) == ["the cat sat", "", "a dog", ""]


def test_only_the_reply_is_learned(tmp_path):
    model = _model(tmp_path)
    _, conversations = model.conversations(
        _batch(["hello world"], ["hello world"]), for_generation=False
    )
    inputs = model.chat.encode_text(conversations, ["row 0"], for_generation=False)
    labelled = inputs.labels[0][inputs.labels[0] != IGNORE_INDEX]
    reply = model.tokenizer.decode(labelled)
    assert reply.startswith("hello world") and "Transcribe" not in reply


def test_a_batch_of_sound_events_gives_a_zero_loss_that_reaches_every_weight(tmp_path):
    model = _model(tmp_path)
    out = model(_batch(["", ""], ["a dog barks", "rain"]))
    out.loss.backward()
    assert out.num_targets == 0 and out.loss.item() == 0.0
    assert all(p.grad is not None for p in model.parameters())


def test_text_pretraining_through_the_trainer_from_shar_learns_and_exports_an_llm_folder(
    tmp_path, tiny_corpus
):
    """An LLM without the audio token (like Qwen2.5) trains on a Shar source through the
    trainer; the export has the token, and an audio LLM builds on it."""
    llm = make_tiny_llm(tmp_path / "llm", with_audio_token=False)
    shar = tmp_path / "shar"
    export_shar(tiny_corpus.cuts, shar, shard_size=8)
    data_config = write_data_config(
        tmp_path / "train_data.yaml", [{"shar_dir": str(shar), "task": "transcribe"}]
    )
    data = DataConfig(train_data_config=str(data_config), num_workers=0)
    data.sampler.max_duration = 1000
    data.sampler.max_cuts = 8
    data.augment.spec_augment = False
    cfg = TrainConfig(
        exp_dir=str(tmp_path / "exp"),
        model=TextLlmConfig(pretrained_model=str(llm)),
        data=data,
        trainer=TrainerConfig(
            num_steps=60,
            num_epochs=100,
            save_every_n=30,
            average_period=5,
            log_interval=30,
            valid_interval=1000,
            grad_clip=1.0,
        ),
    )
    cfg.trainer.optimizer.lr = 3e-3
    cfg.trainer.scheduler.warmup_batches = 10
    train(cfg)
    names = [p.name for p in find_checkpoints(tmp_path / "exp")]
    assert names == ["checkpoint-60.pt", "checkpoint-30.pt"]
    assert load_checkpoint(tmp_path / "exp" / "checkpoint-60.pt")["model_avg"] is not None

    out = export_model(
        tmp_path / "exp", CheckpointSpec(filename="checkpoint-60.pt"), tmp_path / "export"
    )
    exported = AutoModelForCausalLM.from_pretrained(out)  # a plain transformers folder
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert "<|AUDIO|>" in tokenizer.get_vocab()
    assert exported.get_input_embeddings().num_embeddings >= len(tokenizer)
    texts = ["hello world", "tiny cat", "speech data test"]
    batch = _batch(texts, texts)
    fresh = TextLlm.from_config(TextLlmConfig(pretrained_model=str(llm)))  # the start weights
    trained = TextLlm.from_config(TextLlmConfig(pretrained_model=str(out)))
    with torch.no_grad():
        loss_before, loss_after = float(fresh(batch).loss), float(trained(batch).loss)
    assert loss_after < 0.5 * loss_before, (loss_before, loss_after)
    audio_llm = AudioLlm.from_config(tiny_config(out))
    assert audio_llm.chat.audio_token_id == tokenizer.convert_tokens_to_ids("<|AUDIO|>")
