"""What the vault handler does, as plain Python (no wasi imports), so
`test_vault.py` runs it on the host: its settings, the Vault HTTP API calls
it makes, and their failures worded for the operator.

The secret lives in a KV version 2 engine. Each keyrot step runs in a fresh
instance, so nothing read in preflight survives to handle: handle reads the
secret again and writes a new version with check-and-set (`options.cas`) on
the version it just read, merging our two fields into all the others. A
write by someone else in between makes Vault refuse ours (400, "check-and-set
parameter did not match the current version"); the handler reads and checks
once more, and refuses a second time.
"""

import json
import re
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence, Tuple
from urllib.parse import quote

from http_types import Response, Send, TransportError

VERSION = "0.1.0"

ADDR = "addr"
MOUNT = "mount"
PATH = "path"
KEY_ID_FIELD = "key-id-field"
SECRET_KEY_FIELD = "secret-key-field"
NAMESPACE = "namespace"
ROLE_ID = "role-id"
SECRET_ID = "secret-id"
APPROLE_MOUNT = "approle-mount"

# (name, description, required, secret), in the order `describe()` lists them.
DECLARED = [
    (ADDR, "Vault address, e.g. https://vault.example.com:8200", True, False),
    (MOUNT, "Mount path of the KV version 2 engine (default secret)", False, False),
    (PATH, "Path of the secret inside the mount, e.g. ci/deploy-bot", True, False),
    (KEY_ID_FIELD, "Field that receives the access key id (default AWS_ACCESS_KEY_ID)",
     False, False),
    (SECRET_KEY_FIELD, "Field that receives the secret access key (default "
     "AWS_SECRET_ACCESS_KEY)", False, False),
    (NAMESPACE, "Vault Enterprise / HCP Vault namespace, sent as X-Vault-Namespace, e.g. "
     "admin/team", False, False),
    (ROLE_ID, "AppRole role_id to log in with; omit when the host injects X-Vault-Token "
     "(--inject-header)", False, False),
    (SECRET_ID, "AppRole secret_id, with role-id (pass it with --secret)", False, True),
    (APPROLE_MOUNT, "Mount path of the AppRole auth method (default approle)", False, False),
]

# What Vault says when check-and-set fails (KV v2's data endpoint).
CAS_MISMATCH = "check-and-set parameter did not match the current version"
# The longest one request waits in total for Vault's 429s to lift.
MAX_RATE_LIMIT_WAIT = 30.0
MAX_RATE_LIMIT_RETRIES = 3
# The largest body the plugin's HTTP client sends (wasi_http writes it in
# one blocking write).
MAX_WRITE_BYTES = 4096
_MOUNT_OR_PATH = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$")


class SettingsError(Exception):
    """A setting is missing or malformed."""


class VaultError(Exception):
    """A call failed; the message says which, why, and what to do."""


class CasMismatch(VaultError):
    """Someone wrote a version between our read and our write."""


Log = Callable[[str, str], None]


@dataclass
class Settings:
    addr: str
    mount: str
    path: str
    key_id_field: str = "AWS_ACCESS_KEY_ID"
    secret_key_field: str = "AWS_SECRET_ACCESS_KEY"
    namespace: Optional[str] = None
    role_id: Optional[str] = None
    secret_id: Optional[str] = None
    approle_mount: str = "approle"

    @property
    def data_path(self) -> str:
        return f"/v1/{quote(self.mount)}/data/{quote(self.path)}"

    @property
    def where(self) -> str:
        return f"{self.mount}/{self.path}"


def load_settings(get: Callable[[str], Optional[str]]) -> Settings:
    """Reads each setting with `get` and checks them together."""

    def value(name: str) -> Optional[str]:
        v = get(name)
        return v.strip() if v is not None and v.strip() else None

    addr = value(ADDR)
    if addr is None:
        raise SettingsError(f"setting '{ADDR}' is missing, e.g. https://vault.example.com:8200")
    if not addr.startswith(("https://", "http://")):
        raise SettingsError(f"setting '{ADDR}' must be an http(s) URL (got '{addr}')")
    path = value(PATH)
    if path is None:
        raise SettingsError(f"setting '{PATH}' is missing, e.g. ci/deploy-bot")
    settings = Settings(addr=addr.rstrip("/"), mount=(value(MOUNT) or "secret").strip("/"),
                        path=path.strip("/"))
    for name, attr in ((MOUNT, "mount"), (PATH, "path")):
        segments = getattr(settings, attr).split("/")
        if not _MOUNT_OR_PATH.match(getattr(settings, attr)) or {".", ".."} & set(segments):
            raise SettingsError(f"setting '{name}' must be segments of letters, digits, '_', "
                                f"'-' and '.' separated by '/', no '.' or '..' (got "
                                f"'{getattr(settings, attr)}')")
    settings.key_id_field = value(KEY_ID_FIELD) or settings.key_id_field
    settings.secret_key_field = value(SECRET_KEY_FIELD) or settings.secret_key_field
    if settings.key_id_field == settings.secret_key_field:
        raise SettingsError(f"settings '{KEY_ID_FIELD}' and '{SECRET_KEY_FIELD}' name the same "
                            f"field '{settings.key_id_field}'")
    settings.namespace = value(NAMESPACE)
    settings.role_id = value(ROLE_ID)
    settings.secret_id = value(SECRET_ID)
    if (settings.role_id is None) != (settings.secret_id is None):
        raise SettingsError(f"AppRole needs both '{ROLE_ID}' and '{SECRET_ID}' (or neither, "
                            "when the host injects X-Vault-Token)")
    settings.approle_mount = (value(APPROLE_MOUNT) or settings.approle_mount).strip("/")
    if not _MOUNT_OR_PATH.match(settings.approle_mount):
        raise SettingsError(f"setting '{APPROLE_MOUNT}' is not a mount path "
                            f"(got '{settings.approle_mount}')")
    return settings


def held_key_problem(data: Optional[dict], settings: Settings, current: Optional[str],
                     abandoned: Sequence[str], user: str) -> Optional[str]:
    """Why the secret must not be overwritten, or None: its key id field must
    hold the current key id, one of the keys interrupted runs left
    (`abandoned`, contract 0.4.0's abandoned-key-ids), or nothing."""
    held = (data or {}).get(settings.key_id_field)
    if held is None or (isinstance(held, str)
                        and (held.strip() in ("", current) or held.strip() in abandoned)):
        return None
    nor = f", nor a key an interrupted run left ({', '.join(abandoned)})" if abandoned else ""
    return (f"{settings.where} holds key {held} in {settings.key_id_field}, not the current key "
            f"({current or 'none'}) of user {user}{nor}: it belongs to another key, so keyrot "
            "leaves it alone; fix the secret or the settings")


class Vault:
    """The calls the handler makes. `sleep(seconds)` waits out a 429."""

    def __init__(self, settings: Settings, send: Send, sleep: Callable[[float], None], log: Log):
        self.settings = settings
        self._send = send
        self._sleep = sleep
        self._log = log
        self._token: Optional[str] = None

    # -- the two steps ---------------------------------------------------

    def check(self, current: Optional[str], abandoned: Sequence[str], user: str) -> None:
        """Preflight: log in, read the secret, check what it holds and that
        the token may write it."""
        self._login()
        try:
            version, data = self._read()
            problem = held_key_problem(data, self.settings, current, abandoned, user)
            if problem:
                raise VaultError(problem)
            # The write will carry every field: check now that it fits, with
            # a key of the real sizes (20 and 40 characters).
            merged = dict(data or {})
            merged[self.settings.key_id_field] = "A" * 20
            merged[self.settings.secret_key_field] = "a" * 40
            size = len(_write_body(version, merged))
            if size > MAX_WRITE_BYTES:
                raise VaultError(f"{self.settings.where} is too large for this plugin: the new "
                                 f"version would be {size} bytes, it sends at most "
                                 f"{MAX_WRITE_BYTES}; keep the AWS key in a secret of its own")
            self._check_capabilities()
            s = self.settings
            what = f"version {version}" if version else "no version yet (it will be created)"
            self._log("info", f"can read and write {s.where} ({what}); will set "
                              f"{s.key_id_field} and {s.secret_key_field} for user {user}")
        finally:
            self._logout()

    def store(self, current: Optional[str], abandoned: Sequence[str], user: str,
              key_id: str, secret: str) -> None:
        """Handle: write a new version with our two fields, check-and-set on
        the version read just before."""
        self._login()
        try:
            for attempt in (1, 2):
                version, data = self._read()
                problem = held_key_problem(data, self.settings, current, abandoned, user)
                if problem:
                    raise VaultError(problem)
                merged = dict(data or {})
                merged[self.settings.key_id_field] = key_id
                merged[self.settings.secret_key_field] = secret
                try:
                    new_version = self._write(version, merged)
                except CasMismatch:
                    if attempt == 2:
                        raise VaultError(
                            f"{self.settings.where} changed twice while keyrot wrote it (Vault: "
                            f"{CAS_MISMATCH}): something else is writing it; run keyrot again "
                            "when it is quiet") from None
                    self._log("warn", f"{self.settings.where} changed since version {version} "
                                      "was read (check-and-set failed): reading it again")
                    continue
                self._log("info", f"{self.settings.where} version {new_version} holds key "
                                  f"{key_id}")
                return
        finally:
            self._logout()

    # -- Vault's endpoints -----------------------------------------------

    def _login(self) -> None:
        s = self.settings
        if s.role_id is None:
            return
        response = self._call("POST", f"/v1/auth/{quote(s.approle_mount)}/login",
                              {"role_id": s.role_id, "secret_id": s.secret_id})
        if response.status != 200:
            raise VaultError(self._failure(response, f"logging in with AppRole at "
                                                     f"auth/{s.approle_mount}"))
        token = (_json(response).get("auth") or {}).get("client_token")
        if not isinstance(token, str) or not token:
            raise VaultError("the AppRole login answered without auth.client_token: is addr "
                             "a Vault server?")
        self._token = token

    def _logout(self) -> None:
        """Revokes the AppRole token: it is not needed after this step."""
        if self._token is None:
            return
        try:
            response = self._call("POST", "/v1/auth/token/revoke-self", None)
            if response.status not in (200, 204):
                self._log("debug", f"could not revoke the AppRole token ({response.status})")
        except (VaultError, TransportError) as e:
            self._log("debug", f"could not revoke the AppRole token: {e}")
        self._token = None

    def _read(self) -> Tuple[int, Optional[dict]]:
        """The current version (0: none yet) and its fields (None when there
        are none, or the latest version is deleted)."""
        response = self._call("GET", self.settings.data_path, None)
        body = _json(response) if response.body else {}
        if response.status == 200 or (response.status == 404 and body.get("data")):
            # A deleted or destroyed latest version is a 404 that still
            # carries its metadata: the next write checks-and-sets on it.
            payload = body.get("data") or {}
            version = (payload.get("metadata") or {}).get("version")
            if not isinstance(version, int):
                raise VaultError(f"reading {self.settings.where}: the answer has no "
                                 "data.metadata.version: is the mount a KV version 2 engine?")
            data = payload.get("data")
            return version, data if isinstance(data, dict) else None
        if response.status == 404:
            self._check_kv2_mount()
            return 0, None
        raise VaultError(self._failure(response, f"reading {self.settings.where}"))

    def _check_kv2_mount(self) -> None:
        """A secret that does not exist yet is created, but only in a KV
        version 2 engine: in version 1 the same write makes another path."""
        mount = self.settings.mount
        response = self._call("GET", f"/v1/sys/internal/ui/mounts/{quote(mount)}", None)
        if response.status != 200:
            raise VaultError(self._failure(response, f"{self.settings.where} does not exist, "
                                                     f"and checking that mount {mount} is KV "
                                                     "version 2"))
        data = _json(response).get("data") or {}
        options = data.get("options") or {}
        if data.get("type") != "kv" or options.get("version") != "2":
            raise VaultError(f"mount {mount} is not a KV version 2 engine (type "
                             f"{data.get('type')}, version {options.get('version')})")

    def _check_capabilities(self) -> None:
        path = f"{self.settings.mount}/data/{self.settings.path}"
        response = self._call("POST", "/v1/sys/capabilities-self", {"paths": [path]})
        if response.status != 200:
            self._log("info", f"cannot ask Vault for the token's capabilities "
                              f"({response.status}): write access shows when writing")
            return
        body = _json(response)
        capabilities = body.get(path) or (body.get("data") or {}).get(path) or []
        if "root" in capabilities or {"create", "update"} <= set(capabilities):
            return
        raise VaultError(f"the token may not write {path} (its capabilities there: "
                         f"{', '.join(capabilities) or 'none'}): its policy needs "
                         f'path "{path}" {{ capabilities = ["create", "read", "update"] }}')

    def _write(self, version: int, data: dict) -> int:
        response = self._call("POST", self.settings.data_path,
                              {"options": {"cas": version}, "data": data})
        if response.status == 200:
            written = ((_json(response).get("data") or {}).get("version"))
            return written if isinstance(written, int) else version + 1
        if response.status == 400 and CAS_MISMATCH in " ".join(_errors(response)):
            raise CasMismatch(CAS_MISMATCH)
        raise VaultError(self._failure(response, f"writing {self.settings.where}"))

    # -- plumbing --------------------------------------------------------

    def _call(self, method: str, path: str, payload: Optional[dict]) -> Response:
        """One request, waiting out 429 as Vault asks (Retry-After)."""
        s = self.settings
        headers = [("accept", "application/json"), ("x-vault-request", "true")]
        if self._token is not None:
            headers.append(("x-vault-token", self._token))
        if s.namespace is not None:
            headers.append(("x-vault-namespace", s.namespace))
        body = None
        if payload is not None:
            body = json.dumps(payload).encode()
            headers += [("content-type", "application/json"), ("content-length", str(len(body)))]
        url = s.addr + path
        waited, retries = 0.0, 0
        while True:
            try:
                response = self._send(method, url, headers, body)
            except TransportError as e:
                raise VaultError(f"cannot reach Vault at {url}: {_transport_words(e, s.addr)}") \
                    from None
            if response.status != 429:
                return response
            try:
                wait = max(0.0, float(response.headers.get("retry-after", "1")))
            except ValueError:
                wait = 1.0
            if retries >= MAX_RATE_LIMIT_RETRIES or waited + wait > MAX_RATE_LIMIT_WAIT:
                raise VaultError(f"Vault is rate-limiting keyrot (429, retry after {wait:g}s): "
                                 "run keyrot again later")
            self._log("info", f"Vault asks to wait {wait:g}s (429)")
            self._sleep(wait)
            waited += wait
            retries += 1

    def _failure(self, response: Response, what: str) -> str:
        errors = "; ".join(_errors(response)) or response.body[:200].decode("utf-8", "replace")
        hint = {
            400: " (400)",
            401: " (401): Vault does not accept the credentials",
            403: (" (403): permission denied: check the token (--inject-header "
                  "'HOST=X-Vault-Token:{env:VAULT_TOKEN}') or AppRole, and its policy"),
            404: " (404 Not Found)",
        }.get(response.status, f" ({response.status})")
        return f"{what} failed{hint}: {errors}" if errors else f"{what} failed{hint}"


def _write_body(version: int, data: dict) -> bytes:
    """The body of a KV v2 write, serialized as `Vault._call` does."""
    return json.dumps({"options": {"cas": version}, "data": data}).encode()


def _json(response: Response) -> dict:
    try:
        value = json.loads(response.body)
    except ValueError:
        raise VaultError(f"the answer ({response.status}) is not JSON: is addr a Vault server?") \
            from None
    return value if isinstance(value, dict) else {}


def _errors(response: Response) -> List[str]:
    try:
        errors = json.loads(response.body).get("errors")
    except (ValueError, AttributeError):
        return []
    return [str(e) for e in errors] if isinstance(errors, list) else []


def _transport_words(error: TransportError, addr: str) -> str:
    if error.code == "HttpRequestDenied":
        host = addr.split("://", 1)[-1].split("/", 1)[0]
        flag = host if addr.startswith("https://") and ":" not in host else \
            addr.split("://", 1)[0] + "://" + host
        return f"keyrot denied the request: grant the host with --allow-host {flag}"
    if error.code == "ConnectionRefused":
        return "connection refused"
    if error.code == "TlsCertificateError":
        return "the server's TLS certificate is not trusted"
    return str(error)
