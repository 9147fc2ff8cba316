// Download an export of the library's SEO metadata (alt text, title, caption, keywords, OCR text,
// provenance): CSV, JSON Lines, JSON-LD, or XMP sidecars as a zip; of every image or a collection.
// The file is fetched like any request (so a server with a key asks for it), then saved.
import { fetchFile, getCollections } from "./api.js";
import { $, el } from "./dom.js";
import { say } from "./lists.js";

export function setupExport() {
  $("export-open").addEventListener("click", open);
  $("export-form").addEventListener("submit", (e) => { e.preventDefault(); download(); });
  $("export-form").addEventListener("change", showBaseUrl);
}

async function open() {
  say($("export-error"), "");
  showBaseUrl();
  $("export-dialog").showModal();
  const scope = $("export-scope");
  const keep = scope.value;
  try {
    const collections = await getCollections();
    scope.replaceChildren(scope.options[0],
      ...collections.map((c) => el("option", { value: c.name }, `Collection “${c.name}” (${c.images})`)));
    scope.value = keep;
    if (scope.value !== keep) scope.value = "";
  } catch (_) { /* all images can still be exported */ }
}

const format = () => $("export-form").elements["export-format"].value;

function showBaseUrl() {  // only JSON-LD uses it (its contentUrl)
  const jsonld = format() === "jsonld";
  $("export-base").hidden = !jsonld;
  $("export-base-label").hidden = !jsonld;
}

async function download() {
  const base = $("export-base");
  if (format() === "jsonld" && !base.checkValidity()) { base.reportValidity(); return; }
  const q = new URLSearchParams({ format: format() });
  if ($("export-scope").value) q.set("collection", $("export-scope").value);
  if (format() === "jsonld" && base.value.trim()) q.set("base_url", base.value.trim());
  const button = $("export-go");
  button.disabled = true;
  say($("export-error"), "");
  try {
    const { blob, name } = await fetchFile(`/api/export?${q}`);
    const url = URL.createObjectURL(blob);
    const a = el("a", { href: url, download: name, hidden: true });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
    $("export-dialog").close();
  } catch (err) {
    say($("export-error"), err.message, true);
  } finally {
    button.disabled = false;
  }
}
