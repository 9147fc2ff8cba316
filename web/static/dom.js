// Small DOM helpers shared by the page's modules.

export const $ = (id) => document.getElementById(id);

// el("button", {type: "button", class: "x", text: "…", onclick: fn}, child, …): a new element.
// Text goes in as text (textContent or text nodes), never as HTML.
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) if (c !== null && c !== undefined) node.append(c);
  return node;
}
