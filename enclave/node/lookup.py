"""Finding the one peer a person means, with the wording every face uses."""

from enclave.errors import UserError
from enclave.identity import keys
from enclave.node.display import message_ref


def resolve_peer(store, query: str):
    """The one peer a name or fingerprint prefix (≥ 8 hex characters) names."""
    found = store.find_peers(query)
    if not found:
        raise UserError(
            f"no peer matches {query!r} (use a name or at least 8 hex characters of a fingerprint)"
        )
    if len(found) > 1:
        names = ", ".join(f"{p.name or '-'} {keys.group(p.fingerprint, 4)}" for p in found)
        raise UserError(
            f"{query!r} matches {len(found)} peers ({names}); type more of the fingerprint"
        )
    return found[0]


# A short reference is looked for among a conversation's newest messages only.
REF_WINDOW = 500
DIRECTIONS = ("in", "out")
EITHER = "either"  # a full id's direction, when the person does not know it


def find_message(store, fingerprint: str, ref: str | int, direction: str | None = None):
    """The message of the conversation with ``fingerprint`` that ``ref`` names: its row
    id (an int), its full id (32 hex digits, as the page and ``enclave history --json``
    have it, with its direction: a contact chooses its own ids and may reuse one of ours;
    ``EITHER`` takes the one direction that has it) or its short reference (text, with
    or without the "#": never taken for a row id). Every face finds messages here, the
    running node's and the command line's with no node alike."""
    found = False
    if isinstance(ref, int):
        found = store.message(fingerprint, rowid=ref)
    elif len(ref) == 32 and _is_hex(ref):
        found = _by_id(store, fingerprint, bytes.fromhex(ref), direction)
    if found is None:
        raise UserError("no such message in that conversation")
    if found:
        return found
    want = str(ref).strip().lower()
    want = want if want.startswith("#") else f"#{want}"
    matches = [m for m in store.history(fingerprint, REF_WINDOW) if message_ref(m.id) == want]
    if not matches:
        raise UserError(f"no message {want} among the last {REF_WINDOW} with that contact")
    if len(matches) > 1:
        raise UserError(
            f"{want} names {len(matches)} messages; name it by its full id instead "
            "(the page has it, and enclave history PEER --json)"
        )
    return matches[0]


def _by_id(store, fingerprint: str, mid: bytes, direction: str | None):
    if direction == EITHER:
        found = [store.message(fingerprint, mid=mid, direction=d) for d in DIRECTIONS]
        found = [m for m in found if m is not None]
        if len(found) > 1:
            raise UserError(
                "that id names a message each way (the contact reused one of ours); "
                "say which with its direction (in or out)"
            )
        return found[0] if found else None
    if direction not in DIRECTIONS:
        raise UserError("a message named by its id needs its direction (in or out)")
    return store.message(fingerprint, mid=mid, direction=direction)


def _is_hex(text: str) -> bool:
    return all(ch in "0123456789abcdef" for ch in text.lower())
