// The search page: plain JavaScript modules over the JSON API, no build step.
// This entry module wires the events; the others do the work:
//   api.js     every request to the HTTP API
//   state.js   the state object, the query it describes, the URL sync (?q=)
//   render.js  the results grid, facets, filters, empty and error states
//   detail.js  the detail panel
//   library.js selection, tags, collections and folders (select.js, collections.js, folders.js)
//   review.js  catalogue import, export download, duplicates review (catalogue.js, exports.js, dups.js)
//   lists.js   the filter lists again after a change, and short notes
//   dom.js     $ and el helpers
import { cancelSearch, getFilters, getIndexJob, getStats, isAbort, searchImages, thumbnailUrl } from "./api.js";
import { closeDetail, openDetail, setupDetail } from "./detail.js";
import { setupLibrary } from "./library.js";
import { refreshLists } from "./lists.js";
import { setupReview } from "./review.js";
import { $ } from "./dom.js";
import {
  hideError, renderActiveFilters, renderFilterOptions, renderIndexing, renderIntro, renderRanges,
  renderResults, setBusy, setChip, setupFiltersToggle, showError, showIntro,
} from "./render.js";
import { facetKeysOf, hasQuery, params, queryFromUrl, state, syncUrl } from "./state.js";

function debounce(fn, ms) {
  let t;
  return (...args) => { clearTimeout(t); t = setTimeout(() => fn(...args), ms); };
}

// ---- search --------------------------------------------------------------------------------
const actions = { search: () => search(), open: openDetail, similar: findSimilar };

async function search(reset = true) {
  if (reset) { state.offset = 0; state.hits = []; }
  syncUrl();
  renderActiveFilters(actions.search);
  if (!hasQuery()) {
    cancelSearch();
    showIntro();
    getStats().then(renderIntro).catch((err) => showError(err.message));
    return;
  }
  setBusy(true);
  try {
    const data = await searchImages(params(), state.image);
    state.total = data.total;
    state.hits = reset ? data.results : state.hits.concat(data.results);
    hideError();
    renderResults(data, reset, actions);
  } catch (err) {
    if (isAbort(err)) return;
    showError(err.message);
  } finally {
    setBusy(false);
  }
}

// ---- find similar and image queries ---------------------------------------------------------
function findSimilar(hit) {
  closeDetail(false);
  // a fresh query: the image alone (type words to refine it: "like this, but red")
  $("q").value = "";
  state.q = "";
  state.image = null;
  state.like = { id: hit.id, name: hit.name, thumbnail: hit.thumbnail };
  setChip(thumbnailUrl(hit, 128), `Similar to ${hit.name}`);
  search();
  $("q").focus();
}

function useImage(file) {
  if (!file) return;
  if (!file.type.startsWith("image/")) {
    showError(`${file.name} is not an image`);
    return;
  }
  state.like = null;
  state.image = file;
  setChip(URL.createObjectURL(file), `Similar to ${file.name}`);
  search();
}

function clearChip() {
  state.image = null;
  state.like = null;
  setChip(null, null);
  $("image-file").value = "";
  search();
  $("q").focus();
}

// ---- filters and indexing progress -------------------------------------------------------------
async function loadFilters() {
  setupFiltersToggle();  // the controls and facets: closed at first on a phone
  try {
    const f = await getFilters();
    renderFilterOptions(f);
    state.facetKeys = facetKeysOf(f.fields);  // every imported field worth counting
    renderRanges(f.fields, actions.search);
    // a search from the URL ran before the fields were known: again, now with its facets
    if (state.facetKeys.length && hasQuery()) actions.search();
  } catch (err) {
    showError(err.message);
  }
}

// a catalogue import brought new fields: new filter lists, facets and ranges, and a new search
async function fieldsChanged(e) {
  if (e.detail && e.detail.what !== "metadata") return;
  try {
    const { filters } = await refreshLists();
    state.facetKeys = facetKeysOf(filters.fields);
    $("ranges").replaceChildren();
    renderRanges(filters.fields, actions.search);
    actions.search();
  } catch (err) {
    showError(err.message);
  }
}

async function pollIndexing() {
  try {
    const job = await getIndexJob();
    renderIndexing(job);
    if (job.state === "running") setTimeout(pollIndexing, 2000);
  } catch (_) { /* the page works without it */ }
}

// ---- wiring ------------------------------------------------------------------------------------
function init() {
  const q = $("q");
  const fromUrl = queryFromUrl();
  if (fromUrl) { q.value = fromUrl; state.q = fromUrl.trim(); }
  const typed = debounce(() => { state.q = q.value.trim(); search(); }, 200);
  q.addEventListener("input", typed);
  $("search-form").addEventListener("submit", (e) => { e.preventDefault(); state.q = q.value.trim(); search(); });
  for (const id of ["folder", "type", "collection"]) $(id).addEventListener("change", () => search());
  $("tag").addEventListener("change", () => search());
  $("balance").addEventListener("input", debounce(() => {
    const b = Number($("balance").value);
    $("balance").setAttribute("aria-valuetext", b === 50 ? "balanced" : b < 50 ? `${100 - b}% semantic` : `${b}% keyword`);
    search();
  }, 150));
  $("more").addEventListener("click", () => { state.offset = state.hits.length; search(false); });
  $("pick-image").addEventListener("click", () => $("image-file").click());
  $("image-file").addEventListener("change", (e) => useImage(e.target.files[0]));
  $("clear-chip").addEventListener("click", clearChip);
  setupDetail({ search: actions.search, findSimilar });  // also: Escape closes the panel
  setupLibrary(actions);  // select results to tag or collect them; collections and folders views
  setupReview(actions);  // import a catalogue (preview, apply), export, review near duplicates
  document.addEventListener("library-changed", fieldsChanged);

  document.addEventListener("keydown", (e) => {
    if (e.key === "/" && !["INPUT", "SELECT", "TEXTAREA"].includes(document.activeElement.tagName)) {
      e.preventDefault(); q.focus(); q.select();
    }
  });

  // drag and drop an image anywhere
  let depth = 0;
  const overlay = $("drop-overlay");
  const hasFiles = (e) => e.dataTransfer && [...e.dataTransfer.types].includes("Files");
  window.addEventListener("dragenter", (e) => { if (hasFiles(e)) { depth++; overlay.hidden = false; } });
  window.addEventListener("dragleave", () => { depth = Math.max(0, depth - 1); if (!depth) overlay.hidden = true; });
  window.addEventListener("dragover", (e) => { if (hasFiles(e)) e.preventDefault(); });
  window.addEventListener("drop", (e) => {
    if (!hasFiles(e)) return;
    e.preventDefault();
    depth = 0;
    overlay.hidden = true;
    useImage(e.dataTransfer.files[0]);
  });

  loadFilters();
  pollIndexing();
  search();
}

document.addEventListener("DOMContentLoaded", init);
