// segmap batch report: ranked dot plot with intervals, trajectories over time, search by place.
// Data come from the JSON block only; text goes in with textContent and shapes with createElementNS.
(function () {
  "use strict";
  var D = JSON.parse(document.getElementById("batch-data").textContent);
  var NS = "http://www.w3.org/2000/svg";
  var P = 0, DT = 1, G = 2, I = 3, V = 4, E = 5, LO = 6, HI = 7, PV = 8, N = 9;
  var state = { index: 0, group: 0, date: D.dates.length - 1, search: "", picked: null };

  function el(tag, attrs, text) {
    var node = document.createElementNS(NS, tag);
    for (var k in attrs) node.setAttribute(k, attrs[k]);
    if (text !== undefined) node.textContent = text;
    return node;
  }
  function html(tag, text) {
    var node = document.createElement(tag);
    if (text !== undefined) node.textContent = text;
    return node;
  }
  function fmt(v) { return v === null || v === undefined ? "–" : (Math.abs(v) >= 1000 ? v.toFixed(0) : v.toPrecision(3)); }
  function tick(v, range) {  // enough decimals that neighbouring ticks differ
    var decimals = range > 0 ? Math.max(0, Math.min(8, Math.ceil(-Math.log10(range / 4)) + 1)) : 3;
    return v.toFixed(decimals);
  }
  function fill(select, labels) {
    labels.forEach(function (lab, i) { var o = html("option", lab === "" ? "(none)" : lab); o.value = i; select.appendChild(o); });
  }
  function matches(place) {
    var name = D.places[place].toLowerCase();
    if (state.picked !== null) return place === state.picked;
    return state.search !== "" && name.indexOf(state.search) >= 0;
  }
  function rowsOf(index, group) {
    return D.rows.filter(function (r) { return r[I] === index && r[G] === group && r[E] !== null; });
  }
  function scale(lo, hi, a, b) {
    if (!(hi > lo)) { lo -= 0.5; hi += 0.5; }
    return function (v) { return a + (v - lo) / (hi - lo) * (b - a); };
  }
  function extent(rows) {
    var lo = Infinity, hi = -Infinity;
    rows.forEach(function (r) {
      [r[E], r[V], r[LO], r[HI]].forEach(function (v) { if (v !== null) { lo = Math.min(lo, v); hi = Math.max(hi, v); } });
    });
    return [lo, hi];
  }
  function axis(svg, x, lo, hi, y, width) {
    var g = el("g", { "class": "axis" });
    g.appendChild(el("line", { x1: x(lo), x2: x(hi), y1: y, y2: y }));
    for (var k = 0; k <= 4; k++) {
      var v = lo + (hi - lo) * k / 4;
      g.appendChild(el("line", { x1: x(v), x2: x(v), y1: y, y2: y + 4 }));
      g.appendChild(el("text", { x: x(v), y: y + 15, "text-anchor": "middle" }, tick(v, hi - lo)));
    }
    svg.appendChild(g);
  }

  function drawRank() {
    var box = document.getElementById("rank");
    box.textContent = "";
    var rows = rowsOf(state.index, state.group).filter(function (r) { return r[DT] === state.date; });
    if (state.search !== "" && state.picked === null) rows = rows.filter(function (r) { return matches(r[P]); });
    rows.sort(function (a, b) { return b[E] - a[E]; });
    document.getElementById("empty").hidden = rows.length > 0;
    document.getElementById("rank-title").textContent = "Ranking: " + D.indices[state.index] + " of " +
      (D.groups[state.group] || "(none)") + ", " + (D.dates[state.date] || "(no date)") + " (" + rows.length + " places)";
    if (!rows.length) return;
    var ext = extent(rows), left = 190, width = 820, rowH = 18;
    var svg = el("svg", { width: width, height: rows.length * rowH + 40, role: "img", "aria-labelledby": "rank-title", id: "rank-svg" });
    var x = scale(ext[0], ext[1], left, width - 20);
    rows.forEach(function (r, k) {
      var y = 10 + k * rowH;
      var g = el("g", { "class": "row" + (matches(r[P]) ? " match" : ""), "data-place": D.places[r[P]] });
      g.appendChild(el("rect", { x: 0, y: y - rowH / 2, width: width, height: rowH, fill: "transparent" }));  // the whole row clicks
      g.appendChild(el("text", { x: left - 8, y: y + 4, "text-anchor": "end" }, (k + 1) + ". " + D.places[r[P]]));
      if (r[LO] !== null && r[HI] !== null) g.appendChild(el("line", { "class": "interval", x1: x(r[LO]), x2: x(r[HI]), y1: y, y2: y }));
      g.appendChild(el("circle", { "class": "observed", cx: x(r[V]), cy: y, r: 4 }));
      var dot = el("circle", { "class": "dot", cx: x(r[E]), cy: y, r: 4 });
      dot.appendChild(el("title", {}, D.places[r[P]] + ": " + fmt(r[E]) + " [" + fmt(r[LO]) + ", " + fmt(r[HI]) + "], p = " + fmt(r[PV]) + ", " + r[N] + " areas"));
      g.appendChild(dot);
      g.addEventListener("click", function () { state.picked = state.picked === r[P] ? null : r[P]; draw(); });
      svg.appendChild(g);
    });
    axis(svg, x, ext[0], ext[1], rows.length * rowH + 10, width);
    box.appendChild(svg);
  }

  function drawTrend() {
    var box = document.getElementById("trend");
    box.textContent = "";
    var rows = rowsOf(state.index, state.group);
    document.getElementById("trend-title").textContent = "Trajectories over time: " + D.indices[state.index] + " of " + (D.groups[state.group] || "(none)");
    var byPlace = {};
    rows.forEach(function (r) { (byPlace[r[P]] = byPlace[r[P]] || []).push(r); });
    var ext = extent(rows), width = 820, height = 300, left = 60;
    var svg = el("svg", { width: width, height: height + 40, role: "img", "aria-labelledby": "trend-title", id: "trend-svg" });
    var x = scale(0, Math.max(D.dates.length - 1, 1), left, width - 140);
    var y = scale(ext[0], ext[1], height, 10);
    var order = Object.keys(byPlace).sort(function (a, b) { return matches(+a) - matches(+b); });  // highlighted on top
    order.forEach(function (p) {
      var pts = byPlace[p].sort(function (a, b) { return a[DT] - b[DT]; });
      var path = pts.map(function (r, k) { return (k ? "L" : "M") + x(r[DT]).toFixed(1) + "," + y(r[E]).toFixed(1); }).join(" ");
      var hit = matches(+p);
      var line = el("path", { "class": "line" + (hit ? " match" : ""), d: path, "data-place": D.places[p] });
      line.appendChild(el("title", {}, D.places[p]));
      svg.appendChild(line);
      pts.forEach(function (r) { svg.appendChild(el("circle", { cx: x(r[DT]), cy: y(r[E]), r: hit ? 3 : 1.5, fill: hit ? "#d7191c" : "#bbb" })); });
      if (hit) { var last = pts[pts.length - 1]; svg.appendChild(el("text", { x: x(last[DT]) + 6, y: y(last[E]) + 4 }, D.places[p])); }
    });
    D.dates.forEach(function (d, k) { svg.appendChild(el("text", { x: x(k), y: height + 20, "text-anchor": "middle" }, d)); });
    for (var k = 0; k <= 4; k++) {
      var v = ext[0] + (ext[1] - ext[0]) * k / 4;
      svg.appendChild(el("text", { x: left - 6, y: y(v) + 4, "text-anchor": "end" }, tick(v, ext[1] - ext[0])));
    }
    box.appendChild(svg);
    drawTrendTable(byPlace);
  }

  function drawTrendTable(byPlace) {
    var box = document.getElementById("trend-table");
    box.textContent = "";
    var shown = Object.keys(byPlace).filter(function (p) { return matches(+p); }).slice(0, 20);
    if (!shown.length) return;
    var table = html("table"), head = html("tr");
    ["place", "date", "value", "bias-corrected", "95 % interval", "p", "areas"].forEach(function (h) { head.appendChild(html("th", h)); });
    table.appendChild(head);
    shown.forEach(function (p) {
      byPlace[p].forEach(function (r) {
        var tr = html("tr");
        [D.places[r[P]], D.dates[r[DT]], fmt(r[V]), fmt(r[E]), "[" + fmt(r[LO]) + ", " + fmt(r[HI]) + "]", fmt(r[PV]), r[N]].forEach(function (c) { tr.appendChild(html("td", String(c))); });
        table.appendChild(tr);
      });
    });
    box.appendChild(table);
  }

  function drawFailed() {
    var box = document.getElementById("failed");
    if (!D.failed.length) { box.appendChild(html("p", "None.")); return; }
    var table = html("table"), head = html("tr");
    ["place", "date", "group", "error"].forEach(function (h) { head.appendChild(html("th", h)); });
    table.appendChild(head);
    D.failed.forEach(function (f) {
      var tr = html("tr");
      [f.place, f.date, f.group, f.error].forEach(function (c) { tr.appendChild(html("td", c)); });
      table.appendChild(tr);
    });
    box.appendChild(table);
  }

  function draw() { drawRank(); drawTrend(); }

  var selects = { index: document.getElementById("index"), group: document.getElementById("group"), date: document.getElementById("date") };
  fill(selects.index, D.indices);
  fill(selects.group, D.groups);
  fill(selects.date, D.dates);
  var list = document.getElementById("place-list");
  D.places.forEach(function (p) { var o = html("option"); o.value = p; list.appendChild(o); });
  var first = D.rows.length ? D.rows[0] : null;
  if (first) { state.index = first[I]; state.group = first[G]; }
  ["index", "group", "date"].forEach(function (k) {
    selects[k].value = state[k];
    selects[k].addEventListener("change", function () { state[k] = +selects[k].value; draw(); });
  });
  document.getElementById("search").addEventListener("input", function (e) {
    state.search = e.target.value.trim().toLowerCase();
    state.picked = null;
    draw();
  });
  draw();
  drawFailed();
  document.documentElement.setAttribute("data-segmap-ready", "1");
})();
