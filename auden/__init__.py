"""auden: audio LLMs (audio encoder -> projector -> causal LLM) on Lhotse data."""

__version__ = "0.1.0"
