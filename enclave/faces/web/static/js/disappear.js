// Disappearing messages: the conversation's timer (the contact menu's choice), the
// system line a TIMER shows as, and the mark on a message that will disappear.
//
// Rules:
// - Choosing a time in the contact menu is one POST; the node sends the TIMER and every
//   page (this one too) hears it as a "timer" event: a system line in the chat on both
//   sides ("alice set disappearing messages to 1 day").
// - The newest change of either side holds: the menu shows the timer in force
//   (peer.disappear_s), which a "timer" event updates.
// - Expired messages leave every open page through the "expired" event (dropMessage).

import { api } from "./api.js";
import { $ } from "./dom.js";
import { state } from "./state.js";
import { label } from "./text.js";
import { toast } from "./toasts.js";

const UNITS = [
  [7 * 86400, "week"],
  [86400, "day"],
  [3600, "hour"],
  [60, "minute"],
  [1, "second"],
];

export function durationText(seconds) {
  if (!seconds) return "off";
  for (const [size, name] of UNITS) {
    if (seconds % size === 0) {
      const n = seconds / size;
      return `${n} ${name}${n === 1 ? "" : "s"}`;
    }
  }
  return `${seconds} seconds`;
}

// A TIMER's row as the conversation shows it (the same words as every face).
export function timerLine(m) {
  const peer = state.peers.get(m.peer);
  const who = m.direction === "out" ? "You" : peer ? label(peer) : "They";
  if (!m.timer_s) return `${who} turned disappearing messages off`;
  return `${who} set disappearing messages to ${durationText(m.timer_s)}`;
}

export function wireDisappear() {
  $("disappear-select").addEventListener("change", onChoose);
}

// The contact menu shows the timer in force.
export function fillDisappear(peer) {
  const select = $("disappear-select");
  const value = String(peer.disappear_s || 0);
  if (![...select.options].some((o) => o.value === value)) {
    select.appendChild(new Option(durationText(peer.disappear_s), value));
  }
  select.value = value;
  select.disabled = peer.protocol === "v1" || peer.blocked;
}

async function onChoose() {
  const peer = state.peers.get(state.current);
  if (!peer) return;
  const seconds = Number($("disappear-select").value);
  try {
    const data = await api("POST", `/api/peers/${peer.fingerprint}/disappear`, { seconds });
    peer.disappear_s = data.disappear_s;
  } catch (err) {
    toast(err.message, { error: true });
    fillDisappear(peer);
  }
}
