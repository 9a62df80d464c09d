// The settings dialog: the theme, notifications (notify.js), and whether this browser
// stays signed in.
//
// Rules:
// - The theme follows the system (prefers-color-scheme) until the user picks light or
//   dark; the choice is kept in this browser (localStorage), never sent anywhere.
// - A page opened with a launch token asks Enclave to keep this browser signed in
//   (an HttpOnly device cookie, enclave/faces/web/devices.py): a bookmark and a tab
//   left open over a restart then work without the new address. The user can sign
//   this browser out here; `enclave web-sessions` lists and revokes every browser.

import { api } from "./api.js";
import { $, show } from "./dom.js";
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
  $("btn-sign-out").addEventListener("click", signOut);
  wireNotifySettings();
}

function openSettings() {
  $("theme-choice").value = savedTheme();
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

// Called once the token worked: keep this browser signed in (a no-op when it is).
export async function keepDevice() {
  try {
    const data = await api("POST", "/api/device", {});
    show($("sign-in-note"), true);
    if (data.new) toast("This browser stays signed in to this Enclave: bookmarks work after a restart. Settings signs it out.");
  } catch {
    // not kept: the launch address keeps working as before
  }
}

async function signOut() {
  try {
    await api("POST", "/api/device/forget", {});
    $("dlg-settings").close();
    toast("This browser is signed out: after the next restart it needs the address Enclave prints.");
  } catch (err) {
    toast(err.message, { error: true });
  }
}
