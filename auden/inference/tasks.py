"""The tasks an exported model was trained on and the prompt each uses, kept in its folder.

``auden export`` writes ``tasks.json`` from the run's data config, so that
``pipeline(..., task="describe")`` asks in the words the model learned::

    {"default": "transcribe",
     "tasks": {"transcribe": ["Transcribe the audio.", ...], "describe": [...]},
     "trained_max_seconds": 20.0}

``trained_max_seconds`` is the longest clip training read (``data.filters.max_duration``):
the pipeline warns about longer input, which a model answers, but may answer short.

The first prompt of a task is the one inference uses (greedy decoding stays reproducible).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger(__name__)

TASKS_FILE = "tasks.json"
# What a folder exported before tasks.json existed was trained for (the demo's first task).
FALLBACK = {"transcribe": ["Transcribe the audio."]}


@dataclass(frozen=True)
class TaskPrompts:
    """Task name -> its prompts (first one used), and the task used when none is named."""

    tasks: dict[str, list[str]] = field(default_factory=lambda: dict(FALLBACK))
    default: str = "transcribe"
    trained_max_seconds: float | None = None  # the longest clip training read (None: unknown)

    def __post_init__(self) -> None:
        if not self.tasks:
            raise ValueError("a model needs at least one task")
        for name, prompts in self.tasks.items():
            if not prompts:
                raise ValueError(f"task '{name}' has no prompt")
        if self.default not in self.tasks:
            raise ValueError(f"default task '{self.default}' is not one of {sorted(self.tasks)}")

    def prompt(self, task: str | None = None) -> str:
        """The prompt for ``task`` (the default task if None); an unknown task lists the known."""
        name = self.default if task is None else task
        if name not in self.tasks:
            raise ValueError(f"unknown task '{name}'; this model knows {sorted(self.tasks)}")
        return self.tasks[name][0]

    def save(self, folder: str | Path) -> Path:
        path = Path(folder) / TASKS_FILE
        tmp = path.with_name(f".{path.name}.tmp")
        data = {"default": self.default, "tasks": self.tasks}
        if self.trained_max_seconds is not None:
            data["trained_max_seconds"] = self.trained_max_seconds
        tmp.write_text(json.dumps(data, indent=2))
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, folder: str | Path) -> TaskPrompts:
        """Read ``folder/tasks.json``; a folder without one gets the transcribe task."""
        path = Path(folder) / TASKS_FILE
        if not path.is_file():
            logger.debug("%s not found: the model gets the 'transcribe' task only", path)
            return cls()
        try:
            data = json.loads(path.read_text())
            tasks = {str(k): [str(p) for p in v] for k, v in data["tasks"].items()}
            longest = data.get("trained_max_seconds")
            return cls(
                tasks=tasks,
                default=str(data.get("default") or next(iter(tasks))),
                trained_max_seconds=None if longest is None else float(longest),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise ValueError(f"'{path}' is not a valid tasks file: {e}") from e


def tasks_of_run(train_config: dict, where: str) -> TaskPrompts:
    """The tasks and prompts a training run used, read from its config's data config.

    ``train_config`` is the config a checkpoint stores; ``where`` names it in errors. The
    run's data config (``data.train_data_config``) and prompt files must still be readable.
    """
    from auden.data.config import load_data_config
    from auden.data.prompts import PromptSet

    data_config = ((train_config or {}).get("data") or {}).get("train_data_config")
    if not data_config:
        raise ValueError(f"{where}: config has no data.train_data_config to read the tasks from")
    default_file = (train_config or {}).get("prompt_file") or None
    tasks: dict[str, list[str]] = {}
    for source in load_data_config(data_config):
        prompt_file = source.prompt_file or default_file
        prompts = (
            PromptSet.from_file(prompt_file) if prompt_file else PromptSet.default_for(source.task)
        )
        known = tasks.setdefault(source.task, [])
        known += [p for p in prompts.prompts if p not in known]
    default = "transcribe" if "transcribe" in tasks else next(iter(tasks))
    filters = ((train_config or {}).get("data") or {}).get("filters") or {}
    longest = filters.get("max_duration")
    return TaskPrompts(
        tasks=tasks,
        default=default,
        trained_max_seconds=float(longest) if longest is not None else None,
    )
