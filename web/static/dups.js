// The duplicates review: each group of near duplicates side by side (thumbnail, name, size,
// dimensions). "Not duplicates" takes a group apart, "Not a duplicate" one image of a larger group;
// the server remembers it (by content: re-indexing does not bring the group back); Undo right after.
import { fileUrl, getDuplicates, markNotDuplicates, thumbnailUrl, unmarkNotDuplicates } from "./api.js";
import { $, el } from "./dom.js";
import { plural, say } from "./lists.js";

let changed = false;  // groups changed while the view was open: the results' "copies" are stale

export function setupDuplicates(actions) {
  $("dups-open").addEventListener("click", open);
  $("dups-dialog").addEventListener("close", () => {
    if (!changed) return;
    changed = false;
    document.dispatchEvent(new CustomEvent("library-changed", { detail: { what: "duplicates" } }));
    actions.search();
  });
}

async function open() {
  say($("dups-error"), "");
  $("dups-summary").textContent = "Loading…";
  $("dups-list").replaceChildren();
  if (!$("dups-dialog").open) $("dups-dialog").showModal();
  try {
    render(await getDuplicates());
  } catch (err) {
    $("dups-summary").textContent = "";
    say($("dups-error"), err.message, true);
  }
}

function render(groups) {
  const images = groups.reduce((n, g) => n + g.images.length, 0);
  $("dups-summary").textContent = groups.length
    ? `${plural(groups.length, "group")} of near duplicates (${plural(images, "image")}). ` +
      "Keep the one you want; mark the ones that only look alike."
    : "No near duplicates: no two indexed images look like copies of each other.";
  $("dups-list").replaceChildren(...groups.map((g, n) => group(g, n + 1)));
}

function group(g, n) {
  const ids = g.images.map((m) => m.id);
  const li = el("li", { class: "dups-group", "aria-label": `Group ${n}` });
  const apart = el("button", {
    type: "button", "aria-label": `Group ${n}: not duplicates`, onclick: () => mark(li, ids, null, `group ${n}`),
  }, "Not duplicates");
  li.append(
    el("div", { class: "dups-head" },
      el("strong", { text: `Group ${n}` }),
      el("span", { class: "muted", text: plural(g.images.length, "image") }),
      el("div", { class: "lib-actions" }, apart)),
    el("div", { class: "dups-row" }, ...g.images.map((m) => member(m, li, g.images.length > 2 ? ids : null))));
  return li;
}

function member(m, li, ids) {
  const dims = m.width && m.height ? `${m.width}×${m.height}` : "";
  return el("figure", { class: "dups-item" },
    el("a", { href: fileUrl(m), target: "_blank", rel: "noopener", title: m.path },
      el("img", { src: thumbnailUrl(m, 256), alt: m.name, loading: "lazy", width: 160, height: 160 })),
    el("figcaption", {},
      el("span", { class: "dups-name", text: m.name, title: m.path }),
      el("span", { class: "muted", text: [size(m.size), dims, (m.format || "").toUpperCase()].filter(Boolean).join(" · ") }),
      ids ? el("button", {
        type: "button", class: "small", "aria-label": `${m.name} is not a duplicate`,
        onclick: () => mark(li, ids.filter((i) => i !== m.id), m.id, m.name),
      }, "Not a duplicate") : null));
}

function size(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(0)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

// ids (with image: that one apart from ids); what: how the note names it
async function mark(li, ids, image, what) {
  for (const b of li.querySelectorAll("button")) b.disabled = true;
  try {
    const groups = await markNotDuplicates(ids, image);
    changed = true;
    const undo = el("button", { type: "button", onclick: () => restore(ids, image) }, "Undo");
    const note = el("li", { class: "dups-done", role: "status" },
      el("span", { text: image === null ? `Marked ${what} as not duplicates.` : `Marked ${what} as not a duplicate.` }),
      undo);
    render(groups);
    $("dups-list").prepend(note);
    undo.focus();
  } catch (err) {
    for (const b of li.querySelectorAll("button")) b.disabled = false;
    say($("dups-error"), err.message, true);
  }
}

async function restore(ids, image) {
  try {
    render(await unmarkNotDuplicates(ids, image));
    changed = true;
  } catch (err) {
    say($("dups-error"), err.message, true);
  }
}
