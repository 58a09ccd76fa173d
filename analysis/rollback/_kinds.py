"""Action kinds of a rollback actions file: ``file``, ``redis``, ``webhook``, ``command``, plugins.

A *kind* is an object with the interface of :class:`ActionKind` (documented, with the built-in
kinds as examples, in ``docs/rollback.md``). Packages register their own kinds under the entry
point group ``promptstate.actions``: the entry point's name is the ``kind`` an actions file
uses, its value a class (instantiated with no arguments) or an instance.

Every method receives the action's configuration *resolved*: placeholders and ``${VAR}``
substituted (:mod:`analysis.rollback._actions`). A kind raises :class:`ActionFailed` with a
one-line reason when its target is unreachable (:meth:`ActionKind.check`) or when the action
fails (:meth:`ActionKind.run`); the caller names the action and redacts secrets.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

__all__ = [
    "GROUP",
    "ActionContext",
    "ActionFailed",
    "ActionKind",
    "builtin_kinds",
    "load_kinds",
    "redact_url",
    "url_origin",
]

#: The entry point group of plugin kinds.
GROUP = "promptstate.actions"

#: The legs of an actions file, in the order apply runs them.
ACTION_LEGS: tuple[str, ...] = ("text", "caches", "cohort", "contracts", "any")


class ActionFailed(Exception):
    """An action's target is unreachable or the action failed; the message says why (one line,
    no secrets: the caller redacts it again)."""


@dataclass(frozen=True)
class ActionContext:
    """What an action is run with.

    Attributes:
        leg: The leg of the actions file (``text``, ``caches``, ``cohort``, ``contracts``,
            ``any``).
        index: The action's position in its leg (0-based).
        apply_id: The apply id (prompt, from, to and the transition's time).
        idempotency_key: ``<apply_id>#<leg>.<index>``: the same on every retry of this action.
        payload: The leg's JSON object (what webhooks POST and commands read on stdin).
        base_dir: The actions file's directory (relative paths are resolved against it).
        restored_text: The restored revision's text, as bytes (``text`` leg with a ``file``
            action): its inline ``text`` encoded as UTF-8, or its ``text_file``'s bytes.
        timeout: Seconds a network action may take.
    """

    leg: str
    index: int
    apply_id: str
    idempotency_key: str
    payload: Mapping[str, Any]
    base_dir: Path
    restored_text: bytes | None = None
    timeout: float = 10.0

    def body(self) -> bytes:
        """The payload as compact JSON bytes (keys in insertion order)."""
        return json.dumps(self.payload, separators=(",", ":"), default=str).encode("utf-8")


class ActionKind:
    """Interface of an action kind (subclass it, or provide the same attributes and methods).

    Attributes:
        required: Configuration keys that must be present (besides ``kind``).
        optional: Configuration keys that may be present.
        secret_keys: Keys whose values are secrets: never printed nor journalled.
        legs: Legs the kind may be used in (``None``: any leg).
        needs_text: Whether the action needs the restored revision's text.
    """

    required: ClassVar[tuple[str, ...]] = ()
    optional: ClassVar[tuple[str, ...]] = ()
    secret_keys: ClassVar[tuple[str, ...]] = ()
    legs: ClassVar[tuple[str, ...] | None] = None
    needs_text: ClassVar[bool] = False

    def validate(self, config: Mapping[str, Any]) -> str | None:
        """A reason the configuration is invalid (plan time, exit 2), or ``None``."""
        return None

    def target(self, config: Mapping[str, Any]) -> str:
        """The resolved target in words (secrets are redacted by the caller)."""
        return ""

    def check(self, config: Mapping[str, Any], ctx: ActionContext) -> None:
        """Check the target is reachable without changing anything; raise :class:`ActionFailed`."""

    def run(self, config: Mapping[str, Any], ctx: ActionContext) -> str:
        """Carry the action out (idempotently); return what was done, in words."""
        raise NotImplementedError

    def secrets(self, config: Mapping[str, Any]) -> list[str]:
        """Strings of ``config`` that must never be shown: values of :attr:`secret_keys`,
        passwords in URLs, header values."""
        found: list[str] = []
        for key in self.secret_keys:
            value = config.get(key)
            if isinstance(value, str) and value:
                found.append(value)
            elif isinstance(value, Mapping):
                found += [str(v) for v in value.values() if str(v)]
        for value in config.values():
            if isinstance(value, str) and "://" in value:
                password = urllib.parse.urlsplit(value).password
                if password:
                    found.append(password)
        return found


# ------------------------------------------------------------------------------------ file


class FileKind(ActionKind):
    """``{kind: file, path: "prompts/{prompt}.txt"}``: write the restored revision's text (its
    inline ``text`` as UTF-8, or the bytes of its ``text_file``) to ``path`` (relative to the
    actions file) atomically; unchanged content is left alone."""

    required = ("path",)
    legs = ("text",)
    needs_text = True

    def validate(self, config: Mapping[str, Any]) -> str | None:
        return None if isinstance(config["path"], str) and config["path"] else "path: give a file"

    def target(self, config: Mapping[str, Any]) -> str:
        return f"write {config['path']}"

    def _path(self, config: Mapping[str, Any], ctx: ActionContext) -> Path:
        path = Path(os.path.expanduser(config["path"]))
        return path if path.is_absolute() else ctx.base_dir / path

    def check(self, config: Mapping[str, Any], ctx: ActionContext) -> None:
        path = self._path(config, ctx)
        if path.is_dir():
            raise ActionFailed(f"{path} is a directory")
        parent = path.parent
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
        if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
            raise ActionFailed(f"cannot write into {parent}")

    def run(self, config: Mapping[str, Any], ctx: ActionContext) -> str:
        from analysis._io import atomic_write_bytes

        path = self._path(config, ctx)
        if ctx.restored_text is None:  # pragma: no cover - refused at plan time
            raise ActionFailed("the restored revision's text is not known")
        if path.is_file() and path.read_bytes() == ctx.restored_text:
            return f"{path} already holds the restored text"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(path, ctx.restored_text)
        except OSError as exc:
            raise ActionFailed(f"{path}: {exc.strerror or exc}") from None
        return f"wrote the restored text to {path} ({len(ctx.restored_text)} bytes)"


# ----------------------------------------------------------------------------------- redis


class RedisKind(ActionKind):
    """``{kind: redis, url: "${REDIS_URL}", match: ["semcache:{prompt}:{from}:*"], batch: 500}``:
    delete the keys matching each pattern, found with ``SCAN MATCH`` in batches of ``batch``
    (never ``KEYS``), deleted with ``UNLINK`` batch by batch; reports the count per pattern.
    Needs the ``redis`` client: ``pip install 'promptstate[redis]'``."""

    required = ("url", "match")
    optional = ("batch",)

    def validate(self, config: Mapping[str, Any]) -> str | None:
        match = config["match"]
        if isinstance(match, str):
            match = [match]
        if (
            not isinstance(match, list)
            or not match
            or not all(isinstance(m, str) and m for m in match)
        ):
            return "match: give a pattern or a list of patterns"
        if any(m.strip("*") == "" for m in match):
            return "match: a pattern of only '*' would delete every key; name a prefix"
        batch = config.get("batch", 500)
        if not isinstance(batch, int) or isinstance(batch, bool) or not 1 <= batch <= 100_000:
            return "batch: an integer from 1 to 100000"
        if not str(config["url"]).startswith(("redis://", "rediss://", "unix://")):
            return "url: a redis://, rediss:// or unix:// URL"
        try:
            import redis  # noqa: F401
        except ImportError:
            return (
                "the redis client is not installed; install the extra: "
                "pip install 'promptstate[redis]'"
            )
        return None

    @staticmethod
    def _patterns(config: Mapping[str, Any]) -> list[str]:
        match = config["match"]
        return [match] if isinstance(match, str) else list(match)

    def target(self, config: Mapping[str, Any]) -> str:
        return f"{redact_url(config['url'])} delete {', '.join(self._patterns(config))}"

    def _client(self, config: Mapping[str, Any], ctx: ActionContext) -> Any:
        import redis

        return redis.Redis.from_url(
            config["url"], socket_timeout=ctx.timeout, socket_connect_timeout=ctx.timeout
        )

    def check(self, config: Mapping[str, Any], ctx: ActionContext) -> None:
        import redis

        try:
            with self._client(config, ctx) as client:
                client.ping()
        except redis.RedisError as exc:
            raise ActionFailed(f"{redact_url(config['url'])}: {exc}") from None

    def run(self, config: Mapping[str, Any], ctx: ActionContext) -> str:
        import redis

        batch = int(config.get("batch", 500))
        counts: list[str] = []
        try:
            with self._client(config, ctx) as client:
                for pattern in self._patterns(config):
                    deleted = 0
                    keys: list[Any] = []
                    for key in client.scan_iter(match=pattern, count=batch):
                        keys.append(key)
                        if len(keys) >= batch:
                            deleted += int(client.unlink(*keys))
                            keys = []
                    if keys:
                        deleted += int(client.unlink(*keys))
                    counts.append(f"{pattern}: {deleted}")
        except redis.RedisError as exc:
            raise ActionFailed(f"{redact_url(config['url'])}: {exc}") from None
        return "deleted " + "; ".join(counts)


# --------------------------------------------------------------------------------- webhook


class WebhookKind(ActionKind):
    """``{kind: webhook, url: "https://…", secret: "${HOOK_SECRET}", headers: {…},
    include_units: hashed|plain}``: POST the leg's JSON. Every request carries
    ``Idempotency-Key``; with a ``secret``, ``X-Promptstate-Timestamp`` and
    ``X-Promptstate-Signature: sha256=<hex>`` = HMAC-SHA256 of ``timestamp + "." + body``.
    A response other than 2xx is a failure."""

    required = ("url",)
    optional = ("secret", "headers", "include_units", "timeout")
    secret_keys = ("secret", "headers")

    def validate(self, config: Mapping[str, Any]) -> str | None:
        parts = urllib.parse.urlsplit(str(config["url"]))
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return "url: an http:// or https:// URL"
        headers = config.get("headers", {})
        if not isinstance(headers, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
        ):
            return "headers: a mapping of header names to text"
        if config.get("include_units") not in (None, "hashed", "plain"):
            return "include_units: hashed or plain"
        if "secret" in config and not (isinstance(config["secret"], str) and config["secret"]):
            return "secret: give the signing secret (e.g. ${HOOK_SECRET})"
        return _timeout_problem(config)

    def target(self, config: Mapping[str, Any]) -> str:
        signed = " (signed)" if config.get("secret") else ""
        return f"POST {redact_url(config['url'])}{signed}"

    def check(self, config: Mapping[str, Any], ctx: ActionContext) -> None:
        parts = urllib.parse.urlsplit(config["url"])
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            with socket.create_connection((parts.hostname, port), timeout=ctx.timeout):
                pass
        except OSError as exc:
            raise ActionFailed(f"{redact_url(config['url'])}: {exc.strerror or exc}") from None

    def run(self, config: Mapping[str, Any], ctx: ActionContext) -> str:
        body = ctx.body()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "promptstate",
            "Idempotency-Key": ctx.idempotency_key,
            **dict(config.get("headers", {})),
        }
        secret = config.get("secret")
        if secret:
            stamp = str(int(time.time()))
            headers["X-Promptstate-Timestamp"] = stamp
            headers["X-Promptstate-Signature"] = "sha256=" + sign(secret, stamp, body)
        request = urllib.request.Request(config["url"], data=body, headers=headers, method="POST")
        timeout = float(config.get("timeout", ctx.timeout))
        try:
            with _OPENER.open(request, timeout=timeout) as response:
                status = int(response.status)
        except urllib.error.HTTPError as exc:
            if 300 <= exc.code < 400:
                raise ActionFailed(_redirect_reason(config["url"], exc)) from None
            raise ActionFailed(f"{redact_url(config['url'])}: HTTP {exc.code}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ActionFailed(f"{redact_url(config['url'])}: {reason}") from None
        if not 200 <= status < 300:
            raise ActionFailed(f"{redact_url(config['url'])}: HTTP {status}")
        return f"POST {redact_url(config['url'])}: HTTP {status}"


class _RefuseRedirects(urllib.request.HTTPRedirectHandler):
    """Follow no redirect: urllib would re-send the request (``Authorization``, the
    ``Idempotency-Key`` and the signature included) to the ``Location``, possibly another host,
    and turn a POST into a GET. Returning ``None`` makes the 3xx answer an ``HTTPError``."""

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: Any,
        code: int,
        msg: str,
        headers: Any,
        newurl: str,
    ) -> urllib.request.Request | None:
        return None


#: The opener of webhooks: the default handlers (proxies from the environment, HTTPS), no
#: redirects.
_OPENER = urllib.request.build_opener(_RefuseRedirects)


def _redirect_reason(url: str, exc: urllib.error.HTTPError) -> str:
    """Why a 3xx answer is a failure, naming its ``Location`` as ``scheme://host`` only."""
    location = exc.headers.get("Location") if exc.headers is not None else None
    where = (
        f" to {url_origin(urllib.parse.urljoin(url, location))}" if location else " (no Location)"
    )
    return (
        f"{redact_url(url)}: HTTP {exc.code} redirect{where} not followed (a webhook must "
        "answer 2xx itself; nothing was sent elsewhere): point url at the final endpoint"
    )


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """HMAC-SHA256 (hex) of ``timestamp + "." + body`` with ``secret``."""
    message = timestamp.encode("ascii") + b"." + body
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


# --------------------------------------------------------------------------------- command


class CommandKind(ActionKind):
    """``{kind: command, run: ["./notify.sh", "arg"], timeout: 60}``: run the command (no
    shell) in the actions file's directory with the leg's JSON on stdin, and
    ``PROMPTSTATE_APPLY_ID`` / ``PROMPTSTATE_IDEMPOTENCY_KEY`` in its environment. A non-zero
    exit is a failure."""

    required = ("run",)
    optional = ("timeout",)

    def validate(self, config: Mapping[str, Any]) -> str | None:
        run = config["run"]
        if not isinstance(run, list) or not run or not all(isinstance(a, str) for a in run):
            return "run: a list of the program and its arguments, e.g. [./notify.sh, --all]"
        return _timeout_problem(config)

    def target(self, config: Mapping[str, Any]) -> str:
        return "run " + " ".join(config["run"])

    def _program(self, config: Mapping[str, Any], ctx: ActionContext) -> str | None:
        prog = config["run"][0]
        if os.sep in prog or (os.altsep and os.altsep in prog):
            path = Path(prog) if Path(prog).is_absolute() else ctx.base_dir / prog
            return str(path) if path.is_file() and os.access(path, os.X_OK) else None
        return shutil.which(prog)

    def check(self, config: Mapping[str, Any], ctx: ActionContext) -> None:
        if self._program(config, ctx) is None:
            raise ActionFailed(f"{config['run'][0]}: not found or not executable")

    def run(self, config: Mapping[str, Any], ctx: ActionContext) -> str:
        program = self._program(config, ctx)
        if program is None:
            raise ActionFailed(f"{config['run'][0]}: not found or not executable")
        env = {
            **os.environ,
            "PROMPTSTATE_APPLY_ID": ctx.apply_id,
            "PROMPTSTATE_IDEMPOTENCY_KEY": ctx.idempotency_key,
        }
        timeout = float(config.get("timeout", 60.0))
        try:
            # its own session (process group): on a timeout the whole group is killed, every
            # child the command started included
            proc = subprocess.Popen(
                [program, *config["run"][1:]],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=ctx.base_dir,
                env=env,
                start_new_session=os.name == "posix",
            )
        except OSError as exc:
            raise ActionFailed(f"{config['run'][0]}: {exc.strerror or exc}") from None
        try:
            _, stderr = proc.communicate(input=ctx.body(), timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            raise ActionFailed(
                f"{config['run'][0]}: timed out after {timeout:g} s; it was killed with every "
                "process it started"
            ) from None
        except BaseException:
            _kill_group(proc)
            raise
        if proc.returncode != 0:
            tail = stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
            raise ActionFailed(f"{config['run'][0]} exited {proc.returncode}: {tail[0][:200]}")
        return f"ran {config['run'][0]} (exit 0)"


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """Kill ``proc`` and every process of its process group (its session: see
    :meth:`CommandKind.run`), then reap it. The group id is ``proc``'s pid, which stays reserved
    until ``proc`` is reaped here."""
    if os.name == "posix" and proc.returncode is None:  # not reaped: the group id is still its
        import contextlib
        import signal

        with contextlib.suppress(ProcessLookupError, PermissionError):  # already gone
            os.killpg(proc.pid, signal.SIGKILL)
    proc.kill()
    try:
        proc.communicate(timeout=5)
    except subprocess.TimeoutExpired:  # pragma: no cover - a child left its group holding a pipe
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
        proc.wait()


def _timeout_problem(config: Mapping[str, Any]) -> str | None:
    """Why ``timeout`` is unusable (not a number of seconds in (0, 3600]), or ``None``."""
    value = config.get("timeout", 1.0)
    ok = isinstance(value, int | float) and not isinstance(value, bool) and 0 < value <= 3600
    return None if ok else "timeout: seconds, more than 0 and at most 3600"


# -------------------------------------------------------------------------------- registry


def builtin_kinds() -> dict[str, ActionKind]:
    """The built-in kinds by name."""
    return {
        "file": FileKind(),
        "redis": RedisKind(),
        "webhook": WebhookKind(),
        "command": CommandKind(),
    }


def load_kinds() -> dict[str, ActionKind]:
    """The built-in kinds and those registered under the ``promptstate.actions`` entry point
    group (a plugin cannot replace a built-in kind)."""
    from importlib.metadata import entry_points

    kinds: dict[str, ActionKind] = {}
    for ep in entry_points(group=GROUP):
        try:
            obj = ep.load()
        except Exception as exc:
            kinds[ep.name] = _Broken(f"plugin {ep.value} cannot be loaded: {exc}")
            continue
        kinds[ep.name] = obj() if isinstance(obj, type) else obj
    kinds.update(builtin_kinds())
    return kinds


class _Broken(ActionKind):
    """A plugin kind whose entry point failed to load: every use is refused at plan time."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def validate(self, config: Mapping[str, Any]) -> str | None:
        return self.reason


def url_origin(url: str) -> str:
    """``scheme://host[:port]`` of ``url``: no user, password, path, query nor fragment.

    >>> url_origin("https://user:pw@hooks.example.com:8443/services/T0/B0/x?y=1")
    'https://hooks.example.com:8443'
    >>> url_origin("unix:///run/redis.sock")
    'unix://***'
    >>> url_origin("not a url")
    '***'
    """
    try:
        parts = urllib.parse.urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        return "***"
    if not parts.scheme:
        return "***"
    if not host:
        return f"{parts.scheme}://***"
    host = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{host}" + (f":{port}" if port is not None else "")


def redact_url(url: str) -> str:
    """``url`` with its password and query values replaced by ``***``.

    >>> redact_url("redis://user:s3cret@host:6379/0")
    'redis://user:***@host:6379/0'
    >>> redact_url("https://h/x?token=abc&a=1")
    'https://h/x?token=***&a=***'
    """
    parts = urllib.parse.urlsplit(url)
    netloc = parts.netloc
    if parts.password:
        user, _, host = netloc.rpartition("@")
        name = user.split(":", 1)[0]
        netloc = f"{name}:***@{host}"
    query = "&".join(
        f"{k}=***" for k, _ in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    )
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
