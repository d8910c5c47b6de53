// The latent explorer's page: the plane (zoom, pan, hover, hold), a slider per latent
// dimension, walks, and drawing.
// Every string from the server or the user reaches the page through textContent.
"use strict";

// tab10 with its grey made black, as in the figures (vaelab.figures.plots.DIGITS)
const COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                 "#8c564b", "#e377c2", "#000000", "#bcbd22", "#17becf"];
const MARGIN = { left: 46, right: 12, top: 12, bottom: 36 };
const NEAR_PX = 7;          // a dot this close to the pointer is "under" it
const WALK_MS = 350;        // per frame, as in the GIF
const $ = id => document.getElementById(id);

const state = {
  plane: null, card: null, view: null, screen: [], held: false, cursor: null,
  hovered: -1, walkMode: false, ends: [], walk: null, drawn: null, code: null, codePoint: null,
  size: null,
};

// ---------- coordinates ----------

const canvas = $("plane");
const ctx = canvas.getContext("2d");
const base = document.createElement("canvas");  // the dots and axes, redrawn on view changes

function inner() {
  const w = canvas.clientWidth, h = canvas.clientHeight;
  return { w: w - MARGIN.left - MARGIN.right, h: h - MARGIN.top - MARGIN.bottom };
}

function fitView() {
  const [x0, x1, y0, y1] = state.plane.extent;
  const { w, h } = inner();
  let sx = (x1 - x0) / w, sy = (y1 - y0) / h;
  if (state.plane.equal_aspect) sx = sy = Math.max(sx, sy);
  state.view = { cx: (x0 + x1) / 2, cy: (y0 + y1) / 2, sx, sy };
}

// After a resize the part of the plane in view stays in view, zoomed or not.
function keepView(before) {
  const { w, h } = inner(), v = state.view;
  if (w <= 0 || h <= 0) return;  // collapsed: the view waits for the plane to show again
  if (!v || !before || before.w <= 0 || before.h <= 0) { fitView(); return; }
  let sx = v.sx * before.w / w, sy = v.sy * before.h / h;
  if (state.plane.equal_aspect) sx = sy = Math.max(sx, sy);
  v.sx = sx; v.sy = sy;
  clampView();
}

function toScreen(x, y) {
  const { w, h } = inner(), v = state.view;
  return [MARGIN.left + w / 2 + (x - v.cx) / v.sx, MARGIN.top + h / 2 - (y - v.cy) / v.sy];
}

function toPlane(px, py) {
  const { w, h } = inner(), v = state.view;
  return [v.cx + (px - MARGIN.left - w / 2) * v.sx, v.cy - (py - MARGIN.top - h / 2) * v.sy];
}

function visible() {
  const [x0, y1] = toPlane(MARGIN.left, MARGIN.top);
  const { w, h } = inner();
  const [x1, y0] = toPlane(MARGIN.left + w, MARGIN.top + h);
  return { x0, x1, y0, y1 };
}

// Zoom and pan stay where the server decodes: |x|, |y| <= reach.
function clampView() {
  const v = state.view, { w, h } = inner(), reach = state.plane.reach;
  const grow = Math.min(1, reach / (w * v.sx / 2), reach / (h * v.sy / 2));
  v.sx *= grow; v.sy *= grow;
  const hx = w * v.sx / 2, hy = h * v.sy / 2;
  v.cx = Math.max(-reach + hx, Math.min(reach - hx, v.cx));
  v.cy = Math.max(-reach + hy, Math.min(reach - hy, v.cy));
}

function zoom(factor, px, py) {
  const before = toPlane(px, py);
  state.view.sx *= factor; state.view.sy *= factor;
  const after = toPlane(px, py);
  state.view.cx += before[0] - after[0];
  state.view.cy += before[1] - after[1];
  clampView();
  redraw();
}

// ---------- drawing the plane ----------

function niceStep(span, target) {
  const raw = span / target, power = 10 ** Math.floor(Math.log10(raw));
  return [1, 2, 5, 10].map(m => m * power).find(s => s >= raw);
}

function ticks(lo, hi, target) {
  const step = niceStep(hi - lo, target), out = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi; t += step) out.push(Math.abs(t) < step / 1e6 ? 0 : t);
  return { values: out, digits: Math.max(0, -Math.floor(Math.log10(step))) };
}

function resize() {
  const ratio = window.devicePixelRatio || 1;
  for (const c of [canvas, base]) {
    c.width = Math.round(canvas.clientWidth * ratio);
    c.height = Math.round(canvas.clientHeight * ratio);
    c.getContext("2d").setTransform(ratio, 0, 0, ratio, 0, 0);
  }
  state.size = inner();
}

function drawBase() {
  const g = base.getContext("2d"), W = canvas.clientWidth, H = canvas.clientHeight;
  const { w, h } = inner(), box = visible();
  g.clearRect(0, 0, W, H);
  g.save();
  g.beginPath(); g.rect(MARGIN.left, MARGIN.top, w, h); g.clip();
  const xt = ticks(box.x0, box.x1, w / 50), yt = ticks(box.y0, box.y1, h / 50);
  g.strokeStyle = "#eee"; g.lineWidth = 1;
  for (const x of xt.values) line(g, ...toScreen(x, box.y0), ...toScreen(x, box.y1));
  for (const y of yt.values) line(g, ...toScreen(box.x0, y), ...toScreen(box.x1, y));
  g.strokeStyle = "#999";
  line(g, ...toScreen(0, box.y0), ...toScreen(0, box.y1));
  if (state.plane.axes[1]) line(g, ...toScreen(box.x0, 0), ...toScreen(box.x1, 0));
  if (state.plane.prior_bulk) {
    const b = state.plane.prior_bulk, [ax, ay] = toScreen(-b, b), [bx, by] = toScreen(b, -b);
    g.setLineDash([4, 4]); g.strokeStyle = "#bbb"; g.strokeRect(ax, ay, bx - ax, by - ay);
    g.setLineDash([]);
  }
  state.screen = state.plane.points.map(([x, y]) => toScreen(x, y));
  const labels = state.plane.labels, trained = trainedLabels();
  const dot = i => {
    const [px, py] = state.screen[i];
    g.fillStyle = labels ? COLOURS[labels[i] % COLOURS.length] : COLOURS[0];
    g.fillRect(px - 1.5, py - 1.5, 3, 3);
  };
  // a model trained on some classes: the others faint, its own drawn over them
  const own = i => !trained || trained.has(labels[i]);
  const all = state.plane.points.map((_, i) => i);
  g.globalAlpha = trained ? 0.2 : 0.55;
  all.filter(i => !own(i)).forEach(dot);
  g.globalAlpha = 0.55;
  all.filter(own).forEach(dot);
  g.restore();
  g.strokeStyle = "#999"; g.strokeRect(MARGIN.left, MARGIN.top, w, h);
  g.fillStyle = "#333"; g.font = "12px system-ui, sans-serif";
  g.textAlign = "center";
  for (const x of xt.values) g.fillText(x.toFixed(xt.digits), toScreen(x, 0)[0], MARGIN.top + h + 14);
  g.fillText(state.plane.axes[0], MARGIN.left + w / 2, H - 4);
  g.textAlign = "right";
  for (const y of yt.values) g.fillText(y.toFixed(yt.digits), MARGIN.left - 4, toScreen(0, y)[1] + 4);
  g.save(); g.translate(12, MARGIN.top + h / 2); g.rotate(-Math.PI / 2);
  g.textAlign = "center"; g.fillText(state.plane.axes[1], 0, 0); g.restore();
}

function line(g, x0, y0, x1, y1) { g.beginPath(); g.moveTo(x0, y0); g.lineTo(x1, y1); g.stroke(); }

function cross(point, colour, size = 8) {
  const [px, py] = toScreen(...point);
  ctx.strokeStyle = colour; ctx.lineWidth = 2;
  line(ctx, px - size, py, px + size, py); line(ctx, px, py - size, px, py + size);
  ctx.lineWidth = 1;
}

function diamond(point, colour, size = 7) {
  const [px, py] = toScreen(...point);
  ctx.strokeStyle = colour; ctx.lineWidth = 2; ctx.beginPath();
  ctx.moveTo(px, py - size); ctx.lineTo(px + size, py); ctx.lineTo(px, py + size); ctx.lineTo(px - size, py);
  ctx.closePath(); ctx.stroke(); ctx.lineWidth = 1;
}

function drawOverlay() {
  ctx.clearRect(0, 0, canvas.clientWidth, canvas.clientHeight);
  ctx.drawImage(base, 0, 0, canvas.clientWidth, canvas.clientHeight);
  if (state.hovered >= 0) {
    const [px, py] = state.screen[state.hovered];
    ctx.strokeStyle = "#000"; ctx.beginPath(); ctx.arc(px, py, 5, 0, 2 * Math.PI); ctx.stroke();
  }
  if (state.walk) {
    ctx.strokeStyle = "#444"; ctx.beginPath();
    state.walk.points.forEach((p, i) => { const [x, y] = toScreen(...p); i ? ctx.lineTo(x, y) : ctx.moveTo(x, y); });
    ctx.stroke();
    ctx.fillStyle = "#000";
    const [fx, fy] = toScreen(...state.walk.points[state.walk.frame]);
    ctx.beginPath(); ctx.arc(fx, fy, 4, 0, 2 * Math.PI); ctx.fill();
  }
  for (const end of state.ends) cross(end.point, "#06c", 6);
  if (state.codePoint) diamond(state.codePoint, "#2a7d2a");
  if (state.drawn) {
    const [px, py] = toScreen(...state.drawn);
    ctx.fillStyle = "#d00"; ctx.font = "20px system-ui, sans-serif"; ctx.textAlign = "center";
    ctx.fillText("★", px, py + 7);
  }
  if (state.cursor) cross(state.cursor, state.held ? "#d00" : "#000");
}

function redraw() { drawBase(); drawOverlay(); }

// ---------- decoding under the pointer ----------

let busy = false, pending = null;

function show(point) {
  // One request in flight at a time; the latest point waits its turn.
  if (busy) { pending = point; return; }
  busy = true;
  const [x, y] = point;
  fetch(`/decode?x=${x.toFixed(5)}&y=${y.toFixed(5)}${labelQuery()}`)
    .then(r => r.ok ? r.blob() : r.text().then(t => Promise.reject(new Error(t))))
    .then(blob => {
      const img = $("decoded"), old = img.src;
      img.src = URL.createObjectURL(blob);
      img.dataset.x = x; img.dataset.y = y;
      if (old.startsWith("blob:")) URL.revokeObjectURL(old);
      const [ax, ay] = state.plane.axes;
      $("where").textContent = `${ax} = ${x.toFixed(2)}` + (ay ? `, ${ay} = ${y.toFixed(2)}` : "")
        + (state.held ? "  (held)" : "");
    })
    .catch(err => { $("where").textContent = `error: ${err.message}`; })
    .finally(() => {
      busy = false;
      if (pending) { const next = pending; pending = null; show(next); }
    });
}

function nearestDot(px, py) {
  let best = -1, bestD = NEAR_PX * NEAR_PX;
  state.screen.forEach(([sx, sy], i) => {
    const d = (sx - px) ** 2 + (sy - py) ** 2;
    if (d < bestD) { bestD = d; best = i; }
  });
  return best;
}

function hover(index) {
  if (index === state.hovered) return;
  state.hovered = index;
  $("nearest").hidden = index < 0;
  if (index < 0) return;
  $("nearest-image").src = `/test/${state.plane.images[index]}.png`;
  $("nearest-caption").textContent = caption(index);
}

// A test image by its index and class, a file by its name.
function dotName(index) {
  const plane = state.plane;
  return plane.files ? plane.files[index] : `test #${plane.images[index]} (${plane.classes[plane.labels[index]]})`;
}

// A dot's name, and a detector's score and verdict.
function caption(index) {
  const plane = state.plane, name = dotName(index);
  if (!plane.scores) return name;
  const score = plane.scores[index], verdict = score > state.card.threshold ? "anomalous" : "normal";
  return `${name}: score ${figure(score)}, ${verdict}`;
}

// Scores as the page writes them: four significant digits, whatever their scale.
function figure(value) { return String(Number(value.toPrecision(4))); }

function percent(share) { return `${Number((100 * share).toPrecision(3))}%`; }

function follow(px, py) {
  hover(nearestDot(px, py));
  if (state.held) { drawOverlay(); return; }
  state.cursor = toPlane(px, py);
  drawOverlay();
  show(state.cursor);
}

// ---------- pointer input: mouse, pen and fingers ----------

const pointers = new Map();
let drag = null, pinch = null;

function local(event) {
  const rect = canvas.getBoundingClientRect();
  return [event.clientX - rect.left, event.clientY - rect.top];
}

canvas.addEventListener("pointerdown", event => {
  if (!state.plane) return;
  canvas.setPointerCapture(event.pointerId);
  pointers.set(event.pointerId, local(event));
  if (pointers.size === 2) { pinch = pinchState(); drag = null; return; }
  drag = { start: local(event), view: { ...state.view }, moved: false, touch: event.pointerType !== "mouse" };
  if (drag.touch) follow(...local(event));
});

canvas.addEventListener("pointermove", event => {
  if (!state.plane) return;
  const here = local(event);
  if (pointers.has(event.pointerId)) pointers.set(event.pointerId, here);
  if (pinch && pointers.size === 2) { pinchMove(); return; }
  if (drag && !drag.touch && event.buttons) {
    const dx = here[0] - drag.start[0], dy = here[1] - drag.start[1];
    if (Math.abs(dx) + Math.abs(dy) > 4) drag.moved = true;
    if (drag.moved) {
      state.view.cx = drag.view.cx - dx * state.view.sx;
      state.view.cy = drag.view.cy + dy * state.view.sy;
      clampView(); redraw();
      return;
    }
  }
  follow(...here);
});

function release(event) {
  pointers.delete(event.pointerId);
  if (pointers.size < 2) pinch = null;
  if (!drag || event.type === "pointercancel") { drag = null; return; }
  const tap = !drag.moved && pointers.size === 0;
  const touch = drag.touch;
  drag = null;
  if (tap) tapAt(...local(event), touch);
}

function tapAt(px, py, touch) {
  if (state.walkMode) { pickEnd(px, py); return; }
  if (!touch) {  // a click holds the point; on a touch screen the finger's last point stays
    state.held = !state.held;
    state.cursor = toPlane(px, py);
    drawOverlay(); show(state.cursor);
  }
  if (state.code && (touch || state.held)) codeFrom(px, py);
}
canvas.addEventListener("pointerup", release);
canvas.addEventListener("pointercancel", release);
canvas.addEventListener("pointerleave", () => { if (!drag) hover(-1); });

function pinchState() {
  const [a, b] = [...pointers.values()];
  return { distance: Math.hypot(a[0] - b[0], a[1] - b[1]), centre: [(a[0] + b[0]) / 2, (a[1] + b[1]) / 2] };
}

function pinchMove() {
  const now = pinchState();
  const factor = pinch.distance / Math.max(now.distance, 1);
  state.view.cx -= (now.centre[0] - pinch.centre[0]) * state.view.sx;
  state.view.cy += (now.centre[1] - pinch.centre[1]) * state.view.sy;
  pinch = now;
  zoom(factor, ...now.centre);
}

canvas.addEventListener("wheel", event => {
  if (!state.plane) return;
  event.preventDefault();
  zoom(Math.exp(event.deltaY * 0.0015), ...local(event));
}, { passive: false });

$("zoom-in").addEventListener("click", () => zoom(1 / 1.5, ...centre()));
$("zoom-out").addEventListener("click", () => zoom(1.5, ...centre()));
$("zoom-reset").addEventListener("click", () => { fitView(); redraw(); });

function centre() { const { w, h } = inner(); return [MARGIN.left + w / 2, MARGIN.top + h / 2]; }

// ---------- the keyboard: what the pointer does, from the arrow keys ----------

const ARROWS = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };

canvas.addEventListener("keydown", event => {
  if (!state.plane || event.ctrlKey || event.metaKey || event.altKey) return;  // the browser's
  const { w, h } = inner();
  const [px, py] = state.cursor ? toScreen(...state.cursor) : centre();
  const arrow = ARROWS[event.key];
  if (arrow) {
    const step = event.shiftKey ? 40 : 8;
    const x = Math.max(MARGIN.left, Math.min(MARGIN.left + w, px + arrow[0] * step));
    const y = Math.max(MARGIN.top, Math.min(MARGIN.top + h, py + arrow[1] * step));
    state.held = false;  // the keys move the point as the mouse does; Enter holds it again
    follow(x, y);
  } else if (event.key === "Enter" || event.key === " ") {
    if (!state.walkMode) state.held = false;  // so that the tap holds the point
    tapAt(px, py, false);
  } else if (event.key === "+" || event.key === "=") {
    zoom(1 / 1.5, px, py);
  } else if (event.key === "-") {
    zoom(1.5, px, py);
  } else {
    return;
  }
  event.preventDefault();
});

// ---------- each dimension ----------

// A slider per latent dimension (those carrying the most KL first) sets one value of a whole
// code; the dimensions without a slider keep the values of the code the sliders started from.
let codeBusy = false, codeAgain = false;

function dimensionSliders(dims) {
  const box = $("dims-sliders"), shown = dims.order.slice(0, dims.sliders);
  for (const d of shown) {
    const row = document.createElement("label"), name = document.createElement("span");
    const slider = document.createElement("input"), value = document.createElement("output");
    name.textContent = `z[${d}] · ${dims.kl[d].toFixed(2)} nats` + (dims.active[d] ? "" : " · inactive");
    if (!dims.active[d]) row.className = "inactive";
    Object.assign(slider, { type: "range", min: -dims.limit, max: dims.limit, step: dims.step });
    slider.dataset.dim = d;
    slider.addEventListener("input", () => { state.code[d] = Number(slider.value); showCode(); decodeCode(); });
    row.append(name, slider, value);
    box.append(row);
  }
  $("dims-note").textContent = dimensionsNote(dims, shown.length);
  $("dims-zero").addEventListener("click", () => startCode(state.code.map(() => 0), "0, the prior's mean"));
  $("dims").hidden = false;
  startCode(dims.kl.map(() => 0), "0, the prior's mean");
}

function dimensionsNote(dims, shown) {
  const total = dims.kl.length, active = dims.active.filter(Boolean).length;
  const which = shown === total ? `All ${total} latent dimensions`
    : `The ${shown} of the ${total} latent dimensions that carry the most`;
  const count = active === total ? "all are" : `${active || "none"} ${active === 1 ? "is" : "are"}`;
  const others = active === total ? "" : "; the inactive ones tell the images almost nothing";
  return `${which}, ranked by their KL from the prior over the ${dims.images.toLocaleString()} `
    + `images on the plane, most first. ${count[0].toUpperCase()}${count.slice(1)} active (their `
    + `posterior mean varies over the images by more than ${dims.active_above})${others}. Each `
    + "slider sets one dimension of the code, the image is what the decoder makes of the whole "
    + "code, and ◆ marks where it lands on the plane. Click a dot or a point of the plane to "
    + "start from its code.";
}

function startCode(z, from) {
  state.code = z.slice();
  $("dims-start").textContent = `from ${from}`;
  showCode(); decodeCode();
}

// Each slider and its value as the code holds them (a start beyond the range pins the slider).
function showCode() {
  for (const slider of $("dims-sliders").querySelectorAll("input")) {
    const value = state.code[Number(slider.dataset.dim)];
    slider.value = value;
    slider.nextElementSibling.textContent = value.toFixed(2);
  }
}

function decodeCode() {
  // One request in flight at a time; the code as it is when that one returns goes next.
  if (codeBusy) { codeAgain = true; return; }
  codeBusy = true;
  const z = state.code.map(v => v.toFixed(4)).join(",");
  fetch(`/decode_z.json?z=${z}${labelQuery()}`)
    .then(r => r.ok ? r.json() : r.text().then(t => Promise.reject(new Error(t))))
    .then(result => {
      const img = $("dims-image");
      img.src = result.image; img.dataset.z = z;
      state.codePoint = result.point;
      const [ax, ay] = state.plane.axes, [x, y] = result.point;
      $("dims-where").textContent = `◆ ${ax} = ${x.toFixed(2)}` + (ay ? `, ${ay} = ${y.toFixed(2)}` : "");
      drawOverlay();
    })
    .catch(err => { $("dims-where").textContent = `error: ${err.message}`; })
    .finally(() => {
      codeBusy = false;
      if (codeAgain) { codeAgain = false; decodeCode(); }
    });
}

// A click on a dot starts the sliders from its image's code; anywhere else, from the point's.
function codeFrom(px, py) {
  const index = nearestDot(px, py), [x, y] = toPlane(px, py);
  const at = index >= 0 ? `test:${state.plane.images[index]}` : `${x.toFixed(4)},${y.toFixed(4)}`;
  const from = index >= 0 ? `the code of ${dotName(index)}` : `the plane point (${x.toFixed(2)}, ${y.toFixed(2)})`;
  fetch(`/code.json?at=${encodeURIComponent(at)}`)
    .then(r => r.ok ? r.json() : r.text().then(t => Promise.reject(new Error(t))))
    .then(code => startCode(code.z, from))
    .catch(err => { $("dims-start").textContent = `cannot start there: ${err.message}`; });
}

// ---------- walk ----------

let timer = null;

function endsKind() { return document.querySelector("input[name=ends]:checked").value; }

$("walk-start").addEventListener("click", () => {
  state.walkMode = true; state.ends = []; stopWalk();
  $("mode").textContent = "walk: choosing the ends";
  canvas.scrollIntoView({ block: "nearest" });
  $("walk-status").textContent = endsKind() === "test"
    ? "Click the dot of the first image." : "Click the start of the walk on the plane.";
  drawOverlay();
});

function pickEnd(px, py) {
  let end;
  if (endsKind() === "test") {
    const index = nearestDot(px, py);
    if (index < 0) { $("walk-status").textContent = "No dot there: click on an image's dot."; return; }
    end = { query: `test:${state.plane.images[index]}`, point: state.plane.points[index], name: dotName(index) };
  } else {
    const point = toPlane(px, py);
    end = { query: `${point[0].toFixed(4)},${point[1].toFixed(4)}`, point, name: `(${point[0].toFixed(2)}, ${point[1].toFixed(2)})` };
  }
  state.ends.push(end);
  drawOverlay();
  if (state.ends.length === 1) {
    $("walk-status").textContent = endsKind() === "test" ? "Now the dot of the second image." : "Now click the end.";
    return;
  }
  state.walkMode = false;
  $("mode").textContent = "";
  fetchWalk(...state.ends);
}

function fetchWalk(start, end) {
  const steps = Math.max(2, Math.min(64, Math.round(Number($("steps").value)) || 8));
  const query = `from=${encodeURIComponent(start.query)}&to=${encodeURIComponent(end.query)}&steps=${steps}${labelQuery()}`;
  $("walk-status").textContent = "walking…";
  fetch(`/walk.json?${query}`)
    .then(r => r.ok ? r.json() : r.text().then(t => Promise.reject(new Error(t))))
    .then(walk => {
      state.walk = { ...walk, frame: 0 };
      $("walk-status").textContent = `from ${start.name} to ${end.name}, ${steps} steps`;
      $("walk-scrub").max = walk.frames.length - 1;
      $("walk-gif").href = `/walk.gif?${query}`;
      $("walk-command").textContent = walk.command;
      $("walk-player").hidden = false;
      playWalk();
    })
    .catch(err => { $("walk-status").textContent = `cannot walk: ${err.message}`; });
}

function showFrame(index) {
  state.walk.frame = index;
  $("walk-frame").src = state.walk.frames[index];
  $("walk-scrub").value = index;
  $("walk-step").textContent = `step ${index + 1}/${state.walk.frames.length}`;
  drawOverlay();
}

function playWalk() {
  stopWalk();
  showFrame(state.walk.frame);
  $("walk-play").textContent = "pause";
  timer = setInterval(() => showFrame((state.walk.frame + 1) % state.walk.frames.length), WALK_MS);
}

function stopWalk() {
  if (timer) clearInterval(timer);
  timer = null;
  $("walk-play").textContent = "play";
}

$("walk-play").addEventListener("click", () => { if (!state.walk) return; timer ? stopWalk() : playWalk(); });
$("walk-scrub").addEventListener("input", event => { stopWalk(); showFrame(Number(event.target.value)); });

// ---------- draw or drop ----------

const pad = $("pad"), pen = pad.getContext("2d");
let stroke = null;

function clearPad() { pen.fillStyle = "#000"; pen.fillRect(0, 0, pad.width, pad.height); }

function padPoint(event) {
  const rect = pad.getBoundingClientRect();
  return [(event.clientX - rect.left) * pad.width / rect.width, (event.clientY - rect.top) * pad.height / rect.height];
}

pad.addEventListener("pointerdown", event => {
  pad.setPointerCapture(event.pointerId);
  stroke = padPoint(event);
  pen.fillStyle = "#fff"; pen.beginPath(); pen.arc(...stroke, 9, 0, 2 * Math.PI); pen.fill();
});
pad.addEventListener("pointermove", event => {
  if (!stroke) return;
  const here = padPoint(event);
  pen.strokeStyle = "#fff"; pen.lineWidth = 18; pen.lineCap = "round";
  line(pen, ...stroke, ...here);
  stroke = here;
});
pad.addEventListener("pointerup", () => { if (stroke) { stroke = null; pad.toBlob(analyse, "image/png"); } });
pad.addEventListener("pointercancel", () => { stroke = null; });
function forgetAnalysis() {
  state.drawn = null; $("analysis").hidden = true;
  if (state.plane) drawOverlay();
}

$("pad-clear").addEventListener("click", () => { clearPad(); forgetAnalysis(); $("draw-status").textContent = ""; });
$("pad-file").addEventListener("change", event => { if (event.target.files[0]) analyse(event.target.files[0]); });
pad.addEventListener("dragover", event => { event.preventDefault(); pad.classList.add("over"); });
pad.addEventListener("dragleave", () => pad.classList.remove("over"));
pad.addEventListener("drop", event => {
  event.preventDefault(); pad.classList.remove("over");
  const file = event.dataTransfer.files[0];
  if (file) analyse(file);
});

function analyse(blob) {
  $("draw-status").textContent = "encoding…";
  fetch(`/analyse?${labelQuery().slice(1)}`, { method: "POST", body: blob, headers: { "Content-Type": blob.type || "application/octet-stream" } })
    .then(r => r.ok ? r.json() : r.text().then(t => Promise.reject(new Error(t))))
    .then(showAnalysis)
    .catch(err => { forgetAnalysis(); $("draw-status").textContent = `cannot encode it: ${err.message}`; });
}

function showAnalysis(result) {
  const card = state.card, [ax, ay] = state.plane.axes;
  $("draw-status").textContent = "";
  $("analysis").hidden = false;
  $("seen").src = result.input;
  $("reconstruction").src = result.reconstruction;
  $("error").src = result.error;
  const [x, y] = result.point;
  $("code").textContent = `Its code lands at ${ax} = ${x.toFixed(2)}` + (ay ? `, ${ay} = ${y.toFixed(2)}` : "")
    + " (the ★ on the plane).";
  const verdict = $("verdict");
  if (result.score === undefined) {
    $("score").textContent = "No anomaly score: this conditional model reads the picture as the "
      + "class chosen above, and an anomaly score has no label to give it.";
    verdict.textContent = ""; verdict.className = "";
    state.drawn = result.point; drawOverlay(); show(result.point);
    return;
  }
  $("score").textContent = `Anomaly score (${card.score}): ${figure(result.score)}, higher than `
    + `${(100 * result.share_below).toFixed(0)}% of ${card.source}.`;
  verdict.className = result.verdict || "";
  verdict.textContent = result.verdict
    ? `${result.verdict}: the threshold is ${figure(card.threshold)}, ${card.rule}, so about `
      + `${percent(1 - card.quantile)} of normal images are called anomalous too.`
    : "";
  state.drawn = result.point;
  drawOverlay();
  show(result.point);
}

// ---------- the legend and the model card ----------

// The labels of the classes the run was trained on, when it was trained on some only (and
// the dots are labelled); null otherwise.
function trainedLabels() {
  const names = state.card && state.card.classes, plane = state.plane;
  if (!Array.isArray(names) || !plane.labels) return null;
  const trained = plane.classes.map((name, i) => names.includes(name) ? i : -1).filter(i => i >= 0);
  return trained.length ? new Set(trained) : null;  // images of other classes: none to pick out
}

function legend(classes) {
  const box = $("legend"), trained = trainedLabels();
  classes.forEach((name, i) => {
    const item = document.createElement("span"), swatch = document.createElement("i");
    swatch.style.background = COLOURS[i % COLOURS.length];
    item.append(swatch, document.createTextNode(name));
    if (trained) item.className = trained.has(i) ? "trained" : "untrained";
    box.append(item);
  });
}

function loss(value) { return value == null ? "—" : figure(value); }

function showCard(card) {
  const facts = [
    ["dataset", card.dataset + (card.train_size ? ` (${card.train_size.toLocaleString()} training images)` : "")],
    ["classes", Array.isArray(card.classes) ? card.classes.join(", ") : card.classes],
    ["model", `${card.model.toUpperCase()}, ${card.latent_dim}-D code, ${card.parameters.toLocaleString()} parameters`],
    ["epochs", card.epochs === card.planned_epochs ? `${card.epochs}` : `${card.epochs} of ${card.planned_epochs}`],
    ["final loss", `train ${loss(card.train_loss)}, validation ${loss(card.val_loss)} (${card.loss_unit})`],
    ["run", card.run],
  ];
  const list = $("facts");
  for (const [name, value] of facts) {
    const row = document.createElement("div"), dt = document.createElement("dt"), dd = document.createElement("dd");
    dt.textContent = name; dd.textContent = value;
    row.append(dt, dd); list.append(row);
  }
  $("warning").textContent = card.warning;
  $("warning").hidden = !card.warning;
  if (card.conditional) pickLabels(card.label_names);
  if (!card.generative) {
    document.querySelector("input[name=ends][value=test]").checked = true;
    document.querySelector("input[name=ends][value=points]").disabled = true;
  }
}

// A conditional model draws every point as the class picked here.
function labelQuery() {
  return state.card && state.card.conditional ? `&label=${$("label").value}` : "";
}

function pickLabels(names) {
  const select = $("label");
  names.forEach((name, i) => {
    const option = document.createElement("option");
    option.value = i; option.textContent = name;
    select.append(option);
  });
  $("label-pick").hidden = false;
  select.addEventListener("change", () => {
    if (state.cursor) show(state.cursor);
    if (state.code) decodeCode();
    if (state.ends && state.ends.length === 2) fetchWalk(...state.ends);
  });
}

// ---------- start ----------

function json(path) { return fetch(path).then(r => r.ok ? r.json() : Promise.reject(new Error(`${path}: ${r.status}`))); }

clearPad();
Promise.all([json("/points.json"), json("/card.json")]).then(([plane, card]) => {
  state.plane = plane; state.card = card;
  $("title").textContent = plane.title;
  $("note").textContent = plane.note;
  $("dots").textContent = plane.dots;
  showCard(card);
  legend(plane.classes);
  resize(); fitView(); clampView();
  state.cursor = [state.view.cx, state.view.cy];
  redraw(); show(state.cursor);
  if (plane.dimensions) dimensionSliders(plane.dimensions);
  new ResizeObserver(() => { const before = state.size; resize(); keepView(before); redraw(); }).observe(canvas);
}).catch(err => { $("title").textContent = `cannot load the plane: ${err.message}`; });
