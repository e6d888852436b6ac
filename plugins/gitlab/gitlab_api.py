"""GitLab's REST API v4 for project CI/CD variables, over any transport, and
the two things the handler does with it: `check` (preflight) and `store`
(handle).

Pure Python (no wasi imports): `wasi_http.send` is the transport in the
component; `test_gitlab.py` passes a fake GitLab.

Endpoints (`:id` is the project id or its URL-encoded path):

    GET    /api/v4/projects/:id                  the project (preflight)
    GET    /api/v4/projects/:id/variables/:key   a variable, 404 if absent
    POST   /api/v4/projects/:id/variables        create one
    PUT    /api/v4/projects/:id/variables/:key   update one
    DELETE /api/v4/projects/:id/variables/:key   undo a create

Every call on one variable carries `filter[environment_scope]`, so a key
defined for several environments is never confused with another scope's.
"""

import json
import re
from dataclasses import dataclass
from typing import Callable, List, Optional, Tuple
from urllib.parse import quote

from settings import Settings

VERSION = "0.1.0"
USER_AGENT = f"keyrot-gitlab/{VERSION}"
# GitLab's error messages are short; cut anything longer before showing it.
MAX_MESSAGE_CHARS = 300

Log = Callable[[str, str], None]  # (level: "debug" | "info" | "warn", message)

# What an IAM access key id looks like; anything else is not shown in logs.
_ACCESS_KEY_ID = re.compile(r"[A-Z0-9]{16,128}")


@dataclass
class Response:
    status: int
    body: bytes


class TransportError(Exception):
    """The request got no HTTP answer. `code` names the wasi:http
    `error-code` case, e.g. `HttpRequestDenied`."""

    def __init__(self, code: str, detail: str = ""):
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code
        self.detail = detail


# (method, url, headers, body) -> Response, or raises TransportError.
Send = Callable[[str, str, List[Tuple[str, str]], Optional[bytes]], Response]


class GitLabError(Exception):
    """A call failed; the message says which, why, and what to do."""


class GitLab:
    """The calls the handler makes, with failures worded for the operator."""

    def __init__(self, settings: Settings, send: Send):
        self.settings = settings
        self._send = send

    def project(self) -> dict:
        """`GET /projects/:id`: proves the host, the token and the project."""
        response = self._call(f"reading project {self.settings.project}", "GET", "")
        project = _json(response)
        if not isinstance(project, dict) or "id" not in project:
            raise GitLabError(
                f"GitLab's answer for project {self.settings.project} is not a project: "
                f"is '{self.settings.api_url}' a GitLab server?"
            )
        return project

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
        """`POST` a new variable; if GitLab says it exists after all (created
        since we looked), update it instead. Returns what was done."""
        s = self.settings
        payload = {
            "key": key,
            "value": value,
            "variable_type": "env_var",
            "masked": s.masked,
            "protected": s.protected,
            "environment_scope": s.environment_scope,
        }
        try:
            self._call(self._about("creating", key), "POST", "/variables", payload)
            return "created"
        except _Taken:
            return self.update(key, value)

    def update(self, key: str, value: str) -> str:
        """`PUT` a new value (and the configured flags) on an existing variable."""
        payload = {"value": value, "masked": self.settings.masked,
                   "protected": self.settings.protected}
        self._call(self._about("updating", key), "PUT", self._variable_path(key), payload)
        return "updated"

    def delete(self, key: str) -> None:
        self._call(self._about("deleting", key), "DELETE", self._variable_path(key))

    def _about(self, verb: str, key: str) -> str:
        return f"{verb} variable {key} of project {self.settings.project}"

    def _variable_path(self, key: str) -> str:
        scope = quote(self.settings.environment_scope, safe="")
        return f"/variables/{key}?filter%5Benvironment_scope%5D={scope}"

    def _call(self, what: str, method: str, path: str, payload: Optional[dict] = None,
              absent_ok: bool = False) -> Response:
        s = self.settings
        url = f"{s.api_url}/api/v4/projects/{s.project_id}{path}"
        headers = [("accept", "application/json"), ("user-agent", USER_AGENT)]
        if s.token is not None:
            headers.append(("private-token", s.token))
        body = None
        if payload is not None:
            body = json.dumps(payload).encode()
            headers += [("content-type", "application/json"), ("content-length", str(len(body)))]
        try:
            response = self._send(method, url, headers, body)
        except TransportError as e:
            raise GitLabError(
                f"cannot reach GitLab at {s.api_url} while {what}: "
                f"{explain_transport(e, s.api_url)}"
            ) from None
        if 200 <= response.status < 300:
            return response
        message = _message(response.body)
        if response.status == 404 and absent_ok and "project" not in message.lower():
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
                f"either keyrot injected no PRIVATE-TOKEN header or GitLab rejected it; pass a "
                f"token with --secret token=env:GITLAB_TOKEN or --inject-header{said}"
            )
        if status == 401:
            return (
                f"GitLab rejected the token (401 Unauthorized) {where}: it is wrong, expired "
                f"or revoked{said}"
            )
        if status == 403:
            return (
                f"GitLab refused (403 Forbidden) {where}: the token needs the api scope and the "
                f"Maintainer role on the project{said}"
            )
        if status == 404 and ("project" in message.lower() or not message):
            return (
                f"GitLab found no project {s.project} (404) {where}: check the 'project' "
                f"setting and that the token's user can see the project{said}"
            )
        if status == 429:
            return f"GitLab is rate-limiting requests (429) {where}: try again later{said}"
        if status >= 500:
            return f"GitLab failed (HTTP {status}) {where}: try again later{said}"
        return f"GitLab answered HTTP {status} {where}{said}"


class _Taken(Exception):
    """POST answered 400: the key has already been taken in this scope."""


def check(gitlab: GitLab, current_key_id: Optional[str], log: Log) -> None:
    """Preflight: the project is reachable with the token, and the token may
    read its variables (which needs the same role as writing them). Says
    whether the key id variable holds the key being replaced."""
    s = gitlab.settings
    project = gitlab.project()
    name = project.get("path_with_namespace") or s.project
    log("info", f"project {name} (id {project['id']}) is reachable at {s.api_url}")
    variable = gitlab.variable(s.key_id_variable)
    where = f"variable {s.key_id_variable} (scope {s.environment_scope})"
    if variable is None:
        log("info", f"{where} does not exist yet: it will be created")
    elif variable.get("value") is None:
        log("debug", f"{where} is hidden: cannot check which key it holds")
    elif not _ACCESS_KEY_ID.fullmatch(str(variable["value"])):
        # Not shown: a variable that holds something else may hold a secret.
        log("warn", f"{where} holds something that is not an access key id: it will be "
            "overwritten")
    elif current_key_id is not None and variable["value"] != current_key_id:
        log("warn", f"{where} holds key {variable['value']}, not the current key "
            f"{current_key_id}: the project may have been using another key")
    else:
        log("info", f"{where} holds key {variable['value']}")


def store(gitlab: GitLab, current_key_id: Optional[str], key_id: str, secret: str,
          log: Log) -> None:
    """Handle: writes the key id variable, then the secret key variable. If
    the second write fails, puts the first back (to the current key id if it
    existed, or removes it if it did not) and says whether that worked."""
    s = gitlab.settings
    flags = (f"{'masked' if s.masked else 'not masked'}, "
             f"{'protected' if s.protected else 'not protected'}, "
             f"scope {s.environment_scope}")
    # Read both before writing either, so a failed read changes nothing.
    had_key_id = gitlab.variable(s.key_id_variable) is not None
    had_secret = gitlab.variable(s.secret_key_variable) is not None

    key_id_done = _put(gitlab, s.key_id_variable, key_id, had_key_id)
    log("info", f"{key_id_done} variable {s.key_id_variable} = {key_id} in project {s.project} "
        f"({flags})")
    try:
        secret_done = _put(gitlab, s.secret_key_variable, secret, had_secret)
    except GitLabError as e:
        # "updated": the key id variable existed, if not when we looked then
        # by the time we wrote it.
        undone = _undo(gitlab, key_id_done == "updated", current_key_id, log)
        raise GitLabError(f"{e}; {undone}") from None
    log("info", f"{secret_done} variable {s.secret_key_variable} in project {s.project} "
        f"({flags})")


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
