"""The page's "Nearby" section: what LAN discovery heard (``Node.nearby``).

GET /api/nearby -> {"state": "on" | "starting" | "blocked" | "off: ...", "nearby":
[{"fp", "addresses", "contact", "known", "invites", "last_seen"}, ...]}. Unknown
fingerprints are listed for the page to offer "pair"; nothing here trusts or stores one.
"""

from __future__ import annotations


def nearby_routes(app, backend) -> None:
    @app.get("/api/nearby")
    async def nearby():
        node = backend.require_node()
        return {
            "state": node.discovery_state,
            "nearby": [
                {"fp": n.fingerprint, "addresses": list(n.addresses), "contact": n.contact,
                 "known": n.known, "invites": list(n.invites), "last_seen": n.last_seen}
                for n in node.nearby()
            ],
        }  # fmt: skip
