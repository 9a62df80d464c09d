// Enclave's page: the entry module. Plain JavaScript modules, no build step, no
// third-party code; index.html loads this file and it imports the rest.
//
// The modules, each headed by its rules:
//   api.js          the launch token and the JSON API
//   connection.js   the WebSocket: connect, reconnect, send
//   events.js       the dispatch of what arrives on the WebSocket
//   state.js        what the page knows: peers, chats, and their messages
//   peers.js        the peers list and the open chat's header
//   conversation.js the open chat's messages
//   composer.js     writing a message; typing.js: typing hints both ways
//   search.js       the search box
//   dialogs.js      share my key, add a peer, verify, broadcast
//   contact.js      the open chat's contact menu: rename, block, remove
//   groups.js       the groups list, the open group's posts, members and composer
//   groupmenu.js    "New group", and the open group's menu: add, remove, leave
//   gate.js         create or unlock the identity, or ask for the address with the token
//   settings.js     the settings dialog: theme, this browser's sign-in (devices.py)
//   toasts.js, dom.js, icons.js, text.js, time.js: shared helpers
//
// Rules for every module:
// - Text from peers and from the server goes into the page as text, never as HTML
//   (dom.js), and text from peers through visible() (text.js).
// - One message, contact or search result that cannot be shown becomes one line
//   saying so; the rest of the page still renders.
// - One WebSocket brings every event; actions are JSON POSTs.

import { api, currentToken, forgetToken, readToken, resumeDevice, tokenWellFormed, wasSignedOut } from "./api.js";
import { wireComposer } from "./composer.js";
import { wireContact } from "./contact.js";
import { connect } from "./connection.js";
import { wireConversation } from "./conversation.js";
import { wireDialogs } from "./dialogs.js";
import { onEvent, resync } from "./events.js";
import { gate, startApp, wireGate } from "./gate.js";
import { wireGroupMenu } from "./groupmenu.js";
import { wireGroups } from "./groups.js";
import { fillIcons } from "./icons.js";
import { wirePairing } from "./pairing.js";
import { wireNearby } from "./nearby.js";
import { wireSearch } from "./search.js";
import { wireSettings } from "./settings.js";
import { wireShortcuts } from "./shortcuts.js";
import { state } from "./state.js";

const NO_TOKEN =
  "This page needs the address Enclave printed when it started; it ends with #token=…. Start Enclave with enclave --web and open that address.";
const OLD_TOKEN = "This address's key belongs to an earlier launch of Enclave. Open the address it printed this time.";
const SIGNED_OUT =
  "This browser was signed out of Enclave. Open the address Enclave printed (its settings can keep the browser signed in again).";
const MISTYPED =
  "This address is cut short or mistyped. Copy the whole address Enclave printed, to the end of #token=…, and open it.";
const TOKEN_LOST = "Enclave was restarted, so this address's key no longer works. Open the address it printed this time.";

function wire() {
  fillIcons(document);
  wireGate();
  wireComposer();
  wireSearch();
  wireConversation();
  wireDialogs();
  wirePairing();
  wireContact();
  wireGroups();
  wireGroupMenu();
  wireNearby();
  wireShortcuts();
  wireSettings();
}

const hooks = {
  onEvent,
  onReopen() {
    if (state.ready) resync();
  },
  async onTokenLost() {
    state.ready = false;
    // A browser kept signed in takes the new launch's token itself; the reload keeps
    // the drafts and the open chat (sessionStorage).
    if (await resumeDevice()) location.reload();
    else gate("token", wasSignedOut() ? SIGNED_OUT : TOKEN_LOST);
  },
};

// This launch's /api/state, with the token from the address, this tab, or the
// browser's device cookie; or the one line that says why not.
async function authorise() {
  if (!readToken() && !(await resumeDevice())) return { why: wasSignedOut() ? SIGNED_OUT : NO_TOKEN };
  try {
    return { answer: await api("GET", "/api/state") };
  } catch (err) {
    if (err.status !== 401) return { why: err.message };
  }
  const refused = currentToken();
  forgetToken();
  if (await resumeDevice()) {
    try {
      return { answer: await api("GET", "/api/state") };
    } catch (err) {
      return { why: err.message };
    }
  }
  if (wasSignedOut()) return { why: SIGNED_OUT };
  return { why: tokenWellFormed(refused) ? OLD_TOKEN : MISTYPED };
}

async function boot() {
  wire();
  const { answer, why } = await authorise();
  if (!answer) return gate("token", why);
  connect(hooks);
  if (answer.state === "ready") await startApp();
  else if (answer.state === "setup") gate("setup", "Choose a password to protect your new RSA-4096 key. Enclave asks for it each time it starts; it never leaves this computer.", answer.home);
  else gate("locked", "Enter the password of your identity to start your node.", answer.home);
}

// A new launch address pasted into this tab (Enclave restarted): take its token at
// once; the drafts and the open chat come back after the reload (sessionStorage).
window.addEventListener("hashchange", () => {
  if (/(?:^#|&)token=/.test(location.hash)) location.reload();
});

document.addEventListener("DOMContentLoaded", boot);
