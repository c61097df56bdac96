/* segmap linked views, GeoDa-style, hand-written (no library): search box, histogram with brushing, Moran
 * scatter plot linked both ways with the map, the selected area's panel, pattern fills and the state in the URL.
 * segmapLinked.init(page) is called by maps/web/segmap.js with its "page" object (select, restyle, valueOf,
 * info, search, zoomTo, view). Plots come binned (histogram) or sampled (scatter) from the server.
 */
(function () {
  "use strict";

  var SVG = "http://www.w3.org/2000/svg";

  function el(name, attrs, parent) {
    var e = document.createElementNS(SVG, name);
    Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (parent) parent.appendChild(e);
    return e;
  }

  function html(tag, text, parent, cls) {
    var e = document.createElement(tag);
    if (text != null) e.textContent = text;
    if (cls) e.className = cls;
    if (parent) parent.appendChild(e);
    return e;
  }

  // -- The state in the URL: view, position, selected area, patterns (group, classes, language: the form's) -----

  function syncUrl(page) {
    var cfg = page.cfg;
    if (!cfg.live || !window.history || !history.replaceState) return;
    var u = new URL(window.location.href), c = page.map.getCenter(), view = page.view(), id = page.selected();
    u.searchParams.set("view", view);
    u.searchParams.set("at", c.lat.toFixed(5) + "," + c.lng.toFixed(5) + "," + page.map.getZoom());
    if (id != null) u.searchParams.set("area", id); else u.searchParams.delete("area");
    if (page.patterns) u.searchParams.set("pattern", "1"); else u.searchParams.delete("pattern");
    history.replaceState(null, "", u.toString());
    document.querySelectorAll("a.segmap-data").forEach(function (a) {
      var d = new URL(a.href, window.location.href);
      d.searchParams.set("view", view);
      a.href = d.toString();
    });
    document.querySelectorAll("select[name=view]").forEach(function (s) { s.value = view; });
    document.querySelectorAll("input[name=at]").forEach(function (i) { i.value = u.searchParams.get("at"); });
  }

  // -- Search: by name or id, zooms to the area ------------------------------------------------------------------

  function search(page) {
    var input = document.getElementById("segmap-q"), out = document.getElementById("segmap-hits");
    if (!input) return;
    var found = document.getElementById("segmap-found"), t = page.cfg.t, timer = null;
    function show(hits) {
      out.innerHTML = "";
      hits.forEach(function (h) {
        var b = html("button", h.name + (String(h.name) !== String(h.id) ? " (" + h.id + ")" : ""), html("li", null, out));
        b.type = "button";
        b.setAttribute("data-id", h.id);
        b.addEventListener("click", function () { page.zoomTo(h.id); out.innerHTML = ""; input.value = h.name; });
      });
      found.textContent = hits.length ? t.matches.replace("{n}", hits.length) : t.no_match;
    }
    input.addEventListener("input", function () {
      clearTimeout(timer);
      var q = input.value.trim();
      if (!q) { out.innerHTML = ""; return; }
      timer = setTimeout(function () { page.search(q, show); }, 150);
    });
    input.addEventListener("keydown", function (e) {
      if (e.key !== "Enter") return;
      e.preventDefault();
      page.search(input.value.trim(), function (hits) { show(hits); if (hits.length) page.zoomTo(hits[0].id); });
    });
  }

  // -- Histogram of the mapped values, brushed by dragging (or Enter on a bar) ----------------------------------

  function histogram(page) {
    var box = document.getElementById("segmap-hist");
    if (!box) return function () {};
    var note = document.querySelector(".segmap-brushed"), W = 290, H = 110, pad = 18;
    function brush(range) {
      page.brushed = range;
      page.restyle();
      var n = 0;
      document.querySelectorAll(".segmap-list li").forEach(function (li) {
        var v = parseFloat(li.getAttribute("data-value"));
        var on = !!range && isFinite(v) && v >= range[0] && v <= range[1];
        li.classList.toggle("brushed", on);
        if (on && !li.closest("[hidden]")) n++;
      });
      note.innerHTML = "";
      if (!range) return;
      var h = page.cfg.hist[page.view()], count = 0;
      h.counts.forEach(function (c, i) { if (h.edges[i] >= range[0] - 1e-12 && h.edges[i + 1] <= range[1] + 1e-12) count += c; });
      html("span", page.cfg.t.brushed.replace("{n}", page.fmt(count, "int")) + " ", note);
      var b = html("button", page.cfg.t.clear, note);
      b.type = "button";
      b.addEventListener("click", function () { draw(); brush(null); });
    }
    function draw() {
      var h = page.cfg.hist[page.view()];
      box.innerHTML = "";
      if (!h) return;
      var svg = el("svg", {width: W, height: H + pad, role: "group", "aria-label": page.cfg.t.histogram}, box);
      var max = Math.max.apply(null, h.counts.concat([1])), bw = W / h.counts.length, lo = null, sel = el("rect", {
        y: 0, height: H, fill: "#ffe08a", "fill-opacity": 0.5, width: 0}, svg);
      var kind = h.pct ? "pct" : null;
      h.counts.forEach(function (c, i) {
        var bh = Math.max(c ? 1 : 0, H * c / max), r = el("rect", {x: i * bw + 0.5, y: H - bh, width: bw - 1, height: bh,
          fill: "#41b6c4", stroke: "#225ea8", tabindex: 0, role: "button", "data-bin": i,
          "aria-label": page.fmt(h.edges[i], kind) + " – " + page.fmt(h.edges[i + 1], kind) + ": " + c}, svg);
        r.addEventListener("keydown", function (e) {
          if (e.key !== "Enter" && e.key !== " ") return;
          e.preventDefault();
          var a = e.shiftKey && page.brushed ? Math.min(page.brushed[0], h.edges[i]) : h.edges[i];
          var b = e.shiftKey && page.brushed ? Math.max(page.brushed[1], h.edges[i + 1]) : h.edges[i + 1];
          brush([a, b]);
        });
      });
      el("text", {x: 0, y: H + 13, "font-size": 10}, svg).textContent = page.fmt(h.edges[0], kind);
      el("text", {x: W, y: H + 13, "font-size": 10, "text-anchor": "end"}, svg).textContent = page.fmt(h.edges[h.edges.length - 1], kind);
      function at(e) {
        var r = svg.getBoundingClientRect(), i = Math.max(0, Math.min(h.counts.length - 1, Math.floor((e.clientX - r.left) / bw)));
        return i;
      }
      function show(a, b) { sel.setAttribute("x", Math.min(a, b) * bw); sel.setAttribute("width", (Math.abs(b - a) + 1) * bw); }
      svg.addEventListener("mousedown", function (e) { lo = at(e); show(lo, lo); e.preventDefault(); });
      svg.addEventListener("mousemove", function (e) { if (lo !== null) show(lo, at(e)); });
      window.addEventListener("mouseup", function (e) {
        if (lo === null) return;
        var a = Math.min(lo, at(e)), b = Math.max(lo, at(e));
        lo = null;
        brush([h.edges[a], h.edges[b + 1]]);
      });
    }
    draw();
    return function () { draw(); brush(null); };
  }

  // -- Moran scatter plot: standardised share against its spatial lag, quadrants coloured as the LISA classes ---

  function scatter(page) {
    var box = document.getElementById("segmap-scatter"), s = page.cfg.scatter;
    if (!box) return function () {};
    if (!s) { box.parentNode.removeChild(box); var h = document.getElementById("segmap-scatter-h"); if (h) h.hidden = true; return function () {}; }
    var W = 290, H = 230, m = 26, t = page.cfg.t, dots = {};
    var xs = s.x.concat([0]), ys = s.y.concat([0]);
    var ext = Math.max.apply(null, xs.map(Math.abs).concat(ys.map(Math.abs), [1])) * 1.05;
    function X(v) { return m + (v + ext) / (2 * ext) * (W - 2 * m); }
    function Y(v) { return H - m - (v + ext) / (2 * ext) * (H - 2 * m); }
    var svg = el("svg", {width: W, height: H, role: "img", "aria-label": t.scatter}, box);
    el("line", {x1: X(0), x2: X(0), y1: Y(-ext), y2: Y(ext), stroke: "#999"}, svg);
    el("line", {x1: X(-ext), x2: X(ext), y1: Y(0), y2: Y(0), stroke: "#999"}, svg);
    el("line", {x1: X(-ext), x2: X(ext), y1: Y(-ext * s.slope), y2: Y(ext * s.slope), stroke: "#333", "stroke-dasharray": "4 3"}, svg);
    s.ids.forEach(function (id, i) {
      var c = s.colours[s.q[i]], sig = s.s[i];
      var dot = el("circle", {cx: X(s.x[i]), cy: Y(s.y[i]), r: sig === 2 ? 4 : 3, fill: sig ? c : "#fff",
        "fill-opacity": sig === 1 ? 0.45 : 0.9, stroke: c, "stroke-width": 1.2, "data-id": id}, svg);
      dot.addEventListener("click", function () { page.select(id, true); });
      dots[id] = dot;
    });
    el("text", {x: W / 2, y: H - 4, "font-size": 10, "text-anchor": "middle"}, svg).textContent = t.x_axis;
    el("text", {x: 10, y: H / 2, "font-size": 10, "text-anchor": "middle", transform: "rotate(-90 10 " + H / 2 + ")"}, svg).textContent = t.y_axis;
    el("text", {x: W - m, y: m - 8, "font-size": 10, "text-anchor": "end"}, svg).textContent = t.slope.replace("{i}", page.fmt(s.slope));
    if (s.shown < s.n) html("p", t.sample.replace("{shown}", page.fmt(s.shown, "int")).replace("{n}", page.fmt(s.n, "int")), box, "small");
    var ring = el("circle", {r: 7, fill: "none", stroke: "#000", "stroke-width": 2, visibility: "hidden"}, svg);
    return function (id) {  // the map's selection shown in the plot
      var d = id != null && dots[id];
      ring.setAttribute("visibility", d ? "visible" : "hidden");
      if (d) { ring.setAttribute("cx", d.getAttribute("cx")); ring.setAttribute("cy", d.getAttribute("cy")); }
    };
  }

  // -- The selected area's panel: counts, share, LQ, cluster label, p before and after correction, neighbours ----

  function panel(page) {
    var box = document.getElementById("segmap-area"), t = page.cfg.t, f = page.fmt;
    if (!box) return function () {};
    var body = box.querySelector(".body");
    return function (id) {
      if (id == null) { box.hidden = true; return; }
      page.info(id, function (a) {
        if (!a) { box.hidden = true; return; }
        box.hidden = false;
        body.innerHTML = "";
        html("h3", a.name + (String(a.name) !== String(a.id) ? " (" + a.id + ")" : ""), body);
        var tb = html("table", null, body);
        function row(k, v) { var tr = html("tr", null, tb); html("th", k, tr).scope = "row"; html("td", v, tr); }
        if (a.count !== undefined) row(t.counts, f(a.count, "int") + " " + t.of + " " + f(a.total, "int"));
        row(t.share, f(a.share, "pct"));
        Object.keys(a.views).forEach(function (v) {
          var r = a.views[v], name = page.cfg.view_titles[v] || v;
          row(name, (r.value != null ? f(r.value) + " · " : "") + r.label + (r.uncorrected ? " (" + t.hatched + ": " + r.uncorrected + ")" : ""));
          if (r.p != null) row(name + ": " + t.p, f(r.p, "p"));
          if (r.q != null) row(name + ": " + t.q, f(r.q, "p"));
        });
        if (a.neighbours && a.neighbours.length) {
          html("h3", t.neighbours, body);
          var ul = html("ul", null, body, "segmap-nb");
          a.neighbours.forEach(function (n) {
            var b = html("button", n.name + " — " + f(n.share, "pct"), html("li", null, ul));
            b.type = "button";
            b.addEventListener("click", function () { page.select(n.id, "keep"); });
          });
        }
      });
    };
  }

  // -- Pattern fills for the cluster classes (optional), legend swatches included --------------------------------

  function patterns(page) {
    var box = document.querySelector(".segmap-pattern input");
    function swatches() {
      document.querySelectorAll(".segmap-legend li").forEach(function (li) {
        var sw = li.querySelector(".swatch"), key = li.getAttribute("data-key") || "";
        if (li.classList.contains("hatched")) {
          sw.style.backgroundImage = page.fills.swatch(key, sw.style.getPropertyValue("--c"), true);
        } else if (sw.getAttribute("data-colour")) {
          var uri = page.patterns ? page.fills.swatch(key, sw.getAttribute("data-colour"), false) : null;
          if (uri) { sw.style.backgroundImage = uri; sw.setAttribute("data-patterned", "1"); }
          else if (sw.hasAttribute("data-patterned")) { sw.style.backgroundImage = ""; sw.removeAttribute("data-patterned"); }
        }
      });
    }
    if (box) {
      box.checked = page.patterns;
      box.addEventListener("change", function () { page.patterns = box.checked; page.restyle(); swatches(); syncUrl(page); });
    }
    swatches();
    return function () {  // offered on the cluster views only
      if (box) box.parentNode.hidden = !(page.cfg.hatch && page.cfg.hatch[page.view()]);
    };
  }

  function init(page) {
    var q = new URLSearchParams(window.location.search), cfg = page.cfg;
    Object.keys(cfg.hatch || {}).forEach(function (v) {
      cfg.hatch[v].forEach(function (row) { row.label_shown = row.label_shown || row.label; });
    });
    page.patterns = q.get("pattern") === "1";
    if (cfg.live && q.get("at")) {  // the form keeps the position the URL gave (the page itself is the same for any)
      document.querySelectorAll("input[name=at]").forEach(function (i) { i.value = q.get("at"); });
    }
    var redrawHist = histogram(page), mark = scatter(page), show = panel(page);
    page.onSelect = function (id) { mark(id); show(id); syncUrl(page); };
    search(page);
    var offerPatterns = patterns(page);
    page.onView = function () { redrawHist(); offerPatterns(); syncUrl(page); };
    offerPatterns();
    page.map.on("moveend", function () { syncUrl(page); });
    if (q.get("area")) page.select(q.get("area"), false);
  }

  window.segmapLinked = {init: init};
})();
