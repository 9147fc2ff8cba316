// What the library views share: refreshing the filter lists after a change, and counting in words.
import { getFilters } from "./api.js";
import { $ } from "./dom.js";
import { renderFilterOptions } from "./render.js";

export const plural = (n, word) => `${n.toLocaleString()} ${word}${n === 1 ? "" : "s"}`;

// Fill the folder, type, tag and collection lists again from the server (after tags, collections or
// folders changed), keeping what is chosen where it still exists. Resolves to the filter options and
// whether a chosen folder or collection is gone (then the results need a new search).
export async function refreshLists() {
  const f = await getFilters();
  const chosen = {};
  for (const id of ["folder", "type", "collection"]) {
    const select = $(id);
    chosen[id] = select.value;
    select.replaceChildren(select.options[0]);  // "All ...": the rest comes from the server
  }
  $("tag-list").replaceChildren();
  renderFilterOptions(f);
  let gone = false;
  for (const [id, value] of Object.entries(chosen)) {
    $(id).value = value;
    if ($(id).value !== value) { $(id).value = ""; gone = true; }
  }
  if (!f.collections.length) $("collection-label").hidden = true;
  return { filters: f, gone };
}

// A dialog's one-line outcome: what was done, or why it failed (role="status"/"alert" set by the caller).
export function say(node, text, isError = false) {
  node.textContent = text;
  node.classList.toggle("lib-error", isError);
  node.hidden = !text;
}

// A passing note at the foot of the page, for what a closed dialog or the selection bar did.
let noteTimer = null;
export function notify(text, isError = false) {
  const note = $("lib-note");
  say(note, text, isError);
  clearTimeout(noteTimer);
  noteTimer = setTimeout(() => { note.hidden = true; }, isError ? 12000 : 6000);
}
