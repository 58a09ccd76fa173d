"""Inspect AI task for tests/test_eval_formats.py: runs offline, without calling a model.

The solver writes a canned answer (no ``generate()``, which would download a tokenizer); the
scorers decide. Task arguments:

* ``revision``: the prompt revision, recorded in the log's task args;
* ``worse``: answer worse (each ``quality`` score 0.1 lower; ``correct`` unchanged);
* ``judge``: the model of the ``quality`` scorer (recorded as its argument: the grader).
"""

from __future__ import annotations

from inspect_ai import Task, task
from inspect_ai.dataset import MemoryDataset, Sample
from inspect_ai.model import ModelOutput
from inspect_ai.scorer import CORRECT, INCORRECT, Score, Target, mean, scorer
from inspect_ai.solver import Generate, TaskState, solver

N_SAMPLES = 80


def _level(i: int) -> int:
    return i % 7


@solver
def canned(worse: bool = False):  # type: ignore[no-untyped-def]
    async def solve(state: TaskState, generate: Generate) -> TaskState:
        level = int(state.metadata["level"])
        wrong = level == 6  # some answers are wrong, whatever the revision
        text = f"answer {state.target.text if not wrong else 'unknown'} level {level}"
        if worse:
            text += " [terse]"
        state.output = ModelOutput.from_content(model="canned", content=text)
        return state

    return solve


@scorer(metrics=[mean()])
def correct():  # type: ignore[no-untyped-def]
    async def score(state: TaskState, target: Target) -> Score:
        ok = f"answer {target.text} " in state.output.completion
        return Score(value=CORRECT if ok else INCORRECT)

    return score


@scorer(metrics=[mean()])
def quality(model: str = "mockllm/judge-a"):  # type: ignore[no-untyped-def]
    async def score(state: TaskState, target: Target) -> Score:
        level = int(state.metadata["level"])
        value = 0.5 + 0.05 * level - (0.1 if "[terse]" in state.output.completion else 0.0)
        return Score(value=round(value, 2), explanation=f"judged by {model}")

    return score


@task
def qa(revision: str = "r41", worse: bool = False, judge: str = "mockllm/judge-a") -> Task:
    samples = [
        Sample(
            id=f"q{i:03d}",
            input=f"What is item {i}?",
            target=f"item-{i}",
            metadata={"level": _level(i), "question": f"What is item {i}?"},
        )
        for i in range(N_SAMPLES)
    ]
    return Task(
        dataset=MemoryDataset(samples),
        solver=canned(worse=worse),
        scorer=[correct(), quality(model=judge)],
    )
