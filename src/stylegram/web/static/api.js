// Talking to the server: fetch with the token (when this server needs one), one-line errors, and the
// event stream of a job, followed with fetch() rather than EventSource so that it can send the token header.

export const TOKEN_KEY = "stylegram.token";

export const sleep = (ms) => new Promise((done) => setTimeout(done, ms));

export class ApiError extends Error {
  constructor(message, status, retryAfter) { super(message); this.status = status; this.retryAfter = retryAfter; }
}

export async function api(path, init = {}) {
  const headers = new Headers(init.headers || {});
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.set("Authorization", "Bearer " + token);
  const response = await fetch(path, { ...init, headers, cache: "no-store" });
  if (response.ok) return response;
  if (response.status === 401) askToken();
  let message = response.statusText;
  try { message = (await response.json()).detail || message; } catch (_) { /* not JSON */ }
  throw new ApiError(message, response.status, response.headers.get("retry-after"));
}

function askToken() {
  const dialog = document.getElementById("token-dialog");
  if (!dialog.open) dialog.showModal();
}

export async function blobURL(path) {
  return URL.createObjectURL(await (await api(path)).blob());
}

function parseBlock(block) {
  const ev = { id: null, type: "message", data: "" };
  for (const line of block.split("\n")) {
    if (!line || line.startsWith(":")) continue;
    const at = line.indexOf(":");
    const key = at < 0 ? line : line.slice(0, at);
    const value = at < 0 ? "" : line.slice(at + 1).replace(/^ /, "");
    if (key === "id") ev.id = Number(value);
    else if (key === "event") ev.type = value;
    else if (key === "data") ev.data += value;
  }
  return ev.data ? { ...ev, data: JSON.parse(ev.data) } : null;
}

// Follows /api/jobs/{id}/events until done() holds: each event goes to onEvent; after a drop it reconnects
// with Last-Event-ID (backing off up to 10 s), and a stream silent past two keep-alives counts as dropped.
// onStatus(text) says whether it is connected; a job the server no longer has ends it with onGone().
export async function followEvents(id, { onEvent, onStatus, onGone, done }) {
  let last = 0;
  let failures = 0;
  while (!done()) {
    const abort = new AbortController();
    let watchdog = setTimeout(() => abort.abort(), 40000);
    try {
      const headers = last ? { "Last-Event-ID": String(last) } : {};
      const response = await api(`/api/jobs/${id}/events`, { headers, signal: abort.signal });
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      onStatus("");
      for (;;) {
        const { value, done: ended } = await reader.read();
        if (ended) break;
        clearTimeout(watchdog);
        watchdog = setTimeout(() => abort.abort(), 40000);
        buffer += decoder.decode(value, { stream: true });
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const ev = parseBlock(buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
          if (ev) { if (ev.id) last = ev.id; failures = 0; onEvent(ev); }
        }
      }
    } catch (e) {
      if (e.status === 404) { onGone(); return; }
    } finally {
      clearTimeout(watchdog);
    }
    if (done()) return;
    failures += 1;
    onStatus("Connection lost; reconnecting …");
    await sleep(Math.min(10000, 500 * 2 ** failures));
  }
}

