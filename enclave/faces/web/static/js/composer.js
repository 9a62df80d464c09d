// The composer: the box where the user writes to the open chat.
//
// Rules:
// - Enter sends, Shift+Enter starts a new line; the box grows with its text up to
//   140 px. A message that could not be queued goes back into the box.
// - A sent message shows from the server's answer or from its "sent" event, whichever
//   comes first; the conversation keeps it once (state.js).
// - Each chat keeps its own draft, in this tab's sessionStorage: switching chats, a
//   reload, or a new launch address pasted into the tab (main.js) loses nothing typed.
// - Near the limit (MAX_CHARS characters, as the node counts them: code points) a
//   counter shows; over it the counter says by how much and nothing is sent. A long
//   paste is never cut silently.

import { api } from "./api.js";
import { onMessage } from "./conversation.js";
import { $, show } from "./dom.js";
import { state } from "./state.js";
import { visible } from "./text.js";
import { toast } from "./toasts.js";
import { noteTyping, stopTyping } from "./typing.js";

export const MAX_CHARS = 10000;

// The message the next send answers (actions.js "Reply"): it travels as that
// message's id, and both faces show the quote from their own copy of it.
let replying = null;

export function startReply(m, who) {
  replying = { peer: m.peer, id: m.id, direction: m.direction };
  $("reply-text").textContent = `${who}: ${visible(String(m.body || ""), false).slice(0, 120)}`;
  show($("reply-bar"), true);
  $("input").focus();
}

export function cancelReply() {
  replying = null;
  show($("reply-bar"), false);
}
const COUNT_FROM = 9000;
const DRAFT_KEY = "enclave-draft:";

export function wireComposer() {
  $("btn-reply-cancel").addEventListener("click", cancelReply);
  $("composer").addEventListener("submit", onSend);
  $("input").addEventListener("input", onComposerInput);
  $("input").addEventListener("keydown", onComposerKey);
}

// The chat ``fp`` opens: its own draft comes back into the box.
export function restoreDraft(fp) {
  $("input").value = (fp && sessionStorage.getItem(DRAFT_KEY + fp)) || "";
  resize();
}

function saveDraft() {
  const fp = state.current;
  if (!fp) return;
  const text = $("input").value;
  if (text) sessionStorage.setItem(DRAFT_KEY + fp, text);
  else sessionStorage.removeItem(DRAFT_KEY + fp);
}

function resize() {
  const input = $("input");
  input.style.height = "auto"; // CSSOM, allowed by the CSP (no style attribute in markup)
  input.style.height = `${Math.min(input.scrollHeight, 140)}px`;
  const n = Array.from(input.value).length;
  const count = $("input-count");
  count.hidden = n < COUNT_FROM;
  count.classList.toggle("over", n > MAX_CHARS);
  count.textContent =
    n > MAX_CHARS ? `${(n - MAX_CHARS).toLocaleString()} too many` : `${n.toLocaleString()} / ${MAX_CHARS.toLocaleString()}`;
}

function onComposerInput() {
  const input = $("input");
  resize();
  saveDraft();
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
  const over = Array.from(text).length - MAX_CHARS;
  if (over > 0) {
    toast(`The message is ${over.toLocaleString()} characters too long (${MAX_CHARS.toLocaleString()} at most)`, { error: true });
    return;
  }
  stopTyping();
  input.value = "";
  onComposerInput();
  const quoted = replying && replying.peer === fp ? replying : null;
  const body = { peer: fp, text };
  if (quoted) Object.assign(body, { reply_to: quoted.id, reply_direction: quoted.direction });
  try {
    const data = await api("POST", "/api/send", body);
    if (quoted) cancelReply();
    onMessage(data.message, false);
  } catch (err) {
    input.value = text;
    onComposerInput();
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
