// modscope explore: the page's logic. Drawing is Plotly's; this file only chooses what to draw
// from the embedded data (the results' JSON and the network's edges, see modscope/report/explore.py).
(function () {
  "use strict";
  const T = { start: performance.now() };  // ms since navigation start, for the benchmark's receipt
  const D = JSON.parse(document.getElementById("modscope-data").textContent);
  T.parsed = performance.now();
  const MAX_EDGES = 4000;   // single edges drawn at most; above, aggregates between (group, cluster)
  const MAX_NODES = 6000;   // single units drawn at most; above, one marker per (group, cluster)
  const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
    "#bcbd22", "#17becf", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd",
    "#e6550d", "#31a354", "#756bb1", "#636363", "#fd8d3c"];
  const GREY = "#c8c8c8";
  const MASK_COLOURS = ["#00a0a0", "#a000a0", "#a06000", "#0060c0", "#60a000", "#c00060"];

  function decode(s, T) {  // base64 → a typed array: natively where the browser can (Chrome 140+, Firefox 133+)
    if (Uint8Array.fromBase64) return new T(Uint8Array.fromBase64(s).buffer);
    const b = atob(s), u = new Uint8Array(b.length);
    for (let i = 0; i < b.length; i++) u[i] = b.charCodeAt(i);
    return new T(u.buffer);
  }
  const X = decode(D.x, Float32Array), Y = decode(D.y, Float32Array);
  const E = D.edges, NE = E.n;
  const EU = decode(E.u, Int32Array), EV = decode(E.v, Int32Array), EQ = decode(E.q, Int16Array);
  const EB = decode(E.block, E.block_names.length >= 32768 ? Int32Array : Int16Array);
  const EF = new Float32Array(NE);
  for (let i = 0; i < NE; i++) EF[i] = Math.abs(EQ[i]) / 32767;  // sorted, strongest first
  const maskBits = {};
  if (D.masks) for (const f in D.masks.bits) maskBits[f] = decode(D.masks.bits[f], Uint8Array);
  const kept = (f, i) => (maskBits[f][i >> 3] >> (i & 7)) & 1;
  T.decoded = performance.now();

  const state = { part: 0, thr: 0.05, view: null, masks: new Set(), cluster: null };
  const $ = (id) => document.getElementById(id);
  const fmt = (v, d = 4) => (v === null || v === undefined || Number.isNaN(v)) ? "–"
    : (typeof v === "number" ? (Math.abs(v) >= 1e4 || (Math.abs(v) < 1e-3 && v !== 0) ? v.toExponential(2) : v.toFixed(d)) : String(v));
  const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[c]));
  const colour = (c) => c < 0 ? GREY : PALETTE[c % PALETTE.length];
  const P = () => D.partitions[state.part];
  const groupOf = (u) => { let lo = 0, hi = D.groups.length - 1;
    while (lo < hi) { const m = (lo + hi + 1) >> 1; if (D.groups[m].offset <= u) lo = m; else hi = m - 1; } return lo; };
  const unitName = (u) => { const g = D.groups[groupOf(u)]; return `${g.name}[${u - g.offset}]`; };

  function extent() {
    let x0 = 0, x1 = 1, y0 = Infinity, y1 = -Infinity;
    for (const g of D.groups) { y0 = Math.min(y0, g.row); y1 = Math.max(y1, g.row); }
    return { x: [x0 - 0.02, x1 + 0.02], y: [y0 - 0.3, y1 + 0.3] };
  }
  const FULL = extent();
  const inView = (v, u) => X[u] >= v.x[0] && X[u] <= v.x[1] && Y[u] >= v.y[0] && Y[u] <= v.y[1];
  function nThreshold(t) { let lo = 0, hi = NE; while (lo < hi) { const m = (lo + hi) >> 1; if (EF[m] >= t) lo = m + 1; else hi = m; } return lo; }

  // Edges are drawn as layout shapes, one SVG path of "M x y L x y" segments per (sign, strength)
  // bin: a scatter trace with null gaps would make one SVG element per edge, and thousands of
  // elements are what made the first paint slow. Coordinates stay in data units (pan and zoom).
  const BINS = [0.25, 0.5, 0.75, 1.01];
  function pathShape(parts, width, color) {
    return { type: "path", xref: "x", yref: "y", layer: "below", path: parts.join(""), line: { width, color } };
  }

  // single edges binned by strength and sign: widths and opacity by |w|
  function edgeShapes(idx) {
    const parts = [[], [], [], [], [], [], [], []], shapes = [];
    for (const i of idx) {
      let b = 0; while (b < 3 && EF[i] >= BINS[b]) b++;
      parts[(EQ[i] < 0 ? 4 : 0) + b].push(`M${X[EU[i]]},${Y[EU[i]]}L${X[EV[i]]},${Y[EV[i]]}`);
    }
    for (let s = 0; s < 2; s++) for (let b = 0; b < BINS.length; b++) {
      const ps = parts[4 * s + b]; if (!ps.length) continue;
      const alpha = (0.15 + 0.75 * (b + 1) / BINS.length).toFixed(2);
      shapes.push(pathShape(ps, 0.4 + 2.6 * BINS[b] * (b === 3 ? 0.99 : 1),
        s ? `rgba(214,39,40,${alpha})` : `rgba(31,119,180,${alpha})`));
    }
    return shapes;
  }

  function aggEdgeShapes(p) {
    const A = p.edges, N = p.nodes, parts = [[], [], [], []], shapes = [];
    let count = 0;
    for (let e = 0; e < A.a.length; e++) {
      const f = A.f[e]; if (f < state.thr) continue;
      let b = 0; while (b < 3 && f >= BINS[b]) b++;
      parts[b].push(`M${N.x[A.a[e]]},${N.y[A.a[e]]}L${N.x[A.b[e]]},${N.y[A.b[e]]}`); count++;
    }
    for (let b = 0; b < BINS.length; b++) if (parts[b].length) shapes.push(pathShape(parts[b], 0.6 + 5 * BINS[b],
      `rgba(90,90,90,${(0.15 + 0.6 * (b + 1) / BINS.length).toFixed(2)})`));
    return { shapes, count };
  }

  function draw() {
    const p = P(), v = state.view || FULL, t0 = performance.now();
    const nT = nThreshold(state.thr), idx = [];
    let over = false;
    for (let i = 0; i < nT; i++) {
      if (inView(v, EU[i]) || inView(v, EV[i])) { idx.push(i); if (idx.length > MAX_EDGES) { over = true; break; } }
    }
    let nView = 0;  // Plotly's SVG markers are the costly part of a drawing: count before choosing
    for (let u = 0; u < X.length && nView <= MAX_NODES; u++) if (inView(v, u)) nView++;
    const traces = [];
    let drawn, mode, shapes;
    if (over) {
      const a = aggEdgeShapes(p); shapes = a.shapes; drawn = a.count; mode = "aggregate edges (group × cluster)";
      if (nView <= MAX_NODES) {  // single units: a hollow ring per (group, cluster) where the aggregates end
        const N = p.nodes;       // (with aggregate units drawn, their markers are those ends already)
        traces.push({ type: "scatter", mode: "markers", x: N.x, y: N.y, hoverinfo: "skip", showlegend: false,
          marker: { symbol: "circle-open", size: 16, color: N.c.map(colour), line: { width: 2 } } });
      }
    } else { shapes = edgeShapes(idx); drawn = idx.length; mode = "edges"; }
    // masks: each toggled function's kept edges over the drawing, the shared ones highlighted
    const on = [...state.masks];
    if (on.length) {
      const per = on.map(() => []), shared = [];
      let n = 0;
      for (let i = 0; i < nT && n < MAX_EDGES; i++) {
        if (!(inView(v, EU[i]) || inView(v, EV[i]))) continue;
        let k = 0;
        on.forEach((f, j) => { if (kept(f, i)) { per[j].push(i); k++; } });
        if (k > 1) shared.push(i);
        if (k) n++;
      }
      on.forEach((f, j) => {
        const xs = [], ys = [];
        for (const i of per[j]) { xs.push(X[EU[i]], X[EV[i]], null); ys.push(Y[EU[i]], Y[EV[i]], null); }
        traces.push({ type: "scatter", mode: "lines", x: xs, y: ys, name: `mask ${f}`, hoverinfo: "skip",
          line: { width: 3, color: MASK_COLOURS[D.masks.functions.indexOf(f) % MASK_COLOURS.length] }, opacity: 0.45 });
      });
      if (on.length > 1) {
        const xs = [], ys = [];
        for (const i of shared) { xs.push(X[EU[i]], X[EV[i]], null); ys.push(Y[EU[i]], Y[EV[i]], null); }
        traces.push({ type: "scatter", mode: "lines", x: xs, y: ys, name: "shared by the masks shown",
          hoverinfo: "skip", line: { width: 4.5, color: "#111" }, opacity: 0.8 });
      }
    }
    // units: single markers per cluster, or one marker per (group, cluster) when too many are in view
    if (nView > MAX_NODES) {
      const N = p.nodes, nMax = N.n.reduce((a, b) => Math.max(a, b), 1);
      traces.push({ type: "scatter", mode: "markers", x: N.x, y: N.y, name: "units (group × cluster)",
        customdata: N.c.map((c, i) => ["a", i]),
        text: N.c.map((c, i) => `${D.groups[N.g[i]].name}: cluster ${c < 0 ? "none" : c}, ${N.n[i]} units`),
        hoverinfo: "text", marker: { size: N.n.map((n) => 5 + 18 * Math.sqrt(n / nMax)),
          color: N.c.map(colour), line: { width: 0.5, color: "#333" } } });
      mode += "; units by group × cluster";
    } else {
      const byC = new Map();
      for (let u = 0; u < X.length; u++) {
        if (!inView(v, u)) continue;
        const c = p.labels[u]; if (!byC.has(c)) byC.set(c, []); byC.get(c).push(u);
      }
      for (const [c, us] of [...byC.entries()].sort((a, b) => a[0] - b[0])) {
        traces.push({ type: "scatter", mode: "markers", x: us.map((u) => X[u]), y: us.map((u) => Y[u]),
          name: c < 0 ? "no edges" : `cluster ${c}`, customdata: us.map((u) => ["u", u]),
          text: us.map((u) => `${unitName(u)}: cluster ${c < 0 ? "none" : c}`), hoverinfo: "text",
          marker: { size: Math.max(4, Math.min(12, 600 / Math.sqrt(us.length + 1))), color: colour(c),
            line: { width: state.cluster === c ? 2 : 0.4, color: state.cluster === c ? "#000" : "#555" } } });
      }
    }
    const layout = {
      margin: { l: 110, r: 10, t: 10, b: 30 }, showlegend: true, legend: { orientation: "h", y: -0.05 },
      hovermode: "closest", dragmode: "pan", uirevision: "net", annotations: groupLabels(), shapes,
      xaxis: { showgrid: false, zeroline: false, showticklabels: false, range: state.view ? state.view.x : FULL.x },
      yaxis: { showgrid: false, zeroline: false, tickvals: D.groups.map((g) => g.row),
        ticktext: rowLabels(), range: state.view ? state.view.y : FULL.y },
    };
    $("edge-count").textContent = String(drawn);
    $("edge-mode").textContent = mode;
    const done = Plotly.react("net", traces, layout, { scrollZoom: true, displaylogo: false, responsive: true });
    $("net-note").textContent = `${D.network.n_nodes} units, ${D.network.n_edges} edges` +
      (E.n < E.total ? ` (the strongest ${E.n} embedded for single-edge drawing; all of them in the aggregates)` : "") +
      `; line width and opacity: |w| / the block's largest |w|, blue positive, red negative.`;
    return done.then(() => performance.now() - t0);
  }

  // the name of each group that shares its row with others, above it (a transformer's blocks)
  function groupLabels() {
    const per = new Map();
    for (const g of D.groups) per.set(g.row, (per.get(g.row) || 0) + 1);
    return D.groups.filter((g) => per.get(g.row) > 1).map((g) => ({ x: (g.x0 + g.x1) / 2, y: g.row + 0.18,
      text: esc(g.name), showarrow: false, font: { size: 10, color: "#555" } }));
  }

  function rowLabels() {
    const rows = new Map();
    for (const g of D.groups) { if (!rows.has(g.row)) rows.set(g.row, []); rows.get(g.row).push(g.name); }
    return D.groups.map((g) => { const n = rows.get(g.row); return n.length > 2 ? `${n[0]} +${n.length - 1}` : n.join(", "); });
  }

  // -- panels --------------------------------------------------------------------------------------
  function clusterButtons() {
    const p = P();
    $("cluster-list").innerHTML = "<b>clusters:</b> " + p.sizes.map((s, c) =>
      `<button id="cluster-btn-${c}" data-c="${c}"><span class="sw" style="background:${colour(c)}"></span>` +
      `cluster ${c} (${s.reduce((a, b) => a + b, 0)})</button>`).join("");
    for (const b of $("cluster-list").querySelectorAll("button")) b.onclick = () => showCluster(+b.dataset.c);
  }

  function showCluster(c) {
    const p = P(); state.cluster = c;
    const sizes = p.sizes[c], total = sizes.reduce((a, b) => a + b, 0);
    let h = `<h2 id="panel-title">cluster ${c}</h2><p><b id="cl-units">${total}</b> units; n-cut term cut/vol = ` +
      `<b id="cl-ncut-term">${fmt(p.terms[c])}</b> of the n-cut <span id="cl-ncut">${fmt(p.ncut)}</span>` +
      ` (${p.ncut > 0 ? (100 * p.terms[c] / p.ncut).toFixed(1) : "0"} %)</p>`;
    h += "<h3>units per group</h3><table id='cl-groups'><tr><th>group</th><th>units</th><th>of</th></tr>" +
      sizes.map((n, g) => n ? `<tr><td>${esc(D.groups[g].name)}</td><td>${n}</td><td>${D.groups[g].size}</td></tr>` : "").join("") + "</table>";
    const fs = Object.keys(p.iou || {});
    if (fs.length) {
      h += "<h3>overlap with each function's mask</h3><table id='cl-iou'><tr><th>function</th><th>IoU</th></tr>" +
        fs.map((f) => `<tr><td>${esc(f)}</td><td>${fmt(p.iou[f][c], 3)}</td></tr>`).join("") +
        "</table><p class='note'>IoU of the cluster's weights (both ends in it) and the mask's kept weights.</p>";
    }
    const ko = p.knockout;
    if (ko) {
      const subs = ko.submodules.filter((s) => s.cluster === c), fns = Object.keys(ko.intact_per_function);
      h += `<h3>knockout (${esc(ko.metric)}, intact ${fmt(ko.intact)})</h3>`;
      if (!subs.length) h += "<p class='note'>no hidden units of this cluster were lesioned</p>";
      else {
        h += "<table id='cl-knockout'><tr><th>group</th><th>units</th><th>" + esc(ko.metric) + "</th><th>Δ</th>" +
          fns.map((f) => `<th>${esc(f)}</th>`).join("") + "<th>random (mean ± std)</th><th>p</th><th></th></tr>" +
          subs.map((s) => `<tr><td>${esc(s.group)}</td><td>${s.size}</td><td>${fmt(s.accuracy)}</td><td>${fmt(s.delta)}</td>` +
            fns.map((f) => `<td>${fmt((s.per_function || {})[f])}</td>`).join("") +
            `<td>${fmt(s.random_mean)} ± ${fmt(s.random_std)}</td><td>${fmt(s.p_value, 3)}</td><td>${esc(s.category)}</td></tr>`).join("") +
          "</table><p class='note'>per function: the metric on that function's data with the units silenced " +
          `(intact: ${fns.map((f) => `${esc(f)} ${fmt(ko.intact_per_function[f])}`).join(", ")})</p><div id="ko-plot" class="plot small"></div>`;
      }
      if (ko.note) h += `<p class="note">${esc(ko.note)}</p>`;
    }
    $("panel").innerHTML = h;
    if (ko) {
      const subs = ko.submodules.filter((s) => s.cluster === c && s.random);
      if (subs.length) lesionPlot("ko-plot", subs, c, ko.metric);
    }
    draw();
  }

  function showUnit(u) {
    const p = P(), c = p.labels[u], inc = [];
    for (let i = 0; i < NE; i++) if (EU[i] === u || EV[i] === u) inc.push(i);
    const fs = D.masks ? Object.keys(maskBits) : [];
    let h = `<h2 id="panel-title">unit ${esc(unitName(u))}</h2><p>cluster <b id="unit-cluster">${c < 0 ? "none (no edges)" : c}</b>` +
      (c >= 0 ? ` <button id="unit-to-cluster">show cluster ${c}</button>` : "") + `; ${inc.length} incident weights` +
      (E.n < E.total ? " among the embedded strongest" : "") + "</p>";
    if (fs.length) h += "<h3>mask membership</h3><table id='unit-masks'><tr><th>function</th><th>incident weights kept</th></tr>" +
      fs.map((f) => `<tr><td>${esc(f)}</td><td>${inc.filter((i) => kept(f, i)).length} of ${inc.length}</td></tr>`).join("") + "</table>";
    h += "<h3>incident weights (strongest 25)</h3><table id='unit-weights'><tr><th>other unit</th><th>cluster</th><th>w / max|w| of block</th><th>block</th></tr>" +
      inc.slice(0, 25).map((i) => { const o = EU[i] === u ? EV[i] : EU[i];
        return `<tr><td>${esc(unitName(o))}</td><td>${p.labels[o]}</td><td>${(EQ[i] / 32767).toFixed(3)}</td><td>${esc(E.block_names[EB[i]])}</td></tr>`; }).join("") + "</table>";
    $("panel").innerHTML = h;
    if (c >= 0) $("unit-to-cluster").onclick = () => showCluster(c);
  }

  // The page's plotly.js is the basic bundle (scatter, bar, pie): a histogram is a bar trace of
  // counts binned here, a box plot is drawn as layout shapes beside its points.
  function histogram(values) {  // equal-width bins over [min, max], sqrt(n) of them (5 to 40)
    const v = values.filter(Number.isFinite);
    if (!v.length) return { x: [], y: [], w: 1 };
    let lo = v.reduce((a, b) => Math.min(a, b), Infinity), hi = v.reduce((a, b) => Math.max(a, b), -Infinity);
    const nb = Math.max(5, Math.min(40, Math.ceil(Math.sqrt(v.length))));
    if (!(hi > lo)) { const d = Math.abs(lo) * 1e-3 || 1e-3; lo -= d; hi += d; }  // every value equal
    const w = (hi - lo) / nb, counts = new Array(nb).fill(0);
    for (const x of v) counts[Math.min(nb - 1, Math.floor((x - lo) / w))]++;
    return { x: counts.map((_, i) => lo + (i + 0.5) * w), y: counts, w };
  }

  // quartiles by linear interpolation between order statistics (numpy's default percentile)
  function quartiles(values) {
    const s = values.filter(Number.isFinite).sort((a, b) => a - b);
    const q = (p) => { const h = (s.length - 1) * p, i = Math.floor(h); return s[i] + (h - i) * (s[Math.min(i + 1, s.length - 1)] - s[i]); };
    const q1 = q(0.25), q3 = q(0.75), iqr = q3 - q1;  // whiskers: the furthest points within 1.5 IQR of the box
    return { q1, med: q(0.5), q3, lo: s.find((x) => x >= q1 - 1.5 * iqr), hi: s.findLast((x) => x <= q3 + 1.5 * iqr) };
  }

  // each lesioned sub-module: its random lesions' metrics (points and their box), the cluster's own a diamond
  function lesionPlot(id, subs, c, metric) {
    const px = [], py = [], shapes = [], line = { color: "#777", width: 1.5 };
    const seg = (x0, y0, x1, y1) => shapes.push({ type: "line", x0, y0, x1, y1, line });
    subs.forEach((s, i) => {
      s.random.forEach((y, k) => { px.push(i + 0.4 * (((k * 0.6180339887) % 1) - 0.5)); py.push(y); });  // jitter
      const b = quartiles(s.random);
      if (!Number.isFinite(b.med)) return;
      shapes.push({ type: "rect", x0: i - 0.3, x1: i + 0.3, y0: b.q1, y1: b.q3, line, fillcolor: "rgba(160,160,160,0.35)", layer: "below" });
      seg(i - 0.3, b.med, i + 0.3, b.med); seg(i, b.q3, i, b.hi); seg(i, b.q1, i, b.lo);
      seg(i - 0.12, b.hi, i + 0.12, b.hi); seg(i - 0.12, b.lo, i + 0.12, b.lo);
    });
    return Plotly.newPlot(id, [
      { type: "scatter", mode: "markers", x: px, y: py, name: "random lesions", marker: { color: GREY, size: 3 }, hoverinfo: "y" },
      { type: "scatter", mode: "markers", x: subs.map((s, i) => i), y: subs.map((s) => s.accuracy), text: subs.map((s) => s.group),
        name: `cluster ${c} silenced`, marker: { symbol: "diamond", size: 12, color: colour(c), line: { width: 1, color: "#000" } } },
    ], { margin: { l: 50, r: 10, t: 10, b: 40 }, shapes, legend: { orientation: "h" },
      xaxis: { tickvals: subs.map((s, i) => i), ticktext: subs.map((s) => s.group), range: [-0.6, subs.length - 0.4], zeroline: false },
      yaxis: { title: { text: `${metric}, random lesions of the same size` } } }, { displaylogo: false, responsive: true });
  }

  function showNull() {
    const p = P();
    showNullOf(p.null, p.ncut_result !== undefined && p.ncut_result !== null ? p.ncut_result : p.ncut);
  }

  function showNullOf(n, value) {
    if (!n || !n.ncuts) {
      $("null-text").textContent = `n-cut ${fmt(value)}; this result holds no shuffles.`;
      Plotly.purge("null-plot"); return;
    }
    $("null-text").innerHTML = `n-cut <b id="null-value">${fmt(value)}</b> against ${n.n} × ${esc(n.method)} shuffles: ` +
      `mean ${fmt(n.mean)} ± ${fmt(n.std)}, z <b id="null-z">${fmt(n.z, 2)}</b>, p <b id="null-p">${fmt(n.p_value, 4)}</b>`;
    const h = histogram(n.ncuts);
    Plotly.newPlot("null-plot", [{ type: "bar", x: h.x, y: h.y, width: 0.95 * h.w, name: "shuffles", marker: { color: "#999" },
      customdata: h.x.map((x) => [x - h.w / 2, x + h.w / 2]), hovertemplate: "n-cut %{customdata[0]:.4g} to %{customdata[1]:.4g}: %{y} shuffles<extra></extra>" }],
      { margin: { l: 40, r: 10, t: 10, b: 40 }, xaxis: { title: { text: "n-cut" } },
        shapes: [{ type: "line", x0: value, x1: value, yref: "paper", y0: 0, y1: 1, line: { color: "#d62728", width: 2 } }],
        annotations: [{ x: value, yref: "paper", y: 1, text: "this network", showarrow: false, font: { color: "#d62728" } }] },
      { displaylogo: false, responsive: true });
  }

  function masksBox() {
    if (!D.masks) { $("mask-box").style.display = "none"; return; }
    const fs = Object.keys(maskBits);
    $("mask-toggles").innerHTML = fs.map((f, i) => `<label><input type="checkbox" id="mask-${i}" data-f="${esc(f)}"> ` +
      `<span style="color:${MASK_COLOURS[D.masks.functions.indexOf(f) % MASK_COLOURS.length]}">■</span> ${esc(f)} ` +
      `(${D.masks.kept_edges[f]} weights kept)</label>`).join("");
    for (const el of $("mask-toggles").querySelectorAll("input")) el.onchange = () => {
      if (el.checked) state.masks.add(el.dataset.f); else state.masks.delete(el.dataset.f); draw(); };
    const iou = D.masks.iou || {};
    $("mask-note").innerHTML = (D.masks.note ? esc(D.masks.note) + "<br>" : "") + "IoU between masks (from " + esc(D.masks.name) + "): " +
      Object.keys(iou).map((k) => `${esc(k)} ${fmt(iou[k], 3)}`).join(", ");
  }

  function blocksBox() {
    const B = D.blocks;
    if (!B) { $("blocks-box").style.display = "none"; return; }
    $("blocks-table").innerHTML = "<tr><th>block</th><th>d_model</th><th>d_ff</th><th>k</th><th>n-cut</th><th>null mean</th><th>z</th><th>p</th></tr>" +
      B.rows.map((r, i) => `<tr class="row" id="block-row-${i}" data-i="${i}"><td>${esc(r.block)}</td><td>${r.d_model}</td><td>${r.d_ff}</td><td>${r.k}</td>` +
        `<td>${fmt(r.ncut)}</td><td>${fmt(r.null && r.null.mean)}</td><td>${fmt(r.null && r.null.z, 2)}</td><td>${fmt(r.null && r.null.p_value, 3)}</td></tr>`).join("");
    for (const tr of $("blocks-table").querySelectorAll("tr.row")) tr.onclick = () => showBlock(+tr.dataset.i);
  }

  function showBlock(i) {
    const r = D.blocks.rows[i];
    for (const tr of $("blocks-table").querySelectorAll("tr.row")) tr.classList.toggle("sel", +tr.dataset.i === i);
    showNullOf(r.null, r.ncut);  // the block's own null
    $("null-text").insertAdjacentHTML("afterbegin", `<b>${esc(r.block)}</b>: `);
    if (!r.drawing) {
      Plotly.purge("block-plot");
      $("block-plot").textContent = "this block's weights were not found (pass the network file)";
      return Promise.resolve();
    }
    const d = r.drawing, traces = [], A = d.edges, N = d.nodes;
    for (let e = 0; e < A.a.length; e++) traces.push({ type: "scatter", mode: "lines", hoverinfo: "skip", showlegend: false,
      x: [N.x[A.a[e]], N.x[A.b[e]]], y: [N.y[A.a[e]], N.y[A.b[e]]], line: { width: 0.5 + 6 * A.f[e], color: "rgba(90,90,90,0.5)" } });
    const k = Math.max(...d.labels) + 1;
    for (let c = -1; c < k; c++) {
      const us = []; d.labels.forEach((l, u) => { if (l === c) us.push(u); });
      if (us.length) traces.push({ type: "scatter", mode: "markers", name: c < 0 ? "no edges" : `cluster ${c}`,
        x: us.map((u) => d.x[u]), y: us.map((u) => d.y[u]), marker: { size: 5, color: colour(c) }, hoverinfo: "name" });
    }
    return Plotly.newPlot("block-plot", traces, { margin: { l: 90, r: 10, t: 24, b: 10 }, title: { text: `${r.block}: n-cut ${fmt(r.ncut)}`, font: { size: 13 } },
      xaxis: { visible: false }, yaxis: { tickvals: d.groups.map((g) => g.row), ticktext: d.groups.map((g) => g.name) } },
      { displaylogo: false, responsive: true });
  }

  function selectPartition(i) {
    state.part = i; state.cluster = null;
    clusterButtons(); showNull(); draw();
    $("panel").innerHTML = "<p class='note'>Click a cluster (its button, or a unit or group on the drawing) or a unit.</p>";
  }

  // -- wiring --------------------------------------------------------------------------------------
  $("partition-select").innerHTML = D.partitions.map((p, i) => `<option value="${i}">${esc(p.name)}</option>`).join("");
  $("partition-select").onchange = (e) => selectPartition(+e.target.value);
  $("threshold").oninput = (e) => { state.thr = +e.target.value; $("threshold-value").textContent = state.thr.toFixed(2); draw(); };
  $("subtitle").textContent = `${D.network.label}: ${D.network.reading || ""}` +
    (D.network.widths.length ? ` · widths ${D.network.widths.join("-")}` : "") +
    (D.train ? ` · trained ${D.train.steps} steps, test ${D.train.metric_name || "accuracy"} ` +
      fmt(D.train.test_accuracy ?? D.train.metric) : "");
  $("footer").textContent = `modscope ${D.version} · results: ${D.results.map((r) => `${r.name} (${r.kind})`).join(", ")} · drawn by Plotly, offline`;
  masksBox(); blocksBox();
  if (!D.partitions.length) {  // blocks alone: no whole graph to draw, the first block instead
    for (const id of ["net", "net-note", "cluster-list"]) $(id).style.display = "none";
    document.querySelector(".controls").style.display = "none";
    $("panel").innerHTML = "<p class='note'>Per-block results only: click a block's row to draw it.</p>";
    showBlock(0).then(() => { window.modscopeFirstPaint = performance.now(); document.body.dataset.ready = "1"; });
    window.modscopeExplore = { data: D, state, showBlock };
    return;
  }
  clusterButtons();
  draw().then((ms) => {  // the network first; the null's histogram (a second plot) after it
    window.modscopeFirstPaint = T.drawn = performance.now();
    window.modscopeTimings = T;
    showNull();
    document.body.dataset.ready = "1";
    const net = $("net");
    let pending = null;
    net.on("plotly_relayout", (ev) => {
      if (ev["xaxis.autorange"] || ev["yaxis.autorange"]) state.view = null;
      else if (Object.keys(ev).some((k) => k.startsWith("xaxis.range") || k.startsWith("yaxis.range"))) {
        const l = net.layout;
        state.view = { x: [l.xaxis.range[0], l.xaxis.range[1]], y: [l.yaxis.range[0], l.yaxis.range[1]] };
      } else return;
      clearTimeout(pending); pending = setTimeout(draw, 60);
    });
    net.on("plotly_click", (ev) => {
      const pt = ev.points && ev.points[0]; if (!pt || !pt.customdata) return;
      const [kind, i] = pt.customdata;
      if (kind === "u") showUnit(i);
      else { const c = P().nodes.c[i]; if (c >= 0) showCluster(c); }
    });
  });
  window.modscopeExplore = { data: D, state, draw, showCluster, showUnit, selectPartition };
})();
