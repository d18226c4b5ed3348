"""auden: audio LLMs (audio encoder -> projector -> causal LLM) on Lhotse data.

    from auden import pipeline
    p = pipeline("audio-text-to-text", model="exp/audio_llm/export")
"""

__version__ = "0.1.0"


def __getattr__(name: str):
    # `import auden` stays light: the pipeline (torch, transformers) loads when first asked for.
    if name == "pipeline":
        from auden.inference.pipeline import pipeline

        return pipeline
    raise AttributeError(f"module 'auden' has no attribute '{name}'")
