// Every request to the HTTP API. Each returns the parsed JSON body, or throws an Error
// carrying the server's `detail` message (an AbortError for a search made stale).
import { askForKey } from "./key.js";

// Sent with every request. A page on another site cannot send this header without the
// server's consent (a CORS preflight), so the server takes it as proof that a request
// comes from this page; without it a POST (even a search by image) is refused.
const HEADERS = { "X-Requested-With": "searchengine-page" };
let signingIn = null;  // one key prompt, however many requests the server refused meanwhile
// Changes (tags, collections, forgetting) need the key itself in X-API-Key: the session cookie lets
// the browser read, not change. The key the user typed is kept for them in this page's memory only
// (never stored: a reload forgets it) and sent with requests that are not reads.
let changeKey = null;

async function request(url, options = {}, retried = false) {
  const key = changeKey && (options.method || "GET") !== "GET" ? { "X-API-Key": changeKey } : {};
  const r = await fetch(url, { ...options, headers: { ...HEADERS, ...key, ...options.headers } });
  if (r.status === 401 && !retried) {  // the server has an API key: ask for it once, then retry
    signingIn = signingIn || askForKey(signIn).finally(() => { signingIn = null; });
    if (await signingIn) return request(url, options, true);
  }
  let body = null;
  try { body = await r.json(); } catch (_) { /* not JSON */ }
  if (!r.ok) {
    let msg = body && body.detail;
    if (Array.isArray(msg)) msg = msg.map((d) => `${(d.loc || []).slice(-1)[0]}: ${d.msg}`).join("; ");
    throw new Error(msg || `${r.status} ${r.statusText}`);
  }
  return body;
}

// ---- search: one in flight; a newer one aborts the older --------------------------------------
let controller = null;

export function cancelSearch() {
  if (controller) controller.abort();
}

// params: URLSearchParams of the query; image: a File to search with (sent as an upload) or null
export function searchImages(params, image = null) {
  cancelSearch();
  controller = new AbortController();
  const options = { signal: controller.signal };
  if (image) {
    const form = new FormData();
    form.append("image", image);
    Object.assign(options, { method: "POST", body: form });
  }
  return request(`/api/search?${params}`, options);
}

export const isAbort = (err) => err.name === "AbortError";

// ---- sign-in: the server checks the key and sets a cookie (images need it: <img> sends no header);
// the page keeps the key in memory only, for changes. Resolves to null, or the reason the key was refused.
async function signIn(key) {
  const r = await fetch("/api/session", {
    method: "POST",
    headers: { ...HEADERS, "Content-Type": "application/json" },
    body: JSON.stringify({ key }),
  });
  if (r.ok) { changeKey = key; return null; }
  let body = null;
  try { body = await r.json(); } catch (_) { /* not JSON */ }
  return (body && typeof body.detail === "string" && body.detail) || `${r.status} ${r.statusText}`;
}

// ---- the rest -------------------------------------------------------------------------------
export const getImage = (id) => request(`/api/images/${id}`);
export const getFilters = () => request("/api/filters");
export const getStats = () => request("/api/stats");
export const getIndexJob = () => request("/api/index");

// ---- image URLs: the ones an image reference carries; built only where one is missing --------
export const fileUrl = (ref) => ref.file || `/api/images/${ref.id}/file`;
export const thumbnailUrl = (ref, size) => `${ref.thumbnail || `/api/images/${ref.id}/thumbnail`}?size=${size}`;

// ---- SELECT: the library from the page (tags on a selection, collections, forgetting folders) ----
const sendJson = (url, body, method = "POST") =>
  request(url, { method, headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
const collectionUrl = (name) => `/api/collections/${encodeURIComponent(name)}`;

export const tagImages = (ids, tags) => sendJson("/api/tags", { ids, tags });
export const untagImages = (ids, tags) => sendJson("/api/tags/remove", { ids, tags });
export const getCollections = () => request("/api/collections");
export const addToCollection = (name, ids) => sendJson(collectionUrl(name), { ids });
export const removeFromCollection = (name, ids) => sendJson(`${collectionUrl(name)}/remove`, { ids });
export const deleteCollection = (name) => request(collectionUrl(name), { method: "DELETE" });
// a few of a collection's images (a filtered listing: no ranking work), for its preview
export const collectionSample = (name, n) =>
  request(`/api/search?${new URLSearchParams({ collection: name, limit: n, explain: "false" })}`);
export const planForget = (folders) => sendJson("/api/forget/plan", { folders });
// agreed: the images with user data the confirmed plan showed (more now: 409, nothing changes)
export const forgetFolders = (folders, confirm, agreed = null) =>
  sendJson("/api/forget", { folders, confirm, agreed });

// ---- REVIEW: catalogue import with a preview, export downloads, the duplicates review ----------
// catalogue: a File; dryRun: only report what would match (nothing changes)
export function importCatalogue(catalogue, imageColumn, dryRun) {
  const form = new FormData();
  form.append("catalogue", catalogue);
  const q = new URLSearchParams({ dry_run: String(dryRun) });
  if (imageColumn) q.set("image_column", imageColumn);
  return request(`/api/import?${q}`, { method: "POST", body: form });
}
export const getDuplicates = () => request("/api/duplicates");
// ids: images that are not duplicates of each other (with image: that one is not a duplicate of ids)
const notDuplicates = (method) => (ids, image = null) => request("/api/duplicates/dismiss", {
  method, headers: { "Content-Type": "application/json" }, body: JSON.stringify({ ids, image }),
});
export const markNotDuplicates = notDuplicates("POST");
export const unmarkNotDuplicates = notDuplicates("DELETE");

// A file the server sends (an export): fetched like any request (the key asked for once, if the
// server has one), resolves to { blob, name }; the caller saves it.
export async function fetchFile(url, retried = false) {
  const r = await fetch(url, { headers: HEADERS });
  if (r.status === 401 && !retried) {
    signingIn = signingIn || askForKey(signIn).finally(() => { signingIn = null; });
    if (await signingIn) return fetchFile(url, true);
  }
  if (!r.ok) {
    let body = null;
    try { body = await r.json(); } catch (_) { /* not JSON */ }
    throw new Error((body && typeof body.detail === "string" && body.detail) || `${r.status} ${r.statusText}`);
  }
  const name = /filename="([^"]+)"/.exec(r.headers.get("Content-Disposition") || "");
  return { blob: await r.blob(), name: name ? name[1] : "export" };
}
