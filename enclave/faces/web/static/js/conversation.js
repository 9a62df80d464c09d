// The open chat: its messages, older pages as the user scrolls up, and what arrives.
//
// Rules:
// - Opening a chat loads its last PAGE messages; older pages load as the user scrolls
//   to the top. A message that arrives while a page loads waits in the
//   conversation's buffer and is added after it.
// - The messages are drawn whole on every change, grouped by day. One message that
//   cannot be shown becomes one line saying so; the rest still render.
// - An incoming message to the open chat of a visible tab is read at once; any other
//   counts as unread and shows a toast that opens its chat.
// - Messages waiting for an offline peer show a line above the composer: how many, when
//   they are tried next ("retrying in 8 s", counted down each second) and "Retry now",
//   which asks the node to try the peer at once (and to send failed ones again).

import { api } from "./api.js";
import { $, el, show } from "./dom.js";
import { fileCard, wireFiles } from "./files.js";
import { restoreDraft } from "./composer.js";
import { closeGroup } from "./groups.js";
import { loadPeers, renderHeader, renderPeers, tick } from "./peers.js";
import { addToConvo, convo, keyOf, rank, shownState, state } from "./state.js";
import { label, linked, visible } from "./text.js";
import { UNKNOWN_TIME, clock, dayLabel, format, fullFormat, startOfDay, timeOf, validTime } from "./time.js";
import { toast } from "./toasts.js";
import { clearTyping, stopTyping } from "./typing.js";
import { notifyMessage } from "./notify.js";
import { actionButton, wireActions } from "./actions.js";
import { timerLine } from "./disappear.js";

const PAGE = 50;

export function wireConversation() {
  const list = $("peer-list");
  const fromRow = (event) => {
    const row = event.target.closest("li[data-fp]");
    if (row) openChat(row.dataset.fp);
  };
  list.addEventListener("click", fromRow);
  list.addEventListener("keydown", (event) => {
    if (event.key === "Enter") fromRow(event);
  });
  $("btn-back").addEventListener("click", closeChat);
  wireFiles(onFile);
  wireActions(() => {
    renderMessages({});
    renderPeers();
  });
  $("btn-retry-now").addEventListener("click", () => state.current && retryPeer(state.current));
  setInterval(renderWaiting, 1000); // the countdown of "retrying in N s"
  $("messages").addEventListener("scroll", () => {
    if (state.current && $("messages").scrollTop < 80) loadOlder(state.current, false);
    if (nearBottom()) seen();
  });
  $("jump-new").addEventListener("click", jumpToNew);
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible" && nearBottom()) seen();
  });
}

const OPEN_KEY = "enclave-open-chat";

// The chat this tab had open before a reload, if its contact is still there.
export function reopenChat() {
  const fp = sessionStorage.getItem(OPEN_KEY);
  if (fp && state.peers.has(fp)) openChat(fp);
}

export async function openChat(fp, focusKey) {
  const peer = state.peers.get(fp);
  if (!peer) return;
  if (state.current !== fp) stopTyping();
  const switching = state.current !== fp;
  if (switching && state.current) convo(state.current).firstUnread = null; // read by now
  state.current = fp;
  sessionStorage.setItem(OPEN_KEY, fp); // a reload of this tab comes back to this chat
  if (switching) restoreDraft(fp);
  if (state.group) closeGroup();
  show($("chat-empty"), false);
  show($("chat-view"), true);
  $("app").classList.add("show-chat");
  renderHeader();
  renderPeers();
  const c = convo(fp);
  if (!c.loaded) await loadOlder(fp, true);
  if (switching && peer.unread) c.firstUnread = firstUnreadKey(c, peer.unread);
  renderMessages({ stick: "bottom" });
  const divider = $("message-list").querySelector(".unread-divider");
  if (switching && divider) divider.scrollIntoView({ block: "start" }); // the first new one
  if (focusKey) await reveal(fp, focusKey);
  if (nearBottom()) seen(); // all of it on screen: read
  else renderJump(); // more below: read as the user scrolls down to them
  if (window.matchMedia("(min-width: 721px)").matches) $("input").focus();
}

// The key of the first of the last ``n`` incoming messages: where "New messages" goes.
function firstUnreadKey(c, n) {
  let left = n;
  for (let i = c.list.length - 1; i >= 0; i--) {
    if (c.list[i].direction === "in" && --left === 0) return keyOf(c.list[i]);
  }
  return null;
}

function closeChat() {
  $("app").classList.remove("show-chat");
}

// The open chat's contact is gone (removed): back to the empty view.
export function leaveChat() {
  stopTyping();
  state.current = null;
  sessionStorage.removeItem(OPEN_KEY);
  closeChat();
  show($("chat-view"), false);
  show($("chat-empty"), true);
}

async function markRead(fp) {
  const peer = state.peers.get(fp);
  if (peer) peer.unread = 0;
  renderPeers();
  try {
    await api("POST", `/api/peers/${fp}/read`, {});
  } catch {
    // The next peers load shows the server's count; nothing else to do.
  }
}

export async function loadOlder(fp, first) {
  const c = convo(fp);
  if (c.loading || (!first && !c.more)) return;
  c.loading = true;
  if (!first) show($("older"), true);
  const oldest = c.list.find((m) => m.rowid);
  const query = !first && oldest ? `?limit=${PAGE}&before=${oldest.rowid}` : `?limit=${PAGE}`;
  try {
    const data = await api("GET", `/api/peers/${fp}/messages${query}`);
    if (first) {
      c.list = [];
      c.byKey = new Map();
      c.system = Array.isArray(data.key_changes) ? data.key_changes : [];
    }
    const box = $("messages");
    const fromBottom = box.scrollHeight - box.scrollTop;
    for (const m of data.messages.slice().reverse()) addToConvo(c, m, true);
    for (const m of c.buffer.splice(0)) addToConvo(c, m, false);
    c.more = data.more;
    c.loaded = true;
    if (state.current === fp) {
      renderMessages({ stick: first ? "bottom" : null });
      if (!first) box.scrollTop = box.scrollHeight - fromBottom;
    }
  } catch (err) {
    toast(err.message, { error: true });
  } finally {
    c.loading = false;
    show($("older"), false);
  }
}

// Scroll to the message keyed key, loading older pages until it is there.
async function reveal(fp, key) {
  const c = convo(fp);
  for (let i = 0; i < 20 && !c.byKey.has(key) && c.more; i++) await loadOlder(fp, false);
  const node = $("message-list").querySelector(`[data-key="${CSS.escape(key)}"]`);
  if (node) {
    node.scrollIntoView({ block: "center" });
    node.classList.add("flash");
  }
}

// New messages are read once the user sees them: at the bottom of a visible chat.
function seen() {
  const peer = state.peers.get(state.current);
  show($("jump-new"), false);
  if (peer && peer.unread && document.visibilityState === "visible") markRead(peer.fingerprint);
}

function renderJump() {
  const peer = state.peers.get(state.current);
  const n = peer ? peer.unread || 0 : 0;
  $("jump-new").textContent = `${n} new message${n === 1 ? "" : "s"} ↓`;
  show($("jump-new"), n > 0);
}

// To the first unread message (its divider), or the bottom when there is none.
function jumpToNew() {
  const divider = $("message-list").querySelector(".unread-divider");
  const box = $("messages");
  if (divider) divider.scrollIntoView({ block: "start" });
  if (!divider || nearBottom()) box.scrollTop = box.scrollHeight;
  seen();
}

function nearBottom() {
  const box = $("messages");
  return box.scrollHeight - box.scrollTop - box.clientHeight < 120;
}

function renderMessages({ stick }) {
  const c = convo(state.current);
  const list = $("message-list");
  const box = $("messages");
  const keep = box.scrollTop;
  list.replaceChildren();
  let lastDay = null;
  let lastDir = null;
  // Audit lines (a contact's key rotations) sit among the messages by time.
  const system = (c.system || []).slice().sort((a, b) => a.at_ms - b.at_ms);
  const auditLine = (s) => list.appendChild(el("li", "day system", visible(String(s.text))));
  for (const m of c.list) {
    while (system.length && validTime(timeOf(m)) && system[0].at_ms <= timeOf(m)) {
      auditLine(system.shift());
      lastDir = null;
    }
    try {
      if (m.timer_s !== null && m.timer_s !== undefined) {
        const line = el("li", "day system timer-line", timerLine(m)); // a TIMER: no bubble
        line.dataset.key = keyOf(m);
        list.appendChild(line);
        lastDir = null;
        continue;
      }
      const day = startOfDay(timeOf(m));
      if (day !== lastDay) {
        list.appendChild(el("li", "day", dayLabel(timeOf(m))));
        lastDay = day;
        lastDir = null;
      }
      if (c.firstUnread && keyOf(m) === c.firstUnread) {
        list.appendChild(el("li", "unread-divider", "New messages"));
        lastDir = null;
      }
      list.appendChild(bubble(m, m.direction !== lastDir));
      lastDir = m.direction;
    } catch {
      list.appendChild(el("li", "msg broken", "A message here could not be shown."));
      lastDir = null;
    }
  }
  for (const s of system) auditLine(s);
  if (stick === "bottom") box.scrollTop = box.scrollHeight;
  else box.scrollTop = keep;
  renderWaiting();
}

// A contact handed its key over (signed by the previous one): the same person under a
// new fingerprint. Its conversation moves to the new key and shows the audit line.
export function onKeyChanged(event) {
  const moved = state.convos.get(event.old);
  if (moved) {
    state.convos.delete(event.old);
    state.convos.set(event.peer, moved);
  }
  const c = convo(event.peer);
  c.system = (c.system || []).concat([event.change]);
  if (state.current === event.old) state.current = event.peer;
  loadPeers()
    .then(() => {
      if (state.current === event.peer) {
        renderHeader();
        renderMessages({ stick: nearBottom() ? "bottom" : null });
      }
    })
    .catch((err) => toast(err.message, { error: true }));
}

function bubble(m, first) {
  const li = el("li", `msg ${m.direction}${first ? " first" : ""}`);
  li.dataset.key = keyOf(m);
  if (m.ref) li.dataset.ref = m.ref;
  if (m.direction === "out") li.dataset.state = m.state;
  const b = el("div", "bubble");
  b.appendChild(el("span", "sr-only", spoken(m))); // who, when, and its fate, for screen readers
  if (m.reply_to) b.appendChild(quoteOf(m));
  if (m.file) b.appendChild(fileCard(m));
  else if (m.body === null) b.appendChild(el("span", "body", "(deleted)"));
  else {
    const body = el("span", "body");
    body.appendChild(linked(m.body));
    b.appendChild(body);
  }
  const meta = el("span", "meta");
  if (!m.file && typeof m.body === "string") meta.appendChild(actionButton(m));
  if (m.direction === "out" && (m.broadcast || state.broadcasts.has(m.id))) {
    const mark = el("span", "broadcast-mark", "broadcast");
    mark.title = "Sent to every contact in one broadcast";
    meta.appendChild(mark);
  }
  if (m.legacy) meta.appendChild(el("span", "legacy-mark", "legacy v1"));
  if (m.expires_ms) {
    const mark = el("span", "disappear-mark", "⏱");
    mark.title = `Disappears ${fullFormat.format(new Date(m.expires_ms))}`;
    meta.appendChild(mark);
  }
  meta.appendChild(timeStamp(m));
  if (m.direction === "out" && !m.file) {
    const t = tick(shownState(m));
    if (m.ref) t.title += ` · ${m.ref}`; // the short reference the REPL and the CLI show
    meta.appendChild(t);
  }
  b.appendChild(meta);
  if (m.direction === "out" && m.state === "failed") {
    const fail = el("div", "fail");
    fail.appendChild(el("span", "", `Not delivered${m.reason ? `: ${m.reason}` : ""}`));
    const retry = el("button", "retry", "Retry");
    retry.type = "button";
    retry.addEventListener("click", () => retryPeer(m.peer));
    fail.appendChild(retry);
    b.appendChild(fail);
  }
  li.appendChild(b);
  return li;
}

// The message a reply quotes, from this page's own copy of it (the wire carries only
// its id); clicking the quote shows it in the conversation.
function quoteOf(m) {
  const c = convo(m.peer);
  const quoted = c.byKey.get(`in:${m.reply_to}`) || c.byKey.get(`out:${m.reply_to}`);
  const box = el("div", "quote");
  if (!quoted || typeof quoted.body !== "string") {
    box.textContent = "↪ a message not shown here";
    return box;
  }
  const peer = state.peers.get(m.peer);
  const who = quoted.direction === "out" ? "You" : peer ? label(peer) : "Them";
  box.append(el("span", "quote-who", who), el("span", "quote-body", visible(quoted.body, false).slice(0, 160)));
  box.tabIndex = 0;
  box.setAttribute("role", "button");
  box.title = "Show the message this answers";
  const show_ = () => reveal(m.peer, keyOf(quoted));
  box.addEventListener("click", show_);
  box.addEventListener("keydown", (event) => {
    if (event.key === "Enter") show_();
  });
  return box;
}

function spoken(m) {
  const peer = state.peers.get(m.peer);
  const who = m.direction === "in" ? (peer ? label(peer) : "them") : "you";
  const when = validTime(m.created_ms) !== null ? format(fullFormat, m.created_ms) : "at an unknown time";
  const fate = m.direction === "out" && !m.file ? `, ${shownState(m)}` : "";
  return `${who}, ${when}${fate}: `;
}

// Only a new message is read out (the list itself is not a live region).
function announce(m) {
  const peer = state.peers.get(m.peer);
  $("announcer").textContent = `${peer ? label(peer) : "A contact"}: ${visible(String(m.body ?? "a file"), false)}`;
}

function timeStamp(m) {
  if (validTime(m.created_ms) !== null) {
    const span = el("span", "time", clock.format(m.created_ms));
    span.title = format(fullFormat, m.created_ms); // the full date and time on hover
    return span;
  }
  const span = el("span", "time unknown", UNKNOWN_TIME);
  span.title = `The sender gave no believable time. Received ${format(fullFormat, m.received_ms)}.`;
  return span;
}

async function retryPeer(fp) {
  try {
    const data = await api("POST", `/api/peers/${fp}/retry`, {});
    const peer = state.peers.get(fp);
    if (peer && data.tried) peer.retry_at = null; // a try is under way
    renderWaiting();
    if (data.retried.length) toast(`Retrying ${data.retried.length} message(s)`);
    else toast(data.tried ? `Trying ${peer ? label(peer) : "the peer"} now` : "Nothing to retry");
  } catch (err) {
    toast(err.message, { error: true });
  }
}

// The line above the composer: messages waiting for the open chat's offline peer.
export function renderWaiting() {
  const peer = state.peers.get(state.current);
  const c = state.current ? convo(state.current) : null;
  const waiting = c ? c.list.filter((m) => m.direction === "out" && m.state === "queued").length : 0;
  const bar = $("waiting");
  if (!peer || peer.online || !waiting) {
    show(bar, false);
    return;
  }
  let text = `${waiting} message${waiting === 1 ? "" : "s"} waiting for ${label(peer)}`;
  if (typeof peer.retry_at === "number") {
    const seconds = Math.max(1, Math.ceil((peer.retry_at - Date.now()) / 1000));
    text += ` · retrying in ${seconds} s`;
  } else {
    text += " · trying now";
  }
  $("waiting-text").textContent = text;
  show(bar, true);
}

export function onMessage(m, incoming) {
  const c = convo(m.peer);
  let added = true;
  if (c.loading) c.buffer.push(m);
  else if (c.loaded) added = addToConvo(c, m, false);
  const peer = state.peers.get(m.peer);
  if (peer && added) {
    peer.last = m;
    const open = state.current === m.peer && document.visibilityState === "visible";
    const reading = open && nearBottom();
    if (incoming) {
      if (state.current === m.peer) announce(m);
      if (reading) markRead(m.peer);
      else if (state.current === m.peer) {
        // The chat is open but scrolled up (or the tab hidden): unread until seen.
        peer.unread = (peer.unread || 0) + 1;
        c.firstUnread = c.firstUnread || keyOf(m);
      } else {
        peer.unread = (peer.unread || 0) + 1;
        toast(m.body, { who: label(peer), onClick: () => openChat(m.peer) });
      }
      if (!open) notifyMessage(label(peer), m.peer, m.body, () => openChat(m.peer));
      clearTyping(m.peer);
    }
  }
  renderPeers();
  if (state.current === m.peer) {
    renderMessages({ stick: !incoming || nearBottom() ? "bottom" : null });
    renderJump();
  }
}

// A disappearing-messages timer was set (here, by the contact, or in another face): its
// system line joins the chat, and the contact's timer in force is what the event says.
export function onTimer(event) {
  const m = event.message;
  const peer = state.peers.get(m.peer);
  if (peer) peer.disappear_s = event.in_force;
  const c = convo(m.peer);
  if (c.loading) c.buffer.push(m);
  else if (c.loaded) addToConvo(c, m, false);
  if (state.current === m.peer) renderMessages({ stick: nearBottom() ? "bottom" : null });
}

export function onDelivery(event) {
  const c = convo(event.peer);
  const m = c.byKey.get(`out:${event.id}`);
  const known = c.states.get(event.id);
  if (!known || rank(event.state) >= rank(known.state) || event.state === "queued") {
    c.states.set(event.id, { state: event.state, reason: event.reason });
  }
  if (m) {
    m.state = event.state;
    m.reason = event.reason;
    if (!m.rowid) m.rowid = event.rowid;
  }
  const peer = state.peers.get(event.peer);
  if (peer && peer.last && peer.last.direction === "out" && peer.last.id === event.id) {
    peer.last.state = event.state;
    renderPeers();
  }
  if (state.current === event.peer && m) renderMessages({});
  if (event.state === "failed" && state.current !== event.peer && peer) {
    toast(`Not delivered to ${label(peer)}: ${event.reason || "failed"}`, { error: true });
  }
}

// Draw the open chat again (something about its messages changed elsewhere).
export function redrawChat() {
  if (state.current) renderMessages({});
}

// A contact read our messages up to the one with id ``upto`` (a read receipt).
export function onReceipt(event) {
  const c = state.convos.get(event.peer);
  if (!c || typeof event.upto !== "string") return;
  for (const m of c.list) {
    if (m.direction === "out" && !m.read_ms && m.id <= event.upto) m.read_ms = event.read_ms;
  }
  const peer = state.peers.get(event.peer);
  if (peer && peer.last && peer.last.direction === "out" && peer.last.id <= event.upto) peer.last.read_ms = event.read_ms;
  renderPeers();
  if (state.current === event.peer) renderMessages({});
}

// How far a transfer has come: an answer to this page's own request (accept, upload)
// can arrive after the event that told a later step, and must not take the card back.
const FILE_STEP = { offered: 0, accepted: 1, transferring: 2, delivered: 3, failed: 3, cancelled: 3 };

function staleFile(old, f) {
  return Boolean(old) && (FILE_STEP[f.state] ?? 0) < (FILE_STEP[old.state] ?? 0);
}

// A file transfer changed (FileChanged), or this page just offered one: its card in
// the conversation is added or updated.
export function onFile(f) {
  if (!f || typeof f !== "object") return;
  const c = convo(f.peer);
  const note = {
    key: f.key,
    name: f.name,
    size: f.size,
    state: f.state,
    reason: f.reason,
    percent: f.percent,
    done_bytes: f.done_bytes,
    waiting: f.waiting,
  };
  const m = c.byKey.get(`${f.direction}:${f.id}`);
  if (m && staleFile(m.file, f)) return;
  if (m) {
    m.file = note;
    if (!m.rowid) m.rowid = f.rowid;
  } else {
    const made = {
      peer: f.peer,
      id: f.id,
      ref: f.ref,
      rowid: f.rowid,
      direction: f.direction,
      body: f.name,
      created_ms: f.created_ms,
      received_ms: Date.now(),
      state: f.direction === "out" ? "sent" : "received",
      reason: null,
      legacy: false,
      file: note,
    };
    if (c.loading) c.buffer.push(made);
    else if (c.loaded) addToConvo(c, made, false);
  }
  if (state.current === f.peer) renderMessages({ stick: nearBottom() ? "bottom" : null });
}
