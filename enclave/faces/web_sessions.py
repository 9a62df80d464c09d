"""``enclave web-sessions``: the browsers kept signed in to this home's page.

Rules:
- It lists each session (id, created, last used, the browser's name for itself) and
  revokes one (``--revoke ID``, 4 characters of the id are enough) or all
  (``--revoke-all``). No password: the sessions file holds no secret that signs anyone
  in (digests only), and revoking can only take access away.
- A revocation holds at once, also for a page that runs now: the page reads the file
  at every exchange (enclave/faces/web/devices.py).
"""

from __future__ import annotations

import time

from enclave.faces import cli


def run(args) -> int:
    from enclave.faces.web.devices import IDLE_DAYS, Devices

    place = cli.home_of(args)
    devices = Devices(place.path)
    if args.revoke_all or args.revoke:
        ended = devices.revoke(None if args.revoke_all else args.revoke)
        print(
            f"Signed out {ended} browser{'s' * (ended != 1)}: each needs the address Enclave prints to open the page again"
        )
        return 0
    found = devices.load()
    if not found:
        print("No browser is kept signed in (opening the page's printed address signs one in).")
        return 0
    print(
        f"{len(found)} browser{'s' * (len(found) != 1)} kept signed in (ended after {IDLE_DAYS} days unused):"
    )
    for d in sorted(found, key=lambda d: d.used_ms, reverse=True):
        print(f"  {d.id[:8]}  since {_day(d.created_ms)}  last used {_day(d.used_ms)}  {d.agent}")
    print("Sign one out: enclave web-sessions --revoke ID")
    return 0


def _day(ms: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ms / 1000))
