"""promptfoo configs for tests/test_eval_formats.py: the ``echo`` provider, scoring assertions.

The provider echoes the rendered prompt, so the prompt revision decides the output and the
``javascript`` assertions decide the scores, offline. 80 tests: 20 named by ``description``,
20 by ``metadata.id``, 40 by nothing (their id is the hash of their vars).
"""

from __future__ import annotations

from typing import Any

N_TESTS = 80

#: Per-test quality 0.5..0.8 by level, 0.1 lower when the output is terse; pass at 0.6.
QUALITY_JS = """
const level = Number(context.vars.level);
const s = Math.round((0.5 + 0.05 * level - (output.includes('[terse]') ? 0.1 : 0)) * 100) / 100;
return { pass: s >= 0.6, score: s, reason: 'quality ' + s };
"""
#: Every seventh test is answered wrong, whatever the revision.
CORRECT_JS = """
const ok = Number(context.vars.level) !== 6;
return { pass: ok, score: ok ? 1 : 0, reason: ok ? 'right' : 'wrong' };
"""


def _test(i: int) -> dict[str, Any]:
    test: dict[str, Any] = {"vars": {"q": f"What is item {i}?", "level": i % 7}}
    if i < 20:
        test["description"] = f"case-{i:03d}"
    elif i < 40:
        test["metadata"] = {"id": f"m-{i:03d}", "topic": "items"}
    return test


def config(revision: str, *, worse: bool = False, judge: str = "judge-a") -> dict[str, Any]:
    """The config of one eval run: prompt ``revision`` (its label), graded by ``judge``."""
    suffix = " [terse]" if worse else ""
    return {
        "description": f"promptstate eval-format test, {revision}",
        "prompts": [{"raw": "Q: {{q}} (level {{level}})" + suffix, "label": revision}],
        "providers": ["echo"],
        "defaultTest": {
            "assert": [
                {"type": "javascript", "value": QUALITY_JS, "metric": "quality", "provider": judge},
                {"type": "javascript", "value": CORRECT_JS, "metric": "correct"},
                {"type": "contains", "value": "Q:"},
            ],
        },
        "tests": [_test(i) for i in range(N_TESTS)],
    }
