// Small DOM helpers shared by every view.
//
// Rules:
// - Text goes into the page as textContent (el's third argument) or as attribute
//   values, never parsed as HTML: no module of this page uses innerHTML, and the
//   JavaScript lint (eslint.config.mjs) refuses it.

export const $ = (id) => document.getElementById(id);

export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = text;
  return node;
}

export function show(node, visible) {
  node.hidden = !visible;
}

// An avatar's colour from a fingerprint or group id: 360 hues x 3 shades from its
// first bytes (two contacts rarely match), dark enough for white text (>= 4.5:1).
// Set through CSSOM, which the CSP allows (no style attribute is parsed).
export function tint(node, hex) {
  const n = parseInt(String(hex).slice(0, 6), 16) || 0;
  node.style.backgroundColor = `hsl(${n % 360} 48% ${25 + ((n >> 9) % 3) * 3}%)`;
  return node;
}
