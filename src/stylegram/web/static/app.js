// The page: builds its form from /api/info (the server derives it from the options dataclasses), submits jobs,
// follows each job's event stream (reconnecting with Last-Event-ID after a drop), and keeps this browser's
// history in localStorage. Plain JavaScript, no build step, no external files.
"use strict";

const $ = (id) => document.getElementById(id);
const HISTORY_KEY = "stylegram.history";
const TOKEN_KEY = "stylegram.token";
const HISTORY_LENGTH = 24;
// Shown above "Advanced" as a slider when the options class has it; presets come from the server.
const STRENGTH_FIELD = "style_strength";
const SIZES = [["small", 256], ["medium", 512], ["large", 1024]];
const FINISHED = ["done", "failed", "cancelled"];

const page = { info: null, kind: null, content: null, styles: [], inputs: new Map(), jobs: new Map(),
  current: null, following: new Set(), previews: new Map(), results: new Map() };

class ApiError extends Error {
  constructor(message, status, retryAfter) { super(message); this.status = status; this.retryAfter = retryAfter; }
}

async function api(path, init = {}) {
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

function showError(message) { const box = $("error"); box.textContent = message; box.hidden = !message; }
const sleep = (ms) => new Promise((done) => setTimeout(done, ms));

function askToken() {
  const dialog = $("token-dialog");
  if (!dialog.open) dialog.showModal();
}

// ------------------------------------------------------------------------------------------------ the form

function defaultText(f) {
  if (f.default === null || f.default === undefined) return "";
  return Array.isArray(f.default) ? f.default.join(",") : String(f.default);
}

function makeInput(f) {
  let input;
  if (f.kind === "bool" && !f.list) {
    input = document.createElement("input");
    input.type = "checkbox";
    input.checked = f.default === true;
  } else if (f.choices && !f.list) {
    input = document.createElement("select");
    for (const choice of (f.optional ? ["", ...f.choices] : f.choices)) {
      input.append(new Option(choice || "automatic", choice));
    }
  } else {
    input = document.createElement("input");
    const numeric = (f.kind === "int" || f.kind === "float") && !f.list;
    input.type = numeric ? "number" : "text";
    if (numeric) {
      input.step = f.kind === "int" ? "1" : "any";
      if (f.min !== null) input.min = f.min;
      if (f.max !== null) input.max = f.max;
    }
    input.placeholder = f.default === null ? "automatic" : defaultText(f);
  }
  input.id = "opt-" + f.name;
  input.name = f.name;
  setValue(f, input, f.default);
  return input;
}

function setValue(f, input, value) {
  if (input.type === "checkbox") { input.checked = value === true; return; }
  input.value = value === null || value === undefined ? "" : Array.isArray(value) ? value.join(",") : String(value);
}

function valueText(f, input) {
  return input.type === "checkbox" ? String(input.checked) : input.value.trim();
}

function buildForm() {
  const kind = page.kind;
  const fields = $("fields");
  fields.replaceChildren();
  page.inputs.clear();
  $("strength-holder").replaceChildren();
  $("strength-row").hidden = true;
  for (const f of kind.options) {
    const input = makeInput(f);
    page.inputs.set(f.name, { field: f, input });
    if (f.name === STRENGTH_FIELD && !f.list && f.kind === "float") { strengthSlider(f, input); continue; }
    const box = document.createElement("div");
    box.className = "field" + (input.type === "checkbox" ? " check" : "");
    const label = document.createElement("label");
    label.htmlFor = input.id;
    label.textContent = f.name.replaceAll("_", " ");
    if (input.type === "checkbox") label.prepend(input);
    const help = document.createElement("small");
    help.textContent = f.help + (f.max !== null && !f.list && f.kind !== "bool" ? ` (at most ${f.max})` : "");
    box.append(label, ...(input.type === "checkbox" ? [] : [input]), help);
    fields.append(box);
  }
  presetChoices();
  sizeChoices();
  $("style-count-hint").textContent = `(${kind.min_styles}–${kind.max_styles})`;
  $("drop-style").hidden = kind.max_styles === 0;
}

function strengthSlider(f, input) {
  // The style strength (a number in bounds) as a slider with its value beside it.
  $("strength-row").hidden = false;
  input.type = "range";
  input.min = f.min ?? 0;
  input.max = f.max ?? 1;
  input.step = "0.05";
  setValue(f, input, f.default);
  const shown = document.createElement("output");
  shown.htmlFor = input.id;
  const update = () => { shown.textContent = Number(input.value).toFixed(2); };
  input.addEventListener("input", update);
  input.addEventListener("change", update);
  update();
  $("strength-holder").append(input, shown);
}

function presetChoices() {
  // The library's presets, as buttons that set their fields (and put the other presets' fields back).
  const presets = page.kind.presets || {};
  const holder = $("preset-choices");
  holder.replaceChildren();
  $("preset-row").hidden = Object.keys(presets).length === 0;
  const touched = new Set(Object.values(presets).flatMap((values) => Object.keys(values)));
  const matching = () => {
    for (const b of holder.querySelectorAll("button")) {
      const values = presets[b.dataset.value];
      const same = [...touched].every((name) => {
        const entry = page.inputs.get(name);
        if (!entry) return true;
        const wanted = name in values ? values[name] : entry.field.default;
        return valueText(entry.field, entry.input) === defaultText({ default: wanted });
      });
      b.setAttribute("aria-pressed", String(same));
    }
  };
  for (const name of Object.keys(presets)) {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = name;
    b.dataset.value = name;
    b.addEventListener("click", () => {
      for (const field of touched) {
        const entry = page.inputs.get(field);
        if (!entry) continue;
        setValue(entry.field, entry.input, field in presets[name] ? presets[name][field] : entry.field.default);
        entry.input.dispatchEvent(new Event("change"));
      }
      matching();
    });
    holder.append(b);
  }
  for (const { input } of page.inputs.values()) {
    input.addEventListener("input", matching);
    input.addEventListener("change", matching);
  }
  page.matchPresets = matching;
  matching();
}

function sizeChoices() {
  const holder = $("size-choices");
  holder.replaceChildren();
  const size = page.inputs.get("size");
  $("size-row").hidden = !size;
  if (!size) return;
  const top = page.info.limits.max_size;
  for (const [name, px] of SIZES) {
    const value = Math.min(px, top);
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = `${name} · ${value} px`;
    b.dataset.value = String(value);
    b.addEventListener("click", () => { size.input.value = String(value); pressed(holder, value); });
    holder.append(b);
  }
  pressed(holder, size.input.value);
  size.input.addEventListener("input", () => pressed(holder, size.input.value));
}

function changedOptions() {
  // Only what differs from the default is sent: the server fills in the rest from the same declarations.
  const out = {};
  for (const [name, { field, input }] of page.inputs) {
    const text = valueText(field, input);
    if (text !== defaultText(field)) out[name] = text;
  }
  return out;
}

function applyOptions(kindName, options) {
  const kind = page.info.kinds.find((k) => k.name === kindName) || page.kind;
  if (kind !== page.kind) { page.kind = kind; $("kind").value = kind.name; buildForm(); }
  for (const [name, { field, input }] of page.inputs) {
    setValue(field, input, name in options ? options[name] : field.default);
    input.dispatchEvent(new Event("change"));
    input.dispatchEvent(new Event("input"));
  }
  if (page.matchPresets) page.matchPresets();
  $("advanced").open = true;
}

// ------------------------------------------------------------------------------------------------ the files

function thumb(list, file, remove) {
  const li = document.createElement("li");
  const img = document.createElement("img");
  img.src = URL.createObjectURL(file);
  img.alt = file.name;
  img.title = file.name;
  const x = document.createElement("button");
  x.type = "button";
  x.textContent = "×";
  x.setAttribute("aria-label", "remove " + file.name);
  x.addEventListener("click", remove);
  li.append(img, x);
  list.append(li);
}

function renderFiles() {
  for (const id of ["content-thumbs", "style-thumbs"]) {
    for (const img of $(id).querySelectorAll("img")) URL.revokeObjectURL(img.src);
    $(id).replaceChildren();
  }
  if (page.content) thumb($("content-thumbs"), page.content, () => { page.content = null; renderFiles(); });
  page.styles.forEach((file, i) => thumb($("style-thumbs"), file, () => { page.styles.splice(i, 1); renderFiles(); }));
}

function addFiles(role, files) {
  const images = [...files].filter((f) => /^image\//.test(f.type) || /\.(png|jpe?g|webp)$/i.test(f.name));
  if (!images.length) { showError("Those are not images: use PNG, JPEG or WebP files."); return; }
  showError("");
  if (role === "content") page.content = images[0];
  else page.styles = [...page.styles, ...images].slice(0, page.kind.max_styles);
  renderFiles();
}

function wireDrops() {
  for (const zone of document.querySelectorAll(".drop")) {
    zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
    zone.addEventListener("dragleave", () => zone.classList.remove("over"));
    zone.addEventListener("drop", (e) => {
      e.preventDefault();
      zone.classList.remove("over");
      addFiles(zone.dataset.role, e.dataTransfer.files);
    });
  }
  // A file dropped beside the zones would make the browser leave the page to show it.
  window.addEventListener("dragover", (e) => e.preventDefault());
  window.addEventListener("drop", (e) => e.preventDefault());
  $("content-file").addEventListener("change", (e) => { addFiles("content", e.target.files); e.target.value = ""; });
  $("style-files").addEventListener("change", (e) => { addFiles("style", e.target.files); e.target.value = ""; });
}

// ------------------------------------------------------------------------------------------------ submitting

async function submit(event) {
  event.preventDefault();
  showError("");
  if (!page.content) { showError("Choose a photo first."); return; }
  if (page.styles.length < page.kind.min_styles) { showError("Choose at least one painting."); return; }
  const options = changedOptions();
  const data = new FormData();
  data.append("kind", page.kind.name);
  data.append("content", page.content, page.content.name);
  for (const file of page.styles) data.append("style", file, file.name);
  for (const [name, value] of Object.entries(options)) data.append(name, value);
  $("submit").disabled = true;
  try {
    const job = await (await api("/api/jobs", { method: "POST", body: data })).json();
    remember({ id: job.id, kind: page.kind.name, options, content: page.content.name,
      styles: page.styles.map((f) => f.name), created: Date.now() });
    page.jobs.set(job.id, { ...job, iteration: 0, total: 0, losses: {} });
    page.current = job.id;
    renderCurrent();
    renderGallery();
    follow(job.id);
  } catch (e) {
    const wait = e.retryAfter ? ` Try again in about ${e.retryAfter} s.` : "";
    showError(e.status === 429 ? `The server is busy.${wait}` : e.message);
  } finally {
    $("submit").disabled = false;
  }
}

// ------------------------------------------------------------------------------------------------ following

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

async function follow(id) {
  // fetch() rather than EventSource: it can send the token header; it reconnects by hand, resuming after the
  // last event seen, and gives up on a stream that stays silent past two keep-alives.
  if (page.following.has(id)) return;
  page.following.add(id);
  let last = 0;
  let failures = 0;
  try {
    while (!FINISHED.includes(page.jobs.get(id)?.state)) {
      const abort = new AbortController();
      let watchdog = setTimeout(() => abort.abort(), 40000);
      try {
        const headers = last ? { "Last-Event-ID": String(last) } : {};
        const response = await api(`/api/jobs/${id}/events`, { headers, signal: abort.signal });
        const reader = response.body.getReader();
        const decoder = new TextDecoder();
        let buffer = "";
        connection(id, "");
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          clearTimeout(watchdog);
          watchdog = setTimeout(() => abort.abort(), 40000);
          buffer += decoder.decode(value, { stream: true });
          let end;
          while ((end = buffer.indexOf("\n\n")) >= 0) {
            const ev = parseBlock(buffer.slice(0, end));
            buffer = buffer.slice(end + 2);
            if (ev) { if (ev.id) last = ev.id; failures = 0; onEvent(id, ev); }
          }
        }
      } catch (e) {
        if (e.status === 404) { forget(id); return; }
      } finally {
        clearTimeout(watchdog);
      }
      if (FINISHED.includes(page.jobs.get(id)?.state)) break;
      failures += 1;
      connection(id, "Connection lost; reconnecting …");
      await sleep(Math.min(10000, 500 * 2 ** failures));
    }
  } finally {
    page.following.delete(id);
  }
}

function connection(id, text) { if (id === page.current) $("connection").textContent = text; }

function onEvent(id, ev) {
  const job = { ...(page.jobs.get(id) || {}), ...ev.data };
  page.jobs.set(id, job);
  if (job.preview && job.preview !== page.previews.get(id)?.version && !FINISHED.includes(job.state)) loadPreview(id, job.preview);
  if (job.state === "done" || (job.state === "cancelled" && job.result)) loadResult(id);
  if (id === page.current) renderCurrent();
  if (ev.type === "state") renderGallery();
}

async function blobURL(path) {
  return URL.createObjectURL(await (await api(path)).blob());
}

async function loadPreview(id, version) {
  const entry = page.previews.get(id) || { version: 0, loading: false, url: null };
  page.previews.set(id, entry);
  if (entry.loading) { entry.wanted = version; return; }  // one request at a time; the newest wins
  entry.loading = true;
  try {
    const url = await blobURL(`/api/jobs/${id}/preview.jpg?v=${version}`);
    if (entry.url) URL.revokeObjectURL(entry.url);
    Object.assign(entry, { url, version });
    if (id === page.current && !page.results.has(id)) $("preview").src = url;
  } catch (_) { /* the next event brings another */ } finally {
    entry.loading = false;
    if (entry.wanted && entry.wanted > entry.version) { const v = entry.wanted; entry.wanted = 0; loadPreview(id, v); }
  }
}

async function loadResult(id) {
  if (page.results.has(id)) return;
  page.results.set(id, null);
  try {
    page.results.set(id, await blobURL(`/api/jobs/${id}/result.png`));
  } catch (_) { page.results.delete(id); return; }
  if (id === page.current) renderCurrent();
  renderGallery();
}

// ------------------------------------------------------------------------------------------------ showing

function duration(s) {
  if (s === null || s === undefined) return "–";
  if (s < 60) return `${Math.round(s)} s`;
  const m = Math.floor(s / 60);
  return m < 60 ? `${m} min ${Math.round(s - 60 * m)} s` : `${Math.floor(m / 60)} h ${m % 60} min`;
}

function describeState(job) {
  if (job.state === "queued") return job.position === 1 ? "Waiting: next in line" : `Waiting: number ${job.position} in line`;
  if (job.state === "running") return job.cancelling ? "Cancelling …" : job.total ? "Painting …" : "Preparing …";
  if (job.state === "done") return job.diverged ? "Done (the loss diverged; kept the best image)" : "Done";
  if (job.state === "cancelled") return job.result ? "Cancelled: kept the image so far" : "Cancelled";
  return "Failed: " + (job.error || "unknown error");
}

function renderCurrent() {
  const id = page.current;
  const job = page.jobs.get(id);
  $("current").hidden = !job;
  if (!job) return;
  $("state").textContent = describeState(job);
  $("progress").max = job.total || 1;
  $("progress").value = job.iteration || 0;
  const rows = [["iteration", job.total ? `${job.iteration} / ${job.total}` : "–"]];
  if (job.stages > 1) rows.push(["stage", `${job.stage} / ${job.stages}`]);
  for (const [name, value] of Object.entries(job.losses || {})) rows.push([`${name} loss`, Number(value).toPrecision(4)]);
  if (!FINISHED.includes(job.state)) rows.push(["time left", duration(job.eta)]);
  if (job.position > 0) rows.push(["queue position", String(job.position)]);
  $("numbers").replaceChildren(...rows.flatMap(([k, v]) => {
    const dt = document.createElement("dt"); dt.textContent = k;
    const dd = document.createElement("dd"); dd.textContent = v;
    return [dt, dd];
  }));
  const result = page.results.get(id);
  if (result) $("preview").src = result;
  $("download").hidden = !result;
  if (result) { $("download").href = result; $("download").download = `stylegram-${id.slice(0, 8)}.png`; }
  $("cancel").hidden = FINISHED.includes(job.state);
  $("cancel").disabled = Boolean(job.cancelling);
}

async function cancel(id) {
  try {
    const job = await (await api(`/api/jobs/${id}`, { method: "DELETE" })).json();
    onEvent(id, { type: "state", data: job });
  } catch (e) { showError(e.message); }
}

// ------------------------------------------------------------------------------------------------ history

function history() {
  try { return JSON.parse(localStorage.getItem(HISTORY_KEY) || "[]"); } catch (_) { return []; }
}

function remember(entry) {
  localStorage.setItem(HISTORY_KEY, JSON.stringify([entry, ...history()].slice(0, HISTORY_LENGTH)));
}

function forget(id) {
  page.jobs.set(id, { ...(page.jobs.get(id) || {}), state: "removed" });
  renderGallery();
}

function renderGallery() {
  const list = $("gallery");
  const entries = history();
  $("gallery-empty").hidden = entries.length > 0;
  list.replaceChildren(...entries.map((entry) => {
    const job = page.jobs.get(entry.id) || { state: "removed" };
    const li = document.createElement("li");
    li.dataset.id = entry.id;
    const img = document.createElement("img");
    img.alt = `${entry.content} in the style of ${entry.styles.join(", ")}`;
    const url = page.results.get(entry.id) || page.previews.get(entry.id)?.url;
    if (url) img.src = url;
    const text = document.createElement("p");
    const when = new Date(entry.created).toLocaleString();
    text.textContent = `${job.state === "removed" ? "removed from the server" : job.state} · ${when}`;
    const actions = document.createElement("div");
    actions.className = "actions";
    const reuse = document.createElement("button");
    reuse.type = "button";
    reuse.className = "secondary reuse";
    reuse.textContent = "Use these settings again";
    reuse.addEventListener("click", () => { applyOptions(entry.kind, entry.options); window.scrollTo(0, 0); });
    actions.append(reuse);
    if (page.results.get(entry.id)) {
      const a = document.createElement("a");
      a.className = "button";
      a.textContent = "Download";
      a.href = page.results.get(entry.id);
      a.download = `stylegram-${entry.id.slice(0, 8)}.png`;
      actions.append(a);
    }
    if (["queued", "running"].includes(job.state)) {
      const stop = document.createElement("button");
      stop.type = "button";
      stop.className = "secondary";
      stop.textContent = "Cancel";
      stop.addEventListener("click", () => cancel(entry.id));
      actions.append(stop);
    }
    li.append(img, text, actions);
    return li;
  }));
}

async function restoreHistory() {
  for (const entry of history()) {
    try {
      const job = await (await api(`/api/jobs/${entry.id}`)).json();
      page.jobs.set(entry.id, job);
      if (job.result) loadResult(entry.id);
      if (!FINISHED.includes(job.state)) follow(entry.id);
    } catch (_) { page.jobs.set(entry.id, { state: "removed" }); }
  }
  renderGallery();
}

// ------------------------------------------------------------------------------------------------ start

async function start() {
  wireDrops();
  $("job-form").addEventListener("submit", submit);
  $("cancel").addEventListener("click", () => page.current && cancel(page.current));
  $("token-form").addEventListener("submit", () => {
    sessionStorage.setItem(TOKEN_KEY, $("token").value.trim());
    location.reload();
  });
  try {
    page.info = await (await api("/api/info")).json();
  } catch (e) {
    showError(e.status === 401 ? "Enter the server's access token." : "Cannot reach the server: " + e.message);
    return;
  }
  $("version").textContent = page.info.version;
  const select = $("kind");
  select.replaceChildren(...page.info.kinds.map((k) => new Option(`${k.name}: ${k.description}`, k.name)));
  $("kind-row").hidden = page.info.kinds.length < 2;
  select.onchange = () => { page.kind = page.info.kinds.find((k) => k.name === select.value); buildForm(); };
  page.kind = page.info.kinds[0];
  buildForm();
  showError("");
  await restoreHistory();
}

document.addEventListener("DOMContentLoaded", start, { once: true });
