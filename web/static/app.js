// The search page: plain JavaScript over the JSON API, no build step.
"use strict";

const $ = (id) => document.getElementById(id);
const PAGE = 24;

const state = {
  q: "",
  image: null,        // a File to search with
  like: null,         // {id, name, thumbnail}: "find similar"
  offset: 0,
  hits: [],
  total: 0,
  controller: null,
  lastFocus: null,
  detailHit: null,
  detailData: null,
  where: [],          // field conditions: "brand=Acme", "price>=10"
  facetKeys: [],      // fields worth counting (few distinct values)
};

// ---- helpers ---------------------------------------------------------------------
function el(tag, attrs = {}, ...children) {
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

function debounce(fn, ms) {
  let t;
  return (...args) => { clearTimeout(t); t = setTimeout(() => fn(...args), ms); };
}

function bytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 ** 2).toFixed(1)} MB`;
}

async function api(url, options = {}) {
  const r = await fetch(url, options);
  let body = null;
  try { body = await r.json(); } catch (_) { /* not JSON */ }
  if (!r.ok) {
    let msg = body && body.detail;
    if (Array.isArray(msg)) msg = msg.map((d) => `${(d.loc || []).slice(-1)[0]}: ${d.msg}`).join("; ");
    throw new Error(msg || `${r.status} ${r.statusText}`);
  }
  return body;
}

// ---- query ---------------------------------------------------------------------------
function params() {
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

function rangeConditions() {
  const out = [];
  for (const input of document.querySelectorAll("#ranges input")) {
    if (input.value.trim() !== "") out.push(`${input.dataset.key}${input.dataset.op}${input.value.trim()}`);
  }
  return out;
}

function filtersActive() {
  return Boolean($("folder").value || $("type").value || $("tag").value.trim() || $("collection").value ||
    state.where.length || rangeConditions().length);
}

async function search(reset = true) {
  if (reset) { state.offset = 0; state.hits = []; }
  const url = new URL(location.href);
  if (state.q) url.searchParams.set("q", state.q); else url.searchParams.delete("q");
  history.replaceState(null, "", url);
  renderActiveFilters();
  if (!state.q && !state.image && !state.like && !filtersActive()) {
    if (state.controller) state.controller.abort();
    showIntro();
    return;
  }
  if (state.controller) state.controller.abort();
  state.controller = new AbortController();
  const options = { signal: state.controller.signal };
  if (state.image) {
    const form = new FormData();
    form.append("image", state.image);
    Object.assign(options, { method: "POST", body: form });
  }
  setBusy(true);
  try {
    const data = await api(`/api/search?${params()}`, options);
    state.total = data.total;
    state.hits = reset ? data.results : state.hits.concat(data.results);
    hideError();
    render(data, reset);
  } catch (err) {
    if (err.name === "AbortError") return;
    showError(err.message);
  } finally {
    setBusy(false);
  }
}

function setBusy(busy) {
  document.body.classList.toggle("busy", busy);
  $("results").setAttribute("aria-busy", busy ? "true" : "false");
}

// ---- rendering -----------------------------------------------------------------------
function describeQuery() {
  const parts = [];
  if (state.q) parts.push(`“${state.q}”`);
  if (state.image) parts.push("your image");
  if (state.like) parts.push(`images like ${state.like.name}`);
  if (!parts.length) parts.push("the filters");
  return parts.join(" + ");
}

function renderActiveFilters() {
  const box = $("active-filters");
  box.replaceChildren();
  state.where.forEach((w, i) => {
    box.append(el("button", {
      type: "button", class: "chip-button", title: `Remove the filter ${w}`,
      onclick: () => { state.where.splice(i, 1); search(); },
    }, `${w.replace("=", ": ")} ×`));
  });
}

function renderFacets(data) {
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
        onclick: () => { state.where.push(`${key}=${v.value}`); search(); },
      }, `${v.value} (${v.count})`));
    }
    box.append(group);
  }
}

function render(data, reset) {
  const list = $("results");
  if (reset) list.replaceChildren();
  const start = list.children.length;
  data.results.forEach((hit, i) => list.append(card(hit, start + i)));
  if (reset) renderFacets(data);
  const shown = state.hits.length;
  $("status").textContent = shown
    ? `${shown} of ${data.total} for ${describeQuery()} · ${data.mode} · ${Math.round(data.took_ms)} ms`
    : "";
  $("more").hidden = shown >= data.total;
  const empty = $("empty");
  empty.hidden = shown > 0;
  if (!shown) {
    $("empty-title").textContent = `No images match ${describeQuery()}.`;
    const hints = [];
    if (filtersActive()) hints.push("remove a filter");
    if (Number($("balance").value) > 50) hints.push("move the balance toward Semantic");
    if (state.q && state.q.split(/\s+/).length > 3) hints.push("use fewer words");
    hints.push("describe what the image shows, or type words that appear in it");
    $("empty-hint").textContent = `Try to ${hints.join(", or ")}.`;
  }
}

function card(hit, index) {
  const why = hit.legs
    ? Object.entries(hit.legs).map(([leg, v]) => `${leg === "vector" ? "semantic" : leg} #${v.rank}`).join(", ")
    : "";
  const label = hit.title || hit.name;
  const open = el("button", {
    type: "button",
    class: "thumb",
    "aria-label": `${label}${hit.caption ? ": " + hit.caption : ""}. Show details`,
    onclick: () => openDetail(hit),
  },
  el("img", {
    src: `${hit.thumbnail}?size=256`,
    alt: hit.caption || hit.name,
    loading: index < 12 ? "eager" : "lazy",
    width: 256, height: 256,
  }));
  const similar = el("button", {
    type: "button",
    class: "similar",
    title: `Find images similar to ${hit.name}`,
    onclick: () => findSimilar(hit),
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
      el("span", { class: "legs", text: why })),
    similar);
}

function showIntro() {
  $("results").replaceChildren();
  $("more").hidden = true;
  $("status").textContent = "";
  hideError();
  api("/api/stats").then((s) => {
    const empty = $("empty");
    empty.hidden = false;
    if (!s.images) {
      $("empty-title").textContent = "The index is empty.";
      $("empty-hint").textContent = "Index a folder with: searchengine index FOLDER";
    } else {
      $("empty-title").textContent = `Search ${s.ok.toLocaleString()} images`;
      $("empty-hint").textContent =
        "Describe what you are looking for, type words that appear in an image, " +
        "or drop an image on the page to find similar ones.";
    }
  }).catch((err) => showError(err.message));
}

function showError(message) {
  const box = $("error");
  box.textContent = `Search failed: ${message}`;
  box.hidden = false;
  $("empty").hidden = true;
}

function hideError() { $("error").hidden = true; }

// ---- find similar and image queries ---------------------------------------------------
function setChip(src, text) {
  $("query-chip").hidden = !text;
  $("query-chip-img").src = src || "";
  $("query-chip-text").textContent = text || "";
}

function findSimilar(hit) {
  closeDetail(false);
  // a fresh query: the image alone (type words to refine it: "like this, but red")
  $("q").value = "";
  state.q = "";
  state.image = null;
  state.like = { id: hit.id, name: hit.name, thumbnail: hit.thumbnail };
  setChip(`${hit.thumbnail}?size=128`, `Similar to ${hit.name}`);
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

// ---- detail panel ------------------------------------------------------------------------
async function openDetail(hit) {
  state.lastFocus = document.activeElement;
  state.detailHit = hit;
  const panel = $("detail");
  $("detail-title").textContent = hit.title || hit.name;
  $("detail-caption").textContent = hit.caption || "";
  $("detail-img").src = `${hit.thumbnail}?size=1024`;
  $("detail-img").alt = hit.caption || hit.name;
  $("detail-open").href = hit.file;
  $("detail-boxes").replaceChildren();
  renderWhy(hit);
  panel.hidden = false;
  document.body.classList.add("detail-open");
  $("detail-close").focus();
  try {
    const d = await api(`/api/images/${hit.id}`);
    if (state.detailHit !== hit) return;
    state.detailData = d;
    renderDetail(d);
  } catch (err) {
    $("detail-facts").replaceChildren(el("dd", { class: "error", text: err.message }));
  }
}

function renderWhy(hit) {
  const why = $("detail-why");
  why.replaceChildren();
  const legs = hit.legs || {};
  if (legs.vector) {
    why.append(el("li", {
      text: `Looks like the query: #${legs.vector.rank} by meaning (cosine ${legs.vector.score.toFixed(3)})`,
    }));
  }
  if (legs.keyword) {
    const cov = legs.keyword.coverage !== null && legs.keyword.coverage !== undefined
      ? `, holds ${Math.round(legs.keyword.coverage * 100)}% of the query words`
      : "";
    why.append(el("li", {
      text: `Its words match: #${legs.keyword.rank} by keyword (BM25 ${legs.keyword.score.toFixed(2)}${cov})`,
    }));
  }
  if (!why.children.length) why.append(el("li", { text: "No explanation for this result." }));
  if (hit.rank) why.append(el("li", { class: "muted", text: `Fused score ${hit.score.toFixed(4)}, rank ${hit.rank}` }));
}

function renderDetail(d) {
  $("detail-caption").textContent = d.caption || "No caption.";
  const tags = $("detail-tags");
  tags.replaceChildren();
  for (const t of d.tags) {
    tags.append(el("button", {
      type: "button", class: "tag", title: `Only images tagged ${t}`,
      onclick: () => { $("tag").value = t; closeDetail(); search(); },
    }, t));
  }
  for (const t of d.user_tags) {
    tags.append(el("button", {
      type: "button", class: "tag user", title: `Your tag: only images tagged ${t}`,
      onclick: () => { $("tag").value = t; closeDetail(); search(); },
    }, t));
  }
  if (!d.tags.length && !d.user_tags.length) tags.append(el("span", { class: "muted", text: "No tags." }));
  const product = $("detail-product");
  product.replaceChildren();
  const fields = Object.entries(d.metadata);
  $("detail-product-section").hidden = !fields.length;
  for (const [k, v] of fields) {
    product.append(el("dt", { text: k.replace(/_/g, " ") }),
      el("dd", { text: v, title: `from ${d.metadata_sources[k] || "import"}` }));
  }
  const dups = $("detail-dups");
  dups.replaceChildren();
  $("detail-dups-section").hidden = !d.duplicates.length;
  for (const x of d.duplicates) {
    dups.append(el("button", {
      type: "button", class: "dup", title: x.path,
      onclick: () => openDetail({ id: x.id, name: x.name, thumbnail: x.thumbnail, file: `/api/images/${x.id}/file`,
        score: 0, rank: 0, legs: null }),
    }, el("img", { src: `${x.thumbnail}?size=128`, alt: "", width: 64, height: 64 }), x.name));
  }
  $("detail-ocr").textContent = d.ocr_text || (d.ocr_engine ? "No text found." : "Not read.");
  const facts = $("detail-facts");
  facts.replaceChildren();
  const rows = [
    ["Path", d.path],
    ["Dimensions", d.width ? `${d.width} × ${d.height}` : "unknown"],
    ["Format", d.format || "unknown"],
    ["Size", bytes(d.size)],
    ["Modified", d.modified.replace("T", " ")],
    ["Collections", d.collections.join(", ") || "none"],
    ["Caption by", d.caption_model || "none"],
    ["Text read by", d.ocr_engine || "none"],
    ["SHA-256", d.sha256 ? d.sha256.slice(0, 16) + "…" : "unknown"],
  ];
  for (const [k, v] of rows) facts.append(el("dt", { text: k }), el("dd", { text: v, title: v }));
  drawBoxes(d);
}

function drawBoxes(d) {
  const svg = $("detail-boxes");
  svg.replaceChildren();
  if (!d.width || !d.ocr_lines.length) return;
  svg.setAttribute("viewBox", `0 0 ${d.width} ${d.height}`);
  svg.setAttribute("preserveAspectRatio", "none");
  const ns = "http://www.w3.org/2000/svg";
  for (const line of d.ocr_lines) {
    const poly = document.createElementNS(ns, "polygon");
    poly.setAttribute("points", line.box.map(([x, y]) => `${x},${y}`).join(" "));
    const title = document.createElementNS(ns, "title");
    title.textContent = line.text;
    poly.append(title);
    svg.append(poly);
  }
  svg.hidden = !$("detail-show-boxes").checked;
}

function closeDetail(restoreFocus = true) {
  const panel = $("detail");
  if (panel.hidden) return;
  panel.hidden = true;
  document.body.classList.remove("detail-open");
  state.detailHit = null;
  if (restoreFocus && state.lastFocus && document.contains(state.lastFocus)) state.lastFocus.focus();
}

// ---- filters and indexing progress ---------------------------------------------------------
async function loadFilters() {
  try {
    const f = await api("/api/filters");
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
    // fields worth counting: few distinct values, not names or free text; shop fields first
    const notFacets = ["title", "description", "sku", "id", "name", "url", "captions", "text"];
    const first = ["brand", "category", "colour", "base_colour", "gender", "article_type", "size"];
    const rank = (k) => (first.includes(k) ? first.indexOf(k) : first.length);
    state.facetKeys = f.fields
      .filter((x) => !x.numeric && !notFacets.includes(x.key) && x.distinct >= 2 && x.distinct <= 60)
      .map((x) => x.key).sort((a, b) => rank(a) - rank(b)).slice(0, 4);
    for (const x of f.fields.filter((y) => y.numeric && y.distinct > 2 && y.key !== "year").slice(0, 2)) {
      const name = x.key.replace(/_/g, " ");
      const from = el("input", { type: "number", step: "any", "data-key": x.key, "data-op": ">=",
        placeholder: `${x.min}`, "aria-label": `${name} from`, class: "range" });
      const to = el("input", { type: "number", step: "any", "data-key": x.key, "data-op": "<=",
        placeholder: `${x.max}`, "aria-label": `${name} up to`, class: "range" });
      for (const input of [from, to]) input.addEventListener("change", () => search());
      $("ranges").append(el("label", {}, `${name[0].toUpperCase()}${name.slice(1)}`, from, "–", to));
    }
  } catch (err) {
    showError(err.message);
  }
}

async function pollIndexing() {
  try {
    const job = await api("/api/index");
    const box = $("indexing");
    box.hidden = job.state !== "running";
    if (job.state === "running") {
      $("indexing-bar").max = Math.max(job.todo, 1);
      $("indexing-bar").value = job.done;
      const rate = job.rate ? ` · ${job.rate} images/s` : "";
      const eta = job.eta_seconds !== null ? ` · about ${Math.ceil(job.eta_seconds)} s left` : "";
      $("indexing-text").textContent = `Indexing ${job.done} of ${job.todo}${rate}${eta}`;
      setTimeout(pollIndexing, 2000);
    }
  } catch (_) { /* the page works without it */ }
}

// ---- wiring --------------------------------------------------------------------------------
function init() {
  const q = $("q");
  const fromUrl = new URLSearchParams(location.search).get("q");
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
  $("detail-close").addEventListener("click", () => closeDetail());
  $("detail-similar").addEventListener("click", () => state.detailHit && findSimilar(state.detailHit));
  $("detail-show-boxes").addEventListener("change", (e) => { $("detail-boxes").hidden = !e.target.checked; });

  document.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && !$("detail").hidden) { e.preventDefault(); closeDetail(); }
    else if (e.key === "/" && !["INPUT", "SELECT", "TEXTAREA"].includes(document.activeElement.tagName)) {
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
