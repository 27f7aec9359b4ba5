"""Thin HTTP adapters, no web framework needed.

- :func:`scim_wsgi_app`: a WSGI application serving the SCIM endpoints under a prefix;
- :func:`scim_asgi_app`: the same for ASGI servers; the synchronous core runs in a
  thread pool so the event loop never blocks;
- :class:`ScimTestClient`: requests through the WSGI application in-process, for tests.

Both only translate HTTP to :class:`~nulabpass.scim.ScimRequest` and back; everything
else happens in :meth:`NulabPass.scim.handle <nulabpass.scim.ScimAPI.handle>`.
"""

from __future__ import annotations

from nulabpass.web._asgi import scim_asgi_app
from nulabpass.web._client import Reply, ScimTestClient
from nulabpass.web._wsgi import scim_wsgi_app

__all__ = ["Reply", "ScimTestClient", "scim_asgi_app", "scim_wsgi_app"]
