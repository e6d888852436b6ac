"""GitLab's REST API v4 for project and group CI/CD variables, over any
transport, and the two things the handler does with it: `check` (preflight)
and `store` (handle).

Pure Python (no wasi imports): `wasi_http.send` is the transport in the
component; `test_gitlab.py` passes a fake GitLab.

Endpoints (`:kind` is `projects` or `groups`, `:id` the numeric id or the
URL-encoded path):

    GET    /api/v4/:kind/:id                  the project or group (preflight)
    GET    /api/v4/:kind/:id/variables/:key   a variable, 404 if absent
    POST   /api/v4/:kind/:id/variables        create one
    PUT    /api/v4/:kind/:id/variables/:key   update one
    DELETE /api/v4/:kind/:id/variables/:key   undo a create

Every call on one variable carries `filter[environment_scope]`, so a key
defined for several environments is never confused with another scope's.

An update sends the value and only the flags the operator set, so a
variable keeps its `protected`, `masked`, `raw`, `variable_type` and
description. A 429 is waited out when GitLab's `Retry-After` fits in
`MAX_RATE_LIMIT_WAIT`.
"""

import json
import re
from typing import Callable, Optional
from urllib.parse import quote

from http_types import Response, Send, TransportError
from settings import DEFAULT_MASKED_ON_CREATE, Settings

VERSION = "0.1.0"
USER_AGENT = f"keyrot-gitlab/{VERSION}"
# GitLab's error messages are short; cut anything longer before showing it.
MAX_MESSAGE_CHARS = 300

Log = Callable[[str, str], None]  # (level: "debug" | "info" | "warn", message)

# Seconds one call waits in total for GitLab's rate limit to lift (keyrot's
# default time limit per call is 60 s), and how often it retries.
MAX_RATE_LIMIT_WAIT = 30
MAX_RATE_LIMIT_RETRIES = 3

# What an IAM access key id looks like; anything else is not shown in logs.
_ACCESS_KEY_ID = re.compile(r"[A-Z0-9]{16,128}")




class GitLabError(Exception):
    """A call failed; the message says which, why, and what to do."""


class GitLab:
    """The calls the handler makes, with failures worded for the operator.
    `sleep(seconds)` waits out a rate limit."""

    def __init__(self, settings: Settings, send: Send, sleep: Callable[[float], None],
                 log: Optional[Log] = None):
        self.settings = settings
        self._send = send
        self._sleep = sleep
        self._log = log or (lambda level, message: None)

    def project(self) -> dict:
        """`GET /projects/:id` or `/groups/:id`: proves the host, the token
        and the project or group."""
        s = self.settings
        response = self._call(f"reading {s.where}", "GET", "")
        found = _json(response)
        if not isinstance(found, dict) or "id" not in found:
            raise GitLabError(
                f"GitLab's answer for {s.where} is not a {s.kind}: "
                f"is '{s.api_url}' a GitLab server?"
            )
        return found

    def variable(self, key: str) -> Optional[dict]:
        """The variable in the configured scope, or None if there is none."""
        response = self._call(
            self._about("reading", key), "GET", self._variable_path(key), absent_ok=True
        )
        if response.status == 404:
            return None
        variable = _json(response)
        return variable if isinstance(variable, dict) else {}

    def create(self, key: str, value: str) -> str:
        """`POST` a new variable: the flags the operator set, masked unless
        told otherwise, GitLab's defaults for the rest (not protected, type
        env_var). If GitLab says it exists after all (created since we
        looked), update it instead. Returns what was done."""
        s = self.settings
        payload = {
            "key": key,
            "value": value,
            "masked": DEFAULT_MASKED_ON_CREATE if s.masked is None else s.masked,
            "environment_scope": s.environment_scope,
        }
        if s.protected is not None:
            payload["protected"] = s.protected
        try:
            self._call(self._about("creating", key), "POST", "/variables", payload)
            return "created"
        except _Taken:
            return self.update(key, value)

    def update(self, key: str, value: str) -> str:
        """`PUT` a new value on an existing variable, with only the flags the
        operator set: everything else about the variable stays as it is."""
        payload = {"value": value}
        for name in ("masked", "protected"):
            if getattr(self.settings, name) is not None:
                payload[name] = getattr(self.settings, name)
        self._call(self._about("updating", key), "PUT", self._variable_path(key), payload)
        return "updated"

    def delete(self, key: str) -> None:
        self._call(self._about("deleting", key), "DELETE", self._variable_path(key))

    def _about(self, verb: str, key: str) -> str:
        return f"{verb} variable {key} of {self.settings.where}"

    def _variable_path(self, key: str) -> str:
        scope = quote(self.settings.environment_scope, safe="")
        return f"/variables/{key}?filter%5Benvironment_scope%5D={scope}"

    def _call(self, what: str, method: str, path: str, payload: Optional[dict] = None,
              absent_ok: bool = False) -> Response:
        s = self.settings
        url = f"{s.api_url}/api/v4/{s.kind}s/{s.target_id}{path}"
        headers = [("accept", "application/json"), ("user-agent", USER_AGENT)]
        if s.token is not None and s.token_type == "oauth":
            headers.append(("authorization", f"Bearer {s.token}"))
        elif s.token is not None:
            headers.append(("private-token", s.token))
        body = None
        if payload is not None:
            body = json.dumps(payload).encode()
            headers += [("content-type", "application/json"), ("content-length", str(len(body)))]
        waited, retries = 0, 0
        while True:
            try:
                response = self._send(method, url, headers, body)
            except TransportError as e:
                raise GitLabError(
                    f"cannot reach GitLab at {s.api_url} while {what}: "
                    f"{explain_transport(e, s.api_url)}"
                ) from None
            if response.status != 429:
                break
            wait = _retry_after(response)
            if wait is None or retries >= MAX_RATE_LIMIT_RETRIES \
                    or waited + wait > MAX_RATE_LIMIT_WAIT:
                when = (f"GitLab asks to retry in {wait} s" if wait is not None
                        else "GitLab did not say when to retry")
                raise GitLabError(
                    f"GitLab is rate-limiting requests (429 Too Many Requests) while {what}: "
                    f"{when}; run keyrot again then"
                )
            self._log("warn", f"GitLab is rate-limiting requests (429) while {what}: waiting "
                      f"{wait} s as it asks (Retry-After), then retrying")
            self._sleep(wait)
            waited, retries = waited + wait, retries + 1
        if 200 <= response.status < 300:
            return response
        message = _message(response.body)
        if response.status == 404 and absent_ok and s.kind not in message.lower():
            return response
        if response.status == 400 and method == "POST" and "already been taken" in message:
            raise _Taken()
        raise GitLabError(self._status_error(what, response.status, message))

    def _status_error(self, what: str, status: int, message: str) -> str:
        s = self.settings
        where = f"while {what}"
        said = f": GitLab says '{message}'" if message else ""
        if status == 401 and s.token is None:
            return (
                f"GitLab answered 401 Unauthorized {where}: there is no 'token' setting, so "
                f"either keyrot injected no PRIVATE-TOKEN or Authorization header or GitLab "
                f"rejected it; pass a token with --secret token=env:GITLAB_TOKEN or "
                f"--inject-header{said}"
            )
        if status == 401 and s.token_type == "private-token":
            return (
                f"GitLab rejected the token (401 Unauthorized) {where}: it is wrong, expired "
                f"or revoked (an OAuth token needs --config token-type=oauth){said}"
            )
        if status == 401:
            return (
                f"GitLab rejected the token (401 Unauthorized) {where}: it is wrong, expired "
                f"or revoked{said}"
            )
        if status == 403:
            role = "Maintainer role on the project" if s.kind == "project" \
                else "Owner role on the group"
            return (
                f"GitLab refused (403 Forbidden) {where}: the token needs the api scope and the "
                f"{role}{said}"
            )
        if status == 404 and (s.kind in message.lower() or not message):
            return (
                f"GitLab found no {s.where} (404) {where}: check the '{s.kind}' "
                f"setting and that the token's user can see the {s.kind}{said}"
            )
        if status >= 500:
            return f"GitLab failed (HTTP {status}) {where}: try again later{said}"
        return f"GitLab answered HTTP {status} {where}{said}"


class _Taken(Exception):
    """POST answered 400: the key has already been taken in this scope."""


def check(gitlab: GitLab, current_key_id: Optional[str], log: Log) -> None:
    """Preflight: the project or group is reachable with the token, and the
    token may read its variables (which needs the same role as writing
    them). Says whether the key id variable holds the key being replaced,
    what each existing variable keeps, and warns about a `file` variable."""
    s = gitlab.settings
    found = gitlab.project()
    name = found.get("path_with_namespace") or found.get("full_path") or s.target
    log("info", f"{s.kind} {name} (id {found['id']}) is reachable at {s.api_url}")
    key_id = gitlab.variable(s.key_id_variable)
    secret = gitlab.variable(s.secret_key_variable)
    for key, variable in ((s.key_id_variable, key_id), (s.secret_key_variable, secret)):
        where = f"variable {key} (scope {s.environment_scope})"
        if variable is None:
            log("info", f"{where} does not exist yet: it will be created ({_create_flags(s)})")
            continue
        if variable.get("hidden") and s.masked is False:
            raise GitLabError(
                f"{where} is masked and hidden, which GitLab does not let anyone unmask: "
                "remove the masked=false setting"
            )
        log("info", f"{where} exists ({_flags(variable)}): {_kept(s, variable)}")
        if variable.get("variable_type") == "file":
            log("warn", f"{where} is of type file: jobs get the path of a file that holds the "
                "value, not the value; it stays a file variable")
    where = f"variable {s.key_id_variable} (scope {s.environment_scope})"
    if key_id is None:
        pass
    elif key_id.get("value") is None:
        log("debug", f"{where} is hidden: cannot check which key it holds")
    elif not _ACCESS_KEY_ID.fullmatch(str(key_id["value"]).strip()):
        # Not shown: a variable that holds something else may hold a secret.
        log("warn", f"{where} holds something that is not an access key id: it will be "
            "overwritten")
    elif current_key_id is not None and str(key_id["value"]).strip() != current_key_id:
        log("warn", f"{where} holds key {key_id['value']}, not the current key "
            f"{current_key_id}: the {s.kind} may have been using another key")
    else:
        log("info", f"{where} holds key {key_id['value']}")


def _flags(variable: dict) -> str:
    """`protected, masked, type env_var` and the like."""
    words = [word if variable.get(word) else f"not {word}" for word in ("protected", "masked")]
    words.append(f"type {variable.get('variable_type', 'env_var')}")
    return ", ".join(words)


def _create_flags(s: Settings) -> str:
    masked = DEFAULT_MASKED_ON_CREATE if s.masked is None else s.masked
    protected = bool(s.protected)
    return _flags({"masked": masked, "protected": protected, "variable_type": "env_var"})


def _kept(s: Settings, variable: dict) -> str:
    """What an update keeps and what it changes, in words."""
    changes = []
    for name in ("protected", "masked"):
        wanted = getattr(s, name)
        if wanted is not None and wanted != bool(variable.get(name)):
            changes.append(f"{name} becomes {str(wanted).lower()} as set")
    return "only the value changes" if not changes else \
        "the value changes and " + " and ".join(changes)


def store(gitlab: GitLab, current_key_id: Optional[str], key_id: str, secret: str,
          log: Log) -> None:
    """Handle: writes the key id variable, then the secret key variable. If
    the second write fails, puts the first back (to the current key id if it
    existed, or removes it if it did not) and says whether that worked."""
    s = gitlab.settings
    # Read both before writing either, so a failed read changes nothing.
    had_key_id = gitlab.variable(s.key_id_variable) is not None
    had_secret = gitlab.variable(s.secret_key_variable) is not None

    key_id_done = _put(gitlab, s.key_id_variable, key_id, had_key_id)
    log("info", f"{key_id_done} variable {s.key_id_variable} = {key_id} in {s.where} "
        f"(scope {s.environment_scope})")
    try:
        secret_done = _put(gitlab, s.secret_key_variable, secret, had_secret)
    except GitLabError as e:
        # "updated": the key id variable existed, if not when we looked then
        # by the time we wrote it.
        undone = _undo(gitlab, key_id_done == "updated", current_key_id, log)
        raise GitLabError(f"{e}; {undone}") from None
    log("info", f"{secret_done} variable {s.secret_key_variable} in {s.where} "
        f"(scope {s.environment_scope})")


def _put(gitlab: GitLab, key: str, value: str, exists: bool) -> str:
    return gitlab.update(key, value) if exists else gitlab.create(key, value)


def _undo(gitlab: GitLab, existed: bool, previous: Optional[str], log: Log) -> str:
    """Puts the key id variable back after the secret key failed; returns what
    became of it, for the error message."""
    name = gitlab.settings.key_id_variable
    try:
        if not existed:
            gitlab.delete(name)
            outcome = f"{name}, which did not exist before, was deleted again"
        elif previous is None:
            return f"{name} holds the new key id (there was no previous key to restore)"
        else:
            gitlab.update(name, previous)
            outcome = f"{name} was restored to the previous key id {previous}"
    except GitLabError as e:
        return f"{name} still holds the new key id and could not be put back: {e}"
    log("warn", outcome)
    return outcome


def explain_transport(error: TransportError, api_url: str) -> str:
    """Words for a request that got no answer, naming the wasi:http error
    code; the common ones say what to do."""
    code = error.code
    if code == "HttpRequestDenied":
        return (f"keyrot denied the request ({code}): allow the host with "
                f"--allow-host {allow_host_flag(api_url)}")
    if code in ("DnsError", "DnsTimeout", "DestinationNotFound"):
        return f"cannot resolve the host name ({code})"
    if code == "ConnectionRefused":
        return f"connection refused ({code})"
    if code == "ConnectionTimeout":
        return f"connection timed out ({code})"
    if code in ("ConnectionReadTimeout", "HttpResponseTimeout"):
        return f"GitLab did not answer in time ({code})"
    if code == "TlsCertificateError":
        return f"the server's TLS certificate is not valid ({code})"
    return str(error)


def allow_host_flag(api_url: str) -> str:
    """The `--allow-host` value that admits `api_url`: the bare host for
    HTTPS on port 443, otherwise scheme, host and port."""
    scheme, _, rest = api_url.partition("://")
    authority = rest.split("/", 1)[0]
    if scheme == "https" and ":" not in authority:
        return authority
    return f"{scheme}://{authority}"


def _retry_after(response: Response) -> Optional[int]:
    """GitLab's `Retry-After` in seconds (it sends a number), if any."""
    value = response.headers.get("retry-after", "").strip()
    return int(value) if value.isdigit() else None


def _json(response: Response):
    try:
        return json.loads(response.body)
    except ValueError:
        return None


def _message(body: bytes) -> str:
    """GitLab's error message (`message` or `error`, flattening validation
    errors like {"key": ["(X) has already been taken"]}), one line, cut short."""
    parsed = _json(Response(0, body))
    if isinstance(parsed, dict):
        found = parsed.get("message", parsed.get("error", ""))
    else:
        found = body.decode("utf-8", "replace")
    if isinstance(found, dict):
        found = "; ".join(
            f"{k}: {', '.join(map(str, v)) if isinstance(v, list) else v}"
            for k, v in found.items()
        )
    text = " ".join(str(found).split())
    return text if len(text) <= MAX_MESSAGE_CHARS else text[:MAX_MESSAGE_CHARS] + "..."
