"""The smallest keyrot handler in Python: logs the new key's id, stores it nowhere."""

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import store
from wit_world.imports.logging import Level, log
from wit_world.imports.types import AccessKey, Needs, PluginInfo, Rotation, Setting


class Handler(exports.Handler):
    def describe(self) -> PluginInfo:
        greeting = Setting("greeting", "Word to log before the key id, e.g. hello", False, False)
        needs = Needs(hosts=[], directories=[], memory_mib=None, timeout_seconds=None)
        return PluginInfo("python-hello", "0.1.0", "Logs the new key's id (a demo).", [greeting],
                          needs)

    def preflight(self, rotation: Rotation) -> None:
        current = rotation.current_key_id or "none"
        log(Level.INFO, "preflight", f"ready to replace key {current} of {rotation.user_name}")

    def handle(self, rotation: Rotation, key: AccessKey) -> None:
        try:
            greeting = store.get("greeting") or "hello"
        except Err as e:  # raising Err(message) returns the error to keyrot
            raise Err(f"cannot read settings: {e.value}")
        log(Level.INFO, "handle", f"{greeting}, new key {key.access_key_id}")
