// Notifications: desktop notifications, the unread badge on the tab's icon, a sound.
//
// Rules:
// - Nothing is asked until the user turns notifications on in the settings: the
//   browser asks for permission then, on that click, and never on its own.
// - A notification names who wrote, not what, unless the user chose to show message
//   text. It comes only when the message is not in view (another chat is open, or the
//   tab is hidden); clicking it opens the chat.
// - A muted contact never notifies nor sounds; its unread count still shows.
// - The choices are kept in this browser (localStorage), never sent anywhere.
// - The unread total goes into the title ("(3) Enclave") and onto the icon as a badge.

import { $, show } from "./dom.js";
import { visible } from "./text.js";

const PREFS_KEY = "enclave-notify";
const MUTED_KEY = "enclave-muted";
const ICON = "/static/icon.svg";

function readJson(key, fallback) {
  try {
    const value = JSON.parse(localStorage.getItem(key));
    return value && typeof value === "object" ? value : fallback;
  } catch {
    return fallback;
  }
}

export function prefs() {
  const p = readJson(PREFS_KEY, {});
  return { on: p.on === true, text: p.text === true, sound: p.sound === true };
}

function savePrefs(p) {
  localStorage.setItem(PREFS_KEY, JSON.stringify(p));
}

function mutedSet() {
  const list = readJson(MUTED_KEY, []);
  return new Set(Array.isArray(list) ? list.filter((x) => typeof x === "string") : []);
}

export function isMuted(fp) {
  return mutedSet().has(fp);
}

export function setMuted(fp, muted) {
  const set = mutedSet();
  if (muted) set.add(fp);
  else set.delete(fp);
  localStorage.setItem(MUTED_KEY, JSON.stringify([...set]));
}

// --- the settings' part -----------------------------------------------------------------

export function wireNotifySettings() {
  for (const id of ["notify-on", "notify-text", "notify-sound"]) $(id).addEventListener("change", onChoice);
}

export function fillNotifySettings() {
  const p = prefs();
  const allowed = "Notification" in window && Notification.permission === "granted";
  $("notify-on").checked = p.on && allowed;
  $("notify-text").checked = p.text;
  $("notify-sound").checked = p.sound;
  $("notify-text").disabled = $("notify-sound").disabled = !$("notify-on").checked;
  show($("notify-refused"), "Notification" in window && Notification.permission === "denied");
}

async function onChoice() {
  const p = prefs();
  p.text = $("notify-text").checked;
  p.sound = $("notify-sound").checked;
  p.on = $("notify-on").checked;
  if (p.on && !("Notification" in window)) p.on = false;
  else if (p.on && Notification.permission !== "granted") {
    p.on = (await Notification.requestPermission()) === "granted"; // this click's gesture
  }
  savePrefs(p);
  fillNotifySettings();
}

// --- a message arrived that is not in view ---------------------------------------------

// ``from``: who wrote, as the notification's title (a contact's name, or "carol in
// team"); ``muteKey``: the contact's fingerprint (muting is per contact).
export function notifyMessage(from, muteKey, text, open) {
  if (isMuted(muteKey)) return;
  const p = prefs();
  if (p.on && p.sound) beep(); // the sound is part of notifications: off with them
  if (!p.on || !("Notification" in window) || Notification.permission !== "granted") return;
  const body = p.text ? visible(String(text || ""), false).slice(0, 200) : "New message";
  try {
    // The name isolated (FSI ... PDI): a right-to-left name cannot reorder the title.
    const title = `\u2068${visible(from, false)}\u2069 · Enclave`;
    const note = new Notification(title, { body, tag: muteKey, silent: true });
    note.addEventListener("click", () => {
      window.focus();
      open();
      note.close();
    });
  } catch {
    // a browser that shows notifications only from a service worker: the badge and
    // the title still say it
  }
}

let audio = null;

function beep() {
  try {
    audio = audio || new AudioContext();
    const osc = audio.createOscillator();
    const gain = audio.createGain();
    osc.frequency.value = 880;
    gain.gain.setValueAtTime(0.08, audio.currentTime);
    gain.gain.exponentialRampToValueAtTime(0.0001, audio.currentTime + 0.25);
    osc.connect(gain).connect(audio.destination);
    osc.start();
    osc.stop(audio.currentTime + 0.25);
  } catch {
    // no audio here: silence
  }
}

// --- the badge on the tab's icon ----------------------------------------------------------

let badgeUrl = null;
let shownTotal = 0;
let iconImage = null;

export async function showBadge(total) {
  if (total === shownTotal) return;
  shownTotal = total;
  const link = document.querySelector("link[rel=icon]");
  if (!link) return;
  if (!total) {
    link.href = ICON;
    link.type = "image/svg+xml";
    return;
  }
  const url = await drawBadge(total);
  if (url && shownTotal === total) {
    link.type = "image/png";
    link.href = url;
    if (badgeUrl) URL.revokeObjectURL(badgeUrl);
    badgeUrl = url;
  }
}

async function drawBadge(total) {
  try {
    if (!iconImage) {
      iconImage = new Image();
      iconImage.src = ICON;
      await iconImage.decode();
    }
    const canvas = document.createElement("canvas");
    canvas.width = canvas.height = 64;
    const g = canvas.getContext("2d");
    g.drawImage(iconImage, 0, 0, 64, 64);
    g.fillStyle = "#d93025";
    g.beginPath();
    g.arc(44, 20, 20, 0, 2 * Math.PI);
    g.fill();
    g.fillStyle = "#ffffff";
    g.font = "bold 26px system-ui, sans-serif";
    g.textAlign = "center";
    g.textBaseline = "middle";
    g.fillText(total > 99 ? "99+" : String(total), 44, 21);
    const blob = await new Promise((done) => canvas.toBlob(done, "image/png"));
    return blob ? URL.createObjectURL(blob) : null;
  } catch {
    return null;
  }
}
