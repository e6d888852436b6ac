"""keyrot handler that stores the new access key as two fields of a secret
in HashiCorp Vault's KV version 2 engine, keeping the secret's other fields,
with check-and-set on the version it read.

This module is the component's `keyrot:handler/handler` export: it reads the
settings through `wasi:config/store`, logs through `wasi:logging`, and sends
requests with `wasi_http`. The logic lives in `vault_api`, which is plain
Python and unit-tested on the host (`test_vault.py`).
"""

import time
from typing import Callable

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import logging, store
from wit_world.imports.keyrot_handler_types import (
    AccessKey, HostNeed, Needs, PluginInfo, Rotation, Setting)

import vault_api
import wasi_http

_LEVELS = {"debug": logging.Level.DEBUG, "info": logging.Level.INFO, "warn": logging.Level.WARN}


class Handler(exports.Handler):
    def describe(self) -> PluginInfo:
        return PluginInfo(
            name="vault",
            version=vault_api.VERSION,
            description="Stores the new key as two fields of a Vault KV version 2 secret.",
            settings=[Setting(*declared) for declared in vault_api.DECLARED],
            # addr has no default: with it unset the plugin refuses to run.
            needs=Needs(
                hosts=[HostNeed(host="", setting=vault_api.ADDR,
                                purpose="Vault's HTTP API: logs in (AppRole), reads and writes "
                                        "the secret")],
                directories=[], memory_mib=None, timeout_seconds=None),
        )

    def preflight(self, rotation: Rotation) -> None:
        _run("preflight", lambda vault: vault.check(
            rotation.current_key_id, rotation.abandoned_key_ids, rotation.user_name))

    def handle(self, rotation: Rotation, key: AccessKey) -> None:
        _run("handle", lambda vault: vault.store(
            rotation.current_key_id, rotation.abandoned_key_ids, rotation.user_name,
            key.access_key_id, key.secret_access_key))


def _run(step: str, work: Callable) -> None:
    """Runs one step; every failure becomes the step's error result, which
    keyrot shows to the operator (an exception would trap)."""

    def log(level: str, message: str) -> None:
        logging.log(_LEVELS[level], step, message)

    try:
        settings = vault_api.load_settings(_setting)
        work(vault_api.Vault(settings, wasi_http.send, time.sleep, log))
    except (vault_api.SettingsError, vault_api.VaultError) as e:
        raise Err(str(e))
    except Err:
        raise
    except Exception as e:  # a bug here: still an error with a cause, not a trap
        raise Err(f"unexpected {type(e).__name__} in vault plugin: {e}")


def _setting(name: str):
    try:
        return store.get(name)
    except Err as e:
        raise vault_api.SettingsError(f"cannot read setting '{name}': {e.value}") from None
