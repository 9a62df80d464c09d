// Times on the page.
//
// Rules:
// - A message's created_ms is null when its sender's time is not believable (the
//   server's rule, enclave/node/display.py): it shows as "unknown time", placed by its
//   received_ms. No time, from anywhere, is formatted without a range check
//   (validTime): a value outside a JavaScript Date's range is no time at all.

export const UNKNOWN_TIME = "unknown time";
const MAX_DATE_MS = 8.64e15; // the range of a JavaScript Date
export const clock = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const dayFormat = new Intl.DateTimeFormat(undefined, { weekday: "long" });
const dateFormat = new Intl.DateTimeFormat(undefined, { day: "numeric", month: "short", year: "numeric" });
export const fullFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

export function validTime(ms) {
  return typeof ms === "number" && Number.isFinite(ms) && Math.abs(ms) <= MAX_DATE_MS ? ms : null;
}

// Where a message sits in time: when it was written, else when it arrived.
export function timeOf(m) {
  return validTime(m.created_ms) ?? validTime(m.received_ms) ?? 0;
}

export function format(formatter, ms) {
  const t = validTime(ms);
  return t === null ? UNKNOWN_TIME : formatter.format(t);
}

export function startOfDay(ms) {
  const d = new Date(validTime(ms) ?? 0);
  d.setHours(0, 0, 0, 0);
  return d.getTime();
}

export function dayLabel(ms) {
  if (validTime(ms) === null) return UNKNOWN_TIME;
  const days = Math.round((startOfDay(Date.now()) - startOfDay(ms)) / 86400000);
  if (days === 0) return "Today";
  if (days === 1) return "Yesterday";
  if (days < 7) return dayFormat.format(ms);
  return dateFormat.format(ms);
}

export function shortTime(ms) {
  if (validTime(ms) === null) return UNKNOWN_TIME;
  const days = Math.round((startOfDay(Date.now()) - startOfDay(ms)) / 86400000);
  return days === 0 ? clock.format(ms) : dayLabel(ms);
}

// "just now", "5 min ago", "3 h ago", "2 d ago": how long ago ms was (null: never).
export function ago(ms) {
  const t = validTime(ms);
  if (t === null) return null;
  const s = Math.max(0, Math.floor((Date.now() - t) / 1000));
  if (s < 60) return "just now";
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}
