"""Tasks: where a cut's target text lives, and the prompt a task uses by default.

One manifest can serve several tasks (a spoken sentence is both `transcribe` and
`describe` material); the data config pairs a manifest with a task. A cut's first
supervision carries the fields below.

| task         | target                              | user prompt                          |
|--------------|-------------------------------------|--------------------------------------|
| transcribe   | ``supervision.text``                | drawn from the task's prompt file    |
| continue     | ``supervision.custom["reply"]``     | drawn from the task's prompt file    |
| describe     | ``supervision.custom["description"]`` | drawn from the task's prompt file  |
| answer       | ``supervision.custom["answer"]``    | drawn from the task's prompt file    |
| instruct     | ``supervision.custom["response"]``  | ``supervision.custom["instruction"]`` |
"""

from __future__ import annotations

from dataclasses import dataclass

from lhotse.cut import Cut


@dataclass(frozen=True)
class Task:
    name: str
    target_field: str  # "text" or a key of supervision.custom
    instruction_field: str | None = None  # a per-cut prompt, when the task has one

    def target(self, cut: Cut) -> str:
        sup = _first_supervision(cut)
        if self.target_field == "text":
            value = sup.text
        else:
            value = (sup.custom or {}).get(self.target_field)
        if value is None:
            raise KeyError(
                f"cut '{cut.id}': task '{self.name}' needs supervision field "
                f"'{self.target_field}', which is missing"
            )
        return str(value)

    def instruction(self, cut: Cut) -> str | None:
        if self.instruction_field is None:
            return None
        value = (_first_supervision(cut).custom or {}).get(self.instruction_field)
        if value is None:
            raise KeyError(
                f"cut '{cut.id}': task '{self.name}' needs supervision field "
                f"'{self.instruction_field}', which is missing"
            )
        return str(value)


TASKS: dict[str, Task] = {
    t.name: t
    for t in (
        Task("transcribe", "text"),
        Task("continue", "reply"),
        Task("describe", "description"),
        Task("answer", "answer"),
        Task("instruct", "response", instruction_field="instruction"),
    )
}


def get_task(name: str) -> Task:
    try:
        return TASKS[name]
    except KeyError:
        raise ValueError(f"unknown task '{name}'; known tasks: {sorted(TASKS)}") from None


def _first_supervision(cut: Cut):
    if not cut.supervisions:
        raise ValueError(f"cut '{cut.id}' has no supervision")
    return cut.supervisions[0]
