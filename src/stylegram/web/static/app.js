// The page: picks the files, submits jobs, follows each job's event stream, shows the image as it forms, and
// keeps this browser's history (in localStorage) with "use these settings again". Plain JavaScript modules,
// no build step, no external files.

import { TOKEN_KEY, api, blobURL, followEvents } from "/static/api.js";
import { applyOptions, buildForm, changedOptions, form } from "/static/form.js";

const $ = (id) => document.getElementById(id);
const HISTORY_KEY = "stylegram.history";
const HISTORY_LENGTH = 24;
const FINISHED = ["done", "failed", "cancelled"];

const page = { content: null, styles: [], jobs: new Map(), current: null, following: new Set(),
  previews: new Map(), results: new Map() };

function showError(message) { const box = $("error"); box.textContent = message; box.hidden = !message; }

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
  else page.styles = [...page.styles, ...images].slice(0, form.kind.max_styles);
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
  if (page.styles.length < form.kind.min_styles) { showError("Choose at least one painting."); return; }
  const options = changedOptions();
  const data = new FormData();
  data.append("kind", form.kind.name);
  data.append("content", page.content, page.content.name);
  for (const file of page.styles) data.append("style", file, file.name);
  for (const [name, value] of Object.entries(options)) data.append(name, value);
  $("submit").disabled = true;
  try {
    const job = await (await api("/api/jobs", { method: "POST", body: data })).json();
    remember({ id: job.id, kind: form.kind.name, options, content: page.content.name,
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

async function follow(id) {
  if (page.following.has(id)) return;
  page.following.add(id);
  try {
    await followEvents(id, {
      onEvent: (ev) => onEvent(id, ev),
      onStatus: (text) => connection(id, text),
      onGone: () => forget(id),
      done: () => FINISHED.includes(page.jobs.get(id)?.state),
    });
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
    form.info = await (await api("/api/info")).json();
  } catch (e) {
    showError(e.status === 401 ? "Enter the server's access token." : "Cannot reach the server: " + e.message);
    return;
  }
  $("version").textContent = form.info.version;
  const select = $("kind");
  select.replaceChildren(...form.info.kinds.map((k) => new Option(`${k.name}: ${k.description}`, k.name)));
  $("kind-row").hidden = form.info.kinds.length < 2;
  select.onchange = () => { form.kind = form.info.kinds.find((k) => k.name === select.value); buildForm(); };
  form.kind = form.info.kinds[0];
  buildForm();
  showError("");
  await restoreHistory();
}

document.addEventListener("DOMContentLoaded", start, { once: true });
