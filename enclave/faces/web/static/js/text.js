// Text from peers and how a peer is named.
//
// Rules:
// - Text from peers (bodies, names, addresses) is shown through visible(): bidi
//   overrides, zero-width characters and controls appear as ⟨U+XXXX⟩, never applied.
// - A peer without a name is named by the first two groups of its fingerprint.

// The rule of enclave/node/display.py: characters of Unicode categories Cc, Cf, Zl, Zp and
// Cs (bidi embeddings, overrides, isolates and marks, zero-width characters, line and
// paragraph separators, C0/C1 controls, lone surrogates) are shown as ⟨U+XXXX⟩.
// Newline and tab stay in bodies (lines), and U+200D stays between two pictographs
// (an emoji sequence: it joins two pictures and hides nothing).
const HIDDEN = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}]/gu;
const PICTOGRAPH = /^\p{So}$/u;

export function visible(text, lines = true) {
  return String(text ?? "").replace(HIDDEN, (ch, at, whole) => {
    if (lines && (ch === "\n" || ch === "\t")) return ch;
    if (ch === "\u200d" && joinsPictographs(whole, at)) return ch;
    return `\u27e8U+${ch.codePointAt(0).toString(16).toUpperCase().padStart(4, "0")}\u27e9`;
  });
}

function joinsPictographs(text, at) {
  const before = Array.from(text.slice(Math.max(0, at - 4), at));
  let prev = before.pop();
  if (prev === "\ufe0f" || (prev && prev.codePointAt(0) >= 0x1f3fb && prev.codePointAt(0) <= 0x1f3ff)) prev = before.pop();
  const next = text.codePointAt(at + 1);
  return prev !== undefined && next !== undefined && PICTOGRAPH.test(prev) && PICTOGRAPH.test(String.fromCodePoint(next));
}

// Web addresses in a body become links: shown as the text they are (through visible),
// opened in a new tab with no referrer and no opener, never fetched by the page itself
// (no previews). Only http and https: a "javascript:" or "data:" text stays text.
const LINK = /\bhttps?:\/\/[^\s<>"'\u27e8\u27e9]+[^\s<>"'.,;:!?)\]}\u27e8\u27e9]/giu;

export function linked(text) {
  const shown = visible(text);
  const out = document.createDocumentFragment();
  let at = 0;
  for (const match of shown.matchAll(LINK)) {
    if (match.index > at) out.append(shown.slice(at, match.index));
    const a = document.createElement("a");
    a.href = match[0];
    a.textContent = match[0];
    a.rel = "noopener noreferrer";
    a.target = "_blank";
    a.className = "link";
    out.append(a);
    at = match.index + match[0].length;
  }
  if (at < shown.length) out.append(shown.slice(at));
  return out;
}

export function label(peer) {
  return visible(peer.name, false) || String(peer.grouped || peer.fingerprint).split(" ").slice(0, 2).join(" ");
}
