// The contact menu of the open chat: rename, mute, read receipts, history on or off,
// block or unblock, clear history, remove.
//
// Rules:
// - Each action is one POST; the server's "peers" event (sent to every page, and
//   after changes made in the REPL or on the command line too) redraws the list.
// - Removing deletes the history and what is still owed, so the dialog asks first
//   and says how many undelivered messages go; clearing erases the history alone (on
//   this device: the contact keeps its copy), asking the same way.
// - History off is local and concerns new messages only: they are shown, then kept
//   nowhere on this device; the contact is not told. Nothing is asked: what is kept
//   stays (Clear history erases it).
// - A mistake (a taken or invalid name) shows inside the dialog, which stays open.

import { api } from "./api.js";
import { fillDisappear, wireDisappear } from "./disappear.js";
import { $, show } from "./dom.js";
import { isMuted, setMuted } from "./notify.js";
import { state } from "./state.js";
import { label } from "./text.js";
import { toast } from "./toasts.js";

export function wireContact() {
  $("btn-contact").addEventListener("click", openContact);
  $("rename-form").addEventListener("submit", onRename);
  $("btn-block").addEventListener("click", onBlock);
  $("btn-mute").addEventListener("click", onMute);
  $("btn-receipts").addEventListener("click", onReceipts);
  $("btn-keep-history").addEventListener("click", onKeepHistory);
  wireDisappear();
  $("btn-remove").addEventListener("click", askRemove);
  $("btn-remove-cancel").addEventListener("click", () => show($("remove-confirm"), false));
  $("btn-remove-yes").addEventListener("click", onRemove);
  $("btn-clear").addEventListener("click", askClear);
  $("btn-clear-cancel").addEventListener("click", () => show($("clear-confirm"), false));
  $("btn-clear-yes").addEventListener("click", onClear);
}

function current() {
  return state.peers.get(state.current);
}

function openContact() {
  const peer = current();
  if (!peer) return;
  fill(peer);
  show($("remove-confirm"), false);
  show($("clear-confirm"), false);
  show($("contact-error"), false);
  const dialog = $("dlg-contact");
  if (!dialog.open) dialog.showModal();
  $("contact-name").focus();
}

function fill(peer) {
  $("contact-title").textContent = label(peer);
  $("contact-fp").textContent = peer.grouped;
  $("contact-name").value = peer.name || "";
  $("btn-block").textContent = peer.blocked ? "Unblock" : "Block";
  $("btn-mute").textContent = isMuted(peer.fingerprint) ? "Unmute notifications" : "Mute notifications";
  $("btn-receipts").textContent = peer.receipts ? "Turn read receipts off" : "Turn read receipts on";
  $("btn-receipts").title = "Both sides must turn them on: then each sees what the other read (blue ticks)";
  $("btn-keep-history").textContent = peer.keep_history ? "Turn history off" : "Turn history on";
  $("btn-keep-history").title = "Off: new messages are shown, then kept nowhere on this device (the contact is not told)";
  fillDisappear(peer);
  $("block-text").textContent = peer.blocked
    ? "Blocked: its connections and messages are refused. Messages you queued for it wait."
    : "Blocking refuses its connections and messages; nothing it sends is shown or kept.";
}

async function onReceipts() {
  const peer = current();
  if (!peer) return;
  try {
    const data = await api("POST", `/api/peers/${peer.fingerprint}/receipts`, { allowed: !peer.receipts });
    peer.receipts = data.receipts;
    fill(peer);
    toast(peer.receipts ? `Read receipts with ${label(peer)} are on: blue ticks once they turn them on too` : `Read receipts with ${label(peer)} are off`);
  } catch (err) {
    fail(err);
  }
}

async function onKeepHistory() {
  const peer = current();
  if (!peer) return;
  try {
    const data = await api("POST", `/api/peers/${peer.fingerprint}/history`, { keep: !peer.keep_history });
    peer.keep_history = data.keep_history;
    fill(peer);
    toast(peer.keep_history ? `History with ${label(peer)} is on: new messages are kept` : `History with ${label(peer)} is off: new messages are shown, then kept nowhere here`);
  } catch (err) {
    fail(err);
  }
}

// Muting is this browser's choice (notify.js): no notification, no sound.
function onMute() {
  const peer = current();
  if (!peer) return;
  const muted = !isMuted(peer.fingerprint);
  setMuted(peer.fingerprint, muted);
  fill(peer);
  toast(muted ? `${label(peer)} is muted in this browser` : `${label(peer)} notifies again`);
}

function fail(err) {
  $("contact-error").textContent = err.message;
  show($("contact-error"), true);
}

async function onRename(event) {
  event.preventDefault();
  const peer = current();
  if (!peer) return;
  const name = $("contact-name").value.trim() || null;
  try {
    const data = await api("POST", `/api/peers/${peer.fingerprint}/name`, { name });
    $("dlg-contact").close();
    toast(data.name ? `Renamed to ${data.name}` : "Name removed");
  } catch (err) {
    fail(err);
  }
}

async function onBlock() {
  const peer = current();
  if (!peer) return;
  try {
    const data = await api("POST", `/api/peers/${peer.fingerprint}/blocked`, { blocked: !peer.blocked });
    peer.blocked = data.blocked;
    fill(peer);
    toast(data.blocked ? `${label(peer)} is blocked` : `${label(peer)} is unblocked`);
  } catch (err) {
    fail(err);
  }
}

// Ask before a change that drops what is still owed: ``question(peer, undelivered)``
// fills the dialog's confirm section ``part`` ("remove" or "clear").
async function askFirst(part, question) {
  const peer = current();
  if (!peer) return;
  try {
    const { owed } = await api("GET", `/api/peers/${peer.fingerprint}/owed`);
    const undelivered = owed ? `${owed} undelivered message${owed === 1 ? "" : "s"}` : "";
    $(`${part}-text`).textContent = question(label(peer), undelivered);
    show($(`${part}-confirm`), true);
  } catch (err) {
    fail(err);
  }
}

// Then do it: one POST, the dialog closes, a toast says what happened.
async function change(action, said) {
  const peer = current();
  if (!peer) return;
  try {
    await api("POST", `/api/peers/${peer.fingerprint}/${action}`, {});
    $("dlg-contact").close();
    toast(said(label(peer)));
  } catch (err) {
    fail(err);
  }
}

function askRemove() {
  const question = (who, owed) => `Remove ${who}? This deletes its history${owed ? ` and ${owed}` : ""}. To talk again, add its key again.`;
  return askFirst("remove", question);
}

function askClear() {
  const question = (who, owed) => `Erase your history with ${who}${owed ? ` and its ${owed}` : ""} on this device? ${who} keeps theirs.`;
  return askFirst("clear", question);
}

function onRemove() {
  return change("remove", (who) => `${who} was removed`);
}

function onClear() {
  return change("clear", (who) => `Your history with ${who} was erased on this device`);
}
