/* The series map page: two dates side by side (shared classes), a change map (diverging, centred on zero,
   significant changes outlined), LISA transitions, and the city-wide index with its 95% interval band.
   Data come from the app's own JSON endpoints (protected tables); nothing is fetched from elsewhere. */
(function () {
  "use strict";
  const cfg = JSON.parse(document.getElementById("sx-config").textContent);
  const $ = (id) => document.getElementById(id);
  const SEQ = ["#ffffb2", "#fed976", "#feb24c", "#fd8d3c", "#fc4e2a", "#e31a1c", "#b10026"];
  const DIV = ["#2166ac", "#67a9cf", "#d1e5f0", "#f7f7f7", "#fddbc7", "#ef8a62", "#b2182b"];
  const STATE = {
    high_high: "#d7191c", low_low: "#2c7bb6", high_low: "#fdae61", low_high: "#abd9e9",
    not_significant: "#eeeeee", no_population: "#ffffff", no_neighbours: "#cccccc", suppressed: "#bdbdbd",
  };
  const state = { from: 0, to: cfg.dates.length - 1, view: "side", trend: null, seq: 0 };
  const maps = {}, layers = {};

  function makeMap(id) {
    const m = L.map(id, { zoomControl: true, attributionControl: false, zoomSnap: 0.25 });
    const [w, s, e, n] = cfg.bounds;
    m.fitBounds([[s, w], [n, e]]);
    return m;
  }
  maps.a = makeMap("sx-map-a");
  maps.b = makeMap("sx-map-b");
  maps.c = makeMap("sx-map-c");
  let syncing = false;
  for (const [k, m] of Object.entries(maps)) {
    m.on("move", () => {
      if (syncing) return;
      syncing = true;
      for (const [j, o] of Object.entries(maps)) if (j !== k) o.setView(m.getCenter(), m.getZoom(), { animate: false });
      syncing = false;
    });
  }

  function api(path, params) {
    const q = new URLSearchParams(params);
    return fetch(`${cfg.base}${path}?${q}`).then(async (r) => {
      if (!r.ok) throw new Error((await r.json().catch(() => ({}))).detail || r.statusText);
      return r.json();
    });
  }
  const group = () => $("sx-group").value;
  const index = () => $("sx-index").value;
  const ESC = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
  const esc = (t) => String(t).replace(/[&<>"']/g, (c) => ESC[c]);  // names come from uploads: never markup
  const fmt = (v, d = 3) => (v === null || v === undefined || Number.isNaN(v) ? "–" : Number(v).toFixed(d));

  function classify(v, breaks, colours) {
    if (v === null || v === undefined || Number.isNaN(v)) return "#ffffff";
    let i = 0;
    while (i < breaks.length && v > breaks[i]) i++;
    return colours[Math.min(i, colours.length - 1)];
  }

  function legend(title, breaks, colours, lo, hi) {
    const cells = colours.map((c) => `<span style="background:${c}"></span>`).join("");
    $("sx-legend").innerHTML = `<div>${title}</div><div class="ramp">${cells}</div>` +
      `<div class="ends"><span>${lo}</span><span>${hi}</span></div>`;
  }

  function draw(key, geojson, style, tip) {
    if (layers[key]) maps[key].removeLayer(layers[key]);
    layers[key] = L.geoJSON(geojson, {
      style,
      onEachFeature: (f, l) => l.bindTooltip(tip(f.properties), { sticky: true }),
    }).addTo(maps[key]);
  }

  function label(key, text) {
    const el = maps[key].getContainer();
    let tag = el.querySelector(".sx-map-label");
    if (!tag) {
      tag = document.createElement("div");
      tag.className = "sx-map-label leaflet-top leaflet-right";
      tag.style.pointerEvents = "none";
      el.appendChild(tag);
    }
    tag.textContent = text;
  }

  async function side(seq) {
    const [a, b] = await Promise.all(
      [state.from, state.to].map((i) => api(`/maps/series/${cfg.series}/areas`, { date: cfg.dates[i], group: group() })),
    );
    if (seq !== state.seq) return;
    const shares = [...a.features, ...b.features].map((f) => f.properties.share).filter((v) => v !== null);
    const top = Math.max(...shares, 1e-9);
    const breaks = SEQ.slice(1).map((_, i) => (top * (i + 1)) / SEQ.length);
    const style = (f) => ({ fillColor: classify(f.properties.share, breaks, SEQ), fillOpacity: 0.85, color: "#666", weight: 0.4 });
    const tip = (p) => `${esc(p.name || p.id)}: ${fmt(100 * p.share, 1)} % ${group()}`;
    draw("a", a, style, tip);
    draw("b", b, style, tip);
    label("a", cfg.dates[state.from]);
    label("b", cfg.dates[state.to]);
    legend(`share of ${group()} (same classes at both dates)`, breaks, SEQ, "0 %", `${fmt(100 * top, 1)} %`);
  }

  async function change(seq, transitions) {
    const params = { from: cfg.dates[state.from], to: cfg.dates[state.to], group: group(), format: "geojson" };
    const differ = cfg.geographies[state.from] !== cfg.geographies[state.to];
    if (differ) params.harmonize = "area";
    const doc = await api(`/v1/series/${cfg.series}/change`, params);
    if (seq !== state.seq) return;
    const meta = doc.segmap;
    $("sx-note").textContent = differ
      ? `The areas changed between these dates: ${cfg.dates[state.from]}'s counts were carried onto ${cfg.dates[state.to]}'s areas (area-weighted).`
      : "";
    if (transitions) return drawTransitions(doc, meta);
    const vals = doc.features.map((f) => Math.abs(f.properties.change_pp)).filter((v) => Number.isFinite(v));
    const m = Math.max(...vals, 1e-9);
    const breaks = DIV.slice(1).map((_, i) => -m + (2 * m * (i + 1)) / DIV.length);
    draw("c", doc, (f) => {
      const sig = f.properties.significant;
      return {
        fillColor: classify(f.properties.change_pp, breaks, DIV), fillOpacity: sig ? 0.9 : 0.45,
        color: sig ? "#000" : "#999", weight: sig ? 2 : 0.4, dashArray: sig ? null : "2 3",
      };
    }, (p) => `${esc(p.name || p.id)}: ${fmt(p.change_pp, 2)} pp (${esc(p.direction)}, q = ${fmt(p.q_value, 3)})`);
    label("c", `${cfg.dates[state.from]} → ${cfg.dates[state.to]}`);
    const n = meta.significant;
    legend(`change in share of ${group()}, percentage points; bold outline: significant (${meta.correction} at ${meta.alpha}): ` +
      `${n.increase || 0} up, ${n.decrease || 0} down`, breaks, DIV, `−${fmt(m, 1)}`, `+${fmt(m, 1)}`);
  }

  function drawTransitions(doc, meta) {
    draw("c", doc, (f) => {
      const p = f.properties, moved = p.lisa_from !== p.lisa_to;
      return { fillColor: STATE[p.lisa_to] || "#eee", fillOpacity: 0.85, color: moved ? "#000" : "#888", weight: moved ? 2 : 0.4 };
    }, (p) => `${esc(p.name || p.id)}: ${esc(p.lisa_from)} → ${esc(p.lisa_to)}`);
    label("c", `LISA ${cfg.dates[state.from]} → ${cfg.dates[state.to]}`);
    const t = meta.transitions;
    const head = t.states.map((s) => `<th>${esc(s)}</th>`).join("");
    const rows = t.states.map((s, i) => `<tr><th>${esc(s)}</th>${t.counts[i].map((c) => `<td>${c}</td>`).join("")}</tr>`).join("");
    const box = $("sx-transitions");
    box.innerHTML = `<div>cluster transitions (rows ${cfg.dates[state.from]}, columns ${cfg.dates[state.to]})</div>` +
      `<table class="sx-table"><tr><th></th>${head}</tr>${rows}</table>`;
    legend("cluster at the later date; bold outline: changed", [], Object.values(STATE).slice(0, 5), "", "");
    $("sx-legend").querySelector(".ends").innerHTML = Object.keys(STATE).slice(0, 5).join(" · ");
  }

  async function trend() {
    const key = `${group()}|${index()}`;
    if (!state.trend || state.trend.key !== key) {
      $("sx-trend-note").textContent = "computing the intervals…";
      const body = await api(`/v1/series/${cfg.series}/indices`, {
        group: group(), index: index(), permutations: cfg.permutations, baseline: "none",
      });
      state.trend = { key, rows: body.rows.filter((r) => r.kind === "level") };
      $("sx-trend-note").textContent = `${index()} of ${group()} at each date; band: 95% interval (${cfg.permutations} simulations).`;
    }
    drawTrend(state.trend.rows);
  }

  function drawTrend(rows) {
    const svg = $("sx-trend"), W = 320, H = 180, L0 = 40, R0 = 10, T0 = 10, B0 = 30;
    const vals = rows.flatMap((r) => [r.value, r.ci_low, r.ci_high]).filter((v) => v !== null);
    let lo = Math.min(...vals), hi = Math.max(...vals);
    if (hi - lo < 1e-9) { lo -= 0.01; hi += 0.01; }
    const pad = (hi - lo) * 0.1; lo -= pad; hi += pad;
    const x = (i) => L0 + ((W - L0 - R0) * i) / Math.max(1, rows.length - 1);
    const y = (v) => T0 + ((H - T0 - B0) * (hi - v)) / (hi - lo);
    const ok = rows.map((r, i) => [r, i]).filter(([r]) => r.ci_low !== null && r.ci_high !== null);
    const band = ok.map(([r, i]) => `${x(i)},${y(r.ci_high)}`).concat(ok.slice().reverse().map(([r, i]) => `${x(i)},${y(r.ci_low)}`));
    const line = rows.map((r, i) => `${x(i)},${y(r.value)}`).join(" ");
    const picked = new Set([cfg.dates[state.from], cfg.dates[state.to]]);
    const dots = rows.map((r, i) => `<circle class="dot${picked.has(r.date) ? " picked" : ""}" cx="${x(i)}" cy="${y(r.value)}" r="3"><title>${r.date}: ${fmt(r.value, 4)} [${fmt(r.ci_low, 4)}, ${fmt(r.ci_high, 4)}]</title></circle>`).join("");
    const ticks = rows.map((r, i) => `<text x="${x(i)}" y="${H - 12}" text-anchor="middle">${r.date.slice(0, 4)}</text>`).join("");
    svg.innerHTML = `<line class="axis" x1="${L0}" y1="${H - B0}" x2="${W - R0}" y2="${H - B0}"/>` +
      `<text x="2" y="${y(hi - pad) + 4}">${fmt(hi - pad)}</text><text x="2" y="${y(lo + pad) + 4}">${fmt(lo + pad)}</text>` +
      (band.length ? `<polygon class="band" points="${band.join(" ")}"/>` : "") +
      `<polyline class="line" points="${line}"/>${dots}${ticks}`;
    $("sx-index-name").textContent = index();
  }

  async function refresh() {
    const seq = ++state.seq;
    $("sx-from-label").textContent = cfg.dates[state.from];
    $("sx-to-label").textContent = cfg.dates[state.to];
    const sideView = state.view === "side";
    $("sx-map-a").classList.toggle("sx-hidden", !sideView);
    $("sx-map-b").classList.toggle("sx-hidden", !sideView);
    $("sx-map-c").classList.toggle("sx-hidden", sideView);
    $("sx-transitions").classList.toggle("sx-hidden", state.view !== "transitions");
    Object.values(maps).forEach((m) => m.invalidateSize());
    document.body.dataset.ready = "";
    if (!sideView && state.from === state.to) {  // a change needs two dates: say so rather than ask the server
      $("sx-note").textContent = "Choose two different dates to see a change.";
      document.body.dataset.ready = "same-date";
      return;
    }
    try {
      $("sx-note").textContent = "";
      const work = sideView ? side(seq) : change(seq, state.view === "transitions");
      await Promise.all([work, trend()]);
      if (seq === state.seq) document.body.dataset.ready = state.view;
    } catch (err) {
      $("sx-note").textContent = String(err.message || err);
      document.body.dataset.ready = "error";
    }
  }

  $("sx-from").addEventListener("input", (e) => { state.from = Number(e.target.value); refresh(); });
  $("sx-to").addEventListener("input", (e) => { state.to = Number(e.target.value); refresh(); });
  $("sx-view").addEventListener("change", (e) => { state.view = e.target.value; refresh(); });
  $("sx-group").addEventListener("change", () => { state.trend = null; refresh(); });
  $("sx-index").addEventListener("change", () => { state.trend = null; refresh(); });
  window.segmapSeries = { state, maps, refresh };
  refresh();
})();
