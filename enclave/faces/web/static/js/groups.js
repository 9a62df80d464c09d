// Groups: the "Groups" list in the sidebar, the open group's posts, members and composer.
//
// Rules:
// - A group is named by its id (hex); its name, its members' names and its posts are
//   peers' text: shown through visible(), as text only.
// - Posts show in display order, (lamport, sender): every member sees the same order,
//   and a post that arrives late takes its place among the others (sortPosts).
// - Our own post is one line with a tick per member: "✓ 2/3" delivered to 2 of the 3
//   others, its title naming who has it.
// - A member's state of our post that arrives before the post (its send's answer and
//   the history fetch race the socket) is kept (t.states) and applied when the post
//   comes, if it is further along (rank), as state.js does for a chat.
// - A membership change ("bob added carol") is a system line. The history brings every
//   change of the log; each sits after the posts written before its epoch, so a reload
//   shows it where it was. One heard live sits after the posts shown then.
// - Opening a group closes the open chat, and opening a chat closes the group
//   (conversation.js calls closeGroup).

import { api } from "./api.js";
import { durationText } from "./disappear.js";
import { $, el, show, tint } from "./dom.js";
import { renderPeers } from "./peers.js";
import { rank, state } from "./state.js";
import { visible } from "./text.js";
import { UNKNOWN_TIME, clock } from "./time.js";
import { toast } from "./toasts.js";
import { stopTyping } from "./typing.js";
import { notifyMessage } from "./notify.js";

const LIMIT = 200;
const HAVE = { delivered: true };

export function wireGroups() {
  const list = $("group-list");
  const fromRow = (event) => {
    const row = event.target.closest("li[data-group]");
    if (row) openGroup(row.dataset.group);
  };
  list.addEventListener("click", fromRow);
  list.addEventListener("keydown", (event) => {
    if (event.key === "Enter") fromRow(event);
  });
  $("btn-group-back").addEventListener("click", () => $("app").classList.remove("show-chat"));
  $("group-composer").addEventListener("submit", onPost);
  $("group-input").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      $("group-composer").requestSubmit();
    }
  });
}

export async function loadGroups() {
  const data = await api("GET", "/api/groups");
  const groups = data.groups.filter((g) => g && typeof g === "object" && typeof g.id === "string");
  state.groups = new Map(groups.map((g) => [g.id, g]));
  renderGroups();
  if (state.group) {
    if (state.groups.has(state.group)) renderGroupHeader();
    else closeGroup();
  }
}

function talk(gid) {
  let t = state.groupTalk.get(gid);
  if (!t) {
    t = { posts: new Map(), system: [], states: new Map(), loaded: false };
    state.groupTalk.set(gid, t);
  }
  return t;
}

export function groupName(g) {
  return visible(g.name, false) || g.id.slice(0, 8);
}

// A member's name as this page shows it: the group's, a contact's, or its fingerprint's start.
export function memberName(g, fp) {
  const m = g && g.members.find((x) => x.fingerprint === fp);
  if (m) return m.you ? "you" : visible(m.name, false) || fp.slice(0, 8);
  const peer = state.peers.get(fp);
  if (fp === (state.me && state.me.fingerprint)) return "you";
  return (peer && visible(peer.name, false)) || fp.slice(0, 8);
}

export function renderGroups() {
  const list = $("group-list");
  list.replaceChildren();
  const q = state.query.trim().toLowerCase();
  for (const g of state.groups.values()) {
    try {
      if (q && !String(g.name).toLowerCase().includes(q)) continue;
      list.appendChild(groupRow(g));
    } catch {
      list.appendChild(el("li", "peer broken", "A group here could not be shown."));
    }
  }
}

function groupRow(g) {
  const li = el("li", `peer group-row${state.group === g.id ? " active" : ""}`);
  li.dataset.group = g.id;
  li.tabIndex = 0;
  li.setAttribute("role", "option");
  li.setAttribute("aria-selected", String(state.group === g.id));
  li.appendChild(tint(el("div", "avatar", "#"), g.id));
  const main = el("div", "peer-main");
  const top = el("div", "peer-top");
  top.appendChild(el("span", "peer-name", groupName(g)));
  if (g.state !== "member") top.appendChild(el("span", "tag", g.state));
  const bottom = el("div", "peer-bottom");
  bottom.appendChild(el("span", "peer-preview", `${g.members.length} members`));
  main.append(top, bottom);
  li.appendChild(main);
  return li;
}

export async function openGroup(gid) {
  if (!state.groups.has(gid)) return;
  if (state.current) stopTyping();
  state.current = null;
  state.group = gid;
  show($("chat-empty"), false);
  show($("chat-view"), false);
  show($("group-view"), true);
  $("app").classList.add("show-chat");
  renderPeers();
  renderGroups();
  renderGroupHeader();
  await loadPosts(gid);
  if (window.matchMedia("(min-width: 721px)").matches) $("group-input").focus();
}

// Back to the empty view (the group is gone), or out of the way of a chat.
export function closeGroup() {
  state.group = null;
  show($("group-view"), false);
  renderGroups();
}

export async function loadPosts(gid) {
  try {
    const data = await api("GET", `/api/groups/${gid}/messages?limit=${LIMIT}`);
    const t = talk(gid);
    t.posts = new Map(data.posts.filter((p) => p && typeof p.id === "string").map((p) => [p.id, p]));
    for (const p of t.posts.values()) if (p.direction === "out") p.states = further(p.states, t.states.get(p.id));
    const g = state.groups.get(gid);
    t.system = (Array.isArray(data.changes) ? data.changes : []).map((c) => systemLine(g, t, c));
    t.loaded = true;
    if (state.group === gid) renderPosts(true);
  } catch (err) {
    toast(err.message, { error: true });
  }
}

export function renderGroupHeader() {
  const g = state.groups.get(state.group);
  if (!g) return;
  $("group-name").textContent = groupName(g);
  $("group-name").title = g.id;
  const others = g.members.filter((m) => !m.you).length;
  $("group-status").textContent = g.state === "member" ? `${others + 1} members` : `you ${g.state === "left" ? "left" : "were removed"}`;
  const list = $("group-members");
  list.replaceChildren();
  for (const m of g.members) {
    try {
      const li = el("li", `member${m.admin ? " admin" : ""}`);
      li.dataset.fp = m.fingerprint;
      li.appendChild(el("span", "member-name", m.you ? "you" : visible(m.name, false) || m.fingerprint.slice(0, 8)));
      li.appendChild(el("span", "member-role", m.admin ? "admin" : "member"));
      if (!m.contact && !m.you) li.appendChild(el("span", "member-note", `in ${groupName(g)}, not a contact`));
      li.title = m.grouped;
      list.appendChild(li);
    } catch {
      list.appendChild(el("li", "member broken", "A member here could not be shown."));
    }
  }
  const member = g.state === "member";
  $("group-input").disabled = !member;
  $("btn-group-send").disabled = !member;
}

// Display order: (lamport, sender); a system line sits where the page heard it.
function sortPosts(t) {
  const lines = [...t.posts.values()].map((p) => ({ post: p, key: [p.lamport, p.sender, 0] }));
  for (const s of t.system) lines.push({ system: s, key: s.key });
  lines.sort((a, b) => a.key[0] - b.key[0] || (a.key[1] < b.key[1] ? -1 : a.key[1] > b.key[1] ? 1 : a.key[2] - b.key[2]));
  return lines;
}

function renderPosts(stick) {
  const gid = state.group;
  const g = state.groups.get(gid);
  const t = talk(gid);
  const box = $("group-messages");
  const bottom = stick || box.scrollHeight - box.scrollTop - box.clientHeight < 120;
  const list = $("group-post-list");
  list.replaceChildren();
  for (const line of sortPosts(t)) {
    try {
      if (line.system) list.appendChild(el("li", "day system", line.system.text));
      else list.appendChild(postRow(g, line.post));
    } catch {
      list.appendChild(el("li", "msg broken", "A post here could not be shown."));
    }
  }
  if (bottom) box.scrollTop = box.scrollHeight;
}

function postRow(g, p) {
  const li = el("li", `msg ${p.direction === "out" ? "out" : "in"} first`);
  li.dataset.id = p.id;
  const b = el("div", "bubble");
  if (p.direction !== "out") b.appendChild(el("div", "sender", memberName(g, p.sender)));
  b.appendChild(el("span", "body", visible(p.body)));
  const meta = el("span", "meta");
  meta.appendChild(el("span", "time", typeof p.created_ms === "number" ? clock.format(p.created_ms) : UNKNOWN_TIME));
  if (p.direction === "out") meta.appendChild(ticks(g, p.states || {}));
  b.appendChild(meta);
  li.appendChild(b);
  return li;
}

// "✓ 2/3": how many of the other members have our post; the title names them.
function ticks(g, states) {
  const fps = Object.keys(states);
  const have = fps.filter((fp) => HAVE[states[fp]]);
  const failed = fps.filter((fp) => states[fp] === "failed");
  const span = el("span", `group-ticks${have.length === fps.length ? " all" : ""}${failed.length ? " failed" : ""}`, `✓ ${have.length}/${fps.length}`);
  const names = (list) => list.map((fp) => memberName(g, fp)).join(", ") || "nobody yet";
  let title = `Delivered to: ${names(have)}`;
  if (failed.length) title += ` · not delivered: ${names(failed)}`;
  span.title = title;
  return span;
}

async function onPost(event) {
  event.preventDefault();
  const input = $("group-input");
  const text = input.value;
  const gid = state.group;
  if (!text.trim() || !gid) return;
  input.value = "";
  try {
    await api("POST", `/api/groups/${gid}/send`, { text });
    await loadPosts(gid); // its place (Lamport time) and its rows come from the node
  } catch (err) {
    input.value = text;
    toast(err.message, { error: true });
  }
  input.focus();
}

// --- events ------------------------------------------------------------------------------

export function onGroupPost(post) {
  if (!post || typeof post.group !== "string") return;
  const t = talk(post.group);
  if (t.loaded) t.posts.set(post.id, post);
  const g = state.groups.get(post.group);
  const who = `${memberName(g, post.sender)} in ${g ? groupName(g) : "a group"}`;
  const mine = state.me && post.sender === state.me.fingerprint;
  if (state.group === post.group) renderPosts(false);
  else toast(post.body, { who, onClick: () => openGroup(post.group) });
  if (!mine && (state.group !== post.group || document.visibilityState !== "visible")) {
    notifyMessage(who, post.sender, post.body, () => openGroup(post.group));
  }
}

// Each member's state: the one further along of what the post says and what was heard.
function further(states, heard) {
  const out = { ...(states || {}) };
  for (const [fp, s] of Object.entries(heard || {})) if (!(fp in out) || rank(s) >= rank(out[fp])) out[fp] = s;
  return out;
}

export function onGroupDelivery(event) {
  const t = talk(event.group);
  const heard = t.states.get(event.id) || {};
  heard[event.member] = event.state;
  t.states.set(event.id, heard);
  const p = t.posts.get(event.id);
  if (!p) {
    // Our post from another page, the REPL or the command line: the node places it.
    if (t.loaded && event.state === "queued") loadPosts(event.group);
    return;
  }
  p.states = further(p.states, { [event.member]: event.state });
  if (state.group === event.group) renderPosts(false);
}

const DID = { create: "created", add: "added", remove: "removed", leave: "left", promote: "made admin", rename: "renamed the group to" };

// A change's system line, placed after the posts written before its epoch.
function systemLine(g, t, change) {
  const who = memberName(g, change.author);
  const whom = (change.subjects || []).map((fp) => memberName(g, fp)).join(", ");
  let text;
  if (change.kind === "create") text = `${who} created ${visible(change.detail || change.group_name, false)}`;
  else if (change.kind === "rename") text = `${who} renamed the group to ${visible(change.detail, false)}`;
  else if (change.kind === "leave") text = `${who} left`;
  else if (change.kind === "timer") {
    text = change.seconds ? `${who} set disappearing messages to ${durationText(change.seconds)}` : `${who} turned disappearing messages off`;
  }
  else text = `${who} ${DID[change.kind] || change.kind} ${whom}`.trim();
  const before = [...t.posts.values()].filter((p) => !(p.epoch >= change.epoch));
  const last = Math.max(0, ...before.map((p) => p.lamport));
  return { text, key: [last, "\uffff", change.epoch] };
}

// Disappearing posts erased here (every copy of ours, a member's one): off the page.
export function onGroupExpired(event) {
  if (!event || typeof event.group !== "string" || !Array.isArray(event.ids)) return;
  const t = talk(event.group);
  for (const id of event.ids) t.posts.delete(id);
  if (state.group === event.group) renderPosts(false);
}

export async function onGroupChanged(change) {
  if (!change || typeof change.group !== "string") return;
  const g = state.groups.get(change.group);
  const t = talk(change.group);
  t.system.push(systemLine(g, t, change));
  try {
    await loadGroups();
  } catch (err) {
    toast(err.message, { error: true });
  }
  if (state.group === change.group) renderPosts(false);
}
