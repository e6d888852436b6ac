"""keyrot-template: a keyrot new-key handler.

It writes the new key to the file the `path` setting names, as
AWS_ACCESS_KEY_ID=... and AWS_SECRET_ACCESS_KEY=... lines (a .env file a
shell can source), and refuses to overwrite a file that holds a key it was
not told about. Replace `store` and `held_key_id` with your own destination.

Import every module here, at the top: componentize-py runs the imports when
it builds the component, and the plugin has no files to import from later.
"""

import os

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import store as settings
from wit_world.imports.logging import Level, log
from wit_world.imports.types import AccessKey, DirectoryNeed, Needs, PluginInfo, Rotation, Setting


class Handler(exports.Handler):
    def describe(self) -> PluginInfo:
        """What keyrot shows and checks before anything runs: no I/O here."""
        path = Setting(
            "path",
            "The file to write, in a directory granted with --allow-dir, e.g. /data/aws.env",
            True,  # required
            False,  # secret
        )
        directory = DirectoryNeed("", "path", True, "holds the file the key is written to")
        needs = Needs([], [directory], None, None)
        return PluginInfo(
            "keyrot-template",
            "0.1.0",
            "Writes the new key to a file (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY lines)",
            [path],
            needs,
        )

    def preflight(self, rotation: Rotation) -> None:
        """Before any key exists: the directory is there and the file holds a
        key keyrot expects (or nothing). Changes nothing. Raise Err to refuse."""
        path = setting_path()
        directory = os.path.dirname(path)
        if not os.path.isdir(directory):
            raise Err(f"directory {directory} not found: grant it with --allow-dir HOST_DIR:{directory}")
        check_held(path, rotation)
        log(Level.INFO, "preflight", f"{path} is ready for the new key")

    def handle(self, rotation: Rotation, key: AccessKey) -> None:
        """Stores the new key, then returns: keyrot retires the old key only
        after that. Raising Err makes keyrot delete the new key."""
        path = setting_path()
        check_held(path, rotation)  # the file may have changed since preflight
        content = f"AWS_ACCESS_KEY_ID={key.access_key_id}\nAWS_SECRET_ACCESS_KEY={key.secret_access_key}\n"
        store(path, content)
        # The key id is not secret; the secret access key is never logged.
        log(Level.INFO, "handle", f"wrote key {key.access_key_id} to {path}")


def setting_path() -> str:
    """The `path` setting."""
    try:
        path = settings.get("path")
    except Err as e:
        raise Err(f"cannot read setting 'path': {e.value}")
    if path is None:
        raise Err("setting 'path' is missing: pass --config path=/data/aws.env")
    if not path.startswith("/") or path.endswith("/"):
        raise Err(f"setting 'path' must be an absolute file path, e.g. /data/aws.env, not '{path}'")
    return path


def check_held(path: str, rotation: Rotation) -> None:
    """Refuses a file that holds a key other than the current one or one an
    interrupted keyrot run left there."""
    held = held_key_id(path)
    expected = ([rotation.current_key_id] if rotation.current_key_id else []) + rotation.abandoned_key_ids
    if held is None or held in expected:
        return
    raise Err(
        f"{path} holds key {held}, not {' or '.join(expected) or 'nothing'}: refusing to overwrite "
        "a key keyrot did not rotate (point 'path' at another file, or remove this one)"
    )


def held_key_id(path: str):
    """The key id the file holds, or None if the file does not exist."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise Err(f"cannot read {path}: {e.strerror}")
    for line in text.splitlines():
        if line.startswith("AWS_ACCESS_KEY_ID="):
            return line[len("AWS_ACCESS_KEY_ID="):].strip()
    return None


def store(path: str, content: str) -> None:
    """Replaces the file atomically: a temporary file beside it, synced, then
    renamed over it. Readers see the old file or the new one, never half."""
    temp = path + ".keyrot-tmp"
    try:
        if os.path.exists(temp):
            os.remove(temp)  # left by an interrupted run
        with open(temp, "x", encoding="utf-8") as f:
            f.write(content)
            f.flush()
            os.fsync(f.fileno())
        os.rename(temp, path)
    except OSError as e:
        try:
            os.remove(temp)
        except OSError:
            pass
        raise Err(f"cannot write {path}: {e.strerror}")
