"use strict";
// vaekit explorer: plain JavaScript over the JSON API documented at /docs.
// No libraries and no requests to anything but this server, so the page works offline.

const TAB10 = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
               "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
const N_SAMPLES = 24;
// /api/info's prior (a class name) in words; fitted priors come from `vaekit fit-prior`
const PRIOR_NAMES = { StandardNormal: "N(0, I)", GaussianMixturePrior: "the fitted Gaussian mixture",
                      SecondStagePrior: "the fitted second-stage VAE" };
const priorName = (p) => PRIOR_NAMES[p] || p;
const $ = (id) => document.getElementById(id);

const state = {
  info: null,        // /api/info
  z: null,           // the code shown in the decoder, in index order (length latent_dim)
  label: null,       // class for conditional models, else null
  sliders: {},       // dim index -> {input, output}
  map: null,         // /api/map
  view: null,        // map bounds {u0, u1, v0, v1}
  layer: null,       // offscreen canvas holding the map's points
  marker: null,      // [u, v] of the ring on the map
  sampleSeed: 1,
  analysis: null,    // last upload / test-image analysis
  path: null,        // the lerp interpolation's codes on the map plane, [[u, v], ...]
};

// -- helpers ---------------------------------------------------------------------------------------

async function api(path, { json, ...init } = {}) {
  if (json !== undefined) {
    init.method = init.method || "POST";
    init.headers = { "Content-Type": "application/json" };
    init.body = JSON.stringify(json);
  }
  const res = await fetch(path, init);
  let body = null;
  try { body = await res.json(); } catch (e) { body = null; }
  if (!res.ok) {
    throw new Error(body && body.detail ? body.detail : `${res.status} ${res.statusText}`);
  }
  return body;
}

let toastTimer = null;
function toast(message) {
  const t = $("toast");
  t.textContent = message;
  t.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { t.hidden = true; }, 6000);
}

// Latest wins: while one request is in flight, later calls only replace the pending
// argument, so dragging a slider never queues up a backlog of stale decodes.
function latest(fn) {
  let busy = false, pending = null, has = false;
  return (arg) => {
    pending = arg; has = true;
    if (busy) return;
    busy = true;
    (async () => {
      while (has) {
        const a = pending; has = false;
        try { await fn(a); } catch (e) { toast(e.message); }
      }
      busy = false;
    })();
  };
}

function el(tag, attrs = {}, children = []) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v; else if (k === "text") e.textContent = v; else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
}

function classColor(k) {
  return k < 10 ? TAB10[k] : `hsl(${(k * 137.5) % 360}, 60%, 48%)`;
}

function labelName(k) {
  const names = state.info.class_names;
  return names && k < names.length ? names[k] : String(k);
}

function labelQuery(prefix = "&") {
  return state.label === null ? "" : `${prefix}label=${state.label}`;
}

function fmt(x, digits = 2) {
  return Number.isFinite(x) ? x.toFixed(digits) : "–";
}

// A canvas sized to its CSS box at the screen's pixel density; returns a 2-D context in CSS pixels.
function fitCanvas(c) {
  const dpr = window.devicePixelRatio || 1;
  const w = c.clientWidth, h = c.clientHeight;
  if (c.width !== Math.round(w * dpr) || c.height !== Math.round(h * dpr)) {
    c.width = Math.round(w * dpr); c.height = Math.round(h * dpr);
  }
  const ctx = c.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, h);
  return { ctx, w, h };
}

// -- the decoder -------------------------------------------------------------------------------------

const decode = latest(async (z) => {
  const r = await api("api/decode", { json: { z, label: state.label } });
  $("decoded").src = r.image;
});

function setCode(z, caption) {
  state.z = z.slice();
  state.marker = project(state.z);
  syncSliders();
  drawMap();
  if (caption) $("decoded-caption").textContent = caption;
}

function buildSliders() {
  const { dims, kind } = state.info;
  const box = $("sliders");
  box.innerHTML = "";
  const maxKl = Math.max(1e-9, ...dims.map((d) => (kind === "vae" ? d.kl : d.activity)));
  for (const d of dims) {
    const strength = kind === "vae" ? d.kl : d.activity;
    const input = el("input", {
      type: "range", min: d.low, max: d.high, step: (d.high - d.low) / 400, value: 0,
      "aria-label": `latent dimension ${d.index}`, "data-dim": d.index,
    });
    const output = el("output", { text: "0.00" });
    const klText = kind === "vae" ? `${fmt(d.kl)} nats` : `var ${fmt(d.activity)}`;
    const kl = el("span", { class: "kl", title: kind === "vae"
      ? `mean KL of this dimension over the test set: ${d.kl.toFixed(3)} nats`
      : `variance of this dimension's code over the test set: ${d.activity.toFixed(3)}` });
    if (d.active) {
      kl.append(klText, el("i", { style: `width:${Math.max(2, 100 * strength / maxKl)}%` }));
    } else {
      kl.append(el("span", { class: "badge off", text: "inactive", title: kl.title }));
    }
    const row = el("div", { class: d.active ? "dim" : "dim inactive" },
                   [el("span", { class: "name", text: `z${d.index}` }), kl, input, output]);
    input.addEventListener("input", () => {
      state.z[d.index] = parseFloat(input.value);
      output.textContent = fmt(state.z[d.index]);
      state.marker = project(state.z);
      drawMap();
      $("decoded-caption").textContent = "from the sliders";
      decode(state.z.slice());
    });
    state.sliders[d.index] = { input, output };
    box.append(row);
  }
}

function syncSliders() {
  for (const [i, { input, output }] of Object.entries(state.sliders)) {
    input.value = state.z[i];
    output.textContent = fmt(state.z[i]);
  }
}

async function showTestImage(index) {
  const r = await api(`api/test/${index}`);
  setCode(r.mu, `test image #${index}` + (r.label_name ? ` (${r.label_name})` : ""));
  decode(state.z.slice());
  return r;
}

function randomIndex() {
  return Math.floor(Math.random() * state.info.n_test);
}

function setupDecoder() {
  buildSliders();
  $("btn-zero").addEventListener("click", () => {
    setCode(new Array(state.info.latent_dim).fill(0), "z = 0 (the mean of N(0, I))");
    decode(state.z.slice());
  });
  $("btn-prior").addEventListener("click", async () => {
    // drawn by the server: the run's prior (a fitted one when `vaekit fit-prior` made one)
    try {
      const r = await api(`api/samples?n=1&seed=${Math.floor(Math.random() * 2 ** 31)}${labelQuery()}`);
      setCode(r.z[0], `a draw from ${priorName(state.info.prior)}`);
      decode(state.z.slice());
    } catch (e) { toast(e.message); }
  });
  $("btn-test").addEventListener("click", () => showTestImage(randomIndex()).catch((e) => toast(e.message)));
  if (state.info.conditional) {
    const sel = $("label-select");
    state.info.class_names.forEach((name, k) => sel.append(el("option", { value: k, text: `${k}: ${name}` })));
    $("label-select-wrap").hidden = false;
    state.label = 0;
    sel.addEventListener("change", () => {
      state.label = parseInt(sel.value, 10);
      decode(state.z.slice());
      loadSamples();
    });
  }
}

// -- the latent map ----------------------------------------------------------------------------------

function project(z) {
  const { origin, axes } = state.info.plane;
  const uv = [0, 0];
  axes.forEach((a, k) => { uv[k] = a.reduce((s, ak, d) => s + ak * (z[d] - origin[d]), 0); });
  return uv;
}

function quantile(sorted, q) {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.round(q * (sorted.length - 1))))];
}

function mapBounds(map) {
  // 0.5% .. 99.5% quantiles plus a margin, so a few outliers do not squash the cloud
  const span = (vals) => {
    const s = Float64Array.from(vals).sort();
    let lo = quantile(s, 0.005), hi = quantile(s, 0.995);
    if (!(hi - lo > 1e-6)) { lo -= 1; hi += 1; }
    const pad = 0.08 * (hi - lo);
    return [lo - pad, hi + pad];
  };
  const [u0, u1] = span(map.u), [v0, v1] = span(map.v);
  return { u0, u1, v0, v1 };
}

function toScreen(u, v, w, h) {
  const b = state.view;
  return [((u - b.u0) / (b.u1 - b.u0)) * w, ((b.v1 - v) / (b.v1 - b.v0)) * h];
}

function toData(px, py, w, h) {
  const b = state.view;
  return [b.u0 + (px / w) * (b.u1 - b.u0), b.v1 - (py / h) * (b.v1 - b.v0)];
}

function renderLayer(w, h) {
  const dpr = window.devicePixelRatio || 1;
  const layer = document.createElement("canvas");
  layer.width = Math.round(w * dpr); layer.height = Math.round(h * dpr);
  const ctx = layer.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  const { u, v, label } = state.map;
  // axes through the origin of the plane
  ctx.strokeStyle = "#e6e8f0"; ctx.lineWidth = 1;
  const [ox, oy] = toScreen(0, 0, w, h);
  ctx.beginPath(); ctx.moveTo(ox, 0); ctx.lineTo(ox, h); ctx.moveTo(0, oy); ctx.lineTo(w, oy); ctx.stroke();
  const groups = new Map();
  for (let i = 0; i < u.length; i++) {
    const k = label ? label[i] : 0;
    if (!groups.has(k)) groups.set(k, []);
    groups.get(k).push(i);
  }
  const r = u.length > 4000 ? 1.7 : 2.6;
  ctx.globalAlpha = u.length > 4000 ? 0.55 : 0.75;
  for (const [k, idx] of groups) {
    ctx.fillStyle = label ? classColor(k) : "#4f46e5";
    ctx.beginPath();
    for (const i of idx) {
      const [x, y] = toScreen(u[i], v[i], w, h);
      ctx.moveTo(x + r, y);
      ctx.arc(x, y, r, 0, 2 * Math.PI);
    }
    ctx.fill();
  }
  ctx.globalAlpha = 1;
  ctx.fillStyle = "#6b7385"; ctx.font = "12px system-ui, sans-serif";
  const names = state.info.plane.axis_names;
  ctx.textAlign = "right"; ctx.fillText(`${names[0]} →`, w - 8, h - 8);
  ctx.save(); ctx.translate(14, 8); ctx.rotate(Math.PI / 2); ctx.textAlign = "left";
  ctx.fillText(`← ${names[1]}`, 0, 0); ctx.restore();
  return layer;
}

function drawMap() {
  const c = $("map");
  if (!state.map || !c.clientWidth) return;
  const { ctx, w, h } = fitCanvas(c);
  if (!state.layer || state.layer.width !== c.width || state.layer.height !== c.height) {
    state.layer = renderLayer(w, h);
  }
  ctx.drawImage(state.layer, 0, 0, w, h);
  if (state.path && state.path.length > 1) {
    const pts = state.path.map(([u, v]) => toScreen(u, v, w, h));
    ctx.setLineDash([5, 4]); ctx.lineWidth = 1.6; ctx.strokeStyle = "rgba(17, 24, 39, .75)";
    ctx.beginPath(); pts.forEach(([x, y], i) => (i ? ctx.lineTo(x, y) : ctx.moveTo(x, y))); ctx.stroke();
    ctx.setLineDash([]); ctx.fillStyle = "#111827";
    for (const [x, y] of [pts[0], pts[pts.length - 1]]) { ctx.beginPath(); ctx.arc(x, y, 3.5, 0, 2 * Math.PI); ctx.fill(); }
    ctx.font = "600 11px system-ui, sans-serif"; ctx.textAlign = "left";
    ctx.fillText("A", pts[0][0] + 6, pts[0][1] - 6);
    ctx.fillText("B", pts[pts.length - 1][0] + 6, pts[pts.length - 1][1] - 6);
  }
  if (state.marker) {
    const [x, y] = toScreen(state.marker[0], state.marker[1], w, h);
    ctx.lineWidth = 3; ctx.strokeStyle = "#fff";
    ctx.beginPath(); ctx.arc(x, y, 9, 0, 2 * Math.PI); ctx.stroke();
    ctx.lineWidth = 2; ctx.strokeStyle = "#111827";
    ctx.beginPath(); ctx.arc(x, y, 9, 0, 2 * Math.PI); ctx.stroke();
    ctx.beginPath(); ctx.arc(x, y, 2, 0, 2 * Math.PI); ctx.fillStyle = "#111827"; ctx.fill();
  }
}

const probeMap = latest(async ([u, v]) => {
  const r = await api("api/map/decode", { json: { u, v, label: state.label } });
  $("decoded").src = r.image;
  setCode(r.z, `map point (${fmt(u)}, ${fmt(v)})`);
  state.marker = [u, v];
  drawMap();
});

function setupMap(map) {
  state.map = map;
  state.view = mapBounds(map);
  const { plane, n_test } = state.info;
  $("map-subtitle").textContent = plane.method === "pca"
    ? `${map.u.length.toLocaleString()} of ${n_test.toLocaleString()} test images, PCA plane of the posterior means`
    : `${map.u.length.toLocaleString()} of ${n_test.toLocaleString()} test images, the latent axes themselves`;
  if (map.label) {
    const seen = [...new Set(map.label)].sort((a, b) => a - b);
    $("legend").replaceChildren(...seen.map((k) =>
      el("span", {}, [el("i", { style: `background:${classColor(k)}` }), labelName(k)])));
  }
  const c = $("map");
  let dragging = false;
  const at = (e) => {
    const rect = c.getBoundingClientRect();
    const uv = toData(e.clientX - rect.left, e.clientY - rect.top, rect.width, rect.height);
    state.marker = uv;
    drawMap();
    probeMap(uv);
  };
  c.addEventListener("pointerdown", (e) => { dragging = true; c.setPointerCapture(e.pointerId); at(e); });
  c.addEventListener("pointermove", (e) => { if (dragging) at(e); });
  const stop = () => { dragging = false; };
  c.addEventListener("pointerup", stop);
  c.addEventListener("pointercancel", stop);
  window.addEventListener("resize", () => { state.layer = null; drawMap(); drawRunCurves(); drawPosterior(); });
  drawMap();
}

// -- samples ---------------------------------------------------------------------------------------------

const loadSamples = latest(async () => {
  const t = parseFloat($("temperature").value);
  const r = await api(`api/samples?n=${N_SAMPLES}&temperature=${t}&seed=${state.sampleSeed}${labelQuery()}`);
  $("samples").replaceChildren(...r.images.map((src, i) =>
    el("img", { class: "pix", src, alt: `sample ${i + 1}` })));
});

function setupSamples() {
  $("samples-subtitle").textContent = `z ~ ${priorName(state.info.prior)}, decoded`;
  $("temperature").addEventListener("input", () => {
    $("temperature-out").textContent = fmt(parseFloat($("temperature").value));
    loadSamples();  // the same seed: watch the same samples sharpen or spread
  });
  $("btn-samples").addEventListener("click", () => {
    state.sampleSeed = Math.floor(Math.random() * 2 ** 31);
    loadSamples();
  });
  loadSamples();
}

// -- interpolation -------------------------------------------------------------------------------------

const loadThumb = async (which) => {
  const idx = parseInt($(`interp-${which}`).value, 10);
  const r = await api(`api/test/${idx}`);
  const img = $(`interp-${which}-img`);
  img.src = r.image;
  img.title = `test image #${idx}` + (r.label_name ? ` (${r.label_name})` : "");
};

const runInterpolation = latest(async () => {
  const a = parseInt($("interp-a").value, 10), b = parseInt($("interp-b").value, 10);
  const steps = parseInt($("interp-steps").value, 10);
  const [lerp, slerp] = await Promise.all(["lerp", "slerp"].map((method) =>
    api("api/interpolate", { json: { a, b, steps, method } })));
  for (const [name, r] of [["lerp", lerp], ["slerp", slerp]]) {
    $(`interp-${name}`).replaceChildren(...r.images.map((src, i) => el("figure", {}, [
      el("img", { class: "pix", src, alt: `${name} step ${i}` }),
      el("figcaption", { text: name === "slerp" ? `t=${fmt(i / (steps - 1))}` : "" }),
    ])));
  }
  state.path = lerp.z.map(project);
  drawMap();
});

function setupInterpolation() {
  const n = state.info.n_test;
  for (const which of ["a", "b"]) {
    const input = $(`interp-${which}`);
    input.max = n - 1;
    input.addEventListener("change", () => {
      loadThumb(which).catch((e) => toast(e.message));
      runInterpolation();
    });
  }
  document.querySelectorAll("[data-dice]").forEach((btn) => btn.addEventListener("click", () => {
    $(`interp-${btn.dataset.dice}`).value = randomIndex();
    $(`interp-${btn.dataset.dice}`).dispatchEvent(new Event("change"));
  }));
  $("interp-steps").addEventListener("input", () => {
    $("interp-steps-out").textContent = $("interp-steps").value;
    runInterpolation();
  });
  $("interp-b").value = Math.min(n - 1, 1);
  // two different classes make a more telling first walk
  if (state.map.label) {
    const first = state.map.label[0];
    const j = state.map.label.findIndex((k) => k !== first);
    if (j > 0) { $("interp-a").value = state.map.index[0]; $("interp-b").value = state.map.index[j]; }
  }
  Promise.all([loadThumb("a"), loadThumb("b")]).catch((e) => toast(e.message));
  runInterpolation();
}

// -- upload ---------------------------------------------------------------------------------------------

function showAnalysis(r) {
  state.analysis = r;
  $("analysis").hidden = false;
  $("posterior-wrap").hidden = false;
  $("upload-input").src = r.image;
  $("upload-recon").src = r.reconstruction;
  const s = r.score;
  $("score-name").textContent = s.name + (r.index !== null ? ` · test image #${r.index}` : "")
    + (r.label_name ? ` (${r.label_name})` : "");
  $("score-name").title = s.help;
  $("score-value").textContent = fmt(s.value, 1);
  $("score-units").textContent = s.units;
  $("pct-mark").style.left = `${Math.min(100, Math.max(0, s.percentile))}%`;
  $("score-pct").textContent =
    `higher than ${fmt(s.percentile, 1)}% of ${s.reference_size.toLocaleString()} test images`
    + (s.flagged === null ? "" : s.flagged
      ? ` · flagged as an anomaly (above ${fmt(s.threshold, 1)})`
      : ` · not flagged (threshold ${fmt(s.threshold, 1)})`);
  drawPosterior();
}

async function uploadFile(file) {
  const limit = state.info.limits.max_upload_bytes;
  if (file.size > limit) {
    toast(`${file.name} is ${(file.size / 2 ** 20).toFixed(1)} MiB; the limit is ${(limit / 2 ** 20).toFixed(1)} MiB`);
    return;
  }
  const r = await api(`api/upload${labelQuery("?")}`, {
    method: "POST", headers: { "Content-Type": file.type || "application/octet-stream" }, body: file,
  });
  showAnalysis(r);
}

function setupUpload() {
  const { limits, is_image } = state.info;
  const input = $("upload"), zone = $("dropzone");
  $("upload-limit").textContent = `PNG, JPEG, GIF, WebP…  up to ${(limits.max_upload_bytes / 2 ** 20).toFixed(0)} MiB; ` +
    `resized to ${state.info.data_shape.slice(1).join(" × ")}`;
  input.addEventListener("change", () => {
    if (input.files.length) uploadFile(input.files[0]).catch((e) => toast(e.message));
  });
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault(); zone.classList.remove("over");
    if (e.dataTransfer.files.length) uploadFile(e.dataTransfer.files[0]).catch((err) => toast(err.message));
  });
  if (!is_image) {
    zone.replaceWith(el("p", { class: "hint",
      text: "This model was trained on feature vectors, not images: there is no image to upload." }));
  }
  $("btn-upload-test").addEventListener("click", async () => {
    try { showAnalysis(await api(`api/test/${randomIndex()}`)); } catch (e) { toast(e.message); }
  });
  $("btn-use-code").addEventListener("click", () => {
    const r = state.analysis;
    if (!r) return;
    setCode(r.mu, r.index !== null ? `test image #${r.index}` : "the uploaded image's posterior mean");
    decode(state.z.slice());
  });
}

function drawPosterior() {
  const r = state.analysis, c = $("posterior");
  if (!r || !c.clientWidth) return;
  const { ctx, w, h } = fitCanvas(c);
  const dims = state.info.dims;
  const pad = { l: 30, r: 6, t: 6, b: 18 };
  let top = 3;
  dims.forEach((d) => { top = Math.max(top, Math.abs(r.mu[d.index]) + r.std[d.index]); });
  top = Math.min(Math.ceil(top), 20);
  const y = (val) => pad.t + ((top - val) / (2 * top)) * (h - pad.t - pad.b);
  const slot = (w - pad.l - pad.r) / dims.length;
  ctx.fillStyle = "#eef0ff";
  ctx.fillRect(pad.l, y(1), w - pad.l - pad.r, y(-1) - y(1));
  ctx.strokeStyle = "#c7cbe0"; ctx.lineWidth = 1;
  ctx.beginPath(); ctx.moveTo(pad.l, y(0)); ctx.lineTo(w - pad.r, y(0)); ctx.stroke();
  ctx.fillStyle = "#6b7385"; ctx.font = "10px system-ui, sans-serif"; ctx.textAlign = "right";
  for (const t of [top, 0, -top]) ctx.fillText(String(t), pad.l - 5, y(t) + 3);
  ctx.textAlign = "center";
  const every = Math.ceil(dims.length / Math.max(1, Math.floor((w - pad.l) / 26)));
  dims.forEach((d, i) => {
    const x = pad.l + (i + 0.5) * slot;
    const m = r.mu[d.index], s = r.std[d.index];
    ctx.strokeStyle = d.active ? "#4f46e5" : "#b8bccb"; ctx.lineWidth = 2;
    ctx.beginPath(); ctx.moveTo(x, y(Math.min(top, m + s))); ctx.lineTo(x, y(Math.max(-top, m - s))); ctx.stroke();
    ctx.fillStyle = d.active ? "#312e81" : "#9ca3af";
    ctx.beginPath(); ctx.arc(x, y(Math.max(-top, Math.min(top, m))), 3, 0, 2 * Math.PI); ctx.fill();
    if (i % every === 0) { ctx.fillStyle = "#6b7385"; ctx.fillText(`z${d.index}`, x, h - 4); }
  });
}

// -- the run ------------------------------------------------------------------------------------------

let runData = null;

function renderRun(run) {
  runData = run;
  const info = state.info, cfg = run.config || {}, meta = run.info || {}, best = run.best;
  const rows = run.metrics || [];
  const active = info.dims.filter((d) => d.active).length;
  const seconds = rows.reduce((s, r) => s + (r.seconds || 0), 0);
  const table = [
    ["data", `${info.data || "?"}` + (meta.n_train ? ` (${meta.n_train.toLocaleString()} train, ` +
      `${(meta.n_val || 0).toLocaleString()} val, ${meta.n_test.toLocaleString()} test)` : "")],
    ["model", `${info.kind.toUpperCase()} · ${info.arch} · ${info.likelihood} likelihood`],
    ["latent dimensions", `${info.latent_dim} (${active} active)`],
    ["epochs trained", rows.length ? `${rows[rows.length - 1].epoch}` + (best ? ` (best: ${best.epoch})` : "") : "–"],
  ];
  if (best) {
    table.push(["best val loss", `${fmt(best.val_loss)} nats/example (beta = ${best.beta})`]);
    table.push(["… its recon + KL", `${fmt(best.val_recon)} + ${fmt(best.val_kl)} nats/example`]);
    if (best.val_nelbo !== undefined) table.push(["… negative ELBO", `${fmt(best.val_nelbo)} nats/example`]);
  }
  if (seconds) table.push(["training time", seconds > 120 ? `${fmt(seconds / 60, 1)} min` : `${fmt(seconds, 1)} s`]);
  table.push(["sampling prior", priorName(info.prior)]);
  if (meta.created) table.push(["created", `${meta.created} (vaekit ${meta.vaekit_version || "?"})`]);
  $("run-table").replaceChildren(...table.map(([k, v]) => el("tr", {}, [el("td", { text: k }), el("td", { text: v })])));
  $("run-config").textContent = JSON.stringify(cfg, null, 2);
  $("run-path").textContent = info.run;
  const chips = [
    ["run", info.run], ["data", info.data], ["model", `${info.kind.toUpperCase()} ${info.arch}`],
    ["latent", `${info.latent_dim}-d`],
  ];
  if (best && best.val_nelbo !== undefined) chips.push(["val −ELBO", `${fmt(best.val_nelbo, 1)} nats/example`]);
  $("run-chips").replaceChildren(...chips.map(([k, v]) => el("span", { class: "chip" }, [`${k} `, el("b", { text: v })])));
  $("version").textContent = info.version;
  drawRunCurves();
}

function drawRunCurves() {
  const c = $("curves");
  const rows = runData ? runData.metrics.filter((r) => Number.isFinite(r.train_loss) && Number.isFinite(r.val_loss)) : [];
  if (!rows.length) { c.hidden = true; return; }
  const { ctx, w, h } = fitCanvas(c);
  const pad = { l: 44, r: 10, t: 18, b: 22 };
  const series = [["train loss", "train_loss", "#94a3b8"], ["val loss", "val_loss", "#4f46e5"]];
  const vals = rows.flatMap((r) => [r.train_loss, r.val_loss]);
  let lo = Math.min(...vals), hi = Math.max(...vals);
  if (hi - lo < 1e-6) { lo -= 1; hi += 1; }
  const e0 = rows[0].epoch, e1 = rows[rows.length - 1].epoch;
  const x = (e) => pad.l + (e1 === e0 ? 0.5 : (e - e0) / (e1 - e0)) * (w - pad.l - pad.r);
  const y = (v) => pad.t + ((hi - v) / (hi - lo)) * (h - pad.t - pad.b);
  ctx.strokeStyle = "#e3e6ee"; ctx.lineWidth = 1;
  ctx.beginPath(); ctx.moveTo(pad.l, pad.t); ctx.lineTo(pad.l, h - pad.b); ctx.lineTo(w - pad.r, h - pad.b); ctx.stroke();
  ctx.fillStyle = "#6b7385"; ctx.font = "10px system-ui, sans-serif";
  ctx.textAlign = "right"; ctx.fillText(fmt(hi, 0), pad.l - 5, pad.t + 4); ctx.fillText(fmt(lo, 0), pad.l - 5, h - pad.b);
  ctx.textAlign = "center"; ctx.fillText(`epoch ${e0}`, x(e0) + 16, h - 6);
  if (e1 !== e0) ctx.fillText(`${e1}`, x(e1) - 4, h - 6);
  ctx.textAlign = "left"; ctx.fillText("nats/example", pad.l + 4, 10);
  series.forEach(([name, key, color], s) => {
    ctx.strokeStyle = color; ctx.fillStyle = color; ctx.lineWidth = 2;
    ctx.beginPath();
    rows.forEach((r, i) => { const px = x(r.epoch), py = y(r[key]); if (i) ctx.lineTo(px, py); else ctx.moveTo(px, py); });
    ctx.stroke();
    rows.forEach((r) => { ctx.beginPath(); ctx.arc(x(r.epoch), y(r[key]), 2.5, 0, 2 * Math.PI); ctx.fill(); });
    ctx.fillText(`● ${name}`, w - pad.r - 150 + s * 75, 10);
  });
}

// -- start ----------------------------------------------------------------------------------------------

async function init() {
  const [info, run, map] = await Promise.all([api("api/info"), api("api/run"), api("api/map")]);
  state.info = info;
  state.z = new Array(info.latent_dim).fill(0);
  renderRun(run);
  setupDecoder();
  setupMap(map);
  setupSamples();
  setupInterpolation();
  setupUpload();
  await showTestImage(map.index[0]);
  document.body.dataset.ready = "1";  // for tests and screenshots: the first decode has been asked for
}

document.addEventListener("DOMContentLoaded", () => {
  init().catch((e) => { console.error(e); toast(e.message); });
});
