"""The virtual IP: one address that always points at the primary.

Theory of operation: clients (or a load balancer) connect to a single IPv4
address, ``mirror.vip``. The member that becomes primary adds that address to
its ``vip_interface`` (``ip addr add``) and then broadcasts gratuitous ARP
(``arping -U``), so every neighbour on the segment replaces the old primary's
MAC address in its ARP cache at once instead of waiting minutes for the entry
to go stale. The member that is demoted removes the address (``ip addr del``).

Taking the address is part of becoming primary: when it fails the takeover is
aborted (and retried by the failover loop), because a primary that clients
cannot reach is no primary. So :meth:`VirtualIP.acquire` either leaves the
address held and announced, or raises :class:`~litemirror.errors.OperationalError`
with the failing command's own stderr, having removed an address it added.

Two packets are sent one second apart because Linux ignores a second ARP
update to the same neighbour entry within ``locktime`` (1 s by default); the
second packet gets through even if the first one raced an ordinary ARP reply.

Needs ``ip`` (iproute2) and ``arping`` (iputils-arping) and the right to change
addresses (root or CAP_NET_ADMIN); ``scripts/install-netns-tools.sh`` installs
the tools on Debian.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import os
import shutil

from litemirror.errors import ConfigError, OperationalError
from litemirror.server.ha.commands import run_command

log = logging.getLogger("litemirror.vip")

#: How long one ``ip`` or ``arping`` command may take before it is killed.
COMMAND_TIMEOUT_S = 10.0
INSTALL_HINT = "install iproute2 and iputils-arping (scripts/install-netns-tools.sh)"


class VirtualIP:
    """An IPv4 address with prefix (``"10.77.0.100/24"``) on one network interface."""

    def __init__(self, address: str, interface: str) -> None:
        try:
            iface = ipaddress.ip_interface(address)
        except ValueError as exc:
            raise ConfigError(f"vip: {address!r} is not an address with prefix: {exc}") from exc
        if not isinstance(iface, ipaddress.IPv4Interface):
            raise ConfigError(f"vip: {address!r} is not IPv4; gratuitous ARP needs IPv4")
        if not interface:
            raise ConfigError("vip_interface: must name a network interface")
        #: ``"10.77.0.100/24"``, as given to ``ip addr add``.
        self.address = str(iface)
        #: ``"10.77.0.100"``, the bare address announced by arping.
        self.ip = str(iface.ip)
        self.interface = interface

    def __repr__(self) -> str:
        return f"VirtualIP({self.address!r}, {self.interface!r})"

    async def acquire(self) -> None:
        """Add the address (already present is fine) and announce it with gratuitous ARP.

        Raises OperationalError, naming the command and its stderr, when a tool
        is missing, the interface does not exist, or a command fails; an address
        this call added is removed again before raising.
        """
        arping = shutil.which("arping")
        if arping is None:
            # Checked before touching the interface so a failure changes nothing.
            raise OperationalError(
                f"cannot take virtual IP {self.address} on {self.interface}: the arping "
                f"command was not found on PATH, so neighbours could not be told; {INSTALL_HINT}"
            )
        rc, _, err = await _run(["ip", "addr", "add", self.address, "dev", self.interface])
        added = rc == 0
        # Already there is fine. Asked rather than matched on the error text,
        # which differs between iproute2 versions ("File exists", "already assigned").
        if not added and not await self._held_or_false():
            raise OperationalError(
                f"cannot take virtual IP {self.address} on {self.interface}: "
                f"`ip addr add {self.address} dev {self.interface}` failed: {err.strip()}; "
                "the takeover is aborted: check vip_interface and that this process may "
                "change addresses (root or CAP_NET_ADMIN)"
            )
        argv = [arping, "-U", "-c", "2", "-I", self.interface, self.ip]
        rc, out, err = await _run(argv)
        if rc != 0:
            if added:
                # Do not keep an address whose owner change nobody was told about.
                with contextlib.suppress(OperationalError):
                    await self.release()
            detail = (err or out).strip() or f"exit status {rc}"
            raise OperationalError(
                f"cannot announce virtual IP {self.ip} on {self.interface}: "
                f"`arping -U -c 2 -I {self.interface} {self.ip}` failed: {detail}; "
                f"the address was {'removed again' if added else 'already present and kept'}"
                "; the takeover is aborted"
            )
        log.info("took virtual IP %s on %s and sent gratuitous ARP", self.address, self.interface)

    async def release(self) -> None:
        """Remove the address; an address (or interface) that is absent is fine."""
        rc, _, err = await _run(["ip", "addr", "del", self.address, "dev", self.interface])
        if rc == 0:
            log.info("released virtual IP %s on %s", self.address, self.interface)
            return
        # Not there (or no such interface, so it cannot be there): nothing to do.
        # Asked rather than matched on the error text, which varies by version.
        if not await self._held_or_false():
            return
        raise OperationalError(
            f"cannot release virtual IP {self.address} on {self.interface}: "
            f"`ip addr del {self.address} dev {self.interface}` failed: {err.strip()}; "
            "remove it by hand so two hosts do not answer for it"
        )

    async def _held_or_false(self) -> bool:
        try:
            return await self.held()
        except OperationalError:
            return False

    async def held(self) -> bool:
        """True when the address is configured on the interface now."""
        rc, out, err = await _run(["ip", "-j", "addr", "show", "dev", self.interface])
        if rc != 0:
            raise OperationalError(
                f"cannot tell whether virtual IP {self.address} is held: "
                f"`ip addr show dev {self.interface}` failed: {err.strip()}"
            )
        try:
            links = json.loads(out or "[]")
        except ValueError as exc:
            raise OperationalError(f"`ip -j addr show` printed something not JSON: {exc}") from exc
        return any(
            info.get("family") == "inet" and info.get("local") == self.ip
            for link in links
            for info in link.get("addr_info", [])
        )


async def _run(argv: list[str], timeout: float = COMMAND_TIMEOUT_S) -> tuple[int, str, str]:
    """Run a command; return (exit status, stdout, stderr). Missing tools and hangs raise."""
    try:
        # A stable language so the error texts matched above do not vary.
        done = await run_command(argv, timeout=timeout, env={**os.environ, "LC_ALL": "C"})
    except FileNotFoundError as exc:
        raise OperationalError(
            f"virtual IP: the command {argv[0]!r} was not found; {INSTALL_HINT}"
        ) from exc
    except TimeoutError:
        raise OperationalError(
            f"virtual IP: `{' '.join(argv)}` did not finish within {timeout:g} s and was killed"
        ) from None
    return (
        done.returncode,
        done.stdout.decode(errors="replace"),
        done.stderr.decode(errors="replace"),
    )
