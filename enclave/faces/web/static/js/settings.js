// The settings dialog: the theme, notifications (notify.js), and whether this browser
// stays signed in.
//
// Rules:
// - The theme follows the system (prefers-color-scheme) until the user picks light or
//   dark; the choice is kept in this browser (localStorage), never sent anywhere.
// - "Keep this browser signed in" is the user's choice, off until ticked: Enclave sets
//   an HttpOnly device cookie and this page keeps a PIN in its origin's storage
//   (enclave/faces/web/devices.py); a bookmark and a tab left open over a restart then
//   work without the new address. Unticking signs this browser out; `enclave
//   web-sessions` lists and revokes every browser.

import { api, devicePin, keepPin } from "./api.js";
import { $ } from "./dom.js";
import { fillNotifySettings, wireNotifySettings } from "./notify.js";
import { toast } from "./toasts.js";

const THEME_KEY = "enclave-theme";
const THEMES = new Set(["system", "light", "dark"]);

export function savedTheme() {
  const value = localStorage.getItem(THEME_KEY);
  return THEMES.has(value) ? value : "system";
}

const SYSTEM_LIGHT = window.matchMedia("(prefers-color-scheme: light)");

// The stylesheet has one light palette, under html[data-theme="light"]: "system" is
// resolved here, and again whenever the system switches.
export function applyTheme(theme = savedTheme()) {
  const light = theme === "light" || (theme === "system" && SYSTEM_LIGHT.matches);
  document.documentElement.dataset.theme = light ? "light" : "dark";
}

SYSTEM_LIGHT.addEventListener("change", () => applyTheme());
applyTheme(); // before the first render, so the page does not flash the other theme

export function wireSettings() {
  $("btn-settings").addEventListener("click", openSettings);
  $("theme-choice").addEventListener("change", onTheme);
  $("keep-signed-in").addEventListener("change", onKeep);
  wireNotifySettings();
}

function openSettings() {
  $("theme-choice").value = savedTheme();
  $("keep-signed-in").checked = Boolean(devicePin());
  fillNotifySettings();
  const dialog = $("dlg-settings");
  if (!dialog.open) dialog.showModal();
}

function onTheme() {
  const theme = $("theme-choice").value;
  if (!THEMES.has(theme)) return;
  if (theme === "system") localStorage.removeItem(THEME_KEY);
  else localStorage.setItem(THEME_KEY, theme);
  applyTheme(theme);
}

async function onKeep() {
  const keep = $("keep-signed-in").checked;
  try {
    if (keep) {
      const data = await api("POST", "/api/device", {});
      keepPin(data.pin);
      toast("This browser stays signed in to this Enclave: bookmarks work after a restart.");
    } else {
      await api("POST", "/api/device/forget", {});
      keepPin(null);
      toast("This browser is signed out: after the next restart it needs the address Enclave prints.");
    }
  } catch (err) {
    $("keep-signed-in").checked = !keep;
    toast(err.message, { error: true });
  }
}
