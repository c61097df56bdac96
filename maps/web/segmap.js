/* segmap map pages, loaded after Leaflet. The page calls one of:
 *   segmapPage.areas(map, areasLayer, cfg)  areas embedded as GeoJSON, one base layer per view
 *   segmapPage.tiles(map, cfg)              areas drawn from the app's vector tiles (VectorGrid)
 * cfg is JSON written by maps/views.py. Both build a small "page" object that maps/web/linked.js wires to the
 * search box, histogram, Moran scatter plot, area panel and URL. window.segmap exposes the state to tests.
 */
(function () {
  "use strict";

  var ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"};
  var MARKS = {  // pattern fills: a mark per class, so classes read without colour
    high_high: "M0 8L8 0", hot_spot: "M0 8L8 0", low_low: "M3 3h2v2h-2z", cold_spot: "M3 3h2v2h-2z",
    high_low: "M0 4h8", low_high: "M4 0v8"
  };

  function esc(s) {  // area names and labels are text: never markup
    return String(s == null ? "–" : s).replace(/[&<>"]/g, function (c) { return ESCAPES[c]; });
  }

  function fmt(cfg) {  // numbers in the page's locale
    var pct = new Intl.NumberFormat(cfg.lang, {style: "percent", minimumFractionDigits: 1, maximumFractionDigits: 1});
    var dec = new Intl.NumberFormat(cfg.lang, {minimumFractionDigits: 3, maximumFractionDigits: 3});
    var int = new Intl.NumberFormat(cfg.lang, {maximumFractionDigits: 0});
    var sig = new Intl.NumberFormat(cfg.lang, {maximumSignificantDigits: 2});
    return function (v, kind) {
      if (v === null || v === undefined || (typeof v === "number" && !isFinite(v))) return cfg.t.hidden;
      if (kind === "pct") return pct.format(v);
      if (kind === "int") return int.format(v);
      if (kind === "p") return sig.format(v);
      return Math.abs(v) >= 1000 ? int.format(v) : dec.format(v);
    };
  }

  function onEach(selector, fn) { document.querySelectorAll(selector).forEach(fn); }

  function showOnly(selector, view) {  // legends, lists and summaries of the other views are hidden
    onEach(selector, function (el) { el.hidden = el.getAttribute("data-view") !== view; });
  }

  function markListed(id, view, scroll) {
    onEach(".segmap-list li.selected", function (li) { li.classList.remove("selected"); });
    var list = view ? '.segmap-list[data-view="' + view + '"]' : ".segmap-list";
    var li = id == null ? null : document.querySelector(list + ' li[data-id="' + CSS.escape(id) + '"]');
    if (li) {
      li.classList.add("selected");
      if (scroll) li.scrollIntoView({block: "nearest"});
    }
  }

  function onListPick(pick) {  // click or Enter/Space on an item of the side list
    onEach(".segmap-list li", function (li) {
      var go = function () { pick(li.getAttribute("data-id")); };
      li.addEventListener("click", go);
      li.addEventListener("keydown", function (e) {
        if (e.key === "Enter" || e.key === " ") { e.preventDefault(); go(); }
      });
    });
  }

  function urlAt(cfg) {  // a live page's position is in its URL (the server's page is the same for every at=)
    if (!cfg.live) return null;
    var at = (new URLSearchParams(window.location.search).get("at") || "").split(",").map(Number);
    return at.length === 3 && at.every(isFinite) ? at : null;
  }

  function place(map, cfg) {
    var at = urlAt(cfg) || cfg.at;
    if (at) map.setView([at[0], at[1]], at[2], {animate: false});  // animated, the old zoom lasts a moment longer
    else map.fitBounds(cfg.bounds, {animate: false});
  }

  function ready() { document.documentElement.setAttribute("data-segmap-ready", "1"); }

  // -- Pattern and hatch fills, in one hidden SVG: url(#…) works from every SVG of the document ------------------

  var HATCH = "M-2 10L10 -2M-2 2L2 -2M6 10L10 6";

  function inkOf(colour) { return /^#(0|2|5)/.test(colour) ? "#fff" : "#000"; }

  function patternSvg(id, colour, mark, hatch) {
    var ink = inkOf(colour);
    var body = hatch
      ? '<rect width="8" height="8" fill="#eeeeee"/><path d="' + HATCH + '" stroke="' + colour + '" stroke-width="2.2"/>'
      : '<rect width="8" height="8" fill="' + colour + '"/>' + (mark ? '<path d="' + mark + '" stroke="' + ink + '" stroke-width="1.2" fill="' + ink + '" fill-opacity=".8"/>' : "");
    return {def: '<pattern id="' + id + '" width="8" height="8" patternUnits="userSpaceOnUse">' + body + "</pattern>",
            uri: 'url("data:image/svg+xml,' + encodeURIComponent('<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8">' + body + "</svg>") + '")'};
  }

  function patternCanvas(colour, mark, hatch) {  // the same 8 px tile as patternSvg, as a canvas fillStyle
    var c = document.createElement("canvas"), g = c.getContext("2d"), ink = inkOf(colour);
    c.width = c.height = 8;
    g.fillStyle = hatch ? "#eeeeee" : colour;
    g.fillRect(0, 0, 8, 8);
    if (hatch) { g.strokeStyle = colour; g.lineWidth = 2.2; g.stroke(new Path2D(HATCH)); }
    else if (mark) {
      g.strokeStyle = ink; g.lineWidth = 1.2; g.stroke(new Path2D(mark));
      g.globalAlpha = 0.8; g.fillStyle = ink; g.fill(new Path2D(mark));
    }
    return g.createPattern(c, "repeat");
  }

  // {hatch(key, colour), pattern(key, colour), swatch(…)} → fills for SVG paths (url(#…)), or with canvas true
  // CanvasPatterns: Leaflet's canvas renderer hands fillColor to the context's fillStyle
  function fills(cfg, canvas) {
    var defs = [], made = {}, painted = {};
    function make(id, colour, mark, hatch) {
      if (!made[id]) { made[id] = patternSvg(id, colour, mark, hatch); defs.push(made[id].def); flush(); }
      return made[id];
    }
    function fill(id, colour, mark, hatch) {
      if (canvas) return painted[id] || (painted[id] = patternCanvas(colour, mark, hatch));
      make(id, colour, mark, hatch);
      return "url(#" + id + ")";
    }
    var holder = document.createElementNS("http://www.w3.org/2000/svg", "svg");
    holder.setAttribute("aria-hidden", "true");
    holder.setAttribute("style", "position:absolute;width:0;height:0");
    document.body.appendChild(holder);
    function flush() { holder.innerHTML = "<defs>" + defs.join("") + "</defs>"; }
    return {
      hatch: function (key, colour) { return fill("seg-h-" + key, colour, null, true); },
      pattern: function (key, colour) { return MARKS[key] ? fill("seg-p-" + key, colour, MARKS[key], false) : colour; },
      swatch: function (key, colour, hatch) {
        return hatch ? make("seg-h-" + key, colour, null, true).uri : MARKS[key] ? make("seg-p-" + key, colour, MARKS[key], false).uri : null;
      }
    };
  }

  // -- Areas embedded in the page: each view is a base layer that restyles the same areas ------------------------

  function areas(map, layer, cfg) {
    var byId = {}, index = {}, feats = [], view = cfg.view, selected = null, f = fmt(cfg), paint = fills(cfg);
    var page = {cfg: cfg, map: map, fmt: f, fills: paint, brushed: null, patterns: false};

    function hatchOf(n) {  // the class an area would have if it passed the correction, or -1
      var u = cfg.per_area["u_" + view];
      return u ? u[n] : -1;
    }

    function fillOf(l) {
      var p = l.feature.properties, n = index[p.id], entry = cfg.palettes[view][p["k_" + view]], h = hatchOf(n);
      if (h >= 0) { var row = cfg.hatch[view][h]; return paint.hatch(row.key, row.colour); }
      if (page.patterns && cfg.hatch[view]) return paint.pattern(keyOf(entry[0]), entry[1]);
      return entry[1];
    }

    function keyOf(label) {  // legend label → technical class key, from the legend's data-key
      var li = Array.prototype.find.call(document.querySelectorAll('.segmap-legend[data-view="' + view + '"] li'),
        function (el) { return el.querySelector(".lab").textContent === label; });
      return li ? li.getAttribute("data-key") : "";
    }

    function tip(p) {
      var n = index[p.id], rows = [[cfg.t.counts, f(p.count, "int") + " " + cfg.t.of + " " + f(p.total, "int")],
                                   [cfg.t.share, f(p.share, "pct")]];
      if (view !== "share" && view !== "informal") rows.push([cfg.statistic[view] || cfg.t.value, f(p["v_" + view])]);
      var pv = p["p_" + view];
      if (pv !== null && pv !== undefined) rows.push([cfg.t.p, f(pv, "p")]);
      var q = cfg.per_area["q_" + view];
      if (q && q[n] !== null) rows.push([cfg.t.q, f(q[n], "p")]);
      var cls = cfg.palettes[view][p["k_" + view]][0];
      if (hatchOf(n) >= 0) cls += " — " + cfg.t.hatched + " (" + cfg.hatch[view][hatchOf(n)].label_shown + ")";
      rows.push([cfg.t["class"], cls]);
      return "<b>" + esc(p.name) + "</b><table>" + rows.map(function (r) {
        return "<tr><th>" + esc(r[0]) + "</th><td>" + esc(r[1]) + "</td></tr>";
      }).join("") + "</table>";
    }

    function style(l) {
      var p = l.feature.properties, picked = l === selected, out = brushOut(p);
      return {fillColor: fillOf(l), fillOpacity: out ? 0.25 : 0.85,
              color: picked ? "#000" : page.brushed && !out ? "#000" : "#555",
              weight: picked ? 3 : page.brushed && !out ? 1.5 : 0.5};
    }

    function brushOut(p) {
      if (!page.brushed) return false;
      var v = page.valueOf(p.id);
      return !(v !== null && v >= page.brushed[0] && v <= page.brushed[1]);
    }

    page.valueOf = function (id) {
      var l = byId[id];
      if (!l) return null;
      var p = l.feature.properties, field = cfg.hist[view].field;
      return field === "share" ? p.share : p["v_" + view];
    };
    page.restyle = function () { layer.eachLayer(function (l) { l.setStyle(style(l)); }); };
    page.view = function () { return view; };
    page.select = function (id, zoom) {
      var l = byId[id], prev = selected;
      selected = l || null;
      if (prev) prev.setStyle(style(prev));
      markListed(id, view, !zoom);
      page.onSelect(l ? id : null);
      if (!l) return;
      l.setStyle(style(l));
      l.bringToFront();
      if (zoom) {
        map.fitBounds(l.getBounds(), {maxZoom: Math.max(map.getZoom(), zoom === "keep" ? map.getZoom() : map.getZoom() + 1)});
        l.openTooltip(l.getBounds().getCenter());
      }
    };
    page.selected = function () { return selected ? selected.feature.properties.id : null; };
    page.info = function (id, done) {  // the area panel's data, from the page itself
      var l = byId[id];
      if (!l) return done(null);
      var p = l.feature.properties, n = index[id], out = {id: p.id, name: p.name, total: p.total, count: p.count,
        share: p.share, views: {}, neighbours: []};
      Object.keys(cfg.palettes).forEach(function (v) {
        var q = cfg.per_area["q_" + v], u = cfg.per_area["u_" + v];
        out.views[v] = {value: p["v_" + v], label: cfg.palettes[v][p["k_" + v]][0], p: p["p_" + v],
                        q: q ? q[n] : null, uncorrected: u && u[n] >= 0 ? cfg.hatch[v][u[n]].label_shown : ""};
      });
      for (var k = cfg.nb[0][n]; k < cfg.nb[0][n + 1]; k++) {
        var q2 = feats[cfg.nb[1][k]].feature.properties;
        out.neighbours.push({id: q2.id, name: q2.name, share: q2.share});
      }
      done(out);
    };
    page.search = function (q, done) {
      q = q.toLowerCase();
      done(feats.filter(function (l) {
        var p = l.feature.properties;
        return String(p.name).toLowerCase().indexOf(q) >= 0 || String(p.id).toLowerCase().indexOf(q) >= 0;
      }).slice(0, 10).map(function (l) { return {id: l.feature.properties.id, name: l.feature.properties.name}; }));
    };
    page.zoomTo = function (id) { page.select(id, true); };

    layer.eachLayer(function (l) {
      var p = l.feature.properties;
      index[p.id] = feats.length;
      feats.push(l);
      byId[p.id] = l;
      l.bindTooltip(function () { return tip(p); }, {sticky: true});
      l.on("click", function () { page.select(p.id, false); });
      l.on("mouseover", function () { if (l !== selected) l.setStyle({weight: 2, color: "#000"}); });
      l.on("mouseout", function () { l.setStyle(style(l)); });
      var el = l.getElement && l.getElement();
      if (el) {  // each area is a tab stop of the map: named, and Enter selects it
        el.setAttribute("role", "button");
        el.setAttribute("aria-label", p.name);
        el.addEventListener("keydown", function (e) {
          if (e.key === "Enter" || e.key === " ") { e.preventDefault(); page.select(p.id, false); }
        });
      }
    });
    window.segmap = {map: map, areas: layer, cfg: cfg, byId: byId, select: page.select, page: page};
    onListPick(function (id) { page.select(id, true); });
    map.on("baselayerchange", function (e) {
      view = cfg.names[e.name] || view;
      page.brushed = null;
      page.restyle();
      showOnly(".segmap-legend, .segmap-list, .segmap-alt", view);
      page.onView(view);
    });
    map.on("overlayadd overlayremove", function (e) {
      var el = document.querySelector(".segmap-overlay-legend");
      if (el && e.name === cfg.overlay_name) el.hidden = e.type === "overlayremove";
    });
    showOnly(".segmap-legend, .segmap-list, .segmap-alt", view);
    place(map, cfg);
    window.segmapLinked.init(page);
    page.restyle();
    ready();
  }

  // -- Vector tiles: classes computed here from each tile's own properties; the page carries no per-area data ----

  function r6(v) { return Math.round(v * 1e6) / 1e6; }

  function classifier(cfg) {
    return function classOf(p) {
      var share = p[cfg.share_field];
      if (cfg.kind === "labels") return cfg.label_keys.indexOf(p.label);
      if (share === undefined || share === null) return -1;  // hidden by disclosure control
      if (cfg.kind === "lq") {
        if (p.label === "no_population") return -1;
        var k = 0;
        cfg.breaks.forEach(function (b) { if (p.value >= b) k++; });
        return k;
      }
      for (var i = 0; i < cfg.bins.length; i++) { if (r6(share) <= r6(cfg.bins[i])) return i; }
      return cfg.bins.length - 1;
    };
  }

  function hatchKey(p, cfg) {  // a tile area with p ≤ α before the correction only: the class it would have
    if (cfg.kind !== "labels" || p.label !== "not_significant" || !(p.p_value <= cfg.alpha)) return null;
    if (cfg.view === "hotspots") return p.value > 0 ? "hot_spot" : "cold_spot";
    var high = p[cfg.share_field] > cfg.share_mean, lagHigh = (p.value > 0) === high;
    return high ? (lagHigh ? "high_high" : "high_low") : (lagHigh ? "low_high" : "low_low");
  }

  function answerEmbeddedTiles(map, cfg) {  // an offline file: VectorGrid's tile fetches are answered from the page
    var realFetch = window.fetch;
    window.fetch = function (url) {
      var m = /^segmap-embedded\/(\d+\/\d+\/\d+)\.mvt$/.exec(String(url));
      if (!m) return realFetch.apply(this, arguments);
      var raw = atob(cfg.embedded[m[1]] || ""), bytes = new Uint8Array(raw.length);
      for (var i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
      return Promise.resolve(new Response(bytes, {status: 200}));
    };
    map.setMinZoom(cfg.zooms[0]);
  }

  function popupText(p, cfg, i, f) {
    var share = p[cfg.share_field];
    var rows = [cfg.t.share + ": " + f(share, "pct")];
    if (cfg.kind !== "share" && p.value !== undefined) rows.push(cfg.statistic[cfg.view] + ": " + f(+p.value));
    if (p.p_value !== undefined) rows.push(cfg.t.p + ": " + f(+p.p_value, "p"));
    var hk = hatchKey(p, cfg);
    rows.push(cfg.t["class"] + ": " + (i < 0 ? cfg.hidden_label : cfg.labels[i]) + (hk ? " — " + cfg.t.hatched : ""));
    var title = p.areas ? cfg.t.merged.replace("{n}", f(p.areas, "int")) : (p[cfg.name_field] || p.id);
    return "<b>" + esc(title) + "</b><br>" + rows.map(esc).join("<br>");
  }

  function askAgainForProvisionalTiles(redraw) {  // the server's index still building: it answers empty tiles
    // marked no-store; VectorGrid never asks for a tile twice, so redraw until every tile in view is final. The wait
    // doubles (2 s to 30 s): a redraw asks for every tile in view, ~11 MB at zoom 9 of 1,000,000 areas, and a
    // Voronoi city's index took minutes (720 MB asked again every 2 s, benchmarks/results/scale_page.md)
    var realFetch = window.fetch, timer = null, wait = 2000;
    window.fetch = function (url) {
      return realFetch.apply(this, arguments).then(function (r) {
        if (/\/tiles\//.test(String(url)) && /no-store/.test(r.headers.get("Cache-Control") || "") && !timer) {
          timer = setTimeout(function () { timer = null; redraw(); }, wait);
          wait = Math.min(wait * 2, 30000);
        }
        return r;
      });
    };
    return function () { return timer !== null; };
  }

  // VectorGrid 1.3 sizes its canvas tiles in CSS pixels: blurry shapes on a high-DPI screen. The backing store at
  // the device's pixel ratio rounded up to a whole number (Leaflet clears and clips a redrawn box in whole CSS
  // pixels: at 1.25 or 1.5 its edges fell between device pixels and left stray outline pixels), at most 2 (a
  // 3x tile is 2.4 MB of canvas memory), drawn through a scaled context (hit tests stay in CSS pixels).
  function sharpCanvasTile(coord, size, options) {
    var tile = L.canvas.tile(coord, size, options), c = tile.getContainer();
    var r = Math.min(2, Math.ceil(window.devicePixelRatio || 1));
    if (r !== 1) {
      c.width = Math.round(size.x * r);
      c.height = Math.round(size.y * r);
      c.style.width = size.x + "px";
      c.style.height = size.y + "px";
      tile._ctx.scale(r, r);  // after the resize: setting a canvas's width resets its context
    }
    return tile;
  }

  function tiles(map, cfg) {
    // VectorGrid 1.3's canvas tiles call L.DomEvent.fakeStop on click, gone since Leaflet 1.8: Leaflet 1.7's body
    if (!L.DomEvent.fakeStop) L.DomEvent.fakeStop = function (e) { e._stopped = true; };
    if (cfg.embedded) answerEmbeddedTiles(map, cfg);
    var layer, provisional = cfg.live ? askAgainForProvisionalTiles(function () { layer.redraw(); }) : null;
    var classOf = classifier(cfg), picked = null, f = fmt(cfg), paint = fills(cfg, !!cfg.canvas), known = {};
    var page = {cfg: cfg, map: map, fmt: f, fills: paint, brushed: null, patterns: false};
    var colourOf = function (p) {
      var i = classOf(p), hk = hatchKey(p, cfg);
      if (hk) return paint.hatch(hk, cfg.colours[cfg.label_keys.indexOf(hk)]);
      if (i < 0) return cfg.hidden_colour;
      return page.patterns && cfg.kind === "labels" ? paint.pattern(cfg.label_keys[i], cfg.colours[i]) : cfg.colours[i];
    };
    function valueOfProps(p) { return cfg.hist[cfg.view].field === "share" ? p[cfg.share_field] : p.value; }
    function styleOf(p, chosen) {
      var v = valueOfProps(p), out = page.brushed && !(v >= page.brushed[0] && v <= page.brushed[1]);
      return {fill: true, fillColor: colourOf(p), fillOpacity: out ? 0.25 : 0.85,
              color: chosen ? "#000" : "#555", weight: chosen ? 3 : p.areas ? 0 : 0.4};
    }
    place(map, cfg);  // before the layer is added: else it first asks for every tile of folium's opening view
    layer = L.vectorGrid.protobuf(cfg.url, {
      // a large city: one canvas per tile, not an SVG element per shape (200,000 of them at zoom 9 took ~50 s)
      rendererFactory: cfg.canvas ? sharpCanvasTile : L.svg.tile, interactive: true, maxNativeZoom: cfg.zooms ? cfg.zooms[1] : 14,
      getFeatureId: function (feat) { return feat.properties.id; },
      vectorTileLayerStyles: new Proxy({}, {get: function () {
        return function (p) { if (p.id !== undefined) known[p.id] = p; return styleOf(p, p.id === picked); };
      }})
    }).addTo(map);

    function propsOf(id) { return known[id] || null; }

    page.shapes = function () {  // shapes drawn in the tiles of the view (SVG paths or canvas shapes alike)
      return Object.keys(layer._vectorTiles).reduce(function (n, k) {
        return n + Object.keys(layer._vectorTiles[k]._layers || {}).length; }, 0);
    };
    page.provisional = function () { return provisional ? provisional() : false; };  // tiles still to come again
    page.view = function () { return cfg.view; };
    page.valueOf = function (id) { var p = propsOf(id); return p ? valueOfProps(p) : null; };
    page.restyle = function () { layer.redraw(); };
    page.selected = function () { return picked; };
    page.select = function (id, zoom) {
      var before = picked && propsOf(picked), now = propsOf(id);
      if (before) layer.setFeatureStyle(picked, styleOf(before, false));
      picked = id;
      if (now) layer.setFeatureStyle(id, styleOf(now, true));
      markListed(id, null, true);
      page.onSelect(id);
      if (zoom && page.bounds[id]) map.fitBounds(page.bounds[id]);
    };
    page.bounds = {};
    page.info = function (id, done) {
      if (cfg.live) {
        var u = "/maps/" + encodeURIComponent(cfg.dataset) + "/area?" + new URLSearchParams({
          area: id, group: cfg.group, view: cfg.view, lang: cfg.lang});
        return fetch(u).then(function (r) { return r.ok ? r.json() : null; }).then(done, function () { done(null); });
      }
      var p = propsOf(id);
      done(p ? {id: id, name: p[cfg.name_field] || id, share: p[cfg.share_field], views: {}, neighbours: []} : null);
    };
    page.search = function (q, done) {
      if (!cfg.live) {  // offline: the listed areas only
        var hits = [];
        onEach('.segmap-list li', function (li) {
          if (li.textContent.toLowerCase().indexOf(q.toLowerCase()) >= 0 && hits.length < 10)
            hits.push({id: li.getAttribute("data-id"), name: li.textContent.split(" — ")[0]});
        });
        return done(hits);
      }
      fetch("/maps/" + encodeURIComponent(cfg.dataset) + "/search?" + new URLSearchParams({q: q}))
        .then(function (r) { return r.ok ? r.json() : []; })
        .then(function (hits) { hits.forEach(function (h) { page.bounds[h.id] = h.bounds; }); done(hits); }, function () { done([]); });
    };
    page.zoomTo = function (id) { page.select(id, true); };

    onListPick(function (id) { page.select(id, false); });
    layer.on("click", function (e) { if (e.layer.properties.id !== undefined) page.select(e.layer.properties.id); });
    layer.on("mouseover click", function (e) {
      var p = e.layer.properties;
      L.popup({closeButton: false, autoPan: false}).setLatLng(e.latlng)
        .setContent(popupText(p, cfg, classOf(p), f)).openOn(map);
    });
    showOnly(".segmap-legend, .segmap-list, .segmap-alt", cfg.view);
    window.segmap = {map: map, layers: {vector: layer}, cfg: cfg, classOf: classOf, select: page.select, page: page};
    window.segmapLinked.init(page);
    ready();
  }

  window.segmapPage = {areas: areas, tiles: tiles, esc: esc};
})();
