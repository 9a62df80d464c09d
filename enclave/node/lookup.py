"""Finding the one peer a person means, with the wording every face uses."""

from enclave.errors import UserError
from enclave.identity import keys


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
