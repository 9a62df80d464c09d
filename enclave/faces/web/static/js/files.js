// Files: sending them from the open chat, and the card a file message shows.
//
// Rules:
// - Files leave by the paperclip (a hidden file input), by dropping them on the chat,
//   or by pasting them into the message box; the broadcast dialog's file picker
//   offers one file to every contact that can take files. Each is uploaded on its own (the raw
//   body, its name percent-encoded in X-File-Name) with XMLHttpRequest, whose upload
//   progress shows above the composer; Enclave stages it and offers it to the peer.
// - A file message shows its name, size and state; a bar while it moves; the reason
//   when it failed; Accept and Decline while an incoming file waits; Download once
//   delivered. Downloads and previews are fetched with the token and handed to the
//   browser as blob: URLs (the page's CSP allows blob: for images only).
// - A preview is asked only for delivered files named like images; the server checks
//   the bytes and answers 415 for anything else, which simply shows no preview. Each
//   file's preview is fetched once and kept for the page's life.

import { api, currentToken } from "./api.js";
import { $, el, show } from "./dom.js";
import { icon } from "./icons.js";
import { state } from "./state.js";
import { visible } from "./text.js";
import { toast } from "./toasts.js";

const IMAGE_NAME = /\.(png|jpe?g|gif|webp)$/i;
const PREVIEW_MAX = 32 * 1024 * 1024;
const previews = new Map(); // key -> blob: URL, or null (no preview)
let onUploaded = () => {};

export function wireFiles(onFile) {
  onUploaded = onFile;
  const pick = $("file-input");
  $("btn-attach").addEventListener("click", () => pick.click());
  pick.addEventListener("change", () => {
    sendFiles([...pick.files]);
    pick.value = "";
  });
  const zone = $("chat-view");
  zone.addEventListener("dragover", (event) => {
    if (!hasFiles(event.dataTransfer)) return;
    event.preventDefault();
    zone.classList.add("dropping");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("dropping"));
  zone.addEventListener("drop", (event) => {
    zone.classList.remove("dropping");
    const files = event.dataTransfer ? [...event.dataTransfer.files] : [];
    if (!files.length) return;
    event.preventDefault();
    sendFiles(files);
  });
  $("input").addEventListener("paste", (event) => {
    const files = event.clipboardData ? [...event.clipboardData.files] : [];
    if (!files.length) return;
    event.preventDefault();
    sendFiles(files);
  });
}

function hasFiles(transfer) {
  return Boolean(transfer) && [...transfer.types].includes("Files");
}

export function sendFiles(files) {
  const fp = state.current;
  if (!fp) return;
  for (const file of files) upload(`/api/peers/${fp}/files`, file, (data) => onUploaded(data.file));
}

// One file to every contact that can take files (not blocked, not the original
// protocol): the broadcast dialog's file picker.
export function broadcastFile(file) {
  const fps = [...state.peers.values()].filter((p) => !p.blocked && p.protocol !== "v1");
  if (!fps.length) {
    toast("No contact can take files (blocked and original-protocol ones cannot)", { error: true });
    return;
  }
  const query = fps.map((p) => `peer=${encodeURIComponent(p.fingerprint)}`).join("&");
  upload(`/api/files?${query}`, file, (data) => {
    data.files.forEach(onUploaded);
    toast(`${file.name} offered to ${data.files.length} contact(s)`);
  });
}

function upload(path, file, done) {
  const name = file.name || "pasted file";
  const list = $("uploads");
  const item = el("li", "upload");
  const bar = el("progress", "upload-bar");
  bar.max = 100;
  bar.value = 0;
  item.append(el("span", "upload-name", `Sending ${visible(name, false)}…`), bar);
  list.appendChild(item);
  show(list, true);
  const xhr = new XMLHttpRequest();
  xhr.open("POST", path);
  xhr.setRequestHeader("Authorization", `Bearer ${currentToken()}`);
  xhr.setRequestHeader("X-File-Name", encodeURIComponent(name));
  xhr.setRequestHeader("Content-Type", "application/octet-stream");
  xhr.upload.addEventListener("progress", (event) => {
    if (event.lengthComputable && event.total) bar.value = Math.floor((event.loaded * 100) / event.total);
  });
  xhr.addEventListener("loadend", () => {
    item.remove();
    show(list, list.children.length > 0);
    let data = null;
    try {
      data = JSON.parse(xhr.responseText);
    } catch {
      // no JSON answer (the connection dropped): the toast says so
    }
    if (xhr.status === 200 && data) done(data);
    else toast((data && data.error) || `${name} could not be sent`, { error: true });
  });
  xhr.send(file);
}

export function sizeText(n) {
  if (n < 1024) return `${n} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let value = n;
  let unit = "B";
  for (const u of units) {
    if (value < 1024) break;
    value /= 1024;
    unit = u;
  }
  return `${value.toFixed(value < 10 ? 1 : 0)} ${unit}`;
}

const OPEN = new Set(["offered", "accepted", "transferring"]);

function stateText(m, f) {
  const mine = m.direction === "out";
  switch (f.state) {
    case "offered":
      return mine ? "Offered, waiting for the peer" : "Offered to you";
    case "accepted":
      return "Accepted, starting";
    case "transferring":
      return `${mine ? "Sending" : "Receiving"} ${f.percent}%`;
    case "delivered":
      return mine ? "Delivered" : "Received";
    case "failed":
      return "Failed";
    case "cancelled":
      return "Cancelled";
    default:
      return f.state;
  }
}

// The body of a file message's bubble.
export function fileCard(m) {
  const f = m.file;
  const box = el("div", "file-card");
  box.dataset.fileKey = String(f.key);
  box.dataset.fileState = f.state;
  const head = el("div", "file-head");
  head.append(icon("file"), el("span", "file-name", visible(f.name, false)), el("span", "file-size", sizeText(f.size)));
  box.appendChild(head);
  box.appendChild(el("div", "file-state", stateText(m, f)));
  if (f.state === "transferring" || f.state === "accepted") {
    const bar = el("progress", "file-bar");
    bar.max = 100;
    bar.value = f.percent || 0;
    box.appendChild(bar);
  }
  if ((f.state === "failed" || f.state === "cancelled") && f.reason) {
    box.appendChild(el("div", "file-reason", visible(f.reason, false)));
  }
  const actions = el("div", "file-actions");
  if (m.direction === "in" && f.state === "offered") {
    actions.append(button("Accept", "file-accept", () => act(f, "accept")));
    actions.append(button("Decline", "file-decline", () => act(f, "decline")));
  } else if (OPEN.has(f.state)) {
    actions.append(button("Cancel", "file-cancel", () => act(f, "cancel")));
  }
  if (f.state === "delivered") {
    const link = el("a", "file-download", "Download");
    link.href = "#";
    link.dataset.href = `/api/files/${f.key}/content`;
    link.addEventListener("click", (event) => {
      event.preventDefault();
      download(f);
    });
    actions.append(link);
  }
  if (actions.children.length) box.appendChild(actions);
  if (f.state === "delivered" && IMAGE_NAME.test(f.name) && f.size <= PREVIEW_MAX) {
    const img = el("img", "file-preview");
    img.alt = visible(f.name, false);
    img.hidden = true;
    box.appendChild(img);
    showPreview(f.key, img);
  }
  return box;
}

function button(text, className, onClick) {
  const b = el("button", `file-btn ${className}`, text);
  b.type = "button";
  b.addEventListener("click", onClick);
  return b;
}

async function act(f, what) {
  try {
    const data = await api("POST", `/api/files/${f.key}/${what}`, {});
    onUploaded(data.file);
  } catch (err) {
    toast(err.message, { error: true });
  }
}

async function fetchBlob(path) {
  const response = await fetch(path, { headers: { Authorization: `Bearer ${currentToken()}` }, cache: "no-store" });
  if (!response.ok) {
    let text = `request failed (${response.status})`;
    try {
      text = (await response.json()).error || text;
    } catch {
      // not JSON: keep the status line
    }
    const err = new Error(text);
    err.status = response.status;
    throw err;
  }
  return response.blob();
}

async function download(f) {
  try {
    const url = URL.createObjectURL(await fetchBlob(`/api/files/${f.key}/content`));
    const a = el("a");
    a.href = url;
    a.download = f.name;
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
  } catch (err) {
    toast(err.message, { error: true });
  }
}

async function showPreview(key, img) {
  if (!previews.has(key)) {
    previews.set(key, null);
    try {
      const blob = await fetchBlob(`/api/files/${key}/preview`);
      previews.set(key, URL.createObjectURL(blob));
    } catch {
      return; // not an image (415) or gone: no preview
    }
  }
  const url = previews.get(key);
  if (!url) return;
  // The list may have been redrawn meanwhile: fill whichever card shows this file now.
  const shown = document.querySelectorAll(`.file-card[data-file-key="${key}"] img.file-preview`);
  for (const node of new Set([img, ...shown])) {
    node.src = url;
    node.hidden = false;
  }
}
