"""LAN discovery: the zeroconf adapter (issue 19). The rules of what an announcement
may say, and the table of what was heard, are in ``enclave.node.nearby``.

Rules:
- A node that listens where the LAN can reach it announces ``_enclave._tcp.local.``
  (mDNS / DNS-SD, python-zeroconf's asyncio API) with its port and a TXT record of
  ``v=1``, its full fingerprint and the nameplates of its open invitations; never a
  name. It browses for the others at the same time.
- A node listening on a loopback address only is not reachable from the LAN: it
  neither announces nor browses. The ``discovery`` setting (``--no-discovery``) turns
  it all off.
- Each announcement heard is rate-limited, then resolved (at most ``MAX_RESOLVING`` at
  once; more are dropped, counted), then checked by ``NearbyTable.observe``; the node
  is told (``on_heard(fingerprint)``) of every one that passes. What it does with it
  is its business (``api_discovery``): an announcement alone stores nothing.
- Multicast that does not work (no interface, zeroconf cannot start, or our own
  announcement is not heard back within ``SELF_CHECK`` seconds) is logged once and
  published once as ``NodeProblem(BLOCKED)``; the node keeps running, and addresses
  given by the user keep working.
- ``browse`` and ``find_inviter`` listen for a few seconds without a node (a command
  run with no node on its home, a joiner looking for its inviter).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import time

from enclave.errors import UserError
from enclave.node import nearby as nb
from enclave.node.events import NodeProblem

log = logging.getLogger("enclave.node.discovery")
BLOCKED = "LAN discovery is off: multicast is blocked here; explicit addresses still work"
RESOLVE_MS = 3000  # how long one resolve waits for the announcer's answer
SELF_CHECK = 8.0  # seconds to hear our own announcement before multicast is called blocked
MAX_RESOLVING = 32


def instance_name(fingerprint: str) -> str:
    """Our service's name: unique per identity, and saying nothing but its start."""
    return f"enclave-{fingerprint[:16]}.{nb.SERVICE_TYPE}"


def lan_addresses(host: str) -> list[str] | None:
    """The IPv4 addresses to announce for a node listening on ``host``; None when it
    listens on loopback only (nothing to announce); [] when no interface has one."""
    if host not in ("", "0.0.0.0", "::"):
        try:
            ip = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return []  # a host name: no address of ours to announce
        if ip.is_loopback:
            return None
        return [str(ip)] if ip.version == 4 else []
    import ifaddr  # zeroconf's own dependency

    found = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            if isinstance(ip.ip, str) and not ipaddress.ip_address(ip.ip).is_loopback:
                found.append(ip.ip)
    return list(dict.fromkeys(found))


class Listener:
    """Browse for announcements, resolve each one heard and put it through the table."""

    def __init__(self, zc, table: nb.NearbyTable, on_heard, own_name: str = "") -> None:
        self.zc, self.table, self.on_heard = zc, table, on_heard
        self.own_name = own_name.lower()
        self.limit = nb.RateLimit()
        self.heard_self = asyncio.Event()
        self.heard = asyncio.Event()  # set at every accepted announcement (find_inviter)
        self.resolving: set[asyncio.Task] = set()
        self.browser = None

    def start(self) -> None:
        from zeroconf.asyncio import AsyncServiceBrowser

        self.browser = AsyncServiceBrowser(self.zc, [nb.SERVICE_TYPE], handlers=[self._changed])

    def _changed(self, zeroconf, service_type: str, name: str, state_change) -> None:
        from zeroconf import ServiceStateChange

        if name.lower() == self.own_name:
            self.heard_self.set()  # multicast works: we hear our own announcement
            return
        if state_change is ServiceStateChange.Removed:
            self.table.forget_service(name)
            return
        if not self.limit.allow(name, time.monotonic()):
            self._dropped(name, "rate")
            return
        if len(self.resolving) >= MAX_RESOLVING:
            self._dropped(name, "busy")
            return
        task = asyncio.get_running_loop().create_task(self._resolve(name))
        self.resolving.add(task)
        task.add_done_callback(self.resolving.discard)

    def _dropped(self, name: str, why: str) -> None:
        """A flood is counted, and logged at powers of two rather than line by line."""
        self.table.refused[why] += 1
        count = self.table.refused[why]
        if count & (count - 1) == 0:
            reason = "over the rate limit" if why == "rate" else "too many resolves under way"
            log.info("LAN announcement %r dropped: %s (%d so far)", name[:80], reason, count)

    async def _resolve(self, name: str) -> None:
        from zeroconf import BadTypeInNameException
        from zeroconf.asyncio import AsyncServiceInfo

        try:
            info = AsyncServiceInfo(nb.SERVICE_TYPE, name)
            found = await info.async_request(self.zc, RESOLVE_MS)
        except (BadTypeInNameException, ValueError, OSError) as err:
            self.table.refuse(name, f"malformed record ({err})")
            return
        if not found:
            self.table.refuse(name, "no answer when resolved")
            return
        fp = self.table.observe(
            name, info.properties, info.parsed_addresses(), info.port, time.time()
        )
        if fp is not None:
            self.heard.set()
            self.on_heard(fp)

    async def close(self) -> None:
        for task in list(self.resolving):
            task.cancel()
        await asyncio.gather(*self.resolving, return_exceptions=True)
        if self.browser is not None:
            await self.browser.async_cancel()


class Discovery:
    """The engine a Node starts and stops: our announcement and the listener."""

    def __init__(self, fingerprint: str, host: str, port: int, publish, on_heard) -> None:
        self.fingerprint, self.host, self.port = fingerprint, host, port
        self.publish, self.on_heard = publish, on_heard
        self.table = nb.NearbyTable(fingerprint)
        self.name = instance_name(fingerprint)
        self.state = "starting"  # on | off: <why> | blocked
        self.invites: tuple[int, ...] = ()
        self.addresses: list[str] = []
        self.zc = None
        self.listener: Listener | None = None
        self._task: asyncio.Task | None = None
        self._lock = asyncio.Lock()  # one registration or update at a time
        self._registered = False

    async def start(self) -> None:
        addresses = lan_addresses(self.host)
        if addresses is None:
            self.state = "off: listening on loopback only"
            log.info("LAN discovery is off: this node listens on loopback only")
            return
        if not addresses:
            self._blocked("no network interface with an IPv4 address")
            return
        from zeroconf import IPVersion
        from zeroconf.asyncio import AsyncZeroconf

        try:
            self.zc = AsyncZeroconf(interfaces=addresses, ip_version=IPVersion.V4Only)
        except Exception as err:  # noqa: BLE001 - any failure here means: no multicast
            self._blocked(f"zeroconf did not start ({err!r})")
            return
        self.addresses = addresses
        self.listener = Listener(self.zc.zeroconf, self.table, self.on_heard, self.name)
        self.listener.start()
        self._task = asyncio.get_running_loop().create_task(
            self._announce(), name="enclave-discovery"
        )

    def _info(self):
        from zeroconf.asyncio import AsyncServiceInfo

        properties = {"v": "1", "fp": self.fingerprint}
        if self.invites:
            properties["inv"] = nb.invites_txt(self.invites).decode("ascii")
        return AsyncServiceInfo(
            nb.SERVICE_TYPE,
            self.name,
            addresses=[socket.inet_aton(a) for a in self.addresses],
            port=self.port,
            properties=properties,
            server=f"enclave-{self.fingerprint[:16]}.local.",
        )

    async def _announce(self) -> None:
        try:
            async with self._lock:
                # The second await lasts until the announcements went out: an update
                # sent meanwhile would be followed by the first version's repeats, and
                # listeners would keep the stale TXT (its nameplates) for its TTL.
                await (await self.zc.async_register_service(self._info()))
                self._registered = True
        except Exception as err:  # noqa: BLE001 - a name clash, a send refused: no discovery
            self._blocked(f"announcing failed ({err!r})")
            return
        try:
            await asyncio.wait_for(self.listener.heard_self.wait(), SELF_CHECK)
        except TimeoutError:
            self._blocked(f"our own announcement was not heard back within {SELF_CHECK:g} s")
            return
        self.state = "on"
        log.info("LAN discovery on: announcing port %d on %s", self.port, ", ".join(self.addresses))

    def _blocked(self, reason: str) -> None:
        if self.state == "blocked":
            return
        self.state = "blocked"
        log.warning("LAN discovery is off: %s; explicit addresses still work", reason)
        self.publish(NodeProblem(BLOCKED))

    def set_invites(self, nameplates) -> None:
        """Announce these open invitations' nameplates from now on (re-registers the TXT)."""
        invites = tuple(sorted({int(p) for p in nameplates}))
        nb.invites_txt(invites)  # checked now: a mistake is the caller's, raised here
        self.invites = invites
        if self.zc is not None and self.state != "blocked":
            asyncio.get_running_loop().create_task(self._update(), name="enclave-discovery-txt")

    async def _update(self) -> None:
        async with self._lock:
            if not self._registered or self.zc is None:
                return  # the registration under way (or none) reads self.invites itself
            try:
                await (await self.zc.async_update_service(self._info()))
            except Exception as err:  # noqa: BLE001 - the next update may work
                log.warning("LAN discovery: updating the announcement failed: %r", err)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self.listener is not None:
            await self.listener.close()
        if self.zc is not None:
            try:
                async with self._lock:
                    if self._registered:
                        await self.zc.async_unregister_all_services()
            finally:
                await self.zc.async_close()
            self.zc = None


async def browse(seconds: float, own_fp: str = "", stop_when=None) -> nb.NearbyTable:
    """Listen on every LAN interface for ``seconds`` (less when ``stop_when(table)`` is
    true after an announcement); the table of what was heard. ``UserError(BLOCKED)``
    when there is no interface to listen on or zeroconf cannot start."""
    from zeroconf import IPVersion
    from zeroconf.asyncio import AsyncZeroconf

    addresses = lan_addresses("0.0.0.0")
    if not addresses:
        raise UserError(BLOCKED)
    try:
        zc = AsyncZeroconf(interfaces=addresses, ip_version=IPVersion.V4Only)
    except Exception as err:  # noqa: BLE001 - any failure here means: no multicast
        log.warning("zeroconf did not start: %r", err)
        raise UserError(BLOCKED) from None
    table = nb.NearbyTable(own_fp)
    listener = Listener(zc.zeroconf, table, lambda fp: None)
    listener.start()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    try:
        while (left := deadline - loop.time()) > 0:
            listener.heard.clear()
            try:
                await asyncio.wait_for(listener.heard.wait(), left)
            except TimeoutError:
                break
            if stop_when is not None and stop_when(table):
                break
    finally:
        await listener.close()
        await zc.async_close()
    return table


async def find_inviter(nameplate: int, timeout: float) -> list[str]:
    """``host:port`` of the nodes nearby advertising an open invitation with this
    nameplate, as soon as one is heard (at most ``timeout`` seconds); [] for none.
    Needs no running node. A candidate proves nothing: pairing authenticates it."""
    if not 1 <= int(nameplate) <= 99:
        raise UserError(f"nameplate {nameplate} is not 1-99")
    table = await browse(timeout, stop_when=lambda t: bool(t.with_invite(nameplate, time.time())))
    return table.with_invite(nameplate, time.time())
