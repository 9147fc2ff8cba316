// Every request to the HTTP API. Each returns the parsed JSON body, or throws an Error
// carrying the server's `detail` message (an AbortError for a search made stale).

async function request(url, options = {}) {
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

// ---- the rest -------------------------------------------------------------------------------
export const getImage = (id) => request(`/api/images/${id}`);
export const getFilters = () => request("/api/filters");
export const getStats = () => request("/api/stats");
export const getIndexJob = () => request("/api/index");

// ---- image URLs: the ones an image reference carries; built only where one is missing --------
export const fileUrl = (ref) => ref.file || `/api/images/${ref.id}/file`;
export const thumbnailUrl = (ref, size) => `${ref.thumbnail || `/api/images/${ref.id}/thumbnail`}?size=${size}`;
