// Rendering the page around the results: the grid and its cards, facets, filter controls,
// the query chip, status, empty and error states. DOM built with createElement and text only.
//
// What the user can do from here (search again, open a card, find similar) is passed in as
// callbacks, so this module depends on no other part of the page's behaviour.
import { thumbnailUrl } from "./api.js";
import { $, el } from "./dom.js";
import { filtersActive, state } from "./state.js";

export function setBusy(busy) {
  document.body.classList.toggle("busy", busy);
  $("results").setAttribute("aria-busy", busy ? "true" : "false");
}

function describeQuery() {
  const parts = [];
  if (state.q) parts.push(`“${state.q}”`);
  if (state.image) parts.push("your image");
  if (state.like) parts.push(`images like ${state.like.name}`);
  if (!parts.length) parts.push("the filters");
  return parts.join(" + ");
}

// ---- field filters and facets ------------------------------------------------------------
// onChange(): run the search again after a filter was added or removed
export function renderActiveFilters(onChange) {
  const box = $("active-filters");
  box.replaceChildren();
  state.where.forEach((w, i) => {
    box.append(el("button", {
      type: "button", class: "chip-button", title: `Remove the filter ${w}`,
      onclick: () => { state.where.splice(i, 1); onChange(); },
    }, `${w.replace("=", ": ")} ×`));
  });
}

function renderFacets(data, onChange) {
  const box = $("facets");
  box.replaceChildren();
  for (const [key, values] of Object.entries(data.facets || {})) {
    const open = values.filter((v) => !state.where.includes(`${key}=${v.value}`));
    if (values.length < 2 || !open.length) continue;
    const group = el("div", { class: "facet", role: "group", "aria-label": key.replace(/_/g, " ") },
      el("span", { class: "facet-name", text: key.replace(/_/g, " ") }));
    for (const v of open.slice(0, 8)) {
      group.append(el("button", {
        type: "button", class: "chip-button", title: `Only ${key} ${v.value}`,
        onclick: () => { state.where.push(`${key}=${v.value}`); onChange(); },
      }, `${v.value} (${v.count})`));
    }
    box.append(group);
  }
}

// ---- results -----------------------------------------------------------------------------
// actions: {search(), open(hit), similar(hit)}
export function renderResults(data, reset, actions) {
  const list = $("results");
  if (reset) list.replaceChildren();
  const start = list.children.length;
  data.results.forEach((hit, i) => list.append(card(hit, start + i, actions)));
  if (reset) renderFacets(data, actions.search);
  const shown = state.hits.length;
  $("status").textContent = shown
    ? `${shown} of ${data.total} for ${describeQuery()} · ${data.mode} · ${Math.round(data.took_ms)} ms`
    : `No results for ${describeQuery()}`;
  $("more").hidden = shown >= data.total;
  const empty = $("empty");
  empty.hidden = shown > 0;
  if (!shown && (state.image || state.like) && !state.q && !filtersActive()) {
    const picture = state.like || state.image;
    $("empty-title").textContent = `Nothing here looks like ${picture.name}.`;
    $("empty-hint").textContent =
      "An image counts as similar when it is among the nearest images of the one it is compared with. " +
      "Describe what you want in words instead, or search the whole index with a related image.";
  } else if (!shown) {
    $("empty-title").textContent = `No images match ${describeQuery()}.`;
    const hints = [];
    if (filtersActive()) hints.push("remove a filter");
    if (Number($("balance").value) > 50) hints.push("move the balance toward Semantic");
    if (state.q && state.q.split(/\s+/).length > 3) hints.push("use fewer words");
    hints.push("describe what the image shows, or type words that appear in it");
    $("empty-hint").textContent = `Try to ${hints.join(", or ")}.`;
  }
}

// relevance (0 to 1) as the page shows it: two decimals
export function relevanceText(hit) {
  return hit.relevance === null || hit.relevance === undefined ? "" : hit.relevance.toFixed(2);
}

function card(hit, index, actions) {
  const figure = relevanceText(hit);
  const reason = (hit.reasons || [])[0] || "";
  const why = el("span", { class: "reason", title: (hit.reasons || []).join("; ") },
    figure ? el("span", { class: "relevance", title: "Relevance, from 0 to 1", text: figure }) : null,
    figure && reason ? " · " : "", reason);
  const label = hit.title || hit.name;
  const open = el("button", {
    type: "button",
    class: "thumb",
    "aria-label": `${label}${hit.caption ? ": " + hit.caption : ""}. Show details`,
    onclick: () => actions.open(hit),
  },
  el("img", {
    src: thumbnailUrl(hit, 256),
    alt: hit.caption || hit.name,
    loading: index < 12 ? "eager" : "lazy",
    width: 256, height: 256,
  }));
  const similar = el("button", {
    type: "button",
    class: "similar",
    title: `Find images similar to ${hit.name}`,
    onclick: () => actions.similar(hit),
  }, "Find similar");
  const badge = hit.duplicates
    ? el("span", { class: "badge", title: "Near duplicates of this image are indexed" },
      `${hit.duplicates + 1} copies`)
    : null;
  return el("li", { class: "card", "data-id": hit.id },
    open,
    badge,
    el("div", { class: "meta" },
      el("span", { class: "name", title: hit.path, text: label }),
      why),
    similar);
}

// ---- intro, empty and error states ---------------------------------------------------------
// no query yet: clear the results (renderIntro fills in the invitation once the stats are in)
export function showIntro() {
  $("results").replaceChildren();
  $("more").hidden = true;
  $("status").textContent = "";
  hideError();
}

export function renderIntro(stats) {
  const empty = $("empty");
  empty.hidden = false;
  if (!stats.images) {
    $("empty-title").textContent = "The index is empty.";
    $("empty-hint").textContent = "Index a folder with: searchengine index FOLDER";
  } else {
    $("empty-title").textContent = `Search ${stats.ok.toLocaleString()} images`;
    $("empty-hint").textContent =
      "Describe what you are looking for, type words that appear in an image, " +
      "or drop an image on the page to find similar ones.";
  }
}

export function showError(message) {
  const box = $("error");
  box.textContent = `Search failed: ${message}`;
  box.hidden = false;
  $("empty").hidden = true;
}

export function hideError() { $("error").hidden = true; }

// ---- the query chip: the image searched with -------------------------------------------------
export function setChip(src, text) {
  $("query-chip").hidden = !text;
  $("query-chip-img").src = src || "";
  $("query-chip-text").textContent = text || "";
}

// ---- filter controls (from /api/filters) -------------------------------------------------------
export function renderFilterOptions(f) {
  const folder = $("folder");
  const roots = f.folders.filter((a) => !f.folders.some((b) => b !== a && a.value.startsWith(b.value + "/")));
  for (const x of f.folders) {
    const root = roots.find((r) => x.value === r.value || x.value.startsWith(r.value + "/"));
    const rel = root && x.value !== root.value ? x.value.slice(root.value.length + 1) : x.value;
    const label = root && x.value !== root.value ? `${root.value.split("/").pop()}/${rel}` : x.value;
    folder.append(el("option", { value: x.value, title: x.value }, `${label} (${x.count})`));
  }
  for (const x of f.types) $("type").append(el("option", { value: x.value }, `${x.value} (${x.count})`));
  for (const x of f.tags) $("tag-list").append(el("option", { value: x.value }, `${x.count}`));
  if (f.collections.length) {
    $("collection-label").hidden = false;
    for (const c of f.collections) $("collection").append(el("option", { value: c.value }, `${c.value} (${c.count})`));
  }
}

// from/to inputs for up to two numeric fields; onChange(): run the search again
export function renderRanges(fields, onChange) {
  for (const x of fields.filter((y) => y.numeric && y.distinct > 2 && y.key !== "year").slice(0, 2)) {
    const name = x.key.replace(/_/g, " ");
    const from = el("input", { type: "number", step: "any", "data-key": x.key, "data-op": ">=",
      placeholder: `${x.min}`, "aria-label": `${name} from`, class: "range" });
    const to = el("input", { type: "number", step: "any", "data-key": x.key, "data-op": "<=",
      placeholder: `${x.max}`, "aria-label": `${name} up to`, class: "range" });
    for (const input of [from, to]) input.addEventListener("change", () => onChange());
    $("ranges").append(el("label", {}, `${name[0].toUpperCase()}${name.slice(1)}`, from, "–", to));
  }
}

// ---- indexing progress -------------------------------------------------------------------------
export function renderIndexing(job) {
  const box = $("indexing");
  box.hidden = job.state !== "running";
  if (job.state === "running") {
    $("indexing-bar").max = Math.max(job.todo, 1);
    $("indexing-bar").value = job.done;
    const rate = job.rate ? ` · ${job.rate} images/s` : "";
    const eta = job.eta_seconds !== null ? ` · about ${Math.ceil(job.eta_seconds)} s left` : "";
    $("indexing-text").textContent = `Indexing ${job.done} of ${job.todo}${rate}${eta}`;
  }
}
