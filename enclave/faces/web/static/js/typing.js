// Typing hints, both ways.
//
// Rules:
// - Out: while the user writes to an online peer, "typing" is sent at most every
//   TYPING_EVERY ms, and "not typing" after TYPING_IDLE ms of quiet, on sending, or
//   on leaving the chat.
// - In: a peer's hint shows "typing…" for TYPING_SHOWN ms at most, and ends early
//   when its message arrives or it goes offline.

import { sendSocket } from "./connection.js";
import { renderPeer } from "./peers.js";
import { state } from "./state.js";

const TYPING_EVERY = 3000;
const TYPING_IDLE = 4000;
const TYPING_SHOWN = 6000;

const typingOut = { peer: null, at: 0, idle: null };

// The user wrote to fp, which is online.
export function noteTyping(fp) {
  const now = Date.now();
  if (typingOut.peer !== fp || now - typingOut.at > TYPING_EVERY) {
    typingOut.peer = fp;
    typingOut.at = now;
    sendSocket("typing", { peer: fp, active: true });
  }
  clearTimeout(typingOut.idle);
  typingOut.idle = setTimeout(stopTyping, TYPING_IDLE);
}

export function stopTyping() {
  clearTimeout(typingOut.idle);
  if (typingOut.peer) sendSocket("typing", { peer: typingOut.peer, active: false });
  typingOut.peer = null;
  typingOut.at = 0;
}

export function onTyping(fp, active) {
  clearTimeout(state.typing.get(fp));
  if (active) state.typing.set(fp, setTimeout(() => clearTyping(fp), TYPING_SHOWN));
  else state.typing.delete(fp);
  renderPeer(fp);
}

export function clearTyping(fp) {
  if (!state.typing.has(fp)) return;
  clearTimeout(state.typing.get(fp));
  state.typing.delete(fp);
  renderPeer(fp);
}
