// Every request to the HTTP API. Each returns the parsed JSON body, or throws an Error
// carrying the server's `detail` message (an AbortError for a search made stale).
import { askForKey } from "./key.js";

// Sent with every request. A page on another site cannot send this header without the
// server's consent (a CORS preflight), so the server takes it as proof that a request
// comes from this page; without it a POST (even a search by image) is refused.
const HEADERS = { "X-Requested-With": "searchengine-page" };
let signingIn = null;  // one key prompt, however many requests the server refused meanwhile

async function request(url, options = {}, retried = false) {
  const r = await fetch(url, { ...options, headers: { ...HEADERS, ...options.headers } });
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
// the page itself keeps nothing. Resolves to null, or the reason the key was refused.
async function signIn(key) {
  const r = await fetch("/api/session", {
    method: "POST",
    headers: { ...HEADERS, "Content-Type": "application/json" },
    body: JSON.stringify({ key }),
  });
  if (r.ok) return null;
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
