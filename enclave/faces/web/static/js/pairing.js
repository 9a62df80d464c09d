// Pairing by code on the page: "Invite with a code" shows a code and its QR and waits;
// "I have a code" joins someone else's invitation. Either ends in a verified contact.
//
// Rules:
// - The code is shown only here, to the person who asked for it; it never goes into
//   the URL, the title or a notification.
// - How an invitation ends comes over the socket ("paired"), whichever face opened
//   it; the dialog shows it if it is still open, and a toast says it anyway.
// - Closing the dialog cancels an invitation that is still waiting: nobody sees its
//   code any more, so nobody can read it out.

import { api } from "./api.js";
import { openChat } from "./conversation.js";
import { drawQr, showError } from "./dialogs.js";
import { $, show } from "./dom.js";
import { loadPeers } from "./peers.js";
import { toast } from "./toasts.js";

let waiting = null; // the nameplate of the invitation this page shows

export function wirePairing() {
  $("btn-invite").addEventListener("click", openInvite);
  $("btn-join-open").addEventListener("click", openJoin);
  $("join-form").addEventListener("submit", onJoin);
  $("dlg-pair").addEventListener("close", cancelWaiting);
}

function openPair(inviting) {
  $("dlg-add").close();
  show($("invite-part"), inviting);
  show($("join-form"), !inviting);
  show($("join-error"), false);
  const dialog = $("dlg-pair");
  if (!dialog.open) dialog.showModal();
}

async function openInvite() {
  $("invite-code").textContent = "";
  $("invite-status").textContent = "Making a code…";
  openPair(true);
  try {
    const data = await api("POST", "/api/invite");
    waiting = data.nameplate;
    $("invite-code").textContent = data.code;
    drawQr($("invite-qr"), data.qr);
    $("invite-status").textContent = "Waiting for them to join…";
  } catch (err) {
    $("invite-status").textContent = err.message;
  }
}

function openJoin() {
  openPair(false);
  $("join-code").focus();
}

async function onJoin(event) {
  event.preventDefault();
  const body = { code: $("join-code").value.trim(), address: $("join-address").value.trim() };
  $("btn-join").disabled = true;
  try {
    const added = await api("POST", "/api/join", body);
    $("dlg-pair").close();
    $("join-code").value = "";
    await loadPeers();
    toast(`Paired with ${added.name || added.fingerprint.slice(0, 8)}: a verified contact`);
    openChat(added.fingerprint);
  } catch (err) {
    showError("join-error", err.message);
  } finally {
    $("btn-join").disabled = false;
  }
}

const WHY = {
  wrong_code: "A wrong code was tried, so this one is used up. Make a new one.",
  expired: "Nobody joined within 10 minutes.",
  cancelled: "The invitation was cancelled.",
  interrupted: "The other side stopped half-way; the code is used up. Make a new one.",
};

// The socket's "paired": an invitation of this node ended.
export async function onPaired(event) {
  const mine = event.nameplate === waiting;
  if (mine) waiting = null;
  if (event.reason) {
    const why = WHY[event.reason] || event.reason;
    if (mine) $("invite-status").textContent = why;
    else toast(`An invitation ended: ${why}`, { error: true });
    return;
  }
  const who = event.name || event.fingerprint.slice(0, 8);
  if (mine) $("invite-status").textContent = `Paired with ${who}: added as a verified contact.`;
  await loadPeers();
  toast(`Paired with ${who}: a verified contact`);
}

function cancelWaiting() {
  if (waiting === null) return;
  const nameplate = waiting;
  waiting = null;
  api("DELETE", `/api/invite/${nameplate}`).catch(() => {});
}
