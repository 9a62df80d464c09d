"""The Node API for single messages of a conversation: deleting one here ("delete for
me"); read receipts (receipts.py): allowing them per contact, telling what we read; and
history off per conversation (``set_keep_history``); disappearing messages
(disappear.py): setting a conversation's timer.

Rules:
- A message is named by its row id, its full id (the page) or by the short reference every face
  shows (``#k3f9``, ``display.message_ref``), looked for among the conversation's
  newest ``lookup.REF_WINDOW`` messages; a reference that names several is refused.
  ``lookup.find_message`` finds it, for the node and the command line with no node.
- Only a settled message can go: received, delivered or failed. One still on its way
  (queued or sent) would be delivered anyway; the user is told to wait. A file's row
  stays (its transfer is cancelled or kept from the files' commands).
- Deleting is local: the contact keeps its copy. The body is zeroed in the database
  file and the WAL checkpointed (store.delete_message); ``MessageDeleted`` tells every
  face, which drops the message from what it shows. With no node running the command
  line deletes through ``delete_one`` too (``Book.delete_message``), by the same rules.
- History off with a contact (``set_keep_history``, schema 11): its messages are shown
  and acked as before, but the store keeps only tombstones of them (delivery's rules):
  what it sends is never written, what we send is erased once delivered (or given up).
  Only new messages are concerned: what is kept stays until ``clear_history``. The
  setting is local and the contact is not told: like a screenshot, nothing could make
  its side forget, so a wire message would promise what it cannot keep.
"""

from __future__ import annotations

from enclave.errors import UserError
from enclave.node.display import duration_text, message_ref
from enclave.node.events import ContactChanged, MessageDeleted, TimerChanged
from enclave.node.lookup import find_message
from enclave.protocol.messages import MAX_TIMER_S, MIN_TIMER_S, timer_allowed


class MessagesApi:
    """Mixed into ``Node``."""

    def set_receipts(self, query: str, allowed: bool):
        """Allow (or stop) read receipts with a contact: we tell it what we read and
        show what it read, once it allows them too. The contact as it is now."""
        peer = self.resolve(query)
        self.receipts.set_allowed(peer.fingerprint, bool(allowed))
        change = "receipts_on" if allowed else "receipts_off"
        self._publish(ContactChanged(peer.fingerprint, change, peer.name))
        if allowed:
            self.receipts.read_by_us(peer.fingerprint)  # what is read already: tell it
        return self.store.get_peer(peer.fingerprint)

    def set_keep_history(self, query: str, keep: bool):
        """Turn the history with a contact on or off (see the rules); the contact as
        it is now. ``ContactChanged`` ("history_on" / "history_off") tells every face."""
        peer = self.resolve(query)
        self.store.set_keep_history(peer.fingerprint, bool(keep))
        self.delivery.keep_history(bytes.fromhex(peer.fingerprint), bool(keep))
        change = "history_on" if keep else "history_off"
        self._publish(ContactChanged(peer.fingerprint, change, peer.name))
        return self.store.get_peer(peer.fingerprint)

    async def set_disappearing(self, query: str, seconds: int) -> TimerChanged:
        """Set the disappearing-messages timer with a contact (0: off; else 30 s to 4
        weeks): a TIMER goes to the contact, and the newest TIMER of either side holds on
        both. Returns once it is durable; every face hears ``TimerChanged``."""
        peer = self.resolve(query)
        if not peer.contact or peer.blocked or peer.revoked:
            raise UserError("disappearing messages are set with a contact you can write to")
        if peer.protocol == "v1":
            raise UserError(
                "disappearing messages need Enclave's own protocol; this peer speaks only v1"
            )
        if not timer_allowed(seconds):
            raise UserError(
                f"a timer is off or between {duration_text(MIN_TIMER_S)}"
                f" and {duration_text(MAX_TIMER_S)}, not {duration_text(seconds)}"
            )
        return await self.disappearing.set(peer.fingerprint, seconds)

    def mark_read(self, query: str) -> None:
        """A face showed the chat with ``query`` to its user: a read receipt goes to the
        contact where both allow them (nothing otherwise)."""
        self.receipts.read_by_us(self.resolve(query).fingerprint)

    def find_message(self, query: str, ref: str | int, direction: str | None = None):
        """The message of the conversation with ``query`` that ``ref`` names: its row id
        (an int), its full id (32 hex digits, as the page has it, with its direction:
        a contact chooses its own ids and may reuse one of ours; "either" when only one
        direction has it) or its short reference (text, with or without the "#": never
        taken for a row id). ``lookup.find_message`` has the rules."""
        return find_message(self.store, self.resolve(query).fingerprint, ref, direction)

    def delete_message(self, query: str, ref: str | int, direction: str | None = None):
        """Delete one message of a conversation on this device; the message it was."""
        m = delete_one(self.store, self.resolve(query).fingerprint, ref, direction)
        self._publish(MessageDeleted(m.peer, m.rowid, message_ref(m.id), m.id.hex(), m.direction))
        return m


def delete_one(store, fingerprint: str, ref: str | int, direction: str | None = None):
    """Delete one settled message of the conversation with ``fingerprint`` in ``store``
    (see the rules); the message it was. The running node and the command line with no
    node (``Book.delete_message``) delete through here alike."""
    m = find_message(store, fingerprint, ref, direction)
    if m.file is not None:
        raise UserError("that is a file: cancel or decline it instead")
    if m.direction == "out" and m.state in ("queued", "sent"):
        raise UserError(
            "that message is still on its way; delete it once it is delivered or failed"
        )
    if not store.delete_message(m.peer, m.rowid):
        raise UserError("that message cannot be deleted now (it changed meanwhile)")
    return m
