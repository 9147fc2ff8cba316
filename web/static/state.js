// The page's one state object, the search query it describes, and the URL sync (?q=).
import { $ } from "./dom.js";

export const PAGE = 24;
// values counted per facet field: enough for a searchable list of every brand or category
export const FACET_LIMIT = 200;

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
  facetKeys: [],      // fields worth counting (see facetKeysOf)
};

// ---- facets: which imported fields to count ----------------------------------------------------
// Not facets: names, codes and free text (nearly one value per image), and numbers (those get ranges).
const NOT_FACETS = ["title", "description", "sku", "id", "name", "url", "captions", "text", "alt_text"];
// shop fields first, then the fields most images have
const FIRST = ["brand", "category", "colour", "base_colour", "gender", "article_type", "size"];

// numeric fields given from/to inputs: the first two with more than two values (a year is a facet)
export function rangeFieldsOf(fields) {
  return fields.filter((x) => x.numeric && x.distinct > 2 && x.key !== "year").slice(0, 2);
}

// fields: /api/filters `fields`. Every field with few values, and the shop's fields however many
// values they have (a searchable list); at most 10, what the API counts in one search.
export function facetKeysOf(fields) {
  const ranged = rangeFieldsOf(fields).map((x) => x.key);
  const rank = (x) => (FIRST.includes(x.key) ? FIRST.indexOf(x.key) : FIRST.length);
  const worth = (x) => (x.numeric ? x.distinct <= 12
    : FIRST.includes(x.key) || x.distinct <= 12 || x.distinct <= 0.8 * x.images);
  return fields
    .filter((x) => !ranged.includes(x.key) && !NOT_FACETS.includes(x.key) && x.distinct >= 2 && worth(x))
    .sort((a, b) => rank(a) - rank(b) || b.images - a.images)
    .map((x) => x.key)
    .slice(0, 10);
}

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
  if (!state.offset) {  // "Show more" keeps the facets counted for the first page
    for (const k of state.facetKeys) p.append("facet", k);
    if (state.facetKeys.length) p.set("facet_limit", FACET_LIMIT);
  }
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

// how many filters are set (the controls, the field conditions and the ranges)
export function filterCount() {
  const controls = [$("folder").value, $("type").value, $("tag").value.trim(), $("collection").value];
  return controls.filter(Boolean).length + state.where.length + rangeConditions().length;
}

export function filtersActive() {
  return filterCount() > 0;
}

export function hasQuery() {
  return Boolean(state.q || state.image || state.like || filtersActive());
}
