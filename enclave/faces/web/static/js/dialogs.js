// The dialogs: share my key, add a peer, verify a peer, broadcast.
//
// Rules:
// - Each is a native <dialog> opened modal; [data-close] buttons close the one they
//   are in. A mistake shows inside the dialog, which stays open.
// - A peer's key is read from a pasted PEM or a chosen file (64 KiB at most); the
//   server checks it. A peer added or changed opens its chat, with a reminder to
//   compare fingerprints.

import { api } from "./api.js";
import { openChat, redrawChat } from "./conversation.js";
import { $, el, show } from "./dom.js";
import { broadcastFile } from "./files.js";
import { loadPeers } from "./peers.js";
import { state } from "./state.js";
import { label } from "./text.js";
import { toast } from "./toasts.js";

export function wireDialogs() {
  $("btn-share").addEventListener("click", openShare);
  $("btn-add").addEventListener("click", openAdd);
  $("btn-add-empty").addEventListener("click", openAdd);
  $("btn-broadcast").addEventListener("click", openBroadcast);
  $("btn-verify").addEventListener("click", openVerify);
  $("btn-mark-verified").addEventListener("click", onMarkVerified);
  $("btn-copy-key").addEventListener("click", () => copy(state.me.public_key, "Public key"));
  $("btn-copy-fp").addEventListener("click", () => copy(state.me.fingerprint, "Fingerprint"));
  $("btn-download").addEventListener("click", downloadKey);
  $("add-file").addEventListener("change", onKeyFile);
  $("add-form").addEventListener("submit", onAdd);
  $("broadcast-form").addEventListener("submit", onBroadcast);
  $("broadcast-file").addEventListener("change", onBroadcastFile);
  document.querySelectorAll("[data-close]").forEach((b) => b.addEventListener("click", () => b.closest("dialog").close()));
}

function openDialog(id) {
  const dialog = $(id);
  if (!dialog.open) dialog.showModal();
  return dialog;
}

function fpGrid(node, grouped) {
  node.replaceChildren(...grouped.split(" ").map((g) => el("span", "", g)));
}

function openShare() {
  fpGrid($("share-fp"), state.me.grouped);
  $("share-address").textContent = state.me.listening;
  drawQr($("qr"), state.me.qr);
  openDialog("dlg-share");
}

export function drawQr(canvas, rows) {
  const n = rows.length;
  const quiet = 3;
  const scale = Math.max(2, Math.floor(canvas.width / (n + 2 * quiet)));
  const size = (n + 2 * quiet) * scale;
  canvas.width = size;
  canvas.height = size;
  const g = canvas.getContext("2d");
  g.fillStyle = "#ffffff";
  g.fillRect(0, 0, size, size);
  g.fillStyle = "#111b21";
  rows.forEach((row, y) => {
    for (let x = 0; x < row.length; x++) {
      if (row[x] === "1") g.fillRect((x + quiet) * scale, (y + quiet) * scale, scale, scale);
    }
  });
}

async function copy(text, what) {
  try {
    await navigator.clipboard.writeText(text);
    toast(`${what} copied`);
  } catch {
    toast(`Could not copy the ${what.toLowerCase()}; select it and copy by hand`, { error: true });
  }
}

function downloadKey() {
  const blob = new Blob([state.me.public_key], { type: "application/x-pem-file" });
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = `enclave-${state.me.fingerprint.slice(0, 8)}.pem`;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 1000);
}

function openAdd() {
  $("add-form").reset();
  show($("add-error"), false);
  openDialog("dlg-add");
  $("add-key").focus();
}

function onKeyFile() {
  const file = $("add-file").files[0];
  if (!file) return;
  if (file.size > 65536) {
    showError("add-error", "That file is too large to be a public key.");
    return;
  }
  const reader = new FileReader();
  reader.onload = () => {
    $("add-key").value = String(reader.result);
  };
  reader.readAsText(file);
}

export function showError(id, text) {
  $(id).textContent = text;
  show($(id), true);
}

async function onAdd(event) {
  event.preventDefault();
  const body = {
    public_key: $("add-key").value.trim(),
    address: $("add-address").value.trim(),
    name: $("add-name").value.trim() || null,
    protocol: $("add-protocol").value || null, // null: a known peer keeps its protocol
  };
  if (!body.public_key) return showError("add-error", "Paste your peer's public key, or choose its file.");
  if (!body.address) return showError("add-error", "Enter your peer's address, like 192.168.1.100:8000.");
  try {
    const data = await api("POST", "/api/peers", body);
    $("dlg-add").close();
    await loadPeers();
    const peer = state.peers.get(data.fingerprint);
    toast(`${data.added ? "Added" : "Updated"} ${peer ? label(peer) : "peer"}. Compare fingerprints before relying on it.`, { long: true });
    if (data.warning) toast(`Note: ${data.warning}`, { long: true });
    openChat(data.fingerprint);
  } catch (err) {
    showError("add-error", err.message);
  }
}

function openVerify() {
  const peer = state.peers.get(state.current);
  if (!peer) return;
  $("verify-name").textContent = label(peer);
  fpGrid($("verify-mine"), state.me.grouped);
  fpGrid($("verify-theirs"), peer.grouped);
  $("verify-theirs-label").textContent = `${label(peer)}'s fingerprint`;
  const mark = $("btn-mark-verified");
  mark.textContent = peer.verified ? "Remove verification" : "They match: mark verified";
  // Taking a verification back is the lesser action here, not the one to press.
  mark.className = peer.verified ? "ghost danger" : "primary";
  $("verify-safety").replaceChildren();
  openDialog("dlg-verify");
  showSafety(peer);
}

// The safety number is computed by the node (thousands of hashes): it comes after the dialog opens.
async function showSafety(peer) {
  try {
    const data = await api("GET", `/api/peers/${peer.fingerprint}/safety`);
    if (state.current !== peer.fingerprint) return;
    $("verify-safety").replaceChildren(...data.lines.map((line) => el("div", "", line)));
    drawQr($("verify-qr"), data.qr);
  } catch (err) {
    toast(err.message, { error: true });
  }
}

async function onMarkVerified() {
  const peer = state.peers.get(state.current);
  if (!peer) return;
  try {
    await api("POST", `/api/peers/${peer.fingerprint}/verified`, { verified: !peer.verified });
    $("dlg-verify").close();
    await loadPeers();
    toast(peer.verified ? `${label(peer)} is no longer marked verified` : `${label(peer)} is verified`);
  } catch (err) {
    toast(err.message, { error: true });
  }
}

function openBroadcast() {
  $("broadcast-form").reset();
  show($("broadcast-error"), false);
  const n = state.peers.size;
  $("broadcast-text").textContent = n
    ? `Sends to all ${n} peer${n === 1 ? "" : "s"} at once. Peers that are offline get it when they are back.`
    : "You have no peers yet.";
  openDialog("dlg-broadcast");
  $("broadcast-input").focus();
}

function onBroadcastFile() {
  const pick = $("broadcast-file");
  const file = pick.files[0];
  pick.value = "";
  if (!file) return;
  $("dlg-broadcast").close();
  broadcastFile(file);
}

async function onBroadcast(event) {
  event.preventDefault();
  const text = $("broadcast-input").value;
  if (!text.trim()) return showError("broadcast-error", "Write a message first.");
  try {
    const data = await api("POST", "/api/broadcast", { text });
    $("dlg-broadcast").close();
    const n = data.messages.length;
    for (const m of data.messages) if (m && typeof m.id === "string") state.broadcasts.add(m.id);
    redrawChat();
    toast(n ? `Broadcast to ${n} contact${n === 1 ? "" : "s"}` : "Nobody to broadcast to: you have no contact that is not blocked");
  } catch (err) {
    showError("broadcast-error", err.message);
  }
}
