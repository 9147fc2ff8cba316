// The page's one state object, the search query it describes, and the URL sync (?q=).
import { $ } from "./dom.js";

export const PAGE = 24;

export const state = {
  q: "",
  image: null,        // a File to search with
  like: null,         // {id, name, thumbnail}: "find similar"
  offset: 0,
  hits: [],
  total: 0,
  lastFocus: null,
  detailHit: null,
  detailData: null,
  where: [],          // field conditions: "brand=Acme", "price>=10"
  facetKeys: [],      // fields worth counting (few distinct values)
};

// ---- URL sync --------------------------------------------------------------------------------
export function queryFromUrl() {
  return new URLSearchParams(location.search).get("q");
}

export function syncUrl() {
  const url = new URL(location.href);
  if (state.q) url.searchParams.set("q", state.q); else url.searchParams.delete("q");
  history.replaceState(null, "", url);
}

// ---- the query: the state plus the filter controls --------------------------------------------
export function params() {
  const p = new URLSearchParams();
  if (state.q) p.set("q", state.q);
  if (state.like) p.set("like", state.like.id);
  const b = Number($("balance").value) / 100;
  if (b === 0) p.set("mode", "vector");
  else if (b === 1 && state.q && !state.image && !state.like) p.set("mode", "keyword");
  else {
    p.set("vector_weight", (2 * (1 - b)).toFixed(2));
    p.set("keyword_weight", (2 * b).toFixed(2));
  }
  if ($("folder").value) p.set("folder", $("folder").value);
  if ($("type").value) p.append("type", $("type").value);
  if ($("tag").value.trim()) p.append("tag", $("tag").value.trim());
  if ($("collection").value) p.set("collection", $("collection").value);
  for (const w of state.where.concat(rangeConditions())) p.append("where", w);
  for (const k of state.facetKeys) p.append("facet", k);
  p.set("limit", PAGE);
  p.set("offset", state.offset);
  return p;
}

export function rangeConditions() {
  const out = [];
  for (const input of document.querySelectorAll("#ranges input")) {
    if (input.value.trim() !== "") out.push(`${input.dataset.key}${input.dataset.op}${input.value.trim()}`);
  }
  return out;
}

export function filtersActive() {
  return Boolean($("folder").value || $("type").value || $("tag").value.trim() || $("collection").value ||
    state.where.length || rangeConditions().length);
}

export function hasQuery() {
  return Boolean(state.q || state.image || state.like || filtersActive());
}
