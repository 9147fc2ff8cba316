// Selecting results and acting on them: tag or untag them, add them to a collection, take them out
// of the collection being browsed. Each card carries a checkbox (actions.pick, which render.js calls
// for every card); the selection is the checked boxes, so it survives "Show more" (cards appended)
// and ends with a new search (cards replaced). Shift-click selects the range from the last click.
import { addToCollection, removeFromCollection, tagImages, untagImages } from "./api.js";
import { $, el } from "./dom.js";
import { notify, plural, refreshLists, say } from "./lists.js";

let last = null;  // position of the box last clicked, for shift-click ranges

const boxes = () => [...document.querySelectorAll("#results .pick-box")];
const chosen = () => boxes().filter((b) => b.checked);
const selectedIds = () => chosen().map((b) => Number(b.dataset.id));

// actions: the page's {search(), ...}; this adds pick(hit, index), the card's checkbox
export function setupSelection(actions) {
  actions.pick = pickBox;
  $("sel-all").addEventListener("click", () => setAll(true));
  $("sel-clear").addEventListener("click", clear);
  $("sel-bar").addEventListener("keydown", (e) => { if (e.key === "Escape") clear(); });
  $("sel-tag").addEventListener("click", () => openTagDialog(actions));
  $("sel-collect").addEventListener("click", () => openCollectDialog());
  $("sel-uncollect").addEventListener("click", () => takeOut(actions));
  $("collection").addEventListener("change", update);
  for (const cancel of document.querySelectorAll(".sel-cancel")) {
    cancel.addEventListener("click", () => cancel.closest("dialog").close());
  }
  // cards come and go with each search: the bar follows
  new MutationObserver(update).observe($("results"), { childList: true });
}

function pickBox(hit, index) {
  if (index === 0) last = null;  // a new list of results
  const box = el("input", {
    type: "checkbox", class: "pick-box", "data-id": hit.id, "aria-label": `Select ${hit.title || hit.name}`,
  });
  box.addEventListener("click", (e) => toggle(box, e.shiftKey));
  return el("label", { class: "pick", title: "Select (shift-click selects a range)" }, box);
}

function toggle(box, range) {
  const all = boxes();
  const at = all.indexOf(box);
  if (range && last !== null && last < all.length && last !== at) {
    const [from, to] = last < at ? [last, at] : [at, last];
    for (const b of all.slice(from, to + 1)) b.checked = box.checked;
  }
  last = at;
  update();
}

// none selected: the bar goes, so the focus goes back to the results
function clear() {
  setAll(false);
  if (boxes().length) boxes()[0].focus();
}

function setAll(on) {
  for (const b of boxes()) b.checked = on;
  last = null;
  update();
}

// the bar: how many are selected, and what can be done with them
function update() {
  const all = boxes();
  for (const b of all) b.closest("li").classList.toggle("picked", b.checked);
  const n = all.filter((b) => b.checked).length;
  $("sel-bar").hidden = !n;
  document.body.classList.toggle("selecting", n > 0);
  $("sel-count").textContent = `${n} selected`;
  $("sel-all").textContent = `Select all on page (${all.length})`;
  $("sel-all").disabled = n === all.length;
  const collection = $("collection").value;
  $("sel-uncollect").hidden = !collection;
  $("sel-uncollect").textContent = `Remove from “${collection}”`;
}

// ---- tag / untag ---------------------------------------------------------------------------
function openTagDialog(actions) {
  const ids = selectedIds();
  const dialog = $("sel-tag-dialog");
  $("sel-tag-title").textContent = `Tag ${plural(ids.length, "image")}`;
  say($("sel-tag-error"), "");
  $("sel-tag-form").onsubmit = async (e) => {
    e.preventDefault();
    const tag = $("sel-tag-input").value.trim();
    const adding = !e.submitter || e.submitter.value !== "remove";
    if (!tag) { say($("sel-tag-error"), "Type a tag first.", true); return; }
    try {
      const r = adding ? await tagImages(ids, [tag]) : await untagImages(ids, [tag]);
      dialog.close();
      $("sel-tag-input").value = "";
      const had = r.images - r.changed;
      notify(adding
        ? `Tagged ${plural(r.images, "image")} “${r.tags[0]}”${had ? ` (${had} had it already)` : ""}.`
        : `Removed “${r.tags[0]}” from ${r.changed} of ${plural(r.images, "image")}.`);
      const { gone, filters } = await refreshLists();
      // the tag filter sees them differently now; a tag no image has any more is no filter
      const filtered = $("tag").value.trim().toLowerCase();
      if (filtered && !filters.tags.some((t) => t.value === filtered)) $("tag").value = "";
      if (gone || filtered) actions.search();
    } catch (err) {
      say($("sel-tag-error"), err.message, true);
    }
  };
  dialog.showModal();
  $("sel-tag-input").focus();
}

// ---- collections -------------------------------------------------------------------------
function openCollectDialog() {
  const ids = selectedIds();
  const dialog = $("sel-col-dialog");
  $("sel-col-title").textContent = `Add ${plural(ids.length, "image")} to a collection`;
  const names = [...$("collection").options].slice(1).map((o) => o.value);
  $("sel-col-list").replaceChildren(...names.map((n) => el("option", { value: n })));
  $("sel-col-input").value = $("collection").value || "";
  say($("sel-col-error"), "");
  $("sel-col-form").onsubmit = async (e) => {
    e.preventDefault();
    const name = $("sel-col-input").value.trim();
    if (!name) { say($("sel-col-error"), "Choose a collection or type a new name.", true); return; }
    try {
      const c = await addToCollection(name, ids);
      dialog.close();
      notify(`Added to “${c.name}”, which now holds ${plural(c.images, "image")}.`);
      await refreshLists();
    } catch (err) {
      say($("sel-col-error"), err.message, true);
    }
  };
  dialog.showModal();
  $("sel-col-input").focus();
}

async function takeOut(actions) {
  const name = $("collection").value;
  const ids = selectedIds();
  try {
    const c = await removeFromCollection(name, ids);
    await refreshLists();
    actions.search();  // the collection browsed lost them: show what is left
    notify(`Took ${plural(ids.length, "image")} out of “${c.name}” (they stay indexed).`);
  } catch (err) {
    notify(err.message, true);
  }
}
