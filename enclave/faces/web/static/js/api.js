// The page's door to Enclave: the launch token and the JSON API.
//
// Rules:
// - The launch token comes from the URL fragment (#token=...), which browsers never
//   send to a server. It is kept in sessionStorage for reloads of this tab and
//   removed from the address bar. It travels as a Bearer header on API calls (and,
//   from connection.js, as an offered WebSocket subprotocol).
// - Every failure is an ApiError with the HTTP status (0: Enclave did not answer)
//   and one line a person can act on: the server's own error text when it gave one.

const TOKEN_KEY = "enclave-token";
let token = null;

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export async function api(method, path, body) {
  const options = { method, headers: { Authorization: `Bearer ${token}` }, cache: "no-store" };
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, options);
  } catch {
    throw new ApiError(0, "Enclave is not answering; is it still running?");
  }
  let data;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (!response.ok) {
    throw new ApiError(response.status, (data && data.error) || `request failed (${response.status})`);
  }
  return data;
}

// The token of this launch, from the address or kept from an earlier load of this tab.
export function readToken() {
  const match = /(?:^#|&)token=([A-Za-z0-9_-]+)/.exec(location.hash);
  if (match) {
    sessionStorage.setItem(TOKEN_KEY, match[1]);
    history.replaceState(null, "", location.pathname + location.search);
  }
  token = sessionStorage.getItem(TOKEN_KEY);
  return token;
}

// The check ``new_token`` (security.py) appends: a token that fails it was mistyped or
// cut short, not issued by an earlier launch.
const B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

export function tokenWellFormed(value) {
  if (!value || value.length < 4) return false;
  const body = value.slice(0, -3);
  let h = 0;
  for (const ch of body) h = (h * 31 + ch.charCodeAt(0)) % 262139;
  const check = [12, 6, 0].map((shift) => B64URL[(h >> shift) & 63]).join("");
  return check === value.slice(-3);
}

// A browser kept signed in (devices.py): its PIN, kept in this origin's storage (no
// other port's page can read it), and its HttpOnly cookie trade for a token.
const PIN_KEY = "enclave-device-pin";

export function devicePin() {
  return localStorage.getItem(PIN_KEY);
}

export function keepPin(pin) {
  if (pin) localStorage.setItem(PIN_KEY, pin);
  else localStorage.removeItem(PIN_KEY);
}

let signedOut = false;

// Whether the last try found this browser's session ended.
export function wasSignedOut() {
  return signedOut;
}

// Null when this browser is not signed in here.
export async function resumeDevice() {
  const pin = devicePin();
  if (!pin) return null;
  try {
    const response = await fetch("/api/device/resume", {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-Enclave-Pin": pin },
      body: "{}",
      cache: "no-store",
    });
    if (response.status === 401) {
      keepPin(null); // signed out (here, elsewhere or with enclave web-sessions)
      signedOut = true;
    }
    if (!response.ok) return null;
    const data = await response.json();
    if (typeof data.token !== "string") return null;
    token = data.token;
    sessionStorage.setItem(TOKEN_KEY, token);
    return token;
  } catch {
    return null;
  }
}

export function currentToken() {
  return token;
}

// Whether this tab still holds a token (forgetToken clears it when a launch's ended).
export function tokenKept() {
  return Boolean(sessionStorage.getItem(TOKEN_KEY));
}

export function forgetToken() {
  sessionStorage.removeItem(TOKEN_KEY);
}
