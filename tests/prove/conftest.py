"""Fixtures for the proving suite: the loopback SendGrid of the sending tests, reused."""

from __future__ import annotations

from tests.sending.conftest import sendgrid

__all__ = ["sendgrid"]
