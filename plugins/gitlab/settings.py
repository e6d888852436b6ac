"""The gitlab handler's settings: what it declares in `describe()`, and how
the operator's values are read and checked.

Pure Python (no wasi imports), so `test_gitlab.py` runs it on the host.
"""

import re
from dataclasses import dataclass, field
from typing import Callable, Optional
from urllib.parse import quote

PROJECT = "project"
GROUP = "group"
TOKEN = "token"
TOKEN_TYPE = "token-type"
API_URL = "api-url"
KEY_ID_VARIABLE = "key-id-variable"
SECRET_KEY_VARIABLE = "secret-key-variable"
MASKED = "masked"
PROTECTED = "protected"
ENVIRONMENT_SCOPE = "environment-scope"

DEFAULT_API_URL = "https://gitlab.com"
DEFAULT_KEY_ID_VARIABLE = "AWS_ACCESS_KEY_ID"
DEFAULT_SECRET_KEY_VARIABLE = "AWS_SECRET_ACCESS_KEY"
DEFAULT_ENVIRONMENT_SCOPE = "*"
# What `masked` is on a variable this plugin creates, unless set: a secret
# must not show in job logs. (GitLab's own default is false.)
DEFAULT_MASKED_ON_CREATE = True
# How the token is sent: GitLab's PRIVATE-TOKEN header (personal, group and
# project access tokens), or `Authorization: Bearer` (OAuth 2.0 tokens).
TOKEN_TYPES = ("private-token", "oauth")

# (name, description, required, secret), in the order `describe()` lists them.
DECLARED = [
    (PROJECT, "GitLab project: numeric id or full path, e.g. 42 or group/app (set project "
     "or group)", False, False),
    (GROUP, "GitLab group for group-level variables: numeric id or full path, e.g. 7 or "
     "group/sub (set project or group)", False, False),
    (TOKEN, "GitLab token with the api scope; omit when the host injects the header "
     "(--inject-header)", False, True),
    (TOKEN_TYPE, "How the token is sent: private-token (PRIVATE-TOKEN header, the default; "
     "personal, group or project access tokens) or oauth (Authorization: Bearer)",
     False, False),
    (API_URL, f"GitLab base URL (default {DEFAULT_API_URL}), e.g. https://gitlab.example.com",
     False, False),
    (KEY_ID_VARIABLE, f"Variable that receives the access key id (default "
     f"{DEFAULT_KEY_ID_VARIABLE})", False, False),
    (SECRET_KEY_VARIABLE, f"Variable that receives the secret access key (default "
     f"{DEFAULT_SECRET_KEY_VARIABLE})", False, False),
    (MASKED, "true or false: mask both variables in job logs (default: an existing "
     "variable keeps its setting, a new one is masked)", False, False),
    (PROTECTED, "true or false: expose them to protected branches and tags only "
     "(default: an existing variable keeps its setting, a new one is not protected)",
     False, False),
    (ENVIRONMENT_SCOPE, f"Environment scope of the variables (default "
     f"{DEFAULT_ENVIRONMENT_SCOPE}), e.g. production", False, False),
]

# GitLab's rule for variable keys.
_VARIABLE_KEY = re.compile(r"[A-Za-z0-9_]{1,255}")
# A project path: namespaces and the project, each segment of GitLab's path
# characters.
_PROJECT_PATH = re.compile(r"[A-Za-z0-9_.][A-Za-z0-9_.-]*(/[A-Za-z0-9_.][A-Za-z0-9_.-]*)+")
_PROJECT_ID = re.compile(r"[1-9][0-9]{0,18}")
# A group path: one or more segments.
_GROUP_PATH = re.compile(r"[A-Za-z0-9_.][A-Za-z0-9_.-]*(/[A-Za-z0-9_.][A-Za-z0-9_.-]*)*")


class SettingsError(Exception):
    """A setting is missing or malformed; the message names it."""


@dataclass(frozen=True)
class Settings:
    """Every setting, checked. `token` never appears in a repr. `masked` and
    `protected` are None when the operator did not set them: an existing
    variable then keeps its own."""

    kind: str  # "project" or "group"
    target: str  # the project's or group's id or path
    token: Optional[str] = field(repr=False)
    token_type: str
    api_url: str
    key_id_variable: str
    secret_key_variable: str
    masked: Optional[bool]
    protected: Optional[bool]
    environment_scope: str

    @property
    def target_id(self) -> str:
        """The project or group as it goes in a URL path: `group/app` is
        `group%2Fapp`."""
        return quote(self.target, safe="")

    @property
    def where(self) -> str:
        """`project group/app` or `group group`, for messages."""
        return f"{self.kind} {self.target}"


def load(get: Callable[[str], Optional[str]]) -> Settings:
    """Reads every setting through `get` (the value, or None when unset) and
    checks them together. Errors never echo the token."""
    project, group = get(PROJECT), get(GROUP)
    if project is not None and group is not None:
        raise SettingsError(f"settings '{PROJECT}' and '{GROUP}' are both set: set exactly one")
    if project is None and group is None:
        raise SettingsError(
            f"set '{PROJECT}' (e.g. {PROJECT}=group/app) or '{GROUP}' (e.g. {GROUP}=group) "
            "for group-level variables"
        )
    key_id_variable = _variable(KEY_ID_VARIABLE, get(KEY_ID_VARIABLE), DEFAULT_KEY_ID_VARIABLE)
    secret_key_variable = _variable(
        SECRET_KEY_VARIABLE, get(SECRET_KEY_VARIABLE), DEFAULT_SECRET_KEY_VARIABLE
    )
    if key_id_variable == secret_key_variable:
        raise SettingsError(
            f"settings '{KEY_ID_VARIABLE}' and '{SECRET_KEY_VARIABLE}' both name variable "
            f"{key_id_variable}: they must differ"
        )
    return Settings(
        kind="project" if project is not None else "group",
        target=_project(project) if project is not None else _group(group),
        token=_token(get(TOKEN)),
        token_type=_token_type(get(TOKEN_TYPE)),
        api_url=_api_url(get(API_URL)),
        key_id_variable=key_id_variable,
        secret_key_variable=secret_key_variable,
        masked=_flag(MASKED, get(MASKED)),
        protected=_flag(PROTECTED, get(PROTECTED)),
        environment_scope=_scope(get(ENVIRONMENT_SCOPE)),
    )


def _project(value: str) -> str:
    if _PROJECT_ID.fullmatch(value) or _PROJECT_PATH.fullmatch(value):
        return value
    raise SettingsError(
        f"setting '{PROJECT}' must be a project id or path, e.g. 42 or group/app (got '{value}')"
    )


def _group(value: str) -> str:
    if _PROJECT_ID.fullmatch(value) or _GROUP_PATH.fullmatch(value):
        return value
    raise SettingsError(
        f"setting '{GROUP}' must be a group id or path, e.g. 7 or group/sub (got '{value}')"
    )


def _token_type(value: Optional[str]) -> str:
    if value is None:
        return TOKEN_TYPES[0]
    if value in TOKEN_TYPES:
        return value
    raise SettingsError(
        f"setting '{TOKEN_TYPE}' must be private-token or oauth (got '{value}')"
    )


def _token(value: Optional[str]) -> Optional[str]:
    if value is None:
        return None
    if not value:
        raise SettingsError(
            f"setting '{TOKEN}' is empty: pass a token, or leave it out when the host injects "
            "the PRIVATE-TOKEN or Authorization header (--inject-header)"
        )
    # The token becomes a header value; say what is wrong without showing it.
    if not all("!" <= c <= "~" for c in value):
        raise SettingsError(
            f"setting '{TOKEN}' contains whitespace or non-ASCII characters: is it a GitLab token?"
        )
    return value


def _api_url(value: Optional[str]) -> str:
    value = DEFAULT_API_URL if value is None else value
    scheme, sep, rest = value.partition("://")
    host = rest.split("/", 1)[0]
    problem = None
    if not sep or scheme not in ("https", "http"):
        problem = "must start with https:// or http://"
    elif not host or "@" in host:
        problem = "must name a host"
    elif any(c in value for c in "?#") or any(c.isspace() or not c.isprintable() for c in value):
        problem = "must be a plain base URL"
    if problem:
        raise SettingsError(
            f"setting '{API_URL}' {problem}, e.g. https://gitlab.example.com (got '{value}')"
        )
    # The API lives under /api/v4 of the base URL; accept either spelling.
    value = value.rstrip("/")
    return value[: -len("/api/v4")] if value.endswith("/api/v4") else value


def _variable(setting: str, value: Optional[str], default: str) -> str:
    value = default if value is None else value
    if _VARIABLE_KEY.fullmatch(value):
        return value
    raise SettingsError(
        f"setting '{setting}' must be a GitLab variable key (1 to 255 letters, digits and "
        f"underscores), e.g. {default} (got '{value}')"
    )


def _flag(setting: str, value: Optional[str]) -> Optional[bool]:
    if value is None:
        return None
    if value in ("true", "false"):
        return value == "true"
    raise SettingsError(f"setting '{setting}' must be true or false (got '{value}')")


def _scope(value: Optional[str]) -> str:
    value = DEFAULT_ENVIRONMENT_SCOPE if value is None else value
    if 0 < len(value) <= 255 and value == value.strip() and value.isprintable():
        return value
    raise SettingsError(
        f"setting '{ENVIRONMENT_SCOPE}' must be an environment name or pattern of 1 to 255 "
        f"characters, e.g. production or review/* (got '{value}')"
    )
