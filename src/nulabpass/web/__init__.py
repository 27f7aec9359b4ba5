"""Thin HTTP adapters, no web framework needed.

- :func:`scim_wsgi_app`: a WSGI application serving the SCIM endpoints under a prefix;
- :func:`scim_asgi_app`: the same for ASGI servers; the synchronous core runs in a
  thread pool so the event loop never blocks;
- :class:`ScimTestClient`: requests through the WSGI application in-process, for tests;
- :func:`saml_wsgi_app` / :func:`saml_asgi_app`: every organization's SAML metadata,
  sign-in and assertion consumer service endpoints, with the state cookie handled;
  :class:`SamlEndpoints` is the same for any other framework.

Both only translate HTTP to :class:`~nulabpass.scim.ScimRequest` and back; everything
else happens in :meth:`NulabPass.scim.handle <nulabpass.scim.ScimAPI.handle>`.
"""

from __future__ import annotations

from nulabpass.web._asgi import scim_asgi_app
from nulabpass.web._client import Reply, ScimTestClient
from nulabpass.web._saml import (
    HttpRequest,
    HttpResponse,
    SamlEndpoints,
    SamlSignIn,
    saml_asgi_app,
    saml_wsgi_app,
)
from nulabpass.web._wsgi import scim_wsgi_app

__all__ = [
    "HttpRequest",
    "HttpResponse",
    "Reply",
    "SamlEndpoints",
    "SamlSignIn",
    "ScimTestClient",
    "saml_asgi_app",
    "saml_wsgi_app",
    "scim_asgi_app",
    "scim_wsgi_app",
]
