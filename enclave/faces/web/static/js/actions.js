// A message's actions: a ⋯ button on each bubble (shown on hover and keyboard focus)
// opens a small menu: Reply, Copy, Delete for me.
//
// Rules:
// - Copy puts the message's text on the clipboard exactly as it arrived (the page
//   shows it with hidden characters made visible; the clipboard gets the text itself).
// - Delete for me is local (the contact keeps its copy): one POST; the server's
//   "message_deleted" event, sent to every page and after /delete in the REPL too,
//   takes it off the page. A message still on its way cannot go (the server says so).
// - One menu at a time; Escape or a click elsewhere closes it, and focus goes back to
//   the button that opened it.

import { api } from "./api.js";
import { $, el, show } from "./dom.js";
import { keyOf, state } from "./state.js";
import { startReply } from "./composer.js";
import { label } from "./text.js";
import { toast } from "./toasts.js";

let target = null; // the message the open menu is about
let opener = null;
let onDeleted = () => {};

export function wireActions(rerender) {
  const menu = $("msg-menu");
  $("msg-copy").addEventListener("click", copyMessage);
  $("msg-reply").addEventListener("click", replyTo);
  $("msg-delete").addEventListener("click", deleteMessage);
  menu.addEventListener("keydown", (event) => {
    if (event.key === "Escape") {
      event.stopPropagation();
      closeMenu();
    }
  });
  document.addEventListener("click", (event) => {
    if (!menu.hidden && !menu.contains(event.target) && event.target !== opener) closeMenu();
  });
  onDeleted = rerender;
}

// The ⋯ button of one bubble.
export function actionButton(m) {
  const b = el("button", "msg-more", "⋯");
  b.type = "button";
  b.title = "Message actions";
  b.setAttribute("aria-label", "Message actions");
  b.setAttribute("aria-haspopup", "menu");
  b.addEventListener("click", (event) => {
    event.stopPropagation();
    openMenu(m, b);
  });
  return b;
}

function openMenu(m, button) {
  const menu = $("msg-menu");
  target = m;
  opener = button;
  const place = button.getBoundingClientRect();
  menu.style.top = `${Math.min(place.bottom + 4, window.innerHeight - 110)}px`;
  menu.style.left = `${Math.max(8, Math.min(place.left - 120, window.innerWidth - 200))}px`;
  show($("msg-copy"), typeof m.body === "string" && !m.file);
  show($("msg-reply"), typeof m.body === "string" && !m.file && !m.legacy);
  show($("msg-delete"), !m.file);
  show(menu, true);
  button.setAttribute("aria-expanded", "true");
  const first = [...menu.querySelectorAll("button")].find((x) => !x.hidden);
  if (first) first.focus();
}

function closeMenu() {
  show($("msg-menu"), false);
  if (opener) {
    opener.setAttribute("aria-expanded", "false");
    if (document.contains(opener)) opener.focus();
  }
  target = null;
  opener = null;
}

function replyTo() {
  const m = target;
  closeMenu();
  if (!m) return;
  const peer = state.peers.get(m.peer);
  startReply(m, m.direction === "out" ? "you" : peer ? label(peer) : "them");
}

async function copyMessage() {
  const m = target;
  closeMenu();
  if (!m) return;
  try {
    await navigator.clipboard.writeText(m.body);
    toast("Copied");
  } catch {
    toast("The browser did not allow copying here", { error: true });
  }
}

async function deleteMessage() {
  const m = target;
  closeMenu();
  if (!m) return;
  try {
    await api("POST", `/api/peers/${m.peer}/messages/${m.id}/delete`, { direction: m.direction });
    dropMessage(m.peer, keyOf(m));
    toast("Deleted here; your contact keeps their copy");
  } catch (err) {
    toast(err.message, { error: true });
  }
}

// A message deleted on this device (here, on another page, or with /delete): off the page.
export function dropMessage(fp, key) {
  const c = state.convos.get(fp);
  if (!c) return;
  const gone = c.byKey.get(key);
  if (!gone) return;
  c.list = c.list.filter((m) => m !== gone);
  c.byKey.delete(key);
  const peer = state.peers.get(fp);
  if (peer && peer.last && keyOf(peer.last) === key) peer.last = c.list[c.list.length - 1] || null;
  if (state.current === fp) onDeleted();
}
