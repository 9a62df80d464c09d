// The contact menu of the open chat: rename, block or unblock, clear history, remove.
//
// Rules:
// - Each action is one POST; the server's "peers" event (sent to every page, and
//   after changes made in the REPL or on the command line too) redraws the list.
// - Removing deletes the history and what is still owed, so the dialog asks first
//   and says how many undelivered messages go; clearing erases the history alone (on
//   this device: the contact keeps its copy), asking the same way.
// - A mistake (a taken or invalid name) shows inside the dialog, which stays open.

import { api } from "./api.js";
import { $, show } from "./dom.js";
import { state } from "./state.js";
import { label } from "./text.js";
import { toast } from "./toasts.js";

export function wireContact() {
  $("btn-contact").addEventListener("click", openContact);
  $("rename-form").addEventListener("submit", onRename);
  $("btn-block").addEventListener("click", onBlock);
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
  $("block-text").textContent = peer.blocked
    ? "Blocked: its connections and messages are refused. Messages you queued for it wait."
    : "Blocking refuses its connections and messages; nothing it sends is shown or kept.";
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

async function askRemove() {
  const peer = current();
  if (!peer) return;
  try {
    const { owed } = await api("GET", `/api/peers/${peer.fingerprint}/owed`);
    const undelivered = owed ? ` and ${owed} undelivered message${owed === 1 ? "" : "s"}` : "";
    $("remove-text").textContent = `Remove ${label(peer)}? This deletes its history${undelivered}. To talk again, add its key again.`;
    show($("remove-confirm"), true);
  } catch (err) {
    fail(err);
  }
}

async function askClear() {
  const peer = current();
  if (!peer) return;
  try {
    const { owed } = await api("GET", `/api/peers/${peer.fingerprint}/owed`);
    const undelivered = owed ? ` and the ${owed} message${owed === 1 ? "" : "s"} not yet delivered` : "";
    $("clear-text").textContent = `Erase your history with ${label(peer)}${undelivered} on this device? ${label(peer)} keeps theirs.`;
    show($("clear-confirm"), true);
  } catch (err) {
    fail(err);
  }
}

async function onClear() {
  const peer = current();
  if (!peer) return;
  try {
    await api("POST", `/api/peers/${peer.fingerprint}/clear`, {});
    $("dlg-contact").close();
    toast(`Your history with ${label(peer)} was erased on this device`);
  } catch (err) {
    fail(err);
  }
}

async function onRemove() {
  const peer = current();
  if (!peer) return;
  try {
    await api("POST", `/api/peers/${peer.fingerprint}/remove`, {});
    $("dlg-contact").close();
    toast(`${label(peer)} was removed`);
  } catch (err) {
    fail(err);
  }
}
