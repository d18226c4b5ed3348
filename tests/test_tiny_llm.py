import subprocess
import sys

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from auden.models.tiny_llm import AUDIO_TOKEN, TinyLlmSize, save_tiny_llm, train_chat_tokenizer

TEXTS = ["hello world", "good morning to you", "the cat sat on the mat"]


def test_tiny_llm_folder_loads_with_transformers_auto_classes(tmp_path):
    torch.manual_seed(0)
    tokenizer = train_chat_tokenizer(TEXTS, vocab_size=300)
    save_tiny_llm(tmp_path / "llm", tokenizer, TinyLlmSize(hidden_size=32, intermediate_size=64))
    tok = AutoTokenizer.from_pretrained(tmp_path / "llm")
    llm = AutoModelForCausalLM.from_pretrained(tmp_path / "llm")
    assert llm.config.tie_word_embeddings and llm.config.hidden_size == 32
    assert llm.get_input_embeddings().weight.shape[0] == len(tok)
    assert tok.convert_tokens_to_ids(AUDIO_TOKEN) != tok.unk_token_id
    assert tok.eos_token == "<|im_end|>" and tok.pad_token == "<|endoftext|>"

    # Byte-level BPE: text never seen in training round-trips exactly.
    text = "Zürich ✓ 42"
    assert tok.decode(tok(text, add_special_tokens=False).input_ids) == text

    messages = [
        {"role": "user", "content": [{"type": "audio"}, {"type": "text", "text": "Transcribe:"}]},
        {"role": "assistant", "content": "hello world"},
    ]
    rendered = tok.apply_chat_template(messages, tokenize=False)
    assert rendered == (
        "<|im_start|>user\n<|AUDIO|> Transcribe:<|im_end|>\n"
        "<|im_start|>assistant\nhello world<|im_end|>\n"
    )
    prompt = tok.apply_chat_template(messages[:1], tokenize=False, add_generation_prompt=True)
    assert rendered.startswith(prompt) and prompt.endswith("<|im_start|>assistant\n")
    ids = tok(rendered, add_special_tokens=False).input_ids
    assert ids.count(tok.convert_tokens_to_ids(AUDIO_TOKEN)) == 1


def test_tiny_llm_command_line_writes_a_loadable_folder(tmp_path):
    text_file = tmp_path / "texts.txt"
    text_file.write_text("\n".join(TEXTS) + "\n")
    out = tmp_path / "llm"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "auden.models.tiny_llm",
            "--text-file",
            str(text_file),
            "--out",
            str(out),
            "--hidden-size",
            "48",
            "--num-layers",
            "1",
        ],
        check=True,
        capture_output=True,
    )
    llm = AutoModelForCausalLM.from_pretrained(out)
    assert llm.config.hidden_size == 48 and llm.config.num_hidden_layers == 1
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())  # no temp folder left
