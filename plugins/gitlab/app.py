"""keyrot handler that stores the new access key as two GitLab CI/CD
variables of a project or group (the key id and the secret access key),
through the GitLab REST API v4.

This module is the component's `keyrot:handler/handler` export: it reads the
settings through `wasi:config/store`, logs through `wasi:logging`, and sends
requests with `wasi_http`. The logic lives in `settings` and `gitlab_api`,
which are plain Python and unit-tested on the host (`test_gitlab.py`).
"""

import time
from typing import Callable

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import logging, store
from wit_world.imports.keyrot_handler_types import (
    AccessKey, HostNeed, Needs, PluginInfo, Rotation, Setting)

import gitlab_api
import settings
import wasi_http

_LEVELS = {"debug": logging.Level.DEBUG, "info": logging.Level.INFO, "warn": logging.Level.WARN}


class Handler(exports.Handler):
    def describe(self) -> PluginInfo:
        return PluginInfo(
            name="gitlab",
            version=gitlab_api.VERSION,
            description="Stores the new key as two CI/CD variables of a GitLab project or group.",
            settings=[Setting(*declared) for declared in settings.DECLARED],
            needs=Needs(
                hosts=[HostNeed(host="gitlab.com", setting=settings.API_URL,
                                purpose="GitLab's REST API v4: reads the project or group and "
                                        "its variables, writes the two variables")],
                directories=[], memory_mib=None, timeout_seconds=None),
        )

    def preflight(self, rotation: Rotation) -> None:
        _run("preflight", lambda gitlab, log: gitlab_api.check(
            gitlab, rotation.current_key_id, log))

    def handle(self, rotation: Rotation, key: AccessKey) -> None:
        _run("handle", lambda gitlab, log: gitlab_api.store(
            gitlab, rotation.current_key_id, key.access_key_id, key.secret_access_key, log))


def _run(step: str, work: Callable) -> None:
    """Runs one step; every failure becomes the step's error result, which
    keyrot shows to the operator (an exception would trap)."""

    def log(level: str, message: str) -> None:
        logging.log(_LEVELS[level], step, message)

    try:
        gitlab = gitlab_api.GitLab(settings.load(_setting), wasi_http.send, time.sleep, log)
        work(gitlab, log)
    except (settings.SettingsError, gitlab_api.GitLabError) as e:
        raise Err(str(e))
    except Err:
        raise
    except Exception as e:  # a bug here: still an error with a cause, not a trap
        raise Err(f"unexpected {type(e).__name__} in gitlab plugin: {e}")


def _setting(name: str):
    try:
        return store.get(name)
    except Err as e:
        raise settings.SettingsError(f"cannot read setting '{name}': {e.value}") from None
