"""The actions file: plan-time checks (exit 2), placeholders, secrets, plugin kinds.

No server is needed here; ``tests/test_actions_apply.py`` runs the actions against real ones.
"""

from __future__ import annotations

import hashlib
import sys
from datetime import UTC, datetime
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any

import pytest

from analysis.errors import RollbackError
from analysis.ledger import parse_ledger
from analysis.rollback._actions import ActionsFileError, apply_id, load_actions
from analysis.rollback._kinds import (
    ActionContext,
    ActionKind,
    builtin_kinds,
    redact_url,
    sign,
    url_origin,
)
from analysis.rollback.planning import rollback_plan

ROOT = Path(__file__).resolve().parent.parent
PRE = ROOT / "data_samples" / "rollback" / "ledger.yaml"
AT = datetime(2026, 11, 3, 8, 15, tzinfo=UTC)


def _ledger(
    *,
    prefix: bool = True,
    arms: int = 1,
    text: bool = True,
    inline: str | None = None,
    tmp: Path | None = None,
) -> Any:
    revisions: dict[str, Any] = {"r1": {"contract": "v1"}}
    if inline is not None:
        revisions["r1"]["text"] = inline
    elif text and tmp is not None:
        (tmp / "r1.txt").write_text("restored text\n")
        revisions["r1"]["text_file"] = "r1.txt"
    for i in range(2, 2 + arms):
        revisions[f"r{i}"] = {"parent": "r1", "contract": "v1"}
        if prefix:
            revisions[f"r{i}"]["cache_prefix"] = f"px{i}"
    arm_map = {"control": "r1", **{f"t{i}": f"r{i}" for i in range(2, 2 + arms)}}
    share = round(0.5 / arms, 4)
    data = {
        "version": 1,
        "prompts": {"p": {"revisions": revisions}},
        "experiments": {"e1": {"prompt": "p", "arms": arm_map}},
        "transitions": [
            {"at": "2026-11-01T00:00:00Z", "action": "deploy", "prompt": "p", "revision": "r1"},
            {"at": "2026-11-02T00:00:00Z", "action": "start", "experiment": "e1",
             "allocation": {"control": 1 - share * arms, **{f"t{i}": share
                                                             for i in range(2, 2 + arms)}}},
        ],
    }  # fmt: skip
    path = None if tmp is None else tmp / "ledger.yaml"
    return parse_ledger(data, path=path)


def _load(actions: Any, ledger: Any, env: dict[str, str] | None = None, **kw: Any) -> Any:
    reverted = kw.pop("reverted", ("r2",))
    return load_actions(
        actions, ledger, prompt="p", reverted=reverted, to="r1", experiment="e1",
        env=env or {}, **kw,
    )  # fmt: skip


# ------------------------------------------------------------------------- placeholders


def test_placeholders_and_environment_are_substituted(tmp_path: Path) -> None:
    cfg = _load(
        {"caches": [{"kind": "redis", "url": "${URL}",
                     "match": ["sem:{prompt}:{from}:{to}:{experiment}:*", "pre:{from_cache_prefix}*"]}]},
        _ledger(tmp=tmp_path), {"URL": "redis://h:1/0"},
    )  # fmt: skip
    (action,) = cfg.actions
    assert action.config["url"] == "redis://h:1/0"
    assert action.config["match"] == ["sem:p:r2:r1:e1:*", "pre:px2*"]


def test_several_reverted_revisions_repeat_list_items_and_refuse_scalars(tmp_path: Path) -> None:
    led = _ledger(arms=2, tmp=tmp_path)
    cfg = _load(
        {"caches": [{"kind": "redis", "url": "redis://h/0", "match": ["s:{from}:*", "k:x*"]}]},
        led, reverted=("r2", "r3"),
    )  # fmt: skip
    assert cfg.actions[0].config["match"] == ["s:r2:*", "s:r3:*", "k:x*"]
    with pytest.raises(ActionsFileError, match=r"\{from\} has 2 values"):
        _load(
            {"cohort": [{"kind": "webhook", "url": "http://h/{from}"}]}, led, reverted=("r2", "r3")
        )


@pytest.mark.parametrize(
    ("actions", "env", "message"),
    [
        ({"caches": [{"kind": "redis", "url": "${NOPE}", "match": "a*"}]}, {},
         "environment variable NOPE is not set"),
        ({"cohort": [{"kind": "webhook", "url": "http://h/{revision}"}]}, {},
         r"unknown placeholder\(s\) \{revision\}"),
        ({"cohort": [{"kind": "ftp", "url": "x"}]}, {}, "unknown kind 'ftp'"),
        ({"cohort": [{"kind": "webhook"}]}, {}, "missing url"),
        ({"cohort": [{"kind": "webhook", "url": "http://h", "colour": 1}]}, {},
         r"unknown key\(s\) colour"),
        ({"cohort": [{"kind": "file", "path": "x"}]}, {}, "belongs under text"),
        ({"rollout": []}, {}, r"unknown key\(s\) rollout"),
        ({"caches": [{"kind": "redis", "url": "redis://h", "match": "*"}]}, {},
         "would delete every key"),
        ({"cohort": [{"kind": "webhook", "url": "http://h", "include_units": "all"}]}, {},
         "include_units: hashed or plain"),
        ({"any": [{"kind": "command", "run": "notify.sh"}]}, {}, "run: a list"),
    ],
)  # fmt: skip
def test_unusable_actions_are_refused_at_plan_time(
    tmp_path: Path, actions: Any, env: dict[str, str], message: str
) -> None:
    with pytest.raises(ActionsFileError, match=message) as info:
        _load(actions, _ledger(tmp=tmp_path), env)
    assert info.value.exit_code == 2


def test_cache_prefix_the_ledger_does_not_record_is_exit_2(tmp_path: Path) -> None:
    led = _ledger(prefix=False, tmp=tmp_path)
    with pytest.raises(
        ActionsFileError, match=r"\{from_cache_prefix\} is used but .* no cache prefix for r2"
    ):
        _load(
            {
                "caches": [
                    {"kind": "redis", "url": "redis://h", "match": ["k:{from_cache_prefix}*"]}
                ]
            },
            led,
        )


def test_file_action_without_the_restored_text_is_exit_2(tmp_path: Path) -> None:
    led = _ledger(text=False, tmp=tmp_path)
    with pytest.raises(ActionsFileError, match="r1 has no text in the ledger") as info:
        _load({"text": [{"kind": "file", "path": "out.txt"}]}, led)
    assert info.value.exit_code == 2
    assert "neither text nor text_file" in str(info.value)
    assert "add text (inline) or text_file to revision r1" in str(info.value)
    # the same ledger is fine without a text action: only the file action needs the text
    assert _load({"cohort": [{"kind": "webhook", "url": "http://h"}]}, led).restored_text is None
    cfg = _load({"text": [{"kind": "file", "path": "out.txt"}]}, _ledger(tmp=tmp_path))
    assert cfg.restored_text == b"restored text\n"


@pytest.mark.parametrize(
    "text", ["restored text\n", "Réponds en français — sans fin de ligne", "a\r\nb\r\n\u2028"]
)
def test_file_action_writes_the_inline_text(tmp_path: Path, text: str) -> None:
    led = _ledger(inline=text, tmp=tmp_path)
    assert led.revisions["r1"].text_sha256 == hashlib.sha256(text.encode("utf-8")).hexdigest()
    cfg = _load({"text": [{"kind": "file", "path": "served/{prompt}.txt"}]}, led)
    assert cfg.restored_text == text.encode("utf-8")
    (action,) = cfg.actions
    ctx = ActionContext("text", 0, "id", "id#text.0", {}, tmp_path, restored_text=cfg.restored_text)
    action.handler.check(action.config, ctx)
    out = tmp_path / "served" / "p.txt"
    assert action.handler.run(action.config, ctx).startswith(f"wrote the restored text to {out}")
    assert out.read_bytes() == text.encode("utf-8")  # exactly the ledger's text, as UTF-8
    assert hashlib.sha256(out.read_bytes()).hexdigest() == led.revisions["r1"].text_sha256
    assert not [p for p in out.parent.iterdir() if p != out]  # no temporary file left behind
    assert action.handler.run(action.config, ctx) == f"{out} already holds the restored text"


def test_missing_redis_client_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)  # import redis now fails
    with pytest.raises(ActionsFileError, match=r"promptstate\[redis\]"):
        _load(
            {"caches": [{"kind": "redis", "url": "redis://h", "match": "a*"}]},
            _ledger(tmp=tmp_path),
        )


def test_actions_file_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "actions.yaml"
    path.write_text("caches:\n  - {kind: redis, url: 'redis://h', match: ['*']}\n")
    with pytest.raises(ActionsFileError, match=rf"{path}: caches\[0\] \(redis\)"):
        _load(path, _ledger(tmp=tmp_path))


# ------------------------------------------------------------------------------- secrets


def test_secrets_are_redacted_everywhere_they_could_show(tmp_path: Path) -> None:
    env = {"REDIS_URL": "redis://u:pw-123@h:6379/0", "HOOK_TOKEN": "tok-456", "HOOK": "sec-789"}
    cfg = _load(
        {"caches": [{"kind": "redis", "url": "${REDIS_URL}", "match": "a*"}],
         "contracts": [{"kind": "webhook", "url": "https://h/x?key=${HOOK_TOKEN}",
                        "secret": "${HOOK}", "headers": {"Authorization": "Bearer ${HOOK_TOKEN}"}}]},
        _ledger(tmp=tmp_path), env,
    )  # fmt: skip
    shown = " ".join(a.target for a in cfg.actions) + repr(cfg) + repr(cfg.actions)
    for secret in ("pw-123", "tok-456", "sec-789"):
        assert secret not in shown
        assert cfg.redact(f"error talking to {secret}") == "error talking to ***"
    # a URL a ${VAR} was substituted into shows its scheme://host only (issue 19)
    assert cfg.actions[0].target == "redis://h:6379 delete a*"
    assert cfg.actions[1].target == "POST https://h (signed)"


def test_every_value_substituted_into_a_url_is_a_secret(tmp_path: Path) -> None:
    """Whatever the variable's name (issue 19): the URL shows as scheme://host, the value as
    ``***`` — unless it is the host itself."""
    env = {"SLACK_HOOK": "https://hooks.slack.test/services/T01/B02/xyzw9876",
           "ROUTE": "team-a/route-42", "HOST": "hooks.internal.test"}  # fmt: skip
    cfg = _load(
        {"cohort": [{"kind": "webhook", "url": "${SLACK_HOOK}"}],
         "contracts": [{"kind": "webhook", "url": "https://${HOST}:8443/in/${ROUTE}?a=1"}],
         "any": [{"kind": "command", "run": ["/bin/echo", "--to=https://x.test/${ROUTE}"]}]},
        _ledger(tmp=tmp_path), env,
    )  # fmt: skip
    assert [a.target for a in cfg.actions] == [
        "POST https://hooks.slack.test",
        "POST https://hooks.internal.test:8443",
        "run /bin/echo --to=https://x.test/***",
    ]
    for value in (env["SLACK_HOOK"], redact_url(env["SLACK_HOOK"])):
        assert cfg.redact(f"{value}: HTTP 503") == "https://hooks.slack.test: HTTP 503"
    assert cfg.redact("error at /in/team-a/route-42") == "error at /in/***"
    assert cfg.redact("hooks.internal.test is down") == "hooks.internal.test is down"
    assert "xyzw9876" not in repr(cfg) + repr(cfg.actions)


def test_url_origin() -> None:
    assert url_origin("https://u:p@h.test:8443/a/b?c=d#e") == "https://h.test:8443"
    assert url_origin("http://[::1]:80/x") == "http://[::1]:80"
    assert url_origin("unix:///run/redis.sock") == "unix://***"
    assert url_origin("https://h:99999/") == "***"  # a port out of range
    assert url_origin("no scheme") == "***"


def test_redact_url() -> None:
    assert redact_url("redis://:pw@h:1/0") == "redis://:***@h:1/0"
    assert redact_url("https://h/p?sig=abc") == "https://h/p?sig=***"
    assert redact_url("https://h/p") == "https://h/p"


def test_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    body = b'{"a":1}'
    expected = hashlib.sha256  # the reference: RFC 2104 built by hand
    key = b"k" + b"\x00" * 63
    inner = expected(bytes(b ^ 0x36 for b in key) + b"123." + body).digest()
    outer = expected(bytes(b ^ 0x5C for b in key) + inner).hexdigest()
    assert sign("k", "123", body) == outer


def test_apply_id_is_prompt_from_to_and_time() -> None:
    assert apply_id("p", ("r2", "r3"), "r1", AT) == "p:r2+r3:r1:20261103T081500Z"


# -------------------------------------------------------------------------------- plugins


class EchoKind(ActionKind):
    """A plugin kind for the test: records the payload it was given."""

    required = ("note",)
    seen: list[dict[str, Any]] = []  # noqa: RUF012 - the test reads it

    def target(self, config: Any) -> str:
        return f"echo {config['note']}"

    def run(self, config: Any, ctx: ActionContext) -> str:
        EchoKind.seen.append(dict(ctx.payload))
        return "echoed"


def test_a_plugin_kind_registers_through_the_entry_point_group(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.metadata

    ep = EntryPoint(name="echo", value=f"{__name__}:EchoKind", group="promptstate.actions")
    bad = EntryPoint(name="broken", value="no_such_module:Kind", group="promptstate.actions")
    shadow = EntryPoint(name="file", value=f"{__name__}:EchoKind", group="promptstate.actions")
    real = importlib.metadata.entry_points

    def fake(**kw: Any) -> Any:
        if kw.get("group") == "promptstate.actions":
            return [ep, bad, shadow]
        return real(**kw)

    monkeypatch.setattr(importlib.metadata, "entry_points", fake)
    cfg = _load({"any": [{"kind": "echo", "note": "{prompt}"}]}, _ledger(tmp=tmp_path))
    assert cfg.actions[0].target == "echo p"
    assert isinstance(cfg.actions[0].handler, EchoKind)
    with pytest.raises(ActionsFileError, match="cannot be loaded"):
        _load({"any": [{"kind": "broken"}]}, _ledger(tmp=tmp_path))
    cfg = _load({"text": [{"kind": "file", "path": "x"}]}, _ledger(tmp=tmp_path))
    assert type(cfg.actions[0].handler) is type(builtin_kinds()["file"])  # not replaced


def test_plan_with_an_actions_file_is_checked_like_apply() -> None:
    with pytest.raises(RollbackError) as info:
        rollback_plan(PRE, at=AT, actions={"cohort": [{"kind": "webhook", "url": "${UNSET_X}"}]})
    assert info.value.exit_code == 2
