// Rendering the page around the results: the grid and its cards, facets, filter controls,
// the query chip, status, empty and error states. DOM built with createElement and text only.
//
// What the user can do from here (search again, open a card, find similar) is passed in as
// callbacks, so this module depends on no other part of the page's behaviour.
import { thumbnailUrl } from "./api.js";
import { $, el } from "./dom.js";
import { filterCount, filtersActive, rangeFieldsOf, state } from "./state.js";

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

// ---- the Filters button: shows or hides the filter controls and the facets --------------------
// Closed at first on a phone (the results come first), open on wider screens.
export function setupFiltersToggle() {
  const button = $("filters-toggle");
  const show = (open) => {
    button.setAttribute("aria-expanded", String(open));
    document.body.classList.toggle("filters-closed", !open);
  };
  show(!window.matchMedia("(max-width: 600px)").matches);
  button.addEventListener("click", () => show(button.getAttribute("aria-expanded") !== "true"));
}

function renderFilterCount() {
  const n = filterCount();
  $("filters-count").textContent = n ? String(n) : "";
  $("filters-toggle").setAttribute("aria-label", n ? `Filters, ${n} set` : "Filters");
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
  renderFilterCount();
}

// a facet with more values than this is a searchable list, not a row of chips
const CHIPS = 12;

function renderFacets(data, onChange) {
  const box = $("facets");
  box.replaceChildren();
  for (const [key, values] of Object.entries(data.facets || {})) {
    const open = values.filter((v) => !state.where.includes(`${key}=${v.value}`));
    if (values.length < 2 || !open.length) continue;
    const pick = (v) => { state.where.push(`${key}=${v.value}`); onChange(); };
    box.append(open.length > CHIPS ? facetList(key, open, pick) : facetChips(key, open, pick));
  }
}

function facetChips(key, values, pick) {
  const name = key.replace(/_/g, " ");
  const group = el("div", { class: "facet", role: "group", "aria-label": name },
    el("span", { class: "facet-name", text: name }));
  for (const v of values) {
    group.append(el("button", {
      type: "button", class: "chip-button", title: `Only ${name} ${v.value}`, onclick: () => pick(v),
    }, `${v.value} (${v.count})`));
  }
  return group;
}

// many values (brands, categories): a box to filter them by what is typed, and the list with counts
function facetList(key, values, pick) {
  const name = key.replace(/_/g, " ");
  const id = `facet-${key.replace(/[^\w-]/g, "_")}`;
  const input = el("input", {
    type: "search", id: `${id}-filter`, class: "facet-filter", autocomplete: "off",
    placeholder: `Filter ${values.length} values`, "aria-controls": `${id}-list`,
  });
  const list = el("ul", { id: `${id}-list`, class: "facet-list", "aria-label": `${name}: values and counts` });
  for (const v of values) {
    list.append(el("li", {}, el("button", {
      type: "button", class: "facet-value", title: `Only ${name} ${v.value}`, onclick: () => pick(v),
    }, el("span", { class: "value", text: v.value }), el("span", { class: "count", text: `${v.count}` }))));
  }
  const none = el("p", { class: "facet-none muted", role: "status", text: "" });
  input.addEventListener("input", () => {
    const typed = input.value.trim().toLowerCase();
    let shown = 0;
    for (const li of list.children) {
      li.hidden = Boolean(typed) && !li.querySelector(".value").textContent.toLowerCase().includes(typed);
      if (!li.hidden) shown++;
    }
    none.textContent = shown ? "" : `No ${name} matches “${input.value.trim()}”`;
  });
  input.addEventListener("keydown", (e) => {  // Enter picks the first value shown
    const first = [...list.children].find((li) => !li.hidden);
    if (e.key === "Enter" && first) { e.preventDefault(); first.querySelector("button").click(); }
  });
  return el("div", { class: "facet facet-many", role: "group", "aria-labelledby": `${id}-name` },
    el("label", { class: "facet-name", id: `${id}-name`, for: input.id, text: name }), input, list, none);
}

// ---- results -----------------------------------------------------------------------------
// actions: {search(), open(hit), similar(hit), pick(hit, index) (optional)}
export function renderResults(data, reset, actions) {
  const list = $("results");
  if (reset) list.replaceChildren();
  const start = list.children.length;
  data.results.forEach((hit, i) => list.append(card(hit, start + i, actions)));
  // room for a line of product or document facts on every card when any card has them
  list.classList.toggle("with-facts", state.hits.some((h) => h.product || h.document));
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

// actions.pick(hit, index), when set, gives an element put first in the card (e.g. a checkbox)
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
    typeof actions.pick === "function" ? actions.pick(hit, index) : null,
    open,
    badge,
    el("div", { class: "meta" },
      el("span", { class: "name", title: hit.title ? `${hit.title}\n${hit.path}` : hit.path, text: label }),
      cardFacts(hit),
      why),
    similar);
}

// the price, brand and SKU imported for a product; a document's issuer, date and total
function cardFacts(hit) {
  const p = hit.product;
  if (p) {
    return el("span", { class: "facts" },  // price and brand, then the SKU on a line of its own
      p.price ? el("span", { class: "price", text: priceText(p) }) : null,
      p.price && p.brand ? " · " : "",
      p.brand ? el("span", { class: "brand", text: p.brand }) : null,
      (p.price || p.brand) && p.sku ? el("br") : null,
      p.sku ? el("span", { class: "sku", text: `SKU ${p.sku}` }) : null);
  }
  const d = hit.document;
  if (d) {  // what it is and how much; then when and who issued it
    const total = d.total ? `total ${d.currency ? d.currency + " " : ""}${d.total}` : "";
    const about = [d.kind, d.number ? `no. ${d.number}` : "", d.date, total, d.issuer].filter(Boolean).join(" · ");
    const second = [d.date, d.issuer].filter(Boolean).join(" · ");
    return el("span", { class: "facts doc", title: about },
      el("span", { class: "kind", text: d.kind }),
      total ? " · " : "", total ? el("span", { class: "total", text: total }) : null,
      second ? el("br") : null, second);
  }
  return el("span", { class: "facts" });
}

// "€12.50" for a price with a currency code, else the price as imported (with its currency)
function priceText(p) {
  const n = Number(p.price);
  if (p.currency && /^[a-z]{3}$/i.test(p.currency.trim()) && Number.isFinite(n)) {
    try {
      return new Intl.NumberFormat(undefined, { style: "currency", currency: p.currency.trim().toUpperCase() })
        .format(n);
    } catch (_) { /* not a currency the browser knows */ }
  }
  return p.currency ? `${p.currency} ${p.price}` : p.price;
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
  for (const x of rangeFieldsOf(fields)) {
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
