"""AudioLlm with other encoders, encoder LoRA, bf16, and the checkpoint reload path."""

import pytest
import torch
from tiny_audio_llm import random_batch, tiny_config, user_turn

from auden.auto.auto_config import config_to_dict
from auden.auto.auto_model import AutoModel
from auden.models.audio_llm import AudioEncoderConfig, AudioLlm
from auden.models.encoders.whisper import WhisperEncoder
from auden.models.lora import LoraConfig


def test_zipformer_encoder_feeds_the_llm_and_survives_export(llm_folder, tmp_path):
    torch.manual_seed(0)
    config = tiny_config(llm_folder)
    config.audio_encoder = AudioEncoderConfig(model_type="zipformer", config="tiny")
    model = AudioLlm.from_config(config).eval()
    batch = random_batch()
    with torch.no_grad():
        logits, _ = model.compute_logits(batch)
    model.save_pretrained(tmp_path / "export")
    loaded = AutoModel.from_pretrained(tmp_path / "export")
    with torch.no_grad():
        assert torch.equal(loaded.compute_logits(batch)[0], logits)


def test_checkpoint_of_trainable_params_rebuilds_the_same_model(llm_folder, tmp_path):
    """What the trainer does: save trainable_state_dict and the config dict, rebuild, load.

    Frozen parts are not in the checkpoint: they come back from their pretrained folders.
    """
    torch.manual_seed(0)
    WhisperEncoder("tiny-test").save_pretrained(tmp_path / "whisper")
    config = tiny_config(llm_folder)
    config.audio_encoder = AudioEncoderConfig(
        model_type="whisper", pretrained_model=str(tmp_path / "whisper"), train="frozen"
    )
    config.llm.lora = LoraConfig(enabled=True, r=4)
    model = AudioLlm.from_config(config)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    batch = random_batch()
    for _ in range(3):
        optimizer.zero_grad()
        model(batch).loss.backward()
        optimizer.step()
    checkpoint = {"model": model.trainable_state_dict(), "config": config_to_dict(model.config)}

    torch.manual_seed(123)  # a different random projector: the checkpoint must overwrite it
    rebuilt = AutoModel.from_config(checkpoint["config"])
    missing, unexpected = rebuilt.load_state_dict(checkpoint["model"], strict=False)
    assert not unexpected
    trainable = {n for n, p in rebuilt.named_parameters() if p.requires_grad}
    assert trainable == set(checkpoint["model"]) and not trainable & set(missing)
    model.eval(), rebuilt.eval()
    with torch.no_grad():
        assert torch.equal(model.compute_logits(batch)[0], rebuilt.compute_logits(batch)[0])
    messages = [[user_turn()], [user_turn()]]
    features = (batch.features, batch.feature_lens)
    assert model.generate(features, messages, max_new_tokens=3) == rebuilt.generate(
        features, messages, max_new_tokens=3
    )


def test_encoder_lora_trains_adapters_only_and_is_merged_on_export(llm_folder, tmp_path):
    torch.manual_seed(0)
    config = tiny_config(llm_folder)
    config.audio_encoder.train = "lora"
    config.audio_encoder.lora = LoraConfig(r=4, target_modules=["q_proj", "v_proj"])
    model = AudioLlm.from_config(config)
    enc_trainable = [n for n, p in model.audio_encoder.named_parameters() if p.requires_grad]
    assert enc_trainable and all("lora_" in n for n in enc_trainable)
    with torch.no_grad():
        for n, p in model.audio_encoder.named_parameters():
            if "lora_B" in n:
                p.normal_(std=0.5)
    model.eval()
    batch = random_batch()
    with torch.no_grad():
        expected, _ = model.compute_logits(batch)
    model.save_pretrained(tmp_path / "export")
    loaded = AudioLlm.from_pretrained(tmp_path / "export")
    assert not any("lora_" in n for n, _ in loaded.named_parameters())
    with torch.no_grad():
        torch.testing.assert_close(loaded.compute_logits(batch)[0], expected, atol=1e-4, rtol=1e-4)


def test_lora_target_that_matches_no_layer_names_the_config_key(llm_folder):
    config = tiny_config(llm_folder)
    config.llm.lora = LoraConfig(enabled=True, target_modules=["qkv"])
    with pytest.raises(ValueError, match=r"model.llm.lora.target_modules \['qkv'\]"):
        AudioLlm.from_config(config)


def test_bfloat16_llm_trains_and_generates(llm_folder, tmp_path):
    torch.manual_seed(0)
    config = tiny_config(llm_folder)
    config.llm.dtype = "bfloat16"
    model = AudioLlm.from_config(config)
    assert model.llm.get_input_embeddings().weight.dtype == torch.bfloat16
    batch = random_batch()
    out = model(batch)
    assert out.loss.dtype == torch.float32 and torch.isfinite(out.loss)
    out.loss.backward()
    model.eval()
    replies = model.generate(
        (batch.features, batch.feature_lens), [[user_turn()]] * 2, max_new_tokens=2
    )
    assert len(replies) == 2
    model.save_pretrained(tmp_path / "export")
    loaded = AudioLlm.from_pretrained(tmp_path / "export")
    assert loaded.llm.get_input_embeddings().weight.dtype == torch.bfloat16
