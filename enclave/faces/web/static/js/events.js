// What Enclave tells the page over the WebSocket, and what the page does with it.
//
// Rules:
// - HANDLERS has one entry for each type the server sends (enclave/faces/web/events.py,
//   ToPage) and no other. tests/test_web_events.py reads this table and fails when
//   the two lists differ, so keep it one `type: handler,` line per type.
// - An event of a type not in the table is ignored, with a note in the console: it
//   can only come from a server of another version than this page.
// - After a reconnect, or when the server says the page fell behind ("resync"), the
//   page refetches what it shows instead of replaying what it missed.

import { leaveChat, loadOlder, onDelivery, onFile, onKeyChanged, onMessage, renderWaiting } from "./conversation.js";
import { startApp } from "./gate.js";
import { loadGroups, loadPosts, onGroupChanged, onGroupDelivery, onGroupExpired, onGroupPost } from "./groups.js";
import { onPaired } from "./pairing.js";
import { loadPeers, renderPeer, renderPeers } from "./peers.js";
import { state } from "./state.js";
import { label } from "./text.js";
import { toast } from "./toasts.js";
import { clearTyping, onTyping } from "./typing.js";
import { onReceipt, onTimer } from "./conversation.js";
import { dropMessage } from "./actions.js";

const HANDLERS = Object.freeze({
  hello: onState,
  state: onState,
  message: (event) => onMessage(event.message, true),
  sent: (event) => onMessage(event.message, false),
  delivery: onDelivery,
  presence: (event) => onPresence(event.peer, event.online),
  typing: (event) => onTyping(event.peer, event.active),
  read: onRead,
  peers: onPeers,
  resync: () => resync(),
  problem: (event) => toast(event.text, { error: true, long: true }),
  retrying: onRetrying,
  file: (event) => onFile(event.file),
  throttled: onThrottled,
  group_post: (event) => onGroupPost(event.post),
  group_delivery: onGroupDelivery,
  group_changed: (event) => onGroupChanged(event.change),
  group_expired: (event) => onGroupExpired(event),
  key_changed: onKeyChanged,
  message_deleted: (event) => dropMessage(event.peer, event.key),
  receipt: onReceipt,
  timer: onTimer,
  expired: (event) => event.keys.forEach((key) => dropMessage(event.peer, key)),
  paired: onPaired,
  error: (event) => toast(event.text, { error: true }),
});

export function onEvent(event) {
  const type = event && event.type;
  if (typeof type === "string" && Object.hasOwn(HANDLERS, type)) HANDLERS[type](event);
  else console.warn("Enclave sent an event this page does not know:", type);
}

function onState(event) {
  if (event.state === "ready" && !state.ready) startApp();
}

function onRead(event) {
  const peer = state.peers.get(event.peer);
  if (peer) {
    peer.unread = 0;
    renderPeers();
  }
}

// The address book changed (here, on another page, in the REPL or on the command
// line): a removed contact's chat closes and its messages leave the page.
function onPeers(event) {
  if (event.change === "removed") {
    if (state.current === event.peer) leaveChat();
    state.convos.delete(event.peer);
  }
  if (event.change === "cleared") {
    state.convos.delete(event.peer); // its messages leave the page, here and on others
    if (state.current === event.peer) loadOlder(event.peer, true);
  }
  loadPeers().catch((err) => toast(err.message, { error: true }));
}

function onPresence(fp, online) {
  const peer = state.peers.get(fp);
  if (!peer) return;
  peer.online = online;
  peer.last_seen_ms = Date.now(); // online now, or last seen just now
  if (online) peer.retry_at = null;
  else clearTyping(fp);
  renderPeer(fp);
  if (state.current === fp) renderWaiting();
}

// Messages wait for a peer that could not be reached; the next try is in retry_after s.
function onRetrying(event) {
  const peer = state.peers.get(event.peer);
  if (!peer) return;
  peer.retry_at = Date.now() + event.retry_after * 1000;
  if (state.current === event.peer) renderWaiting();
}

// A peer's node takes our messages more slowly for now; they wait in the outbox.
const THROTTLE_WHY = {
  rate: "rate (too many messages a second)",
  volume: "volume (too many bytes a second)",
  storage: "storage (its quota for your messages is full)",
};

function onThrottled(event) {
  const peer = state.peers.get(event.peer);
  const who = peer ? label(peer) : event.peer.slice(0, 8);
  const why = THROTTLE_WHY[event.reason] || event.reason;
  const seconds = Math.max(1, Math.ceil(event.retry_after));
  toast(`${who}'s node is throttling you: ${why}; retrying in ${seconds} s`, { long: true });
}

export async function resync() {
  try {
    await loadPeers();
    await loadGroups();
    for (const gid of [...state.groupTalk.keys()]) if (gid !== state.group) state.groupTalk.delete(gid);
    if (state.group) await loadPosts(state.group);
    for (const fp of [...state.convos.keys()]) if (fp !== state.current) state.convos.delete(fp);
    if (state.current) {
      state.convos.delete(state.current);
      await loadOlder(state.current, true);
    }
  } catch (err) {
    toast(err.message, { error: true });
  }
}
