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
