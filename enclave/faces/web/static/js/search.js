// Search: the box above the peers list filters peers as the user types and, from two
// characters on, finds messages too (200 ms after the last key).
//
// Rules:
// - An answer for a query the user has since changed is dropped.
// - A result shows a snippet around the first match, marked with <mark> built as
//   elements (the text stays text); clicking it opens its chat at that message.

import { api } from "./api.js";
import { openChat } from "./conversation.js";
import { $, el, show } from "./dom.js";
import { renderGroups } from "./groups.js";
import { renderPeers } from "./peers.js";
import { keyOf, state } from "./state.js";
import { label, visible } from "./text.js";
import { shortTime, timeOf } from "./time.js";
import { toast } from "./toasts.js";

export function wireSearch() {
  $("search").addEventListener("input", onSearch);
}

let searchTimer = null;

function onSearch() {
  state.query = $("search").value;
  renderPeers();
  renderGroups();
  clearTimeout(searchTimer);
  const q = state.query.trim();
  if (q.length < 2) {
    show($("search-results"), false);
    return;
  }
  searchTimer = setTimeout(() => searchMessages(q), 200);
}

async function searchMessages(q) {
  try {
    const data = await api("GET", `/api/search?q=${encodeURIComponent(q)}`);
    if (state.query.trim() !== q) return;
    const list = $("result-list");
    list.replaceChildren();
    for (const m of data.messages) {
      try {
        list.appendChild(resultRow(m, q));
      } catch {
        list.appendChild(el("li", "result broken", "A message here could not be shown."));
      }
    }
    if (!data.messages.length) list.appendChild(el("li", "result none", `No messages contain “${visible(q, false)}”.`));
    show($("search-results"), true);
  } catch (err) {
    toast(err.message, { error: true });
  }
}

function resultRow(m, q) {
  const peer = state.peers.get(m.peer);
  const li = el("li", "result");
  const head = el("div", "result-head");
  head.append(el("span", "", `${m.direction === "out" ? "You → " : ""}${peer ? label(peer) : m.peer.slice(0, 8)}`), el("span", "", shortTime(timeOf(m))));
  const body = el("div", "result-body");
  const text = visible(String(m.body || "").replace(/\s+/g, " "), false);
  const at = text.toLowerCase().indexOf(q.toLowerCase());
  if (at >= 0) {
    const start = Math.max(0, at - 24);
    body.append((start ? "…" : "") + text.slice(start, at), el("mark", "", text.slice(at, at + q.length)), text.slice(at + q.length));
  } else body.textContent = text;
  li.append(head, body);
  li.addEventListener("click", () => openChat(m.peer, keyOf(m)));
  return li;
}
