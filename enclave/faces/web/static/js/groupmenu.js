// The group dialogs: "New group" (a name and contacts to tick), and the open group's
// menu (add a member, remove one, leave).
//
// Rules:
// - Only contacts this node can reach by v2 are offered (not blocked, not legacy v1);
//   the server checks again and says a mistake in one line, shown in the dialog,
//   which stays open.
// - Adding and removing are offered to admins only; leaving, to every member. What
//   changed shows from the node's "group_changed" event, on every page.
// - The disappearing-messages timer shows to every member, and only an admin may
//   change it: a record every member applies, shown as a system line on every page.

import { api } from "./api.js";
import { durationText } from "./disappear.js";
import { $, el, show } from "./dom.js";
import { loadGroups, memberName, openGroup } from "./groups.js";
import { state } from "./state.js";
import { label, visible } from "./text.js";
import { toast } from "./toasts.js";

export function wireGroupMenu() {
  $("btn-new-group").addEventListener("click", openNewGroup);
  $("new-group-form").addEventListener("submit", onCreate);
  $("btn-group-menu").addEventListener("click", openMenu);
  $("group-add-form").addEventListener("submit", onAdd);
  $("btn-group-leave").addEventListener("click", onLeave);
  $("group-disappear-select").addEventListener("change", onTimer);
}

function fillTimer(g, admin) {
  const select = $("group-disappear-select");
  const value = String(g.disappear_s || 0);
  if (![...select.options].some((o) => o.value === value)) {
    select.appendChild(new Option(durationText(g.disappear_s), value));
  }
  select.value = value;
  select.disabled = !admin;
}

async function onTimer() {
  const gid = state.group;
  const seconds = Number($("group-disappear-select").value);
  try {
    await api("POST", `/api/groups/${gid}/disappear`, { seconds });
    $("dlg-group").close();
    await loadGroups();
  } catch (err) {
    failure("group-menu-error", err.message);
    const g = state.groups.get(gid);
    if (g) fillTimer(g, true);
  }
}

function reachable() {
  return [...state.peers.values()].filter((p) => !p.blocked && !p.legacy).sort((a, b) => label(a).localeCompare(label(b)));
}

function failure(id, text) {
  $(id).textContent = text;
  show($(id), Boolean(text));
}

function openNewGroup() {
  $("new-group-name").value = "";
  failure("new-group-error", "");
  const list = $("new-group-contacts");
  list.replaceChildren();
  for (const peer of reachable()) {
    const li = el("li");
    const box = el("label", "check");
    const input = el("input");
    input.type = "checkbox";
    input.value = peer.fingerprint;
    box.append(input, el("span", "", label(peer)));
    li.appendChild(box);
    list.appendChild(li);
  }
  if (!list.children.length) list.appendChild(el("li", "muted", "Add a contact first: a group is made of contacts."));
  $("dlg-new-group").showModal();
  $("new-group-name").focus();
}

async function onCreate(event) {
  event.preventDefault();
  const name = $("new-group-name").value;
  const members = [...$("new-group-contacts").querySelectorAll("input:checked")].map((i) => i.value);
  try {
    const data = await api("POST", "/api/groups", { name, members });
    $("dlg-new-group").close();
    await loadGroups();
    await openGroup(data.group.id);
  } catch (err) {
    failure("new-group-error", err.message);
  }
}

function openMenu() {
  const g = state.groups.get(state.group);
  if (!g) return;
  $("group-menu-title").textContent = visible(g.name, false);
  failure("group-menu-error", "");
  const me = g.members.find((m) => m.you);
  const admin = Boolean(me && me.admin) && g.state === "member";
  show($("group-add-form"), admin);
  const select = $("group-add-peer");
  select.replaceChildren();
  const inside = new Set(g.members.map((m) => m.fingerprint));
  for (const peer of reachable()) {
    if (inside.has(peer.fingerprint)) continue;
    const option = el("option", "", label(peer));
    option.value = peer.fingerprint;
    select.appendChild(option);
  }
  $("btn-group-add").disabled = !select.options.length;
  const list = $("group-remove-list");
  list.replaceChildren();
  for (const m of g.members) {
    if (m.you) continue;
    const li = el("li", "row");
    li.appendChild(el("span", "grow", memberName(g, m.fingerprint)));
    if (admin) {
      const remove = el("button", "ghost danger", "Remove");
      remove.type = "button";
      remove.dataset.fp = m.fingerprint;
      remove.addEventListener("click", () => change("remove", m.fingerprint));
      li.appendChild(remove);
    }
    list.appendChild(li);
  }
  show($("btn-group-leave"), g.state === "member");
  fillTimer(g, admin);
  $("dlg-group").showModal();
}

async function change(kind, fp) {
  const gid = state.group;
  try {
    await api("POST", `/api/groups/${gid}/${kind}`, fp ? { peer: fp } : {});
    $("dlg-group").close();
    await loadGroups();
  } catch (err) {
    failure("group-menu-error", err.message);
  }
}

function onAdd(event) {
  event.preventDefault();
  const fp = $("group-add-peer").value;
  if (fp) change("add", fp);
}

function onLeave() {
  change("leave", null).then(() => toast("You left the group"));
}
