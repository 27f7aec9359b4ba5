"""Unit tests of email rendering, the SMTP adapter and the recording mailer."""
