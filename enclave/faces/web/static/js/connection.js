// The WebSocket that brings every event from Enclave.
//
// Rules:
// - One socket per page, to /ws on the page's own host, wss: when the page came over
//   https and ws: otherwise. It offers the subprotocol "enclave.v1" and the launch
//   token as "enclave.token.<token>" (browsers cannot set headers on a WebSocket).
// - Events go to hooks.onEvent, one parsed JSON object each; a frame that is not
//   JSON is dropped. The page sends with sendSocket(type, fields) only, and only the
//   types of enclave/faces/web/events.py (FromPage): tests/test_web_events.py reads the
//   calls, so the type is always a string literal.
// - A closed socket reconnects with backoff (0.5 s doubling to 10 s) and shows the
//   "connection lost" banner. After a reconnect hooks.onReopen refetches what the page
//   shows, so nothing is missed. From the third try on the token is checked: a
//   restarted Enclave has a new one, and hooks.onTokenLost says so instead of
//   reconnecting for ever.

import { api, currentToken, forgetToken, tokenKept } from "./api.js";
import { $, show } from "./dom.js";

const SUBPROTOCOL = "enclave.v1";
const TOKEN_PREFIX = "enclave.token.";

let hooks = { onEvent() {}, onReopen() {}, onTokenLost() {} };
let current = null;
let tries = 0;
let everConnected = false;

export function socketUrl(where = location) {
  const scheme = where.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${where.host}/ws`;
}

export function connect(given) {
  if (given) hooks = given;
  const socket = new WebSocket(socketUrl(), [SUBPROTOCOL, `${TOKEN_PREFIX}${currentToken()}`]);
  current = socket;
  socket.addEventListener("open", () => {
    const again = everConnected;
    everConnected = true;
    tries = 0;
    show($("conn-banner"), false);
    if (again) hooks.onReopen();
  });
  socket.addEventListener("message", (msg) => {
    let event;
    try {
      event = JSON.parse(msg.data);
    } catch {
      return;
    }
    hooks.onEvent(event);
  });
  socket.addEventListener("close", () => {
    if (current !== socket || !tokenKept()) return;
    current = null;
    if (everConnected) show($("conn-banner"), true);
    const delay = Math.min(10000, 500 * 2 ** tries++);
    if (tries > 2) checkToken();
    setTimeout(connect, delay);
  });
}

async function checkToken() {
  try {
    await api("GET", "/api/state");
  } catch (err) {
    if (err.status === 401) {
      forgetToken();
      hooks.onTokenLost();
    }
  }
}

export function sendSocket(type, fields) {
  if (current && current.readyState === WebSocket.OPEN) {
    current.send(JSON.stringify({ type, ...fields }));
  }
}
