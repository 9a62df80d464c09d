"""The states of a connection and the one table of the moves between them.

Rules of the state machine:
- Every state transition is listed in ``_TRANSITIONS``; ``Connection._set_state``
  refuses any other move.
- A frame that arrives in a state with no frame handler (``_FRAME_HANDLERS`` in
  connection.py) closes the connection; a job result is taken only in a state with a
  job handler (``_JOB_HANDLERS``).
"""

import enum


class State(enum.Enum):
    START = "start"  # initiator, before initiate()
    SIGNING_HS1 = "signing_hs1"  # initiator, job: sign HS1
    AWAIT_HS2 = "await_hs2"
    FINISHING = "finishing"  # initiator, job: unwrap k_R
    LISTEN = "listen"  # responder, before the first frame
    RESPONDING = "responding"  # responder, job: unwrap k_I and sign HS2
    AWAIT_HS3 = "await_hs3"
    LEGACY_WAIT = "legacy_wait"  # responder: a checked v1 envelope waits for a private-op slot
    LEGACY_OPENING = "legacy_opening"  # responder, job: record and open a v1 envelope
    LEGACY_READY = "legacy_ready"  # handed over; the next envelope may follow
    PAIRING = "pairing"  # responder: a pairing exchange (pairing.py), never a session
    REVOKING = "revoking"  # responder: one revocation certificate came; the owner answers
    ESTABLISHED = "established"
    CLOSED = "closed"


S = State
# state -> the states it may move to. Frame handlers exist only for the states that
# expect a frame; job results are accepted only in the four job states.
_TRANSITIONS = {
    S.START: {S.SIGNING_HS1, S.CLOSED},
    S.SIGNING_HS1: {S.AWAIT_HS2, S.CLOSED},
    S.AWAIT_HS2: {S.FINISHING, S.CLOSED},
    S.FINISHING: {S.ESTABLISHED, S.CLOSED},
    S.LISTEN: {S.RESPONDING, S.LEGACY_WAIT, S.LEGACY_OPENING, S.PAIRING, S.REVOKING, S.CLOSED},
    S.RESPONDING: {S.AWAIT_HS3, S.CLOSED},
    S.AWAIT_HS3: {S.ESTABLISHED, S.CLOSED},
    S.LEGACY_WAIT: {S.LEGACY_OPENING, S.CLOSED},
    S.LEGACY_OPENING: {S.LEGACY_READY, S.CLOSED},
    S.LEGACY_READY: {S.LEGACY_WAIT, S.LEGACY_OPENING, S.CLOSED},
    S.PAIRING: {S.CLOSED},
    S.REVOKING: {S.CLOSED},
    S.ESTABLISHED: {S.CLOSED},
    S.CLOSED: set(),
}
_PRE_AUTH = {S.START, S.SIGNING_HS1, S.AWAIT_HS2, S.FINISHING, S.LISTEN, S.RESPONDING, S.AWAIT_HS3}
_LEGACY = {S.LEGACY_WAIT, S.LEGACY_OPENING, S.LEGACY_READY}
_FRAMED = _PRE_AUTH | {S.LEGACY_READY, S.PAIRING}  # states that take one frame at a time
_LEGACY_BUSY = {S.LEGACY_WAIT, S.LEGACY_OPENING}  # an envelope is being worked on
