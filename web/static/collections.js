// The collections view: every collection with its size and a few of its images; browse one (the
// collection filter, then a search), or delete it (after a confirmation: its images stay indexed).
// Collections are made from the selection bar ("Add to collection…").
import { collectionSample, deleteCollection, getCollections, thumbnailUrl } from "./api.js";
import { $, el } from "./dom.js";
import { notify, plural, refreshLists, say } from "./lists.js";
import { state } from "./state.js";

const PREVIEW = 4;  // thumbnails per collection

export function setupCollections(actions) {
  $("col-open").addEventListener("click", () => openCollections(actions));
}

async function openCollections(actions) {
  const dialog = $("col-dialog");
  const list = $("col-list");
  say($("col-error"), "");
  list.replaceChildren(el("li", { class: "muted", text: "Loading…" }));
  if (!dialog.open) dialog.showModal();
  try {
    const collections = await getCollections();
    list.replaceChildren(...collections.map((c) => row(c, actions)));
    if (!collections.length) {
      list.append(el("li", { class: "muted" },
        "No collections yet. Select results (the box on each card) and choose “Add to collection…”."));
    }
    collections.slice(0, 30).forEach((c, i) => fillPreview(c, list.children[i]));
  } catch (err) {
    list.replaceChildren();
    say($("col-error"), err.message, true);
  }
}

function row(c, actions) {
  const buttons = el("div", { class: "lib-actions" },
    el("button", {
      type: "button", class: "primary", "aria-label": `Browse ${c.name}`, onclick: () => browse(c.name),
    }, "Browse"),
    el("button", { type: "button", "aria-label": `Delete ${c.name}…`, onclick: () => confirmDelete(c, li, actions) },
      "Delete…"));
  const li = el("li", { class: "lib-row", "data-name": c.name },
    el("div", { class: "col-thumbs", "aria-hidden": "true" }),
    el("div", { class: "lib-what" },
      el("strong", { text: c.name }),
      el("span", { class: "muted", text: plural(c.images, "image") })),
    buttons);
  return li;
}

async function fillPreview(c, li) {
  if (!c.images || !li) return;
  try {
    const data = await collectionSample(c.name, PREVIEW);
    li.querySelector(".col-thumbs").replaceChildren(
      ...data.results.map((h) => el("img", { src: thumbnailUrl(h, 128), alt: "", width: 40, height: 40 })));
  } catch (_) { /* the list works without its thumbnails */ }
}

async function browse(name) {
  await refreshLists();  // the filter must offer it (a collection made on this page just now)
  $("q").value = "";  // the whole collection, not the part of it matching the last query
  state.q = "";
  $("collection").value = name;
  $("col-dialog").close();
  $("collection").dispatchEvent(new Event("change"));  // the page searches on a filter change
}

function confirmDelete(c, li, actions) {
  const buttons = li.querySelector(".lib-actions");
  const keep = el("button", { type: "button", onclick: () => ask.replaceWith(buttons) }, "Keep it");
  const ask = el("div", { class: "lib-confirm", role: "group", "aria-label": `Delete ${c.name}?` },
    el("p", {}, `Delete “${c.name}”? ${c.images === 1 ? "Its image stays" : `Its ${plural(c.images, "image")} stay`} indexed, with their tags; `,
      "only the collection goes."),
    el("div", { class: "lib-actions" },
      el("button", { type: "button", class: "danger", onclick: () => remove(c, actions) }, "Delete collection"),
      keep));
  buttons.replaceWith(ask);
  keep.focus();
}

async function remove(c, actions) {
  try {
    await deleteCollection(c.name);
    const { gone } = await refreshLists();
    if (gone) actions.search();  // it was the collection browsed
    notify(`Deleted the collection “${c.name}”; its images stay indexed.`);
    await openCollections(actions);
  } catch (err) {
    say($("col-error"), err.message, true);
  }
}
