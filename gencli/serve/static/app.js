// gencli serve: the page's script. Plain JavaScript, no build step, no dependencies.
"use strict";

const $ = (id) => document.getElementById(id);
const TAB10 = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
let MODELS = [];
let LIMITS = {};

// --- helpers ---------------------------------------------------------------------------------------------

function setStatus(el, text, isError = false) {
  el.textContent = text;
  el.classList.toggle("error", isError);
}

async function errorText(response) {
  try {
    const body = await response.json();
    if (typeof body.detail === "string") return body.detail;
    if (Array.isArray(body.detail)) return body.detail.map((d) => `${(d.loc || []).slice(-1)[0]}: ${d.msg}`).join("; ");
  } catch (e) { /* not JSON */ }
  return `${response.status} ${response.statusText}`;
}

// Show a PNG answer in `view.img`, its command in `view.command` and a download link in `view.download`.
async function showPicture(response, view) {
  const blob = await response.blob();
  if (view.img.dataset.url) URL.revokeObjectURL(view.img.dataset.url);
  const url = URL.createObjectURL(blob);
  view.img.dataset.url = url;
  view.img.src = url;
  view.command.textContent = response.headers.get("X-Gencli-Command") || "";
  const match = /filename="([^"]+)"/.exec(response.headers.get("Content-Disposition") || "");
  view.download.href = url;
  view.download.download = match ? match[1] : "gencli.png";
}

// One request at a time per view; while one runs, only the newest wanted URL is kept and sent next,
// so a fast pointer never piles up requests.
function latestOnly(view, status) {
  let running = false;
  let wanted = null;
  async function pump() {
    if (running || wanted === null) return;
    running = true;
    const url = wanted;
    wanted = null;
    try {
      const response = await fetch(url);
      if (response.ok) {
        await showPicture(response, view);
        if (status.classList.contains("error")) setStatus(status, "");
      } else {
        setStatus(status, await errorText(response), true);
      }
    } catch (e) {
      setStatus(status, `request failed: ${e}`, true);
    }
    running = false;
    pump();
  }
  return (url) => { wanted = url; pump(); };
}

function pictureView(prefix) {
  return { img: $(`${prefix}-image`), command: $(`${prefix}-command`), download: $(`${prefix}-download`) };
}

function fillModels(select, families, infoEl, onChange) {
  const models = MODELS.filter((m) => families.includes(m.family));
  select.innerHTML = "";
  for (const m of models) {
    const option = document.createElement("option");
    option.value = m.id;
    option.textContent = `${m.name} (${m.source}${families.length > 1 ? ", " + m.family : ""})${m.default ? " - CLI default" : ""}`;
    select.append(option);
  }
  // The CLI's default model of the first family listed, else the first model.
  const preferred = families.map((f) => models.find((m) => m.default && m.family === f)).find(Boolean) || models[0];
  if (!preferred) {
    infoEl.textContent = `no ${families.join(" or ")} model: train one or import one, then reload`;
    return null;
  }
  select.value = preferred.id;
  const changed = () => {
    const m = MODELS.find((x) => x.id === select.value);
    infoEl.textContent = `in use: ${m.id}, ${m.checkpoint}, epoch ${m.epoch}`;
    onChange(m);
  };
  select.addEventListener("change", changed);
  changed();
  return preferred;
}

// --- tabs ------------------------------------------------------------------------------------------------

function showTab(name) {
  for (const button of document.querySelectorAll("nav button")) {
    button.setAttribute("aria-selected", String(button.dataset.tab === name));
  }
  for (const section of document.querySelectorAll(".tab")) section.hidden = section.id !== `tab-${name}`;
  history.replaceState(null, "", `#${name}`);
}

// --- VAE / CVAE ------------------------------------------------------------------------------------------

const vae = { model: null, range: null, scatter: null, z: [0, 0], label: 0, scatterCache: new Map() };
const vaeStatus = $("vae-status");
const vaeDecode = latestOnly(pictureView("vae"), vaeStatus);

function vaeRange(m) {
  const lo = m.info.latent_min || [-4, -4];
  const hi = m.info.latent_max || [4, 4];
  const pad = (i) => 0.05 * (hi[i] - lo[i]);
  return { x: [lo[0] - pad(0), hi[0] + pad(0)], y: [lo[1] - pad(1), hi[1] + pad(1)] };
}

function toCanvas(zx, zy) {
  const c = $("vae-plane"), r = vae.range;
  return [(zx - r.x[0]) / (r.x[1] - r.x[0]) * c.width, (1 - (zy - r.y[0]) / (r.y[1] - r.y[0])) * c.height];
}

function fromCanvas(px, py) {
  const c = $("vae-plane"), r = vae.range;
  return [r.x[0] + px / c.width * (r.x[1] - r.x[0]), r.y[0] + (1 - py / c.height) * (r.y[1] - r.y[0])];
}

function drawPlane() {
  const c = $("vae-plane"), ctx = c.getContext("2d");
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, c.width, c.height);
  ctx.strokeStyle = "#ddd";
  const [ox, oy] = toCanvas(0, 0);
  ctx.beginPath(); ctx.moveTo(ox, 0); ctx.lineTo(ox, c.height); ctx.moveTo(0, oy); ctx.lineTo(c.width, oy); ctx.stroke();
  const s = vae.scatter;
  if (s) {
    ctx.globalAlpha = 0.45;
    for (let i = 0; i < s.x.length; i++) {
      const [px, py] = toCanvas(s.x[i], s.y[i]);
      ctx.fillStyle = TAB10[s.labels[i] % 10];
      ctx.fillRect(px - 1, py - 1, 2, 2);
    }
    ctx.globalAlpha = 1;
  }
  const [px, py] = toCanvas(vae.z[0], vae.z[1]);
  ctx.strokeStyle = "#000";
  ctx.lineWidth = 1.5;
  ctx.beginPath(); ctx.arc(px, py, 6, 0, 2 * Math.PI); ctx.stroke();
  ctx.lineWidth = 1;
}

function decodeCurrent() {
  const [x, y] = vae.z.map((v) => Math.round(v * 1000) / 1000);
  $("vae-coords").textContent = `z = (${x}, ${y})`;
  const label = vae.model.info.num_classes ? `&label=${vae.label}` : "";
  vaeDecode(`/api/vae/${encodeURIComponent(vae.model.id)}/decode?x=${x}&y=${y}${label}`);
  drawPlane();
}

async function loadScatter(m) {
  const note = $("vae-scatter-note");
  if (!vae.scatterCache.has(m.id)) {
    note.textContent = `encoding the ${m.info.dataset} test set...`;
    const response = await fetch(`/api/vae/${encodeURIComponent(m.id)}/scatter`);
    vae.scatterCache.set(m.id, response.ok ? await response.json() : { error: await errorText(response) });
  }
  if (vae.model !== m) return;
  const s = vae.scatterCache.get(m.id);
  vae.scatter = s.error ? null : s;
  note.textContent = s.error ? `${s.error} (the plane decodes all the same)` :
    `${s.x.length} ${s.dataset} test images at their latent means, coloured by label`;
  drawPlane();
}

function selectVae(m) {
  vae.model = m;
  vae.range = vaeRange(m);
  vae.scatter = null;
  vae.z = [0, 0];
  const labels = $("vae-labels");
  labels.hidden = !m.info.num_classes;
  labels.querySelectorAll("button").forEach((b) => b.remove());
  for (let k = 0; k < (m.info.num_classes || 0); k++) {
    const b = document.createElement("button");
    b.textContent = String(k);
    b.setAttribute("aria-pressed", String(k === vae.label));
    b.addEventListener("click", () => {
      vae.label = k;
      labels.querySelectorAll("button").forEach((x) => x.setAttribute("aria-pressed", String(x === b)));
      decodeCurrent();
    });
    labels.append(b);
  }
  if (vae.label >= (m.info.num_classes || 10)) vae.label = 0;
  $("vae-grid-figure").hidden = true;
  decodeCurrent();
  loadScatter(m);
}

function setupVae() {
  const legend = $("vae-legend");
  TAB10.forEach((color, k) => {
    const span = document.createElement("span");
    span.style.setProperty("--c", color);
    span.textContent = String(k);
    legend.append(span);
  });
  const plane = $("vae-plane");
  plane.addEventListener("pointermove", (e) => {
    if (!vae.model) return;
    const rect = plane.getBoundingClientRect();
    vae.z = fromCanvas((e.clientX - rect.left) * plane.width / rect.width, (e.clientY - rect.top) * plane.height / rect.height);
    decodeCurrent();
  });
  plane.addEventListener("keydown", (e) => {
    const step = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, 1], ArrowDown: [0, -1] }[e.key];
    if (!step || !vae.model) return;
    e.preventDefault();
    const r = vae.range;
    vae.z = [vae.z[0] + step[0] * (r.x[1] - r.x[0]) / 50, vae.z[1] + step[1] * (r.y[1] - r.y[0]) / 50];
    decodeCurrent();
  });
  $("vae-grid-button").addEventListener("click", async () => {
    if (!vae.model) return;
    const steps = $("vae-steps").value;
    const label = vae.model.info.num_classes ? `&label=${vae.label}` : "";
    setStatus(vaeStatus, "decoding the grid...");
    const response = await fetch(`/api/vae/${encodeURIComponent(vae.model.id)}/grid?steps=${steps}${label}`);
    if (!response.ok) return setStatus(vaeStatus, await errorText(response), true);
    await showPicture(response, { img: $("vae-grid"), command: $("vae-grid-command"), download: $("vae-grid-download") });
    $("vae-grid-figure").hidden = false;
    setStatus(vaeStatus, "");
  });
  fillModels($("vae-model"), ["vae", "cvae"], $("vae-model-info"), selectVae);
}

// --- StyleGAN --------------------------------------------------------------------------------------------

const sg = { model: null, label: 0 };
const sgStatus = $("sg-status");
const sgImage = latestOnly(pictureView("sg"), sgStatus);
const sgMix = latestOnly(pictureView("mix"), sgStatus);
const sgInterp = latestOnly(pictureView("interp"), sgStatus);
const intValue = (id) => Math.max(0, Math.floor(Number($(id).value) || 0));

function sgBase(kind) {
  const label = sg.model.info.conditional ? `&label=${sg.label}` : "";
  return `/api/stylegan/${encodeURIComponent(sg.model.id)}/${kind}?truncation=${$("sg-truncation").value}${label}`;
}

// A conditional model's class picker: one button per class, named by the class names it stores.
function selectStylegan(m) {
  sg.model = m;
  const labels = $("sg-labels");
  const names = m.info.class_names || [];
  labels.hidden = !m.info.conditional;
  labels.querySelectorAll("button").forEach((b) => b.remove());
  if (sg.label >= names.length) sg.label = 0;
  names.forEach((name, k) => {
    const b = document.createElement("button");
    b.textContent = name;
    b.title = `class ${k}`;
    b.setAttribute("aria-pressed", String(k === sg.label));
    b.addEventListener("click", () => {
      sg.label = k;
      labels.querySelectorAll("button").forEach((x) => x.setAttribute("aria-pressed", String(x === b)));
      refreshStylegan();
    });
    labels.append(b);
  });
  $("mix-cutoff").max = m.info.num_ws;
  $("proj-result").hidden = proj.model !== m.id;  // a projection mixes with its own model only
  refreshStylegan();
}

function refreshSeed() {
  if (sg.model) sgImage(`${sgBase("image")}&seed=${intValue("sg-seed")}`);
  refreshProjection();
}
function refreshMix() {
  if (sg.model) sgMix(`${sgBase("mix")}&row=${intValue("mix-row")}&col=${intValue("mix-col")}&cutoff=${$("mix-cutoff").value}`);
}
function refreshInterp() {
  if (sg.model) {
    sgInterp(`${sgBase("interpolate")}&start=${intValue("interp-start")}&end=${intValue("interp-end")}&steps=${$("interp-steps").value}`);
  }
}
function refreshStylegan() { refreshSeed(); refreshMix(); refreshInterp(); }

// --- StyleGAN: projecting a photo (a job on the server, polled every second) ---

const proj = { job: null, model: null };  // the finished projection shown and its model's id
const projStatus = $("proj-status");
const projCompare = latestOnly(pictureView("proj"), projStatus);
const projMix = latestOnly(pictureView("pmix"), projStatus);
const projMixReverse = latestOnly(pictureView("pmixr"), projStatus);
const projInterp = latestOnly(pictureView("pinterp"), projStatus);

// The photo's coarse styles with the current seed's fine ones, and the reverse, at the mix view's cutoff;
// the strip from the photo to the seed, in the interpolation view's steps.
function refreshProjection() {
  if (!proj.job || !sg.model || proj.model !== sg.model.id) return;
  const mix = `${sgBase("mix")}&cutoff=${$("mix-cutoff").value}`;
  const seed = intValue("sg-seed");
  projMix(`${mix}&row_w=${proj.job}&col=${seed}`);
  projMixReverse(`${mix}&row=${seed}&col_w=${proj.job}`);
  projInterp(`${sgBase("interpolate")}&start_w=${proj.job}&end=${seed}&steps=${$("interp-steps").value}`);
}

function projectionLine(job) {
  const distance = job.distance === null ? "" : `, distance ${job.distance_name} ${job.distance.toPrecision(4)}`;
  const notes = job.notes.length ? `. ${job.notes.join(". ")}` : "";
  return `${job.state === "done" ? "projected" : "projecting"}: step ${job.step} of ${job.steps}${distance}${notes}`;
}

async function projectPhoto(file) {
  if (!sg.model || !file) return;
  if (file.size > LIMITS.max_upload_bytes) {
    return setStatus(projStatus, `the file is ${(file.size / 2 ** 20).toFixed(1)} MiB; the limit is ${LIMITS.max_upload_bytes / 2 ** 20} MiB`, true);
  }
  const model = sg.model;
  const base = `/api/stylegan/${encodeURIComponent(model.id)}/project`;
  const label = model.info.conditional ? `&label=${sg.label}` : "";
  const steps = Math.min(1000, Math.max(1, intValue("proj-steps")));
  setStatus(projStatus, "uploading ...");
  try {
    let response = await fetch(`${base}?steps=${steps}&filename=${encodeURIComponent(file.name || "upload.png")}${label}`,
                               { method: "POST", body: file });
    if (response.status !== 202) return setStatus(projStatus, await errorText(response), true);
    let job = await response.json();
    while (job.state === "running") {
      setStatus(projStatus, projectionLine(job));
      await new Promise((resolve) => setTimeout(resolve, 1000));
      response = await fetch(`${base}/${job.id}`);
      if (!response.ok) return setStatus(projStatus, await errorText(response), true);
      job = await response.json();
    }
    if (job.state !== "done") return setStatus(projStatus, `the projection failed: ${job.error}`, true);
    setStatus(projStatus, projectionLine(job));
    Object.assign(proj, { job: job.id, model: model.id });
    $("proj-w").href = `${base}/${job.id}/w`;
    $("proj-w").download = job.w_file;
    $("proj-result").hidden = sg.model !== model;
    projCompare(`${base}/${job.id}/compare`);
    refreshProjection();
  } catch (e) {
    setStatus(projStatus, `request failed: ${e}`, true);
  }
}

function setupStylegan() {
  const bump = (d) => { $("sg-seed").value = Math.max(0, intValue("sg-seed") + d); refreshSeed(); };
  $("sg-prev").addEventListener("click", () => bump(-1));
  $("sg-next").addEventListener("click", () => bump(1));
  $("sg-random").addEventListener("click", () => { $("sg-seed").value = Math.floor(Math.random() * 100000); refreshSeed(); });
  $("sg-seed").addEventListener("input", refreshSeed);
  $("sg-truncation").addEventListener("input", () => { $("sg-truncation-value").textContent = $("sg-truncation").value; refreshStylegan(); });
  for (const id of ["mix-row", "mix-col", "mix-cutoff"]) $(id).addEventListener("input", () => {
    $("mix-cutoff-value").textContent = $("mix-cutoff").value;
    refreshMix();
  });
  for (const id of ["mix-cutoff", "interp-steps"]) $(id).addEventListener("input", refreshProjection);
  $("proj-file").addEventListener("change", () => projectPhoto($("proj-file").files[0]));
  for (const id of ["interp-start", "interp-end", "interp-steps"]) $(id).addEventListener("input", () => {
    $("interp-steps-value").textContent = $("interp-steps").value;
    refreshInterp();
  });
  fillModels($("sg-model"), ["stylegan", "stylegan2"], $("sg-model-info"), selectStylegan);
}

// --- CycleGAN --------------------------------------------------------------------------------------------

const cg = { model: null, file: null, busy: false };
const cgStatus = $("cg-status");

function selectCyclegan(m) {
  cg.model = m;
  const [a, b] = m.info.domains;
  const names = { a2b: `${a} to ${b} (a2b)`, b2a: `${b} to ${a} (b2a)` };
  const direction = $("cg-direction");
  const before = direction.value;
  direction.innerHTML = "";
  for (const d of m.info.directions) {
    const option = document.createElement("option");
    option.value = d;
    option.textContent = names[d] || d;
    direction.append(option);
  }
  if (m.info.directions.includes(before)) direction.value = before;
  if (cg.file) translate();
}

async function translate() {
  if (!cg.model || !cg.file || cg.busy) return;
  cg.busy = true;
  const started = performance.now();
  const timer = setInterval(() => setStatus(cgStatus, `translating... ${((performance.now() - started) / 1000).toFixed(0)} s`), 500);
  setStatus(cgStatus, "translating...");
  try {
    const direction = $("cg-direction").value;
    const url = `/api/cyclegan/${encodeURIComponent(cg.model.id)}/translate?direction=${direction}` +
      `&filename=${encodeURIComponent(cg.file.name || "upload.png")}&precision=${$("cg-bf16").checked ? "bf16" : "fp32"}`;
    const response = await fetch(url, { method: "POST", body: cg.file, headers: { "Content-Type": "application/octet-stream" } });
    if (response.ok) {
      await showPicture(response, { img: $("cg-output"), command: $("cg-command"), download: $("cg-download") });
      setStatus(cgStatus, `translated in ${((performance.now() - started) / 1000).toFixed(1)} s`);
    } else {
      setStatus(cgStatus, await errorText(response), true);
    }
  } catch (e) {
    setStatus(cgStatus, `request failed: ${e}`, true);
  } finally {
    clearInterval(timer);
    cg.busy = false;
  }
}

function takeFile(file) {
  if (!file) return;
  if (file.size > LIMITS.max_upload_bytes) {
    return setStatus(cgStatus, `the file is ${(file.size / 2 ** 20).toFixed(1)} MiB; the limit is ${LIMITS.max_upload_bytes / 2 ** 20} MiB`, true);
  }
  cg.file = file;
  const input = $("cg-input");
  if (input.dataset.url) URL.revokeObjectURL(input.dataset.url);
  input.dataset.url = URL.createObjectURL(file);
  input.src = input.dataset.url;
  $("cg-output").removeAttribute("src");
  $("cg-download").removeAttribute("href");
  $("cg-command").textContent = "";
  translate();
}

function setupCyclegan() {
  const drop = $("cg-drop");
  $("cg-file").addEventListener("change", (e) => takeFile(e.target.files[0]));
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over"); takeFile(e.dataTransfer.files[0]); });
  drop.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); $("cg-file").click(); } });
  $("cg-direction").addEventListener("change", translate);
  $("cg-bf16").addEventListener("change", translate);
  $("cg-limits").textContent = `up to ${LIMITS.max_image_side} x ${LIMITS.max_image_side} pixels ` +
    `(${(LIMITS.max_image_pixels / 1e6).toFixed(1)} M) and ${LIMITS.max_upload_bytes / 2 ** 20} MiB; ` +
    "translated at full size, tile by tile above 1024 x 1024";
  fillModels($("cg-model"), ["cyclegan"], $("cg-model-info"), selectCyclegan);
}

// --- start -----------------------------------------------------------------------------------------------

async function start() {
  for (const button of document.querySelectorAll("nav button")) button.addEventListener("click", () => showTab(button.dataset.tab));
  const response = await fetch("/api/models");
  const body = await response.json();
  MODELS = body.models;
  LIMITS = body.limits;
  $("server-info").textContent = `gencli ${body.version} on ${body.device}, ${MODELS.length} models`;
  setupVae();
  setupStylegan();
  setupCyclegan();
  const tab = location.hash.slice(1);
  showTab(["vae", "stylegan", "cyclegan"].includes(tab) ? tab : "vae");
  document.body.dataset.ready = "true";
}

start();
