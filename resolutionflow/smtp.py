"""SMTP with one deadline for the whole exchange, and a send that is final before QUIT.

Django's SMTP backend gives every socket operation its own ``timeout``. A send is several
round trips (greeting, EHLO, [STARTTLS, EHLO], [AUTH], MAIL, RCPT, DATA, the message), so a
relay answering each just under the timeout made one send last five or six timeouts, longer
than the lease of the email row: the sweep took the row back and the message went out twice.

Here the timeout of ``EMAIL_URL`` (``?timeout=5``) is the one setting:

- ``send_deadline(timeout)``: how long a whole exchange may take, from connect to the
  server's acceptance of the message: one timeout per round trip this configuration makes.
  Every operation waits at most what is left of it, and a watchdog shuts the socket down
  when it passes, so a send that reaches it is abandoned (``SendDeadlineExceeded``) and
  retried later, however the server dribbles.
- ``lease_seconds(timeout)``: the deadline plus a margin for the database work around the
  send; ``escalations.mail`` leases a row this long, so no send can outlive its lease.

``send_then_quit`` sends and returns before the polite QUIT: the caller records the send as
done first, then ``close()`` says goodbye (a slow QUIT can no longer push a delivered
message past its lease).
"""

from __future__ import annotations

import contextlib
import smtplib
import socket
import threading
import time

from django.core.mail.backends.smtp import EmailBackend

# Round trips of one send to one recipient: greeting, EHLO, MAIL, RCPT, DATA, the message.
BASE_ROUND_TRIPS = 6
TLS_ROUND_TRIPS = 2  # STARTTLS and the second EHLO
AUTH_ROUND_TRIPS = 2  # AUTH LOGIN takes two; PLAIN and CRAM-MD5 one
LEASE_MARGIN_SECONDS = 10.0


class SendDeadlineExceeded(smtplib.SMTPServerDisconnected):
    """The whole exchange took longer than its deadline; nothing was accepted."""


def round_trips(*, use_tls: bool = False, authenticated: bool = False) -> int:
    return (
        BASE_ROUND_TRIPS + TLS_ROUND_TRIPS * bool(use_tls) + AUTH_ROUND_TRIPS * bool(authenticated)
    )


def send_deadline(timeout: float, *, use_tls: bool = False, authenticated: bool = False) -> float:
    """Seconds one whole send may take with this per-operation ``timeout``."""
    return round_trips(use_tls=use_tls, authenticated=authenticated) * float(timeout)


def lease_seconds(timeout: float, *, use_tls: bool = False, authenticated: bool = False) -> float:
    """How long a row is leased to its sender: the send's deadline plus a margin."""
    return send_deadline(timeout, use_tls=use_tls, authenticated=authenticated) + max(
        LEASE_MARGIN_SECONDS, float(timeout)
    )


class _Deadline:
    """The monotonic time an exchange must end by, and the watchdog that enforces it."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.ends_at = time.monotonic() + seconds
        self.passed = False
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def remaining(self) -> float:
        left = self.ends_at - time.monotonic()
        if left <= 0 or self.passed:
            raise SendDeadlineExceeded(f"the SMTP exchange took longer than {self.seconds:g} s")
        return left

    def watch(self, sock: socket.socket | None) -> None:
        if sock is None:
            return
        with self._lock:
            if self.passed:
                _shut(sock)
            if sock not in self._sockets:
                self._sockets.append(sock)

    def _expire(self) -> None:
        # A blocked read or write returns at once with an error: the send is abandoned.
        with self._lock:
            self.passed = True
            for sock in self._sockets:
                _shut(sock)

    def cancel(self) -> None:
        self._timer.cancel()


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


class _DeadlineMixin:
    """smtplib.SMTP whose every operation waits at most what is left of the deadline."""

    deadline: _Deadline | None = None

    def _bounded(self) -> float | None:
        timeout = self.operation_timeout
        if timeout is socket._GLOBAL_DEFAULT_TIMEOUT:  # noqa: SLF001 - smtplib's own default
            timeout = None
        if self.deadline is None:
            return timeout
        left = self.deadline.remaining()
        return left if timeout is None else min(timeout, left)

    def connect(self, host="localhost", port=0, source_address=None):
        # smtplib opens its socket with self.timeout: bound it by the deadline first.
        if not hasattr(self, "operation_timeout"):
            self.operation_timeout = self.timeout
        self.timeout = self._bounded()
        return super().connect(host, port, source_address)

    def send(self, s):
        self._arm()
        return super().send(s)

    def getreply(self):
        self._arm()
        try:
            return super().getreply()
        except smtplib.SMTPServerDisconnected:
            if self.deadline is not None and self.deadline.passed:
                raise SendDeadlineExceeded(
                    f"the SMTP exchange took longer than {self.deadline.seconds:g} s"
                ) from None
            raise

    def _arm(self) -> None:
        # Before every write and read (the greeting is read inside connect()).
        if self.sock is not None and self.deadline is not None:
            self.deadline.watch(self.sock)
            self.sock.settimeout(self._bounded())

    def end_deadline(self) -> None:
        """The message is accepted: QUIT gets the plain per-operation timeout again."""
        self.deadline = None
        if self.sock is not None:
            with contextlib.suppress(OSError):
                self.sock.settimeout(self._bounded())


class DeadlineSMTP(_DeadlineMixin, smtplib.SMTP):
    pass


class DeadlineSMTP_SSL(_DeadlineMixin, smtplib.SMTP_SSL):  # noqa: N801 - smtplib's naming
    pass


class DeadlineEmailBackend(EmailBackend):
    """Django's SMTP backend with one deadline per send (see the module docstring)."""

    _deadline: _Deadline | None = None

    @property
    def connection_class(self):
        base = DeadlineSMTP_SSL if self.use_ssl else DeadlineSMTP
        deadline = self._deadline

        def connect(*args, **kwargs):
            # smtplib connects inside __init__: the deadline must be there before that.
            instance = base.__new__(base)
            instance.deadline = deadline
            instance.__init__(*args, **kwargs)
            return instance

        return connect

    def deadline_seconds(self) -> float:
        return send_deadline(
            self.timeout or 10,
            use_tls=bool(self.use_tls or self.use_ssl),
            authenticated=bool(self.username and self.password),
        )

    def lease_seconds(self) -> float:
        return lease_seconds(
            self.timeout or 10,
            use_tls=bool(self.use_tls or self.use_ssl),
            authenticated=bool(self.username and self.password),
        )

    def send_then_quit(self, messages) -> int:
        """Open and send within the deadline, and return with the connection still open:
        the caller records the result, then calls ``close()`` (QUIT). Raises on any failure,
        ``SendDeadlineExceeded`` included; the connection is then dropped without QUIT."""
        self._deadline = _Deadline(self.deadline_seconds())
        try:
            self.open()
            sent = self.send_messages(messages)
            if self.connection is not None:
                self.connection.end_deadline()
            return sent
        except BaseException:
            self._abandon()
            raise
        finally:
            self._deadline.cancel()
            self._deadline = None

    def _abandon(self) -> None:
        """Drop the connection without a goodbye: the server discards an unfinished message."""
        if self.connection is not None:
            with contextlib.suppress(Exception):
                self.connection.close()
            self.connection = None
