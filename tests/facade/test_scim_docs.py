"""The runnable example of docs/scim.md runs, and its app answers SCIM requests."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

DOC = Path(__file__).resolve().parents[2] / "docs" / "scim.md"


def test_the_wsgi_example_in_the_docs_serves_scim() -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    example = next(b for b in blocks if "make_server" in b)
    namespace: dict[str, Any] = {"__name__": "docs_example"}
    exec(compile(example, str(DOC), "exec"), namespace)  # noqa: S102 - our own docs
    app = namespace["app"]
    body = json.dumps({"userName": "docs@example.com"}).encode()
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/scim/v2/Users",
        "QUERY_STRING": "",
        "CONTENT_LENGTH": str(len(body)),
        "HTTP_HOST": "127.0.0.1:8000",
        "HTTP_AUTHORIZATION": f"Bearer {namespace['token']}",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
    }
    seen: list[str] = []
    out = b"".join(app(environ, lambda status, headers: seen.append(status)))
    assert seen == ["201 Created"]
    assert json.loads(out)["userName"] == "docs@example.com"
