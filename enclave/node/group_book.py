"""Groups without a running node, straight on the store: ``enclave group list`` and
``enclave group send`` when no node runs on the home folder.

Rules:
- Each stored log is checked whole, as the node checks it at start; one that fails is
  left out, never shown as if it held.
- A post queued here is what the node would queue: one outbox row per other member
  (blocked contacts left out), the group's epoch, our next sequence number and the
  next Lamport time after everything stored, and the expiry of the group's timer. It
  leaves when the node runs. Changes to a group (create, add, remove, leave) are
  signed, so they need the running node; but for the disappearing-messages timer,
  which an admin may sign here with the unlocked key (``set_timer``): the members
  hear of it by catch-up once the node runs, like any record it holds.
"""

from __future__ import annotations

import time

from enclave.errors import PeerError, UserError
from enclave.node.api_groups import GroupInfo, check_group_timer, group_info
from enclave.node.groups import resolve_group
from enclave.node.message_ids import new_id
from enclave.protocol import group_log as gl


def _logs(store) -> dict[bytes, tuple]:
    """gid -> (log, state) of every stored group whose log checks."""
    found = {}
    for row in store.list_groups():
        try:
            glog = gl.GroupLog.load([gl.decode_record(r) for r in row.records], gl.MAX_LIST)
        except PeerError:
            continue
        found[row.id] = (glog, row.state)
    return found


def group_infos(store, own_hex: str) -> list[GroupInfo]:
    own = bytes.fromhex(own_hex)
    infos = [
        group_info(store, own, gid, glog, state) for gid, (glog, state) in _logs(store).items()
    ]
    return sorted(infos, key=lambda i: (i.state != "member", i.name.casefold(), i.id))


def queue_post(store, own_hex: str, query: str, text: str) -> tuple[str, int]:
    """Queue ``text`` for the group ``query`` names; (its name, copies queued)."""
    logs = _logs(store)
    gid = resolve_group({g: entry[0].name for g, entry in logs.items()}, query)
    glog, state = logs[gid]
    if state != "member":
        raise UserError(f"you are no longer in {glog.name} ({state})")
    own = bytes.fromhex(own_hex)
    blocked = {p.fingerprint for p in store.list_peers() if p.blocked}
    targets = [fp.hex() for fp in glog.members if fp != own and fp.hex() not in blocked]
    if not targets:
        raise UserError(f"nobody else is in {glog.name} to read it")
    lamport, seq = store.group_post_counters(gid, own_hex)
    group = (gid, glog.epoch, lamport + 1, seq + 1)
    mid, created = new_id(), int(time.time() * 1000)
    expires = created + 1000 * glog.timer_s if glog.timer_s else None
    store.enqueue_outgoing([(fp, mid, text, created, group, None, None, expires) for fp in targets])
    return glog.name, len(targets)


def set_timer(store, private_key, query: str, seconds: int) -> GroupInfo:
    """Sign and store a TIMER record for the group ``query`` names (admins): what the
    node's ``group_disappearing`` does, for a home with no node running."""
    from enclave.protocol.crypto import Identity

    signer = Identity(private_key)
    logs = _logs(store)
    gid = resolve_group({g: entry[0].name for g, entry in logs.items()}, query)
    glog, state = logs[gid]
    if state != "member":
        raise UserError(f"you are no longer in {glog.name} ({state})")
    check_group_timer(glog, signer.fingerprint, seconds)
    record = glog.set_timer(signer, seconds, int(time.time() * 1000))
    glog.apply(record)
    store.add_group_records(gid, record.epoch, [glog.encoded[record.epoch]], disappear_s=seconds)
    return group_info(store, signer.fingerprint, gid, glog, state)
