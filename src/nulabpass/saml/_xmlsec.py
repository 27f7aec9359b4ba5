"""python-xmlsec, typed loosely.

Its bundled stubs omit most constants (``Transform.*``, ``KeyFormat``...), so the SAML
core reaches it through this alias; every call site annotates what it gets back.
"""

from __future__ import annotations

from typing import Any

import xmlsec as _module

__all__ = ["xmlsec"]

xmlsec: Any = _module
