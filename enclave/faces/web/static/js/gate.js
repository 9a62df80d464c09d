// The gate: what the page shows before the app, and the step from it into the app.
//
// Rules:
// - Three gates: "setup" (no identity: create one, password twice), "locked" (unlock
//   the identity) and "token" (this page lacks a working launch token: open the
//   address Enclave printed). Only setup and locked have a form.
// - A password is sent once and cleared from its field; the page keeps no copy.
// - While the server works (key generation, scrypt), the gate's buttons and fields
//   are disabled and say what is happening.

import { api } from "./api.js";
import { reopenChat } from "./conversation.js";
import { $, show } from "./dom.js";
import { loadGroups } from "./groups.js";
import { refreshNearby } from "./nearby.js";
import { loadPeers } from "./peers.js";
import { state } from "./state.js";
import { toast } from "./toasts.js";

export function wireGate() {
  $("create-form").addEventListener("submit", onCreate);
  $("unlock-form").addEventListener("submit", onUnlock);
  $("create-password").addEventListener("input", onPasswordInput);
}

export function gate(kind, text, homeDir) {
  show($("app"), false);
  show($("gate"), true);
  const titles = {
    setup: "Create your identity",
    locked: "Unlock Enclave",
    token: "Open Enclave's address",
  };
  $("gate-title").textContent = titles[kind];
  $("gate-text").textContent = text;
  $("gate-home").textContent = homeDir ? `Home folder: ${homeDir}` : "";
  show($("gate-home"), Boolean(homeDir));
  show($("create-form"), kind === "setup");
  show($("unlock-form"), kind === "locked");
  show($("gate-error"), false);
  const focus = kind === "setup" ? $("create-password") : kind === "locked" ? $("unlock-password") : null;
  if (focus) focus.focus();
}

function gateBusy(text) {
  show($("gate-busy"), Boolean(text));
  $("gate-busy-text").textContent = text || "";
  document.querySelectorAll("#gate button, #gate input").forEach((node) => {
    node.disabled = Boolean(text);
  });
}

function gateError(text) {
  $("gate-error").textContent = text;
  show($("gate-error"), Boolean(text));
}

function strength(password) {
  let score = 0;
  if (password.length >= 8) score++;
  if (password.length >= 12) score++;
  if (password.length >= 16) score++;
  const kinds = [/[a-z]/, /[A-Z]/, /[0-9]/, /[^A-Za-z0-9]/].filter((re) => re.test(password)).length;
  if (kinds >= 3) score++;
  return password ? Math.max(1, score) : 0;
}

function onPasswordInput() {
  const score = strength($("create-password").value);
  $("meter-bar").className = `meter-bar${score ? ` s${score}` : ""}`;
  const words = ["Use 12 or more characters. It cannot be recovered if lost.", "Weak password", "Fair password", "Good password", "Strong password"];
  $("meter-text").textContent = words[score];
}

async function onCreate(event) {
  event.preventDefault();
  const password = $("create-password").value;
  const repeat = $("create-repeat").value;
  if (password !== repeat) {
    gateError("The two passwords do not match.");
    return;
  }
  gateError("");
  gateBusy("Creating your RSA-4096 identity… this takes a few seconds");
  try {
    const answer = await api("POST", "/api/identity/create", { password, repeat });
    $("create-password").value = "";
    $("create-repeat").value = "";
    await startApp();
    if (answer.warning) toast(`Note: ${answer.warning}`, { long: true });
    toast("Your identity is ready. Share your key with the QR button.");
  } catch (err) {
    gateError(err.message);
  } finally {
    gateBusy(null);
  }
}

async function onUnlock(event) {
  event.preventDefault();
  const password = $("unlock-password").value;
  gateError("");
  gateBusy("Unlocking…");
  try {
    await api("POST", "/api/identity/unlock", { password });
    $("unlock-password").value = "";
    await startApp();
  } catch (err) {
    gateError(err.message);
  } finally {
    gateBusy(null);
  }
  if (!state.ready) {
    // A wrong password: the field is enabled again; the cursor goes back into it.
    $("unlock-password").focus();
    $("unlock-password").select();
  }
}

// The node runs: load who we are and our peers, then show the app.
export async function startApp() {
  if (state.ready) return;
  state.ready = true;
  try {
    state.me = await api("GET", "/api/me");
    await loadPeers();
    await loadGroups();
  } catch (err) {
    state.ready = false;
    throw err;
  }
  $("me-fp").textContent = state.me.grouped.split(" ").slice(0, 4).join(" ") + " …";
  $("me-fp").title = state.me.grouped;
  $("listening").textContent = `Listening for peers on ${state.me.listening}`;
  show($("gate"), false);
  show($("app"), true);
  refreshNearby();
  reopenChat();
}
