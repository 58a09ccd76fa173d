"""The rollback actions file: loading, plan-time checks, placeholders, payloads.

An actions file (YAML or JSON) holds one list of actions per leg, run by ``rollback apply`` in
the order ``text``, ``caches``, ``cohort``, ``contracts``, ``any``::

    version: 1            # optional
    text:      [{kind: file, path: "prompts/{prompt}.txt"}]
    caches:    [{kind: redis, url: "${REDIS_URL}", match: ["semcache:{prompt}:{from}:*"]}]
    cohort:    [{kind: webhook, url: "https://…/cohort", include_units: hashed}]
    contracts: [{kind: webhook, url: "https://…/contracts", secret: "${HOOK_SECRET}"}]
    any:       [{kind: command, run: ["./notify.sh"]}]

**Placeholders** in every text value: ``{prompt}``, ``{from}``, ``{to}``, ``{experiment}``,
``{from_cache_prefix}`` (the rolled-back revision's cache prefix). When several revisions are
rolled back, a list item using ``{from}`` or ``{from_cache_prefix}`` is repeated once per
revision; a single value using them is refused. ``${VAR}`` reads the environment variable
``VAR``. Everything is checked when the plan is made (exit 2, naming the file and the action):
an unknown leg, kind, key or placeholder, a missing variable, a ``{from_cache_prefix}`` the
ledger does not record (neither ``cache_prefix`` nor a text hash), a ``file`` action when the
restored revision has neither an inline ``text`` nor a ``text_file``, a kind whose client is
not installed.

**Secrets** — values of a kind's secret keys (a webhook's ``secret`` and ``headers``),
passwords in URLs, and the value of every ``${VAR}`` whose name contains ``SECRET``,
``TOKEN``, ``PASSWORD``, ``PASSWD``, ``KEY``, ``AUTH`` or ``CREDENTIAL`` — are replaced by
``***`` in everything shown or journalled (:meth:`ActionsConfig.redact`). Every value
substituted into a URL is a secret too, whatever the variable's name: a URL into which a
``${VAR}`` was substituted (``url: ${SLACK_HOOK}`` as well as ``https://h/${PATH}``) is shown as
its ``scheme://host`` only, and the variable's value (unless it is that host) as ``***``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from analysis.errors import RollbackError
from analysis.rollback._kinds import (
    ACTION_LEGS,
    ActionKind,
    builtin_kinds,
    load_kinds,
    redact_url,
    url_origin,
)

if TYPE_CHECKING:
    from analysis.ledger import Ledger

__all__ = ["Action", "ActionsConfig", "ActionsFileError", "apply_id", "load_actions"]

_TOKEN = re.compile(r"\$\{([^}]*)\}|\{([A-Za-z_][A-Za-z0-9_]*)\}")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SECRET_VAR = re.compile(r"SECRET|TOKEN|PASSWORD|PASSWD|KEY|AUTH|CREDENTIAL", re.IGNORECASE)
_PLACEHOLDERS = ("prompt", "from", "to", "experiment", "from_cache_prefix")
_PER_REVISION = ("from", "from_cache_prefix")
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


class ActionsFileError(RollbackError):
    """The actions file cannot be used as written (exit code 2); nothing was changed."""


@dataclass(frozen=True)
class Action:
    """One configured action, resolved.

    Attributes:
        leg: ``text``, ``caches``, ``cohort``, ``contracts`` or ``any``.
        index: Its position in the leg.
        kind: The kind name.
        target: The resolved target in words, secrets redacted.
        fingerprint: SHA-256 of the action as written (before ``${VAR}`` substitution) and its
            redacted target: a journal entry counts for this action only when it matches.
        config: The resolved configuration (holds secrets: never print it).
    """

    leg: str
    index: int
    kind: str
    target: str
    fingerprint: str
    config: Mapping[str, Any] = field(repr=False)
    handler: ActionKind = field(repr=False, compare=False)

    @property
    def name(self) -> str:
        """``<leg>[<index>]``, as in messages and the journal."""
        return f"{self.leg}[{self.index}]"

    def to_dict(self) -> dict[str, Any]:
        """``{"name", "leg", "index", "kind", "target"}`` (no secrets)."""
        return {
            "name": self.name,
            "leg": self.leg,
            "index": self.index,
            "kind": self.kind,
            "target": self.target,
        }


@dataclass(frozen=True)
class ActionsConfig:
    """A resolved actions file.

    Attributes:
        path: The file (``None`` for a mapping given in Python).
        actions: Every action, in run order (leg order, then file order).
        base_dir: Relative paths of ``file`` and ``command`` actions are resolved against it.
        restored_text: The restored revision's text, when an action needs it.
    """

    path: Path | None
    actions: tuple[Action, ...]
    base_dir: Path
    restored_text: bytes | None = field(default=None, repr=False)
    _secrets: tuple[str, ...] = field(default=(), repr=False)
    _urls: tuple[tuple[str, str], ...] = field(default=(), repr=False)

    def leg(self, name: str) -> tuple[Action, ...]:
        """The actions of one leg."""
        return tuple(a for a in self.actions if a.leg == name)

    def redact(self, text: str) -> str:
        """``text`` with every URL a ``${VAR}`` was substituted into replaced by its
        ``scheme://host``, and every secret of the file by ``***``."""
        return _redact(text, self._urls, self._secrets)


def _redact(text: str, urls: Sequence[tuple[str, str]], secrets: Sequence[str]) -> str:
    """Replace each ``(url, origin)`` of ``urls`` (longest first), then each secret by ``***``."""
    for url, origin in sorted(urls, key=lambda pair: len(pair[0]), reverse=True):
        text = text.replace(url, origin)
    for secret in sorted(secrets, key=len, reverse=True):
        if secret:
            text = text.replace(secret, "***")
    return text


def apply_id(prompt: str, reverted: Sequence[str], to: str, at: datetime) -> str:
    """The apply id: ``<prompt>:<from>:<to>:<transition time>`` (``from`` joined with ``+``).

    >>> from datetime import UTC, datetime
    >>> apply_id("support", ["r42"], "r41", datetime(2026, 11, 3, 8, 15, tzinfo=UTC))
    'support:r42:r41:20261103T081500Z'
    """
    return f"{prompt}:{'+'.join(reverted)}:{to}:{at.strftime('%Y%m%dT%H%M%SZ')}"


def load_actions(
    source: str | Path | Mapping[str, Any],
    ledger: Ledger,
    *,
    prompt: str,
    reverted: Sequence[str],
    to: str,
    experiment: str | None,
    env: Mapping[str, str] | None = None,
) -> ActionsConfig:
    """Read, check and resolve an actions file for one rollback.

    Args:
        source: The file (YAML, or JSON by suffix), or its content as a mapping.
        ledger: The ledger (cache prefixes and the restored revision's text).
        prompt: The prompt rolled back.
        reverted: The revisions rolled back.
        to: The restored revision.
        experiment: The experiment the rollback ends, if any.
        env: The environment for ``${VAR}`` (default ``os.environ``).

    Returns:
        An :class:`ActionsConfig`.

    Raises:
        ActionsFileError: anything that makes the file unusable (exit code 2), naming the file
            and the action.
    """
    env = os.environ if env is None else env
    if isinstance(source, Mapping):
        where, path, data = "actions", None, source
        base = Path.cwd()
    else:
        from analysis import _yaml

        path = Path(source)
        where = str(path)
        data = _yaml.load(path, what="actions file", error=ActionsFileError)
        base = path.resolve().parent
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ActionsFileError(f"{where}: expected a mapping of legs ({', '.join(ACTION_LEGS)})")
    unknown = sorted(set(map(str, data)) - {*ACTION_LEGS, "version"})
    if unknown:
        raise ActionsFileError(
            f"{where}: unknown key(s) {', '.join(unknown)}; the legs are {', '.join(ACTION_LEGS)}"
        )
    version = data.get("version", 1)
    if type(version) is not int or version != 1:
        raise ActionsFileError(f"{where}: version {version!r} is not supported; use 1")
    values: dict[str, list[str]] = {
        "prompt": [prompt],
        "from": list(reverted),
        "to": [to],
        "experiment": [experiment] if experiment is not None else [],
        "from_cache_prefix": [],
    }
    prefixes = [_cache_prefix(ledger, r) for r in reverted]
    if all(p is not None for p in prefixes):
        values["from_cache_prefix"] = [p for p in prefixes if p is not None]
    lacking = [r for r, p in zip(reverted, prefixes, strict=True) if p is None]
    values["!from_cache_prefix"] = [
        f"the ledger ({ledger.path or 'ledger'}) records no cache prefix for "
        f"{', '.join(lacking)} (neither cache_prefix nor a text hash); add cache_prefix to the "
        "revision"
    ]
    values["!experiment"] = ["the rollback ends no experiment"]
    kinds = _kinds(data)
    actions: list[Action] = []
    hidden = _Hidden()
    for leg in ACTION_LEGS:
        items = data.get(leg)
        if items is None:  # absent, or `leg:` with nothing after it
            items = []
        if not isinstance(items, list):
            raise ActionsFileError(
                f"{where}: {leg}: expected a list of actions, found {type(items).__name__} "
                f"{_shown(items)}"
            )
        for i, item in enumerate(items):
            name = f"{where}: {leg}[{i}]"
            actions.append(_action(name, leg, i, item, kinds, values, env, hidden))
    text = None
    needing = [a for a in actions if a.handler.needs_text]
    if needing:
        text = _restored_text(ledger, to, f"{where}: {needing[0].name} ({needing[0].kind})")
    secrets = tuple(dict.fromkeys(s for s in hidden.secrets if s))
    urls = tuple(dict.fromkeys(hidden.urls))
    cfg = ActionsConfig(path, tuple(actions), base, text, secrets, urls)
    # the targets were rendered before every secret was known: redact them again
    redacted = tuple(
        Action(a.leg, a.index, a.kind, cfg.redact(a.target), a.fingerprint, a.config, a.handler)
        for a in actions
    )
    return ActionsConfig(path, redacted, base, text, secrets, urls)


@dataclass
class _Hidden:
    """What must never be shown, collected while the file is resolved.

    Attributes:
        secrets: Texts shown as ``***``.
        urls: ``(url, scheme://host)``: URLs a ``${VAR}`` was substituted into (each also as
            :func:`~analysis.rollback._kinds.redact_url` renders it, as kinds name it so).
    """

    secrets: list[str] = field(default_factory=list)
    urls: list[tuple[str, str]] = field(default_factory=list)

    def substituted(self, text: str, variables: Sequence[str]) -> None:
        """``text`` is a resolved value into which the values ``variables`` were substituted:
        when it holds a URL, the URL is shown as its ``scheme://host`` and each value as
        ``***`` — unless the value is part of that host, or shorter than 4 characters (the URL
        that holds it is hidden anyway; replacing a ``7`` everywhere would garble every port
        and status code shown)."""
        if not variables or "://" not in text:
            return
        origin = ""
        if _URL.match(text):
            origin = url_origin(text)
            self.urls += [(text, origin), (redact_url(text), origin)]
        self.secrets += [v for v in variables if len(v) >= 4 and v not in origin]


def _kinds(data: Mapping[str, Any]) -> Mapping[str, ActionKind]:
    """The built-in kinds, and the plugin kinds only when the file uses another kind (scanning
    the installed packages' entry points takes about 0.1 s)."""
    builtin = builtin_kinds()
    used = [
        item.get("kind")
        for leg in ACTION_LEGS
        if isinstance(data.get(leg), list)
        for item in data[leg]
        if isinstance(item, Mapping)
    ]
    return builtin if all(isinstance(k, str) and k in builtin for k in used) else load_kinds()


def _shown(value: Any) -> str:
    """A short ``repr`` of a value for a message (at most 60 characters)."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _action(
    name: str,
    leg: str,
    index: int,
    item: Any,
    kinds: Mapping[str, ActionKind],
    values: Mapping[str, list[str]],
    env: Mapping[str, str],
    hidden: _Hidden,
) -> Action:
    if not isinstance(item, Mapping) or not isinstance(item.get("kind"), str):
        raise ActionsFileError(f"{name}: each action is a mapping with a kind, e.g. {{kind: file}}")
    kind = item["kind"]
    handler = kinds.get(kind)
    if handler is None:
        raise ActionsFileError(
            f"{name}: unknown kind {kind!r}; built in: file, redis, webhook, command (plugins "
            "register more under the entry point group promptstate.actions)"
        )
    label = f"{name} ({kind})"
    if handler.legs is not None and leg not in handler.legs:
        raise ActionsFileError(f"{label}: this kind belongs under {', '.join(handler.legs)}")
    keys = set(map(str, item)) - {"kind"}
    missing = [k for k in handler.required if k not in keys]
    extra = sorted(keys - set(handler.required) - set(handler.optional))
    if missing or extra:
        what = (f"missing {', '.join(missing)}" if missing else "") + (
            f"{'; ' if missing else ''}unknown key(s) {', '.join(extra)}" if extra else ""
        )
        allowed = ", ".join((*handler.required, *handler.optional))
        raise ActionsFileError(f"{label}: {what} (keys of {kind}: {allowed})")
    config = {
        k: _resolve(v, values, env, hidden, f"{label}: {k}") for k, v in item.items() if k != "kind"
    }
    reason = handler.validate(config)
    if reason is not None:
        raise ActionsFileError(f"{label}: {reason}")
    hidden.secrets += handler.secrets(config)
    target = _redact(handler.target(config), hidden.urls, hidden.secrets)
    written = json.dumps(dict(item), sort_keys=True, default=str)
    fingerprint = hashlib.sha256(f"{written}\n{target}".encode()).hexdigest()
    return Action(leg, index, kind, target, fingerprint, config, handler)


def _resolve(
    value: Any,
    values: Mapping[str, list[str]],
    env: Mapping[str, str],
    hidden: _Hidden,
    where: str,
) -> Any:
    """Substitute placeholders and ``${VAR}`` in every text of ``value``."""
    if isinstance(value, str):
        out = _substitute(value, values, env, hidden, where, many=False)
        return out[0]
    if isinstance(value, list):
        resolved: list[Any] = []
        for item in value:
            if isinstance(item, str):
                resolved += _substitute(item, values, env, hidden, where, many=True)
            else:
                resolved.append(_resolve(item, values, env, hidden, where))
        return resolved
    if isinstance(value, Mapping):
        return {str(k): _resolve(v, values, env, hidden, where) for k, v in value.items()}
    return value


def _substitute(
    text: str,
    values: Mapping[str, list[str]],
    env: Mapping[str, str],
    hidden: _Hidden,
    where: str,
    *,
    many: bool,
) -> list[str]:
    used = {m.group(2) for m in _TOKEN.finditer(text) if m.group(2)}
    unknown = sorted(used - set(_PLACEHOLDERS))
    if unknown:
        raise ActionsFileError(
            f"{where}: unknown placeholder(s) {', '.join('{' + u + '}' for u in unknown)}; "
            f"use {', '.join('{' + p + '}' for p in _PLACEHOLDERS)} or ${{VAR}} for the "
            "environment"
        )
    for name in sorted(used):
        if not values[name]:
            what = values.get(f"!{name}", ["none is known"])[0]
            raise ActionsFileError(f"{where}: {{{name}}} is used but {what}")
    per_revision = used & set(_PER_REVISION)
    n = len(values["from"]) if per_revision else 1
    if n > 1 and not many:
        raise ActionsFileError(
            f"{where}: {{{sorted(per_revision)[0]}}} has {n} values (several revisions are "
            "rolled back); use it in a list item, which is repeated per revision"
        )

    def one(i: int) -> str:
        variables: list[str] = []

        def sub(m: re.Match[str]) -> str:
            if m.group(1) is not None:
                var = m.group(1)
                if not _ENV_NAME.match(var):
                    raise ActionsFileError(f"{where}: ${{{var}}} is not a variable name")
                if var not in env:
                    raise ActionsFileError(
                        f"{where}: the environment variable {var} is not set (${{{var}}}); set "
                        "it before running apply"
                    )
                if _SECRET_VAR.search(var) and env[var]:
                    hidden.secrets.append(env[var])
                variables.append(env[var])
                return env[var]
            name = m.group(2)
            vals = values[name]
            return vals[i] if name in _PER_REVISION else vals[0]

        out = _TOKEN.sub(sub, text)
        hidden.substituted(out, variables)
        return out

    return [one(i) for i in range(n)]


def _cache_prefix(ledger: Ledger, revision: str) -> str | None:
    """The cache prefix the ledger records for ``revision`` (:func:`~analysis.rollback.cache.
    cache_region`: declared, or derived from its text hash; ``None`` when it has neither)."""
    from analysis.rollback.cache import cache_region

    return cache_region(ledger, revision)


def _restored_text(ledger: Ledger, to: str, where: str) -> bytes:
    """The restored revision's text: its inline ``text`` (UTF-8), or its ``text_file`` (checked
    against ``text_sha256``)."""
    rev = ledger.revisions[to]
    if rev.text is not None:
        return rev.text.encode("utf-8")
    if rev.text_file is None:
        raise ActionsFileError(
            f"{where}: the restored revision {to} has no text in the ledger "
            f"({ledger.path or 'ledger'}): neither text nor text_file, so its text cannot be "
            f"written; add text (inline) or text_file to revision {to}, or remove the text action"
        )
    base = Path(ledger.path).parent if ledger.path is not None else Path.cwd()
    path = base / rev.text_file
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ActionsFileError(
            f"{where}: cannot read {path}, the text_file of {to} ({exc.strerror or exc})"
        ) from None
    if rev.text_sha256 is not None and hashlib.sha256(data).hexdigest() != rev.text_sha256:
        raise ActionsFileError(
            f"{where}: {path} no longer matches the text_sha256 of {to} in the ledger; "
            "restore the file before applying"
        )
    return data


def payload(
    plan_dict: Mapping[str, Any],
    leg: str,
    *,
    at: str,
    apply: str,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The JSON object of one leg: what webhooks POST and commands read on stdin.

    ``{"schema_version": 1, "prompt", "from", "to", "leg", "at", "apply_id", "experiment"}``
    plus, for a plan leg, its ``status``, ``findings`` and ``actions`` (the object
    ``rollback plan --format json`` shows under ``legs.<leg>``), for ``any`` every leg under
    ``legs``, and ``extra`` (the cohort's ``exports`` and ``unit_ids``).
    """
    from analysis.errors import SCHEMA_VERSION

    out: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "prompt": plan_dict["prompt"],
        "from": plan_dict["from"],
        "to": plan_dict["to"],
        "leg": leg,
        "at": at,
        "apply_id": apply,
        "experiment": plan_dict.get("experiment"),
    }
    legs = plan_dict["legs"]
    if leg in legs:
        out.update(legs[leg])
    elif leg == "any":
        out["legs"] = legs
    if extra:
        out.update(extra)
    return out


def hash_unit(unit: str) -> str:
    """The hashed form of a unit id (``include_units: hashed``): SHA-256 hex of its UTF-8 text.

    >>> import hashlib
    >>> hash_unit("u1") == hashlib.sha256(b"u1").hexdigest()
    True
    """
    return hashlib.sha256(unit.encode("utf-8")).hexdigest()
