"""Shared fixtures: a tiny on-disk Lhotse corpus (real wavs + fbank), built once per session.

The whole session runs torch on one thread (``pytest_configure``), and subprocesses inherit
``OMP_NUM_THREADS=1``: tiny models on a shared 2-core machine run 10-20x slower with two
oversubscribed threads. ``AUDEN_TEST_THREADS=<n>`` overrides it.

The session corpus is shared read-only; a test that damages files (deletes or corrupts
audio) asks for ``own_tiny_corpus``, a fresh private one. Other helpers live in
``tests/tinycorpus.py`` (``make_tiny_corpus``, ``write_data_config``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))

from tinycorpus import TinyCorpus, make_tiny_corpus  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]


def pytest_configure(config) -> None:
    """One torch thread for the whole session, and for the subprocesses it starts."""
    threads = int(os.environ.get("AUDEN_TEST_THREADS", "1"))
    os.environ["OMP_NUM_THREADS"] = str(threads)
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> TinyCorpus:
    """24 cuts of 0.6-2.0 s with fbank, data configs and prompt files; do not modify."""
    return make_tiny_corpus(tmp_path_factory.mktemp("tiny_corpus"), num_cuts=24)


@pytest.fixture
def own_tiny_corpus(tmp_path) -> TinyCorpus:
    """A fresh 12-cut corpus private to one test, free to damage."""
    return make_tiny_corpus(tmp_path / "own_corpus", num_cuts=12, prefix="own")


@pytest.fixture
def one_torch_thread():
    """One torch thread inside a test even under ``AUDEN_TEST_THREADS`` (the session default
    is already one). Use with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def training_setup(tiny_corpus, tmp_path_factory):
    """A micro CTC model (real Zipformer + tokenizer folder) set up to train on ``tiny_corpus``."""
    from tiny_training import make_training_setup

    return make_training_setup(tmp_path_factory.mktemp("training_setup"), tiny_corpus)


@pytest.fixture(scope="session")
def llm_folder(tmp_path_factory) -> Path:
    """A random tiny Qwen2 folder with the audio token (tests/tiny_audio_llm.py), shared
    read-only by the audio-LLM tests."""
    from tiny_audio_llm import make_tiny_llm

    return make_tiny_llm(tmp_path_factory.mktemp("llm") / "tiny_qwen2")


@pytest.fixture(scope="session")
def tiny_llm_folder(tmp_path_factory) -> Path:
    """A random tiny Qwen2 folder whose tokenizer knows the tiny corpus's words, for the
    audio-LLM training tests on ``training_setup``."""
    from tiny_audio_llm import make_tiny_llm
    from tinycorpus import WORDS

    texts = [" ".join(WORDS), "a tone of 0123456789 hertz", "Transcribe the audio."]
    return make_tiny_llm(tmp_path_factory.mktemp("llm") / "llm", texts=texts)


@pytest.fixture(scope="session")
def exported_audio_llm(tmp_path_factory) -> Path:
    """A tiny AudioLlm (Whisper-style encoder, tiny LLM) as `auden export` writes it.
    Shared read-only; a test that damages the folder copies it first."""
    from tiny_audio_llm import make_tiny_llm, tiny_config

    from auden.auto.auto_model import AutoModel

    root = tmp_path_factory.mktemp("exported_audio_llm")
    torch.manual_seed(0)
    model = AutoModel.from_config(tiny_config(make_tiny_llm(root / "llm")))
    return model.save_pretrained(root / "export")
