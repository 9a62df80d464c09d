// The "Nearby" section: Enclave nodes heard on the LAN that are not contacts yet.
// An unknown fingerprint is only listed, never trusted; "pair" opens "I have a code"
// with its address filled in: the person there reads their code to the user, and
// pairing by code makes the contact (an announcement alone proves nothing).
import { api } from "./api.js";
import { $, el, show } from "./dom.js";
import { state } from "./state.js";

const EVERY_MS = 10000; // the list changes as nodes come and go; no event says so

export function wireNearby() {
  setInterval(refreshNearby, EVERY_MS); // the first once the app starts (gate.js)
}

export async function refreshNearby() {
  // Not before the node runs: the API would refuse (and the console would say so).
  if (!state.ready) return;
  let answer;
  try {
    answer = await api("GET", "/api/nearby");
  } catch {
    return; // not unlocked yet, or the node is restarting: the next turn tries again
  }
  const strangers = answer.nearby.filter((n) => !n.known);
  const list = $("nearby-list");
  list.replaceChildren(...strangers.map(row));
  show($("nearby-title"), strangers.length > 0);
}

function row(n) {
  const item = el("li", "peer nearby-item");
  const body = el("div", "peer-body");
  body.appendChild(el("div", "peer-name mono", n.fp.slice(0, 16).match(/.{4}/g).join(" ")));
  body.appendChild(el("div", "peer-last muted", `unknown · ${n.addresses[0] || ""}`));
  item.appendChild(body);
  const pair = el("button", "ghost small-btn", "pair");
  pair.type = "button";
  pair.title = "Pair with this node: its owner reads you their code";
  pair.addEventListener("click", () => {
    $("btn-add").click();
    $("btn-join-open").click();
    $("join-address").value = n.addresses[0] || "";
  });
  item.appendChild(pair);
  return item;
}
