// The composer: the box where the user writes to the open chat.
//
// Rules:
// - Enter sends, Shift+Enter starts a new line; the box grows with its text up to
//   140 px. A message that could not be queued goes back into the box.
// - A sent message shows from the server's answer or from its "sent" event, whichever
//   comes first; the conversation keeps it once (state.js).

import { api } from "./api.js";
import { onMessage } from "./conversation.js";
import { $ } from "./dom.js";
import { state } from "./state.js";
import { toast } from "./toasts.js";
import { noteTyping, stopTyping } from "./typing.js";

export function wireComposer() {
  $("composer").addEventListener("submit", onSend);
  $("input").addEventListener("input", onComposerInput);
  $("input").addEventListener("keydown", onComposerKey);
}

function onComposerInput() {
  const input = $("input");
  input.style.height = "auto"; // CSSOM, allowed by the CSP (no style attribute in markup)
  input.style.height = `${Math.min(input.scrollHeight, 140)}px`;
  const peer = state.peers.get(state.current);
  if (!peer || !peer.online || !input.value.trim()) {
    stopTyping();
    return;
  }
  noteTyping(peer.fingerprint);
}

async function onSend(event) {
  event.preventDefault();
  const input = $("input");
  const text = input.value;
  const fp = state.current;
  if (!text.trim() || !fp) return;
  stopTyping();
  input.value = "";
  onComposerInput();
  try {
    const data = await api("POST", "/api/send", { peer: fp, text });
    onMessage(data.message, false);
  } catch (err) {
    input.value = text;
    toast(err.message, { error: true });
  }
  input.focus();
}

function onComposerKey(event) {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    $("composer").requestSubmit();
  }
}
