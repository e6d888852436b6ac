"""The gitlab handler's settings: what it declares in `describe()`, and how
the operator's values are read and checked.

Pure Python (no wasi imports), so `test_gitlab.py` runs it on the host.
"""

import re
from dataclasses import dataclass, field
from typing import Callable, Optional
from urllib.parse import quote

PROJECT = "project"
TOKEN = "token"
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

# (name, description, required, secret), in the order `describe()` lists them.
DECLARED = [
    (PROJECT, "GitLab project: numeric id or full path, e.g. 42 or group/app", True, False),
    (TOKEN, "GitLab token with the api scope, sent as PRIVATE-TOKEN; omit when the host "
     "injects that header (--inject-header)", False, True),
    (API_URL, f"GitLab base URL (default {DEFAULT_API_URL}), e.g. https://gitlab.example.com",
     False, False),
    (KEY_ID_VARIABLE, f"Variable that receives the access key id (default "
     f"{DEFAULT_KEY_ID_VARIABLE})", False, False),
    (SECRET_KEY_VARIABLE, f"Variable that receives the secret access key (default "
     f"{DEFAULT_SECRET_KEY_VARIABLE})", False, False),
    (MASKED, "true or false: mask both variables in job logs (default true)", False, False),
    (PROTECTED, "true or false: expose them to protected branches and tags only "
     "(default false)", False, False),
    (ENVIRONMENT_SCOPE, f"Environment scope of the variables (default "
     f"{DEFAULT_ENVIRONMENT_SCOPE}), e.g. production", False, False),
]

# GitLab's rule for variable keys.
_VARIABLE_KEY = re.compile(r"[A-Za-z0-9_]{1,255}")
# A project path: namespaces and the project, each segment of GitLab's path
# characters.
_PROJECT_PATH = re.compile(r"[A-Za-z0-9_.][A-Za-z0-9_.-]*(/[A-Za-z0-9_.][A-Za-z0-9_.-]*)+")
_PROJECT_ID = re.compile(r"[1-9][0-9]{0,18}")


class SettingsError(Exception):
    """A setting is missing or malformed; the message names it."""


@dataclass(frozen=True)
class Settings:
    """Every setting, checked. `token` never appears in a repr."""

    project: str
    token: Optional[str] = field(repr=False)
    api_url: str
    key_id_variable: str
    secret_key_variable: str
    masked: bool
    protected: bool
    environment_scope: str

    @property
    def project_id(self) -> str:
        """The project as it goes in a URL path: `group/app` is `group%2Fapp`."""
        return quote(self.project, safe="")


def load(get: Callable[[str], Optional[str]]) -> Settings:
    """Reads every setting through `get` (the value, or None when unset) and
    checks them together. Errors never echo the token."""
    project = get(PROJECT)
    if project is None:
        raise SettingsError(f"setting '{PROJECT}' is required, e.g. {PROJECT}=group/app")
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
        project=_project(project),
        token=_token(get(TOKEN)),
        api_url=_api_url(get(API_URL)),
        key_id_variable=key_id_variable,
        secret_key_variable=secret_key_variable,
        masked=_flag(MASKED, get(MASKED), True),
        protected=_flag(PROTECTED, get(PROTECTED), False),
        environment_scope=_scope(get(ENVIRONMENT_SCOPE)),
    )


def _project(value: str) -> str:
    if _PROJECT_ID.fullmatch(value) or _PROJECT_PATH.fullmatch(value):
        return value
    raise SettingsError(
        f"setting '{PROJECT}' must be a project id or path, e.g. 42 or group/app (got '{value}')"
    )


def _token(value: Optional[str]) -> Optional[str]:
    if value is None:
        return None
    if not value:
        raise SettingsError(
            f"setting '{TOKEN}' is empty: pass a token, or leave it out when the host injects "
            "the PRIVATE-TOKEN header (--inject-header)"
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


def _flag(setting: str, value: Optional[str], default: bool) -> bool:
    if value is None:
        return default
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
