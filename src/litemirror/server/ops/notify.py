"""Notifications: events at or above a severity, sent by email and to webhooks.

Theory of operation
-------------------
A :class:`Notifier` subscribes to the member's event log. The subscriber
runs on whichever thread emitted the event and only hands it to the event
loop; nothing on the commit path ever waits for a notification.

Each target (the ``[notify.email]`` table, each ``[[notify.webhooks]]``
entry) is a :class:`Channel` with its own bounded queue and its own sending
task, so a slow mail server never delays a webhook. An event enters only
the channels whose ``min_severity`` it reaches. When a channel's queue is
full the *oldest* waiting event is dropped and counted (``dropped``): during
an incident the newest news matters most.

Sending retries with exponential back-off (0.5 s, 1 s, 2 s, ... capped at
30 s) up to the target's ``retries``. A target that still fails is logged
and reported as a ``notify_failed`` event; that kind is never notified
itself, or a dead target would feed on its own failures.

* email: :mod:`smtplib` in a worker thread; STARTTLS (verified against the
  system trust store or ``ca_file``) before AUTH.
* webhook: ``POST`` of the event as JSON with aiohttp; any 2xx is success.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import smtplib
import ssl
import time
from collections import deque
from collections.abc import Awaitable, Callable
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

import aiohttp
import msgspec

from litemirror.config import SEVERITIES, EmailSection, NotifySection, WebhookSection
from litemirror.server.ops.event_log import Event
from litemirror.server.ports import EventSink

log = logging.getLogger("litemirror.notify")

#: Event kinds never sent: notifying about a failed notification would loop.
NOT_NOTIFIED = frozenset({"notify_failed"})
BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 30.0


def rank(severity: str) -> int:
    """Position of ``severity`` in :data:`SEVERITIES` (unknown ones count as info)."""
    try:
        return SEVERITIES.index(severity)
    except ValueError:
        return 0


def event_document(mirror: str, ev: Event) -> dict[str, Any]:
    """The JSON body a webhook receives (also attached to each email)."""
    return {"mirror": mirror, **msgspec.to_builtins(ev)}


class DeliveryFailed(Exception):
    """One attempt to deliver failed; the message says why (for the log and the event)."""


class Channel:
    """One notification target: a bounded queue and the task that empties it."""

    def __init__(
        self,
        name: str,
        min_severity: str,
        retries: int,
        queue_size: int,
        send: Callable[[Event], Awaitable[None]],
        on_failure: Callable[[Channel, Event, str], None],
    ) -> None:
        self.name = name
        self.min_rank = rank(min_severity)
        self.retries = retries
        self.queue: deque[Event] = deque()
        self.queue_size = queue_size
        self.sent = 0
        self.failed = 0
        self.dropped = 0
        self.busy = False
        self._send = send
        self._on_failure = on_failure
        self._wake = asyncio.Event()

    def offer(self, ev: Event) -> None:
        """Queue ``ev`` when its severity reaches this target (event loop only)."""
        if rank(ev.severity) < self.min_rank:
            return
        if len(self.queue) >= self.queue_size:
            lost = self.queue.popleft()
            self.dropped += 1
            log.warning(
                "notify %s: queue full (%d); dropped the oldest event %s (%d dropped so far)",
                self.name,
                self.queue_size,
                lost.kind,
                self.dropped,
            )
        self.queue.append(ev)
        self._wake.set()

    @property
    def idle(self) -> bool:
        return not self.queue and not self.busy

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self.queue:
                ev = self.queue.popleft()
                self.busy = True
                try:
                    await self._deliver(ev)
                finally:
                    self.busy = False

    async def _deliver(self, ev: Event) -> None:
        delay = BACKOFF_FIRST_S
        for attempt in range(self.retries + 1):
            try:
                await self._send(ev)
            except DeliveryFailed as exc:
                if attempt == self.retries:
                    self.failed += 1
                    self._on_failure(self, ev, str(exc))
                    return
                log.info(
                    "notify %s: attempt %d for %s failed (%s); retrying in %.1f s",
                    self.name,
                    attempt + 1,
                    ev.kind,
                    exc,
                    delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, BACKOFF_MAX_S)
            else:
                self.sent += 1
                return

    def stats(self) -> dict[str, Any]:
        return {
            "target": self.name,
            "queued": len(self.queue),
            "sent": self.sent,
            "failed": self.failed,
            "dropped": self.dropped,
        }


def _email_message(cfg: EmailSection, mirror: str, ev: Event) -> EmailMessage:
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ev.ts))
    msg = EmailMessage()
    msg["Subject"] = f"[litemirror {mirror}] {ev.member}: {ev.severity.upper()} {ev.kind}"
    msg["From"] = cfg.from_
    msg["To"] = ", ".join(cfg.to)
    msg["Date"] = formatdate(ev.ts, localtime=True)
    msg["Message-ID"] = make_msgid("litemirror")
    doc = msgspec.json.format(msgspec.json.encode(event_document(mirror, ev)), indent=2)
    msg.set_content(
        f"{ev.message}\n\n"
        f"mirror:   {mirror}\nmember:   {ev.member}\nevent:    {ev.kind}\n"
        f"severity: {ev.severity}\ntime:     {when}\n\n{doc.decode()}\n"
    )
    return msg


def send_email_blocking(cfg: EmailSection, message: EmailMessage) -> None:
    """Deliver one message over SMTP (STARTTLS, then AUTH when configured)."""
    try:
        with smtplib.SMTP(cfg.host, cfg.port, timeout=cfg.timeout_s) as smtp:
            smtp.ehlo()
            if cfg.starttls:
                ctx = ssl.create_default_context(cafile=cfg.ca_file)
                smtp.starttls(context=ctx)
                smtp.ehlo()
            if cfg.username is not None and cfg.password is not None:
                smtp.login(cfg.username, cfg.password)
            smtp.send_message(message)
    except (smtplib.SMTPException, OSError) as exc:
        raise DeliveryFailed(f"SMTP {cfg.host}:{cfg.port}: {type(exc).__name__}: {exc}") from exc


class Notifier:
    """Sends the member's events to the ``[notify]`` targets, never blocking the member."""

    def __init__(
        self,
        config: NotifySection,
        mirror: str,
        subscribe: Callable[[Callable[[Event], None]], Callable[[], None]],
        event: EventSink,
    ) -> None:
        """``subscribe`` is the event log's (see ``EventLog.subscribe``); ``event`` records
        this notifier's own failures."""
        self.config = config
        self.mirror = mirror
        self._subscribe = subscribe
        self._event = event
        self.channels: list[Channel] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._http: aiohttp.ClientSession | None = None
        if config.email is not None:
            email = config.email
            self.channels.append(
                self._channel(
                    "email " + ",".join(email.to), email.min_severity, email.retries, self._email
                )
            )
        for hook in config.webhooks:
            self.channels.append(
                self._channel(
                    f"webhook {hook.url}", hook.min_severity, hook.retries, self._webhook(hook)
                )
            )

    def _channel(
        self, name: str, min_severity: str, retries: int, send: Callable[[Event], Awaitable[None]]
    ) -> Channel:
        return Channel(name, min_severity, retries, self.config.queue_size, send, self._failed)

    def start(self) -> None:
        """Subscribe and start one sending task per target (call on the member's loop)."""
        if not self.channels:
            return
        self._loop = asyncio.get_running_loop()
        self._tasks = [self._loop.create_task(ch.run()) for ch in self.channels]
        self._unsubscribe = self._subscribe(self._on_event)
        log.info("notifications to %s", "; ".join(ch.name for ch in self.channels))

    def _on_event(self, ev: Event) -> None:
        # Runs on the emitting thread: only hand the event to the loop.
        if ev.kind in NOT_NOTIFIED or self._loop is None:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            self._offer(ev)
        else:
            self._loop.call_soon_threadsafe(self._offer, ev)

    def _offer(self, ev: Event) -> None:
        for ch in self.channels:
            ch.offer(ev)

    def _failed(self, ch: Channel, ev: Event, why: str) -> None:
        self._event(
            "notify_failed",
            f"could not notify {ch.name} of {ev.kind} after {ch.retries + 1} attempt(s): {why}; "
            "check the [notify] settings and that the target is reachable",
            "error",
            target=ch.name,
            event_kind=ev.kind,
        )

    async def _email(self, ev: Event) -> None:
        cfg = self.config.email
        assert cfg is not None
        message = _email_message(cfg, self.mirror, ev)
        await asyncio.get_running_loop().run_in_executor(None, send_email_blocking, cfg, message)

    def _webhook(self, hook: WebhookSection) -> Callable[[Event], Awaitable[None]]:
        async def send(ev: Event) -> None:
            if self._http is None:
                self._http = aiohttp.ClientSession()
            body = msgspec.json.encode(event_document(self.mirror, ev))
            headers = {"Content-Type": "application/json", **hook.headers}
            try:
                async with self._http.post(
                    hook.url,
                    data=body,
                    headers=headers,
                    timeout=aiohttp.ClientTimeout(total=hook.timeout_s),
                ) as resp:
                    if not 200 <= resp.status < 300:
                        text = (await resp.text(errors="replace"))[:200]
                        raise DeliveryFailed(f"{hook.url} answered {resp.status}: {text!r}")
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise DeliveryFailed(f"{hook.url}: {type(exc).__name__}: {exc}") from exc

        return send

    def stats(self) -> list[dict[str, Any]]:
        return [ch.stats() for ch in self.channels]

    async def close(self, grace_s: float = 2.0) -> None:
        """Stop listening; give queued notifications ``grace_s`` to go out, then stop."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline and not all(ch.idle for ch in self.channels):
            await asyncio.sleep(0.05)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self._http is not None:
            await self._http.close()
            self._http = None
