// What the page knows: one state object, and each chat's messages.
//
// Rules:
// - state is the page's one store: handlers change it, then call the views that
//   render from it.
// - A conversation holds each message once, keyed by direction and ID (keyOf): a
//   message that comes both as the answer to a send and as its "sent" event, or
//   again after a refetch, is shown once.
// - A delivery state that arrives before its message is kept (c.states) and applied
//   when the message comes, if it is further along (rank).

export const state = {
  me: null, // /api/me, once the node runs
  peers: new Map(), // fingerprint -> peer, as /api/peers gave it
  current: null, // the fingerprint of the open chat
  convos: new Map(), // fingerprint -> conversation (convo)
  typing: new Map(), // fingerprint -> the timer that ends its "typing…"
  ready: false, // the app is shown: the node runs, me and peers are loaded
  query: "", // the search box
  groups: new Map(), // group id (hex) -> group, as /api/groups gave it
  group: null, // the id of the open group (never with current: one view at a time)
  groupTalk: new Map(), // group id -> its posts and system lines (groups.js)
  broadcasts: new Set(), // ids of messages this page broadcast (their rows say so after a reload)
};

// What an outgoing message's tick shows: "read" (blue) once the contact said so and
// read receipts are on with it (both sides must allow them), else its state.
export function shownState(m) {
  const peer = state.peers.get(m.peer);
  return m.state === "delivered" && m.read_ms && peer && peer.receipts ? "read" : m.state;
}

export function keyOf(m) {
  return `${m.direction}:${m.id}`;
}

export function convo(fp) {
  let c = state.convos.get(fp);
  if (!c) {
    c = { list: [], byKey: new Map(), loaded: false, loading: false, more: true, buffer: [], states: new Map() };
    state.convos.set(fp, c);
  }
  return c;
}

export function addToConvo(c, m, atStart) {
  if (!m || typeof m !== "object") return false; // nothing to show, nor to key it by
  const key = keyOf(m);
  const known = c.byKey.get(key);
  if (known) {
    if (m.rowid && !known.rowid) known.rowid = m.rowid;
    if (m.reply_to && !known.reply_to) known.reply_to = m.reply_to; // the sender's answer says it
    return false;
  }
  const pending = m.direction === "out" ? c.states.get(m.id) : null;
  if (pending && rank(pending.state) > rank(m.state)) {
    m.state = pending.state;
    m.reason = pending.reason;
  }
  c.byKey.set(key, m);
  if (atStart) c.list.unshift(m);
  else c.list.push(m);
  return true;
}

export function rank(s) {
  return { queued: 0, sent: 1, failed: 2, delivered: 3 }[s] ?? 0;
}
