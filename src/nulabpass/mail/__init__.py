"""Email for nulabpass: templates, an SMTP mailer and a recording mailer for tests.

- :func:`render_email` turns a template name, the recipient's language and time zone,
  and parameters into a :class:`~nulabpass.ports.EmailMessage`.
- :class:`TemplateCatalog` holds the built-in English and Japanese templates
  (:data:`DEFAULT_TEMPLATES`) merged with a host's overrides, and the link path of each
  template (:data:`DEFAULT_LINK_PATHS`).
- :class:`SmtpMailer` delivers messages through an SMTP server described by
  :class:`SmtpSettings`; failures become :class:`~nulabpass.errors.TransientError` or
  :class:`MailRejected`.
- :class:`RecordingMailer` keeps messages in memory for tests.
"""

from __future__ import annotations

from nulabpass.mail._defaults import DEFAULT_LINK_PATHS, DEFAULT_TEMPLATES, TEMPLATE_PARAMS
from nulabpass.mail._errors import MailRejected
from nulabpass.mail._model import MailTemplate, ParamValue
from nulabpass.mail._recording import RecordingMailer
from nulabpass.mail._smtp import SmtpMailer, SmtpSettings
from nulabpass.mail._templates import TemplateCatalog, render_email

__all__ = [
    "DEFAULT_LINK_PATHS",
    "DEFAULT_TEMPLATES",
    "TEMPLATE_PARAMS",
    "MailRejected",
    "MailTemplate",
    "ParamValue",
    "RecordingMailer",
    "SmtpMailer",
    "SmtpSettings",
    "TemplateCatalog",
    "render_email",
]
