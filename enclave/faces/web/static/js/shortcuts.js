// Keyboard shortcuts: Alt+ArrowDown / Alt+ArrowUp open the next / previous chat in the
// list, Ctrl+K (or "/" outside a text field) goes to search. Escape closes an open
// dialog (the browser's own <dialog> behaviour) and leaves the search box.

import { openChat } from "./conversation.js";
import { $ } from "./dom.js";
import { state } from "./state.js";

export function wireShortcuts() {
  document.addEventListener("keydown", onKey);
}

function typing(target) {
  return target instanceof HTMLElement && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName));
}

function onKey(event) {
  if (!state.ready) return;
  if (event.altKey && (event.key === "ArrowDown" || event.key === "ArrowUp")) {
    event.preventDefault();
    step(event.key === "ArrowDown" ? 1 : -1);
  } else if ((event.ctrlKey && event.key.toLowerCase() === "k") || (event.key === "/" && !typing(event.target))) {
    event.preventDefault();
    $("search").focus();
  } else if (event.key === "Escape" && event.target === $("search")) {
    $("search").blur();
  }
}

// The chat ``delta`` rows away from the open one, in the list's order (wrapping round).
function step(delta) {
  const rows = Array.from($("peer-list").querySelectorAll("li[data-fp]"), (li) => li.dataset.fp);
  if (!rows.length) return;
  const at = rows.indexOf(state.current);
  const next = at < 0 ? (delta > 0 ? 0 : rows.length - 1) : (at + delta + rows.length) % rows.length;
  openChat(rows[next]).then(() => $("peer-list").querySelector(`li[data-fp="${rows[next]}"]`)?.focus());
}
