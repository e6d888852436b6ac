"""What a request got, or why it got nothing: the shapes the Python handlers'
API code works with, kept free of the wasi:http bindings so that code is
unit-tested on any Python (wasi_http.py is the transport in the component).
"""

from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple


@dataclass
class Response:
    status: int
    body: bytes
    # Header names lowercase.
    headers: Dict[str, str] = field(default_factory=dict)


class TransportError(Exception):
    """The request got no HTTP answer. `code` names the wasi:http
    `error-code` case, e.g. `HttpRequestDenied`."""

    def __init__(self, code: str, detail: str = ""):
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code
        self.detail = detail


# (method, url, headers, body) -> Response, or raises TransportError.
Send = Callable[[str, str, List[Tuple[str, str]], Optional[bytes]], Response]
