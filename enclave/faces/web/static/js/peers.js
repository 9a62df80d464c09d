// The peers list in the sidebar, and the open chat's header that shows one peer.
//
// Rules:
// - The list is drawn whole from state.peers on every change (a few hundred rows at
//   most), sorted by the time of each peer's last message, then by name.
// - One contact that cannot be shown becomes one line saying so; the rest still render.
// - Rows carry data-fp; opening a chat from a row is wired by conversation.js.
// - Presence: a peer is "online", else "last seen 5 min ago" (under its name in the
//   open chat's header, and in its row when it has no message yet).

import { timerLine } from "./disappear.js";
import { api } from "./api.js";
import { $, el, show, tint } from "./dom.js";
import { icon } from "./icons.js";
import { shownState, state } from "./state.js";
import { label, visible } from "./text.js";
import { ago, shortTime, timeOf } from "./time.js";
import { showBadge } from "./notify.js";

const TICK_WORDS = { queued: "Queued", sent: "Sent", delivered: "Delivered", read: "Read", failed: "Not delivered" };

export async function loadPeers() {
  const data = await api("GET", "/api/peers");
  const before = state.peers;
  const peers = data.peers.filter((p) => p && typeof p === "object" && typeof p.fingerprint === "string");
  state.peers = new Map(peers.map((p) => [p.fingerprint, p]));
  const now = Date.now();
  for (const p of peers) p.retry_at = typeof p.retry_in === "number" ? now + p.retry_in * 1000 : null;
  for (const [fp, peer] of state.peers) {
    const old = before.get(fp);
    if (old && old.last && peer.last && old.last.id === peer.last.id) peer.last.state = peer.last.state || old.last.state;
  }
  renderPeers();
  if (state.current) renderHeader();
}

function avatar(peer, node) {
  const a = node || el("div");
  a.className = `avatar ${peer.online ? "dot-on" : "dot-off"}`;
  tint(a, peer.fingerprint);
  a.textContent = Array.from(label(peer))[0] || "";
  a.title = presence(peer);
  return a;
}

// "online", "last seen 5 min ago", or "offline" (never seen).
export function presence(peer) {
  if (peer.online) return "online";
  const seen = ago(peer.last_seen_ms);
  return seen ? `last seen ${seen}` : "offline";
}

function badges(peer) {
  const out = [];
  if (peer.verified) {
    const v = el("span", "badge-verified");
    v.title = "Verified: fingerprints compared";
    v.appendChild(icon("verified"));
    out.push(v);
  }
  if (peer.blocked) {
    const t = el("span", "tag tag-blocked", "blocked");
    t.title = "Blocked: its connections and messages are refused";
    out.push(t);
  }
  if (peer.revoked) {
    const t = el("span", "tag tag-blocked", "revoked");
    t.title = "Its owner revoked this key: messages to and from it are refused; pair again if they have a new one";
    out.push(t);
  }
  if (peer.keep_history === false) {
    const t = el("span", "tag tag-nohistory", "history off");
    t.title = "History is off: messages are shown, then kept nowhere on this device";
    out.push(t);
  }
  if (peer.legacy) {
    const t = el("span", "tag tag-legacy", "legacy v1");
    t.title = "Original client: not forward-secret";
    out.push(t);
  }
  return out;
}

export function tick(stateName) {
  const span = el("span", `tick ${stateName}`);
  span.title = TICK_WORDS[stateName] || stateName;
  span.dataset.state = stateName;
  span.appendChild(icon(stateName === "read" ? "delivered" : stateName));
  return span;
}

function sortedPeers() {
  const peers = [...state.peers.values()];
  peers.sort((a, b) => {
    const ta = a.last ? timeOf(a.last) : 0;
    const tb = b.last ? timeOf(b.last) : 0;
    if (ta !== tb) return tb - ta;
    return label(a).localeCompare(label(b));
  });
  return peers;
}

function matches(peer, q) {
  if (!q) return true;
  const hay = [peer.name || "", peer.fingerprint, peer.grouped, peer.address || ""].join(" ").toLowerCase();
  return hay.includes(q.toLowerCase());
}

export function renderPeers() {
  const list = $("peer-list");
  list.replaceChildren();
  const q = state.query.trim();
  for (const peer of sortedPeers()) {
    try {
      if (!matches(peer, q)) continue;
      list.appendChild(peerRow(peer));
    } catch {
      list.appendChild(el("li", "peer broken", "A contact here could not be shown."));
    }
  }
  show($("no-peers"), state.peers.size === 0);
  showUnreadTotal();
}

// The unread total of every chat, in the tab's title: "(3) Enclave".
function showUnreadTotal() {
  let total = 0;
  for (const p of state.peers.values()) total += Number(p.unread) || 0;
  document.title = total ? `(${total}) Enclave` : "Enclave";
  showBadge(total);
}

// What a screen reader hears of a row after its visible text: online, unread...
function rowStatus(peer) {
  const parts = [peer.online ? "online" : "offline"];
  if (peer.unread) parts.push(`${peer.unread} unread`);
  if (peer.verified) parts.push("verified");
  if (peer.blocked) parts.push("blocked");
  if (peer.revoked) parts.push("key revoked");
  return parts.join(", ");
}

function peerRow(peer) {
  const li = el("li", `peer${state.current === peer.fingerprint ? " active" : ""}${peer.blocked ? " peer-blocked" : ""}`);
  li.dataset.fp = peer.fingerprint;
  li.tabIndex = 0;
  li.setAttribute("role", "option");
  li.setAttribute("aria-selected", String(state.current === peer.fingerprint));
  li.appendChild(avatar(peer));
  const main = el("div", "peer-main");
  const top = el("div", "peer-top");
  top.appendChild(el("span", "peer-name", label(peer)));
  top.appendChild(el("span", "sr-only", `, ${rowStatus(peer)}, `));
  badges(peer).forEach((b) => top.appendChild(b));
  if (peer.last) top.appendChild(el("span", `peer-time${peer.unread ? " fresh" : ""}`, shortTime(timeOf(peer.last))));
  const bottom = el("div", "peer-bottom");
  const preview = el("span", "peer-preview");
  if (state.typing.has(peer.fingerprint)) {
    preview.classList.add("typing");
    preview.textContent = "typing…";
  } else if (peer.last) {
    if (peer.last.direction === "out") preview.appendChild(tick(shownState(peer.last)));
    const text = peer.last.timer_s !== null && peer.last.timer_s !== undefined ? timerLine(peer.last) : String(peer.last.body || "").split("\n")[0];
    preview.appendChild(el("span", "text", visible(text, false)));
  } else {
    preview.textContent = peer.online || peer.last_seen_ms ? presence(peer) : visible(peer.address, false);
  }
  bottom.appendChild(preview);
  if (peer.unread) bottom.appendChild(el("span", "unread", String(peer.unread)));
  main.append(top, bottom);
  li.appendChild(main);
  return li;
}

export function renderHeader() {
  const peer = state.peers.get(state.current);
  if (!peer) return;
  avatar(peer, $("chat-avatar"));
  $("chat-name").textContent = label(peer);
  $("chat-name").title = peer.grouped;
  $("chat-badges").replaceChildren(...badges(peer));
  const status = $("chat-status");
  const typing = state.typing.has(peer.fingerprint);
  status.classList.toggle("typing", typing);
  const address = visible(peer.address, false);
  status.textContent = typing ? "typing…" : `${presence(peer)} · ${address || "no address"}`;
  show($("legacy-note"), peer.legacy);
  show($("history-note"), peer.keep_history === false);
  $("btn-verify").title = peer.verified ? "Verified: see fingerprints" : "Verify fingerprints";
}

// A peer changed: redraw the list, and the header if its chat is open.
export function renderPeer(fp) {
  renderPeers();
  if (state.current === fp) renderHeader();
}
