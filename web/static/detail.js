// The detail panel: preview with the OCR text boxes, caption, tags, product fields (or a
// document's key fields), near duplicates, file facts, why it matched; "find similar"; Escape
// closes it and returns focus.
import { fileUrl, getImage, thumbnailUrl } from "./api.js";
import { $, el } from "./dom.js";
import { relevanceText } from "./render.js";
import { state } from "./state.js";

// set by setupDetail: run the search again, and search for images like a hit
let actions = { search() {}, findSimilar() {} };

function bytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 ** 2).toFixed(1)} MB`;
}

export async function openDetail(hit) {
  state.lastFocus = document.activeElement;
  state.detailHit = hit;
  const panel = $("detail");
  $("detail-title").textContent = hit.title || hit.name;
  $("detail-caption").textContent = hit.caption || "";
  $("detail-img").src = thumbnailUrl(hit, 1024);
  $("detail-img").alt = hit.caption || hit.name;
  $("detail-open").href = fileUrl(hit);
  $("detail-boxes").replaceChildren();
  renderWhy(hit);
  panel.hidden = false;
  document.body.classList.add("detail-open");
  $("detail-close").focus();
  try {
    const d = await getImage(hit.id);
    if (state.detailHit !== hit) return;
    state.detailData = d;
    renderDetail(d);
  } catch (err) {
    $("detail-facts").replaceChildren(el("dd", { class: "error", text: err.message }));
  }
}

export function closeDetail(restoreFocus = true) {
  const panel = $("detail");
  if (panel.hidden) return;
  panel.hidden = true;
  document.body.classList.remove("detail-open");
  state.detailHit = null;
  if (restoreFocus && state.lastFocus && document.contains(state.lastFocus)) state.lastFocus.focus();
}

function renderWhy(hit) {
  const why = $("detail-why");
  why.replaceChildren();
  for (const reason of hit.reasons || []) why.append(el("li", { text: reason }));
  if (!why.children.length) {
    why.append(el("li", { text: hit.rank ? "No explanation for this result." : "Listed by the filters." }));
  }
  const figure = relevanceText(hit);
  if (figure) why.append(el("li", { class: "relevance-line", text: `Relevance ${figure} (from 0 to 1)` }));
  const details = legDetails(hit);
  if (details) why.append(el("li", { class: "muted details", text: `Details: ${details}` }));
}

// the raw figures behind the ranking, for the curious: each leg's rank and score, the fused score
function legDetails(hit) {
  const legs = hit.legs || {};
  const parts = [];
  if (legs.vector) parts.push(`semantic #${legs.vector.rank} (cosine ${legs.vector.score.toFixed(3)})`);
  if (legs.keyword) {
    const cov = legs.keyword.coverage !== null && legs.keyword.coverage !== undefined
      ? `, ${Math.round(legs.keyword.coverage * 100)}% of the query words`
      : "";
    parts.push(`keyword #${legs.keyword.rank} (BM25 ${legs.keyword.score.toPrecision(3)}${cov})`);
  }
  if (!parts.length) return "";
  return `${parts.join(" · ")} · fused score ${hit.score.toFixed(4)}, rank ${hit.rank}`;
}

function searchTag(t) {
  $("tag").value = t;
  closeDetail();
  actions.search();
}

function renderDetail(d) {
  $("detail-caption").textContent = d.caption || "No caption.";
  const tags = $("detail-tags");
  tags.replaceChildren();
  for (const t of d.tags) {
    tags.append(el("button", {
      type: "button", class: "tag", title: `Only images tagged ${t}`,
      onclick: () => searchTag(t),
    }, t));
  }
  for (const t of d.user_tags) {
    tags.append(el("button", {
      type: "button", class: "tag user", title: `Your tag: only images tagged ${t}`,
      onclick: () => searchTag(t),
    }, t));
  }
  if (!d.tags.length && !d.user_tags.length) tags.append(el("span", { class: "muted", text: "No tags." }));
  const product = $("detail-product");
  product.replaceChildren();
  const fields = Object.entries(d.metadata);
  // a receipt or invoice: its key fields as read from its text, when nothing was imported for it
  const doc = !fields.length && state.detailHit && state.detailHit.document;
  $("detail-product-section").hidden = !fields.length && !doc;
  $("detail-product-section").querySelector("h3").textContent = doc ? doc.kind : "Product";
  for (const [k, v] of fields) {
    product.append(el("dt", { text: k.replace(/_/g, " ") }),
      el("dd", { text: v, title: `from ${d.metadata_sources[k] || "import"}` }));
  }
  for (const k of doc ? ["issuer", "date", "number", "total", "currency"] : []) {
    if (doc[k]) product.append(el("dt", { text: k }), el("dd", { text: doc[k], title: "read from its text" }));
  }
  const dups = $("detail-dups");
  dups.replaceChildren();
  $("detail-dups-section").hidden = !d.duplicates.length;
  for (const x of d.duplicates) {
    dups.append(el("button", {
      type: "button", class: "dup", title: x.path,
      onclick: () => openDetail({ id: x.id, name: x.name, thumbnail: x.thumbnail, file: fileUrl(x),
        score: 0, rank: 0, legs: null, relevance: null, reasons: [] }),
    }, el("img", { src: thumbnailUrl(x, 128), alt: "", width: 64, height: 64 }), x.name));
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

// wire the panel's own controls and keys; handlers: {search(), findSimilar(hit)}
export function setupDetail(handlers) {
  actions = handlers;
  $("detail-close").addEventListener("click", () => closeDetail());
  $("detail-similar").addEventListener("click", () => state.detailHit && actions.findSimilar(state.detailHit));
  $("detail-show-boxes").addEventListener("change", (e) => { $("detail-boxes").hidden = !e.target.checked; });
  document.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && !$("detail").hidden) { e.preventDefault(); closeDetail(); }
  });
}
