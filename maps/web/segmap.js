/* segmap map pages, loaded after Leaflet. The page calls one of:
 *   segmapPage.areas(map, areasLayer, cfg)  areas embedded as GeoJSON, one base layer per view
 *   segmapPage.tiles(map, cfg)              areas drawn from the app's vector tiles (VectorGrid)
 * cfg is JSON written by maps/views.py. window.segmap exposes the state to tests and to readers' scripts.
 */
(function () {
  "use strict";

  var ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"};

  function esc(s) {  // area names and labels are text: never markup
    return String(s == null ? "–" : s).replace(/[&<>"]/g, function (c) { return ESCAPES[c]; });
  }

  function num(v, pct) {
    if (v === null || v === undefined) return "hidden";
    if (pct) return (100 * v).toFixed(1) + " %";
    return Math.abs(v) >= 1000 ? Math.round(v).toLocaleString("en") : (+v).toFixed(3);
  }

  function onEach(selector, fn) { document.querySelectorAll(selector).forEach(fn); }

  function showOnly(selector, view) {  // legends, lists and summaries of the other views are hidden
    onEach(selector, function (el) { el.hidden = el.getAttribute("data-view") !== view; });
  }

  function markListed(id, view, scroll) {
    onEach(".segmap-list li.selected", function (li) { li.classList.remove("selected"); });
    var list = view ? '.segmap-list[data-view="' + view + '"]' : ".segmap-list";
    var li = document.querySelector(list + ' li[data-id="' + CSS.escape(id) + '"]');
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

  function place(map, cfg) {
    if (cfg.at) map.setView([cfg.at[0], cfg.at[1]], cfg.at[2]);
    else map.fitBounds(cfg.bounds);
  }

  function ready() { document.documentElement.setAttribute("data-segmap-ready", "1"); }

  // -- Areas embedded in the page: each view is a base layer that restyles the same areas ------------------------

  function areas(map, layer, cfg) {
    var byId = {}, view = cfg.view, selected = null;
    window.segmap = {map: map, areas: layer, cfg: cfg, byId: byId};

    function tip(p) {
      var rows = [["Counts", num(p.count) + " of " + num(p.total)], ["Share", num(p.share, true)]];
      if (view !== "share" && view !== "informal") rows.push([cfg.statistic[view] || "Value", num(p["v_" + view])]);
      var pv = p["p_" + view];
      if (pv !== null && pv !== undefined) rows.push(["p-value", (+pv).toPrecision(2)]);
      rows.push(["Class", cfg.palettes[view][p["k_" + view]][0]]);
      return "<b>" + esc(p.name) + "</b><table>" + rows.map(function (r) {
        return "<tr><th>" + esc(r[0]) + "</th><td>" + esc(r[1]) + "</td></tr>";
      }).join("") + "</table>";
    }

    function style(l) {
      var p = l.feature.properties, picked = l === selected;
      return {fillColor: cfg.palettes[view][p["k_" + view]][1], fillOpacity: 0.85,
              color: picked ? "#000" : "#555", weight: picked ? 3 : 0.5};
    }

    function restyle() { layer.eachLayer(function (l) { l.setStyle(style(l)); }); }

    function showLegend() { showOnly(".segmap-legend, .segmap-list, .segmap-alt", view); }

    function select(id, zoom) {
      var l = byId[id], prev = selected;
      selected = l || null;
      if (prev) prev.setStyle(style(prev));
      markListed(id, view, !zoom);
      if (!l) return;
      l.setStyle(style(l));
      l.bringToFront();
      if (zoom) {
        map.fitBounds(l.getBounds(), {maxZoom: map.getZoom() + 1});
        l.openTooltip(l.getBounds().getCenter());
      }
    }

    function syncUrl() {  // the address (and the links and form) hold the view and the position
      if (cfg.mode === "download" || !window.history || !history.replaceState) return;
      var u = new URL(window.location.href), c = map.getCenter();
      u.searchParams.set("view", view);
      u.searchParams.set("at", c.lat.toFixed(5) + "," + c.lng.toFixed(5) + "," + map.getZoom());
      history.replaceState(null, "", u.toString());
      onEach("a.segmap-data", function (a) {
        var d = new URL(a.href, window.location.href);
        d.searchParams.set("view", view);
        a.href = d.toString();
      });
      onEach("select[name=view]", function (s) { s.value = view; });
      onEach("input[name=at]", function (i) { i.value = u.searchParams.get("at"); });
    }

    layer.eachLayer(function (l) {
      var p = l.feature.properties;
      byId[p.id] = l;
      l.bindTooltip(function () { return tip(p); }, {sticky: true});
      l.on("click", function () { select(p.id, false); });
      l.on("mouseover", function () { if (l !== selected) l.setStyle({weight: 2, color: "#000"}); });
      l.on("mouseout", function () { l.setStyle(style(l)); });
    });
    window.segmap.select = select;
    onListPick(function (id) { select(id, true); });
    map.on("baselayerchange", function (e) {
      view = cfg.names[e.name] || view;
      restyle();
      showLegend();
      syncUrl();
    });
    map.on("moveend", syncUrl);
    map.on("overlayadd overlayremove", function (e) {
      var el = document.querySelector(".segmap-overlay-legend");
      if (el && e.name === "Informal settlements") el.hidden = e.type === "overlayremove";
    });
    restyle();
    showLegend();
    place(map, cfg);
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

  function popupText(p, cfg, i) {
    var share = p[cfg.share_field];
    var rows = ["Share: " + (share === undefined ? "hidden" : (100 * share).toFixed(1) + " %")];
    if (cfg.kind !== "share" && p.value !== undefined) rows.push(cfg.statistic + ": " + (+p.value).toFixed(3));
    if (p.p_value !== undefined) rows.push("p-value: " + (+p.p_value).toPrecision(2));
    rows.push("Class: " + (i < 0 ? cfg.hidden_label : cfg.labels[i]));
    var title = p.areas ? p.areas + " areas under one pixel cell (zoom in to see each)" : (p[cfg.name_field] || p.id);
    return "<b>" + esc(title) + "</b><br>" + rows.map(esc).join("<br>");
  }

  function tiles(map, cfg) {
    if (cfg.embedded) answerEmbeddedTiles(map, cfg);
    var classOf = classifier(cfg), picked = null;
    var colourOf = function (p) { var i = classOf(p); return i < 0 ? cfg.hidden_colour : cfg.colours[i]; };
    var layer = L.vectorGrid.protobuf(cfg.url, {
      rendererFactory: L.svg.tile, interactive: true, maxNativeZoom: cfg.zooms ? cfg.zooms[1] : 14,
      getFeatureId: function (f) { return f.properties.id; },
      vectorTileLayerStyles: new Proxy({}, {get: function () {
        return function (p) {  // merged cells (p.areas) have no outline
          return {fill: true, fillColor: colourOf(p), fillOpacity: 0.85, color: "#555", weight: p.areas ? 0 : 0.4};
        };
      }})
    }).addTo(map);

    function styleOf(p, chosen) {
      return {fill: true, fillColor: colourOf(p), fillOpacity: 0.85,
              color: chosen ? "#000" : "#555", weight: chosen ? 3 : 0.4};
    }

    function propsOf(id) {  // from any loaded tile that holds the area
      var loaded = layer._vectorTiles;
      for (var k in loaded) {
        var f = (loaded[k]._features || {})[id];
        if (f) return f.feature.properties;
      }
      return null;
    }

    function pick(id) {
      var before = picked && propsOf(picked), now = propsOf(id);
      if (before) layer.setFeatureStyle(picked, styleOf(before, false));
      picked = id;
      if (now) layer.setFeatureStyle(id, styleOf(now, true));
      markListed(id, null, true);
    }

    onListPick(pick);
    layer.on("click", function (e) { if (e.layer.properties.id !== undefined) pick(e.layer.properties.id); });
    layer.on("mouseover click", function (e) {
      var p = e.layer.properties;
      L.popup({closeButton: false, autoPan: false}).setLatLng(e.latlng)
        .setContent(popupText(p, cfg, classOf(p))).openOn(map);
    });
    showOnly(".segmap-legend, .segmap-list, .segmap-alt", cfg.view);
    place(map, cfg);
    window.segmap = {map: map, layers: {vector: layer}, cfg: cfg, classOf: classOf, select: pick};
    ready();
  }

  window.segmapPage = {areas: areas, tiles: tiles};
})();
