// Toasts: short notes in a corner, at most four at once, gone after a few seconds.
//
// Rules:
// - Every text goes through visible(): a toast may carry a peer's message or name.

import { $, el } from "./dom.js";
import { visible } from "./text.js";

export function toast(text, { who, error, long, onClick } = {}) {
  const box = $("toasts");
  const t = el("div", `toast${error ? " error" : ""}`);
  if (who) t.appendChild(el("span", "who", who));
  t.appendChild(el("span", "text", visible(text)));
  if (onClick) {
    // Reachable by keyboard too: Tab to it, Enter or Space opens what it is about.
    t.classList.add("clickable");
    t.tabIndex = 0;
    t.setAttribute("role", "button");
    const open = () => {
      onClick();
      t.remove();
    };
    t.addEventListener("click", open);
    t.addEventListener("keydown", (event) => {
      if (event.key === "Enter" || event.key === " ") {
        event.preventDefault();
        open();
      }
    });
  }
  box.appendChild(t);
  while (box.children.length > 4) box.firstChild.remove();
  setTimeout(() => {
    t.classList.add("leaving");
    setTimeout(() => t.remove(), 400);
  }, long ? 7000 : 3500);
}
