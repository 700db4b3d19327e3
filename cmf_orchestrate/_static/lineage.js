/* cmf-orchestrate lineage view: draws the graph embedded in #cmf-data with Cytoscape.js + dagre.
 * Everything it needs is inlined in the page; it never touches the network.
 *
 * What is drawn: data flow only (artifact -> execution -> artifact edges). Stages and pipelines
 * are boxes around their executions rather than edges, so nothing crosses the data flow; the
 * Python environment, an input of every execution, is one unwired node below the graph.
 * After drawing, every node's list entry gets data-drawn="true", its caption and its on-screen
 * box, checked against the painted canvas, and the page counts the edges drawn (naming any that
 * are not), so the page itself states what was drawn. */
(function () {
  "use strict";

  var data = JSON.parse(document.getElementById("cmf-data").textContent);
  var FONT = 13;                  // label size in graph units
  var FAMILY = "Helvetica Neue, Helvetica, sans-serif";
  var WRAP = 170;                 // text-max-width of every label
  var LINE_HEIGHT = 1.25;
  var READABLE_ZOOM = 11 / FONT;  // never open below 11 px labels on screen
  var MAX_ZOOM = 1.5;
  var STATE = { COMPLETE: "#2e7d32", FAILED: "#c62828", RUNNING: "#1565c0", CACHED: "#6a1b9a",
                NEW: "#757575", CANCELED: "#ef6c00", UNKNOWN: "#757575" };
  var BOX = {
    pipeline: { color: "#fff8e1", border: "#f9a825", style: "solid" },
    stage:    { color: "#fff3e0", border: "#fb8c00", style: "dashed" }
  };
  var ARTIFACT = {
    Dataset:      { shape: "barrel",         color: "#90caf9" },
    Model:        { shape: "diamond",        color: "#a5d6a7" },
    Metrics:      { shape: "tag",            color: "#f48fb1" },
    Step_Metrics: { shape: "tag",            color: "#ce93d8" },
    Dataslice:    { shape: "rhomboid",       color: "#80deea" },
    Environment:  { shape: "round-pentagon", color: "#e0e0e0" }
  };
  var DEFAULT_ARTIFACT = { shape: "round-rectangle", color: "#b0bec5" };
  var EDGE = { input: "#9e9e9e", output: "#424242" };

  function text(value) {
    if (value === null || value === undefined) return "";
    if (typeof value === "object") return JSON.stringify(value, null, 1);
    return String(value);
  }

  var byId = {};
  data.nodes.forEach(function (n) { byId[n.id] = n; });
  function isEnvironment(n) { return n.kind === "artifact" && n.subtype === "Environment"; }

  // ---------------------------------------------------------------- structure
  // Stage and pipeline edges become nesting; environment inputs are collapsed into one node.
  var parentOf = {};
  var flow = [];
  var nested = 0, collapsed = 0;
  var envUsers = {};
  data.edges.forEach(function (e) {
    if (e.kind === "runs" || e.kind === "contains") {
      parentOf[e.target] = e.source;
      nested += 1;
    } else if (isEnvironment(byId[e.source]) || isEnvironment(byId[e.target])) {
      var env = isEnvironment(byId[e.source]) ? e.source : e.target;
      (envUsers[env] = envUsers[env] || []).push(env === e.source ? e.target : e.source);
      collapsed += 1;
    } else {
      flow.push(e);
    }
  });
  function pipelineOf(executionId) {
    var stage = parentOf[executionId];
    return stage ? parentOf[stage] : undefined;
  }
  // An artifact sits inside a pipeline's box when every execution it touches belongs to it.
  var adjacent = {};
  flow.forEach(function (e) {
    var artifact = byId[e.source].kind === "artifact" ? e.source : e.target;
    var execution = artifact === e.source ? e.target : e.source;
    (adjacent[artifact] = adjacent[artifact] || []).push(execution);
  });
  Object.keys(adjacent).forEach(function (artifact) {
    var pipelines = {};
    adjacent[artifact].forEach(function (x) { pipelines[pipelineOf(x) || ""] = true; });
    var names = Object.keys(pipelines);
    if (names.length === 1 && names[0] && byId[names[0]]) parentOf[artifact] = names[0];
  });

  // ---------------------------------------------------------------- captions
  function shortMd5(n) {
    var md5 = n.properties && n.properties.md5;
    return md5 && /^[0-9a-f]{32}/.test(md5) ? String(md5).slice(0, 8) : "";
  }
  function artifactPath(n) {
    var p = n.properties || {};
    if (n.subtype === "Metrics" && p.metrics_name && !shortMd5(n)) return String(p.metrics_name);
    return String(n.label);
  }
  // The shortest path ending that tells apart every distinct path on the page.
  var distinct = {};
  data.nodes.forEach(function (n) {
    if (n.kind === "artifact" && !isEnvironment(n)) distinct[artifactPath(n)] = true;
  });
  var paths = Object.keys(distinct);
  var shortName = {};
  paths.forEach(function (path) {
    var parts = path.split("/");
    for (var k = 1; k <= parts.length; k++) {
      var tail = parts.slice(-k).join("/");
      var clash = paths.some(function (other) {
        return other !== path && (other === tail || other.slice(-(tail.length + 1)) === "/" + tail);
      });
      if (!clash || k === parts.length) { shortName[path] = tail; break; }
    }
  });
  function caption(n) {
    if (n.kind === "pipeline") return "pipeline " + n.label;
    if (n.kind === "stage") return "stage " + n.label;
    if (n.kind === "execution") return n.label;
    if (isEnvironment(n)) {
      var users = (envUsers[n.id] || []).length;
      return "python environment\n" + (shortMd5(n) || "") + (users ? " · input of " + users : "");
    }
    var md5 = shortMd5(n);
    return shortName[artifactPath(n)] + (md5 ? "\n" + md5 : "");
  }

  // ---------------------------------------------------------------- execution sizes
  // An execution is a box around its caption. Its size is measured here, as Cytoscape measures
  // labels, and given as a number: Cytoscape's own "width: label" reads 0 while the node's label
  // is not measured yet, and the first bounding-box pass (before any layout) can ask exactly
  // then, from an edge whose other end has no parent box (a file outside every pipeline box).
  // Cytoscape remembers "this node takes up no space" until the node's style changes, and would
  // from then on skip every edge of that execution, leaving them undrawn.
  var measure = document.createElement("canvas").getContext("2d");
  function labelSize(label, weight) {
    measure.font = "normal " + weight + " " + FONT + "px " + FAMILY;
    var lines = [];
    String(label).split("\n").forEach(function (line) {
      // Greedy wrapping at spaces, as text-wrap: wrap does; a longer word keeps its own line.
      var current = "";
      line.split(" ").forEach(function (word) {
        var next = current ? current + " " + word : word;
        if (current && measure.measureText(next).width > WRAP) { lines.push(current); current = word; }
        else current = next;
      });
      lines.push(current);
    });
    var width = 0;
    lines.forEach(function (line) { width = Math.max(width, Math.ceil(measure.measureText(line).width)); });
    return { w: Math.max(width, 1), h: FONT * (1 + (lines.length - 1) * LINE_HEIGHT) };
  }

  // ---------------------------------------------------------------- elements
  var elements = [];
  data.nodes.forEach(function (n) {
    var d = { id: n.id, label: caption(n), kind: n.kind, subtype: n.subtype, state: n.state,
              root: n.id === data.root ? 1 : 0, env: isEnvironment(n) ? 1 : 0 };
    if (n.kind === "artifact") {
      var a = ARTIFACT[n.subtype] || DEFAULT_ARTIFACT;
      d.shape = a.shape; d.color = a.color; d.border = "#616161"; d.lineStyle = "solid";
    } else if (n.kind === "execution") {
      d.shape = "round-rectangle"; d.color = STATE[n.state] || STATE.UNKNOWN; d.border = "#424242"; d.lineStyle = "solid";
      var size = labelSize(d.label, 600);
      d.w = size.w; d.h = size.h;
    } else {
      var b = BOX[n.kind];
      d.shape = "round-rectangle"; d.color = b.color; d.border = b.border; d.lineStyle = b.style;
    }
    if (parentOf[n.id] && byId[parentOf[n.id]]) d.parent = parentOf[n.id];
    elements.push({ group: "nodes", data: d });
  });
  flow.forEach(function (e, i) {
    elements.push({ group: "edges", data: { id: "e" + i, source: e.source, target: e.target, kind: e.kind } });
  });

  // ---------------------------------------------------------------- header and legend
  document.title = "Lineage: " + data.title;
  document.getElementById("title").textContent = data.title;
  var counts = {};
  data.nodes.forEach(function (n) { counts[n.kind] = (counts[n.kind] || 0) + 1; });
  document.getElementById("summary").textContent =
    (data.direction === "down" ? "downstream" : data.direction === "up" ? "upstream" : "lineage") + " · " +
    ["pipeline", "stage", "execution", "artifact"].filter(function (k) { return counts[k]; })
      .map(function (k) { return counts[k] + " " + k + (counts[k] > 1 ? "s" : ""); }).join(", ");

  var SVG = "http://www.w3.org/2000/svg";
  var SHAPES = {  // swatch outlines in a 22 x 16 box, after Cytoscape's shapes of the same names
    "round-rectangle": "M4,1 H18 Q21,1 21,4 V12 Q21,15 18,15 H4 Q1,15 1,12 V4 Q1,1 4,1 Z",
    "barrel": "M3,1 H19 Q22,8 19,15 H3 Q0,8 3,1 Z",
    "diamond": "M11,0.5 L21.5,8 L11,15.5 L0.5,8 Z",
    "tag": "M1,1 H15 L21,8 L15,15 H1 Z",
    "rhomboid": "M6,1 H21 L16,15 H1 Z",
    "round-pentagon": "M11,1 L21,6.5 L17,15 H5 L1,6.5 Z"
  };
  function swatch(shape, fill, stroke, dashed, strokeWidth) {
    var svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("width", "22"); svg.setAttribute("height", "16"); svg.setAttribute("class", "swatch");
    var path = document.createElementNS(SVG, "path");
    path.setAttribute("d", SHAPES[shape] || SHAPES["round-rectangle"]);
    path.setAttribute("fill", fill); path.setAttribute("stroke", stroke);
    path.setAttribute("stroke-width", strokeWidth || "1.2");
    if (dashed) path.setAttribute("stroke-dasharray", "3 2");
    svg.appendChild(path);
    return svg;
  }
  function edgeSwatch(color) {
    var svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("width", "22"); svg.setAttribute("height", "16"); svg.setAttribute("class", "swatch");
    var line = document.createElementNS(SVG, "path");
    line.setAttribute("d", "M1,8 H16"); line.setAttribute("stroke", color); line.setAttribute("stroke-width", "1.8");
    var head = document.createElementNS(SVG, "path");
    head.setAttribute("d", "M15,4 L21,8 L15,12 Z"); head.setAttribute("fill", color);
    svg.appendChild(line); svg.appendChild(head);
    return svg;
  }
  // The legend lists exactly what the graph draws, styled from the same tables.
  var legend = document.createElement("ul");
  function legendItem(key, label, icon) {
    var li = document.createElement("li");
    li.dataset.legend = key;
    li.appendChild(icon);
    li.appendChild(document.createTextNode(label));
    legend.appendChild(li);
  }
  function present(test) { return data.nodes.some(test); }
  if (present(function (n) { return n.kind === "pipeline"; })) {
    legendItem("pipeline", "pipeline (box around its stages)", swatch("round-rectangle", BOX.pipeline.color, BOX.pipeline.border, false));
  }
  if (present(function (n) { return n.kind === "stage"; })) {
    legendItem("stage", "stage (dashed box around its runs)", swatch("round-rectangle", BOX.stage.color, BOX.stage.border, true));
  }
  Object.keys(STATE).forEach(function (s) {
    if (present(function (n) { return n.kind === "execution" && n.state === s; })) {
      legendItem("execution:" + s, "execution " + s, swatch("round-rectangle", STATE[s], "#424242", false));
    }
  });
  var subtypes = {};
  data.nodes.forEach(function (n) { if (n.kind === "artifact") subtypes[n.subtype] = true; });
  Object.keys(ARTIFACT).concat(Object.keys(subtypes).filter(function (t) { return !ARTIFACT[t]; })).forEach(function (t) {
    if (!subtypes[t]) return;
    var a = ARTIFACT[t] || DEFAULT_ARTIFACT;
    var label = t === "Environment" ? "python environment (input of every run; not wired)" : t;
    legendItem("artifact:" + t, label, swatch(a.shape, a.color, "#616161", false));
  });
  if (present(function (n) { return n.id === data.root; })) {
    legendItem("root", "the artifact or run asked about (bold outline)", swatch("round-rectangle", "#ffffff", "#000", false, "2.6"));
  }
  ["input", "output"].forEach(function (kind) {
    if (flow.some(function (e) { return e.kind === kind; })) {
      legendItem("edge:" + kind, kind === "input" ? "read by (input)" : "written by (output)", edgeSwatch(EDGE[kind]));
    }
  });
  document.getElementById("legend").appendChild(legend);

  // ---------------------------------------------------------------- details and node list
  var details = document.getElementById("details");
  function showDetails(id) {
    var n = byId[id];
    var table = document.createElement("table");
    function row(k, v) {
      var tr = document.createElement("tr");
      var th = document.createElement("th");
      var td = document.createElement("td");
      // A long key breaks after "_" or ".", never inside a word.
      String(k).split(/(?<=[_.])/).forEach(function (part, i) {
        if (i) th.appendChild(document.createElement("wbr"));
        th.appendChild(document.createTextNode(part));
      });
      td.textContent = text(v);
      tr.appendChild(th);
      tr.appendChild(td);
      table.appendChild(tr);
    }
    row("kind", n.subtype ? n.kind + " · " + n.subtype : n.kind);
    row("name", n.label);
    if (n.state) row("state", n.state);
    Object.keys(n.properties).forEach(function (k) { row(k, n.properties[k]); });
    if (envUsers[id]) row("input of", envUsers[id].map(function (x) { return byId[x] ? byId[x].label : x; }).join(", "));
    details.replaceChildren(table);
    listItems.forEach(function (li) { li.classList.toggle("selected", li.dataset.nodeId === id); });
  }

  var list = document.getElementById("cmf-nodes");
  var listItems = [];
  data.nodes.forEach(function (n) {
    var li = document.createElement("li");
    li.dataset.nodeId = n.id;
    li.dataset.kind = n.kind;
    li.dataset.drawn = "false";
    li.dataset.caption = caption(n).replace(/\n/g, " ");
    var kind = document.createElement("span");
    kind.className = "kind";
    kind.textContent = n.subtype && n.kind === "artifact" ? n.subtype : n.kind;
    li.appendChild(kind);
    li.appendChild(document.createTextNode(n.kind === "artifact" ? artifactPath(n) : n.label));
    li.title = n.id;
    li.addEventListener("click", function () {
      showDetails(n.id);
      var ele = cy.getElementById(n.id);
      cy.elements().unselect();
      ele.select();
      cy.animate({ center: { eles: ele } }, { duration: 200 });
    });
    list.appendChild(li);
    listItems.push(li);
  });

  // ---------------------------------------------------------------- graph
  cytoscape.use(cytoscapeDagre);
  var rankDir = "LR";
  var cy = cytoscape({
    container: document.getElementById("cy"),
    elements: elements,
    minZoom: 0.05,
    maxZoom: 4,
    boxSelectionEnabled: false,
    style: [
      { selector: "node", style: {
          "shape": "data(shape)", "background-color": "data(color)", "border-width": 1,
          "border-color": "data(border)", "border-style": "data(lineStyle)",
          "label": "data(label)", "font-size": FONT, "font-family": FAMILY, "color": "#212121",
          "text-wrap": "wrap", "text-max-width": WRAP + "px", "line-height": LINE_HEIGHT,
          "min-zoomed-font-size": 0 } },
      { selector: "node[kind = 'execution']", style: {
          "width": "data(w)", "height": "data(h)", "padding": "9px", "color": "#fff", "font-weight": 600,
          "text-valign": "center", "text-halign": "center" } },
      { selector: "node[kind = 'artifact']", style: {
          "width": 34, "height": 26, "text-valign": "bottom", "text-halign": "center", "text-margin-y": 4,
          "text-background-color": "#fff", "text-background-opacity": 0.85, "text-background-padding": 1 } },
      { selector: "node[kind = 'pipeline'], node[kind = 'stage']", style: {
          "background-opacity": 0.55, "text-valign": "top", "text-halign": "center", "text-margin-y": -2,
          "padding": "10px", "color": "#5d4037" } },
      { selector: "node[kind = 'pipeline']", style: { "font-weight": 600, "border-width": 1.5 } },
      { selector: "node[kind = 'stage']", style: { "font-size": FONT - 1 } },
      { selector: "node[root = 1]", style: { "border-width": 4, "border-color": "#000" } },
      { selector: "node:selected", style: { "border-width": 4, "border-color": "#ff6f00" } },
      { selector: "node.used", style: { "border-width": 3, "border-color": "#ff6f00" } },
      { selector: "edge", style: {
          "width": 1.5, "curve-style": "bezier", "target-arrow-shape": "triangle",
          "line-color": EDGE.input, "target-arrow-color": EDGE.input, "arrow-scale": 0.9 } },
      { selector: "edge[kind = 'output']", style: { "line-color": EDGE.output, "target-arrow-color": EDGE.output } }
    ],
    layout: { name: "preset" }
  });
  var environments = cy.nodes("[env = 1]");

  function placeEnvironments() {
    // Unwired, next to the asked-for artifact's end of the data flow, so the opening view shows it.
    var bb = cy.elements().not(environments).boundingBox({ includeLabels: true });
    var atEnd = data.direction !== "down";
    environments.forEach(function (env, i) {
      if (rankDir === "LR") {
        env.position({ x: atEnd ? bb.x2 - 70 - i * 170 : bb.x1 + 70 + i * 170, y: bb.y2 + 45 });
      } else {
        env.position({ x: bb.x2 + 90, y: atEnd ? bb.y2 - 30 - i * 80 : bb.y1 + 30 + i * 80 });
      }
    });
  }

  function centred(size, low, high, at, z) {
    // The whole extent centred when it fits across; else centred on `at` without showing past its ends.
    if ((high - low) * z <= size - 64) return size / 2 - ((low + high) / 2) * z;
    return Math.min(32 - low * z, Math.max(size - 32 - high * z, size / 2 - at * z));
  }

  function readableView() {
    // Fit the whole graph when that keeps labels readable; otherwise open at a readable zoom
    // showing the asked-for artifact, and let Fit show everything.
    cy.fit(undefined, 32);
    if (cy.zoom() > MAX_ZOOM) { cy.zoom(MAX_ZOOM); cy.center(); }
    if (cy.zoom() >= READABLE_ZOOM) return;
    var root = cy.getElementById(data.root);
    var W = cy.width(), H = cy.height();
    var bb = cy.elements().boundingBox({ includeLabels: true });
    var z = READABLE_ZOOM;
    var p = root.position();
    var x, y;
    if (rankDir === "LR") {
      // Upstream grows to the left of the root, downstream to its right.
      x = data.direction === "down" ? 32 - (bb.x1 * z) : W - 32 - (bb.x2 * z);
      y = centred(H, bb.y1, bb.y2, p.y, z);
    } else {
      y = data.direction === "down" ? 32 - (bb.y1 * z) : H - 32 - (bb.y2 * z);
      x = centred(W, bb.x1, bb.x2, p.x, z);
    }
    cy.viewport({ zoom: z, pan: { x: x, y: y } });
  }

  function runLayout() {
    cy.elements().not(environments).layout({
      name: "dagre", rankDir: rankDir, nodeSep: 18, rankSep: 48, edgeSep: 8, ranker: "network-simplex",
      nodeDimensionsIncludeLabels: true, fit: false, animate: false
    }).run();
    placeEnvironments();
    readableView();
  }
  runLayout();

  // ---------------------------------------------------------------- interaction
  var tooltip = document.getElementById("tooltip");
  cy.on("mouseover", "node", function (evt) {
    var n = byId[evt.target.id()];
    showDetails(n.id);
    var p = n.properties;
    var lines = [n.label + (n.state ? " — " + n.state : "")];
    ["md5", "path", "start_time", "end_time", "parameters"].forEach(function (k) {
      if (p[k] !== undefined && p[k] !== "" && !(typeof p[k] === "object" && Object.keys(p[k]).length === 0)) {
        lines.push(k + ": " + text(p[k]));
      }
    });
    if (envUsers[n.id]) {
      lines.push("input of " + envUsers[n.id].length + " execution(s), highlighted");
      envUsers[n.id].forEach(function (x) { cy.getElementById(x).addClass("used"); });
    }
    tooltip.textContent = lines.join("\n");
    var pos = evt.renderedPosition || evt.target.renderedPosition();
    tooltip.style.left = (pos.x + 14) + "px";
    tooltip.style.top = (pos.y + 14) + "px";
    tooltip.style.display = "block";
  });
  cy.on("mouseout", "node", function () {
    tooltip.style.display = "none";
    cy.nodes(".used").removeClass("used");
  });
  document.getElementById("cy").addEventListener("mouseleave", function () { tooltip.style.display = "none"; });
  cy.on("tap", "node", function (evt) { showDetails(evt.target.id()); });
  document.getElementById("fit").addEventListener("click", function () { cy.fit(undefined, 32); });
  document.getElementById("rankdir").addEventListener("click", function (evt) {
    rankDir = rankDir === "LR" ? "TB" : "LR";
    evt.target.textContent = rankDir === "LR" ? "Top to bottom" : "Left to right";
    runLayout();
  });

  // ---------------------------------------------------------------- self-check
  function painted(canvas, ratio, x, y) {
    if (!canvas) return false;
    var ctx = canvas.getContext("2d");
    var r = 2;
    var px = Math.round(x * ratio), py = Math.round(y * ratio);
    var img = ctx.getImageData(Math.max(px - r, 0), Math.max(py - r, 0), 2 * r + 1, 2 * r + 1).data;
    for (var i = 3; i < img.length; i += 4) { if (img[i] > 0) return true; }
    return false;
  }
  var container = document.getElementById("cy");
  function boxes() {
    // Every node's on-screen box in the current view (kept up to date as the view moves).
    listItems.forEach(function (li) {
      var bb = cy.getElementById(li.dataset.nodeId).renderedBoundingBox({ includeLabels: false });
      li.dataset.box = [bb.x1, bb.y1, bb.w, bb.h].map(function (v) { return v.toFixed(1); }).join(",");
    });
    document.body.dataset.cmfZoom = cy.zoom().toFixed(3);
    document.body.dataset.cmfFontPx = (FONT * cy.zoom()).toFixed(1);
  }
  var boxesPending = false;
  cy.on("viewport", function () {
    if (boxesPending) return;
    boxesPending = true;
    requestAnimationFrame(function () { boxesPending = false; boxes(); });
  });

  var attempts = 0;
  var opened = null;
  function verify() {
    // Is every node and edge painted? Checked on the whole graph fitted into view, then the
    // opening view is restored.
    attempts += 1;
    if (opened === null) opened = { zoom: cy.zoom(), pan: cy.pan() };
    cy.fit(undefined, 32);
    // A timer, not animation frames: headless browsers may not run frames, and a node not
    // painted yet is simply checked again.
    setTimeout(check, 60);
  }
  function check() {
    var W = container.clientWidth, H = container.clientHeight;
    var canvas = container.querySelector("canvas[data-id='layer2-node']");
    var ratio = canvas && canvas.width && W ? canvas.width / W : 1;
    var drawn = 0;
    var drawnNode = {};
    listItems.forEach(function (li) {
      var ele = cy.getElementById(li.dataset.nodeId);
      var bb = ele.renderedBoundingBox({ includeLabels: false });
      var pos = ele.renderedPosition();
      var inside = bb.w > 0 && bb.h > 0 && bb.x2 > 0 && bb.y2 > 0 && bb.x1 < W && bb.y1 < H;
      var ok = inside && painted(canvas, ratio, pos.x, pos.y);
      li.dataset.drawn = ok ? "true" : "false";
      if (ok) { drawn += 1; drawnNode[li.dataset.nodeId] = true; }
    });
    // An edge is drawn when Cytoscape has a path for it (an empty box means it has none and
    // skips the edge), both its ends are drawn, and the canvas is painted at its midpoint.
    var undrawn = [];
    cy.edges().forEach(function (edge) {
      var bb = edge.renderedBoundingBox({ includeLabels: false });
      var mid = edge.renderedMidpoint();
      var ok = bb.w > 0 && bb.h > 0 && drawnNode[edge.source().id()] && drawnNode[edge.target().id()] &&
        mid && isFinite(mid.x) && isFinite(mid.y) && painted(canvas, ratio, mid.x, mid.y);
      if (!ok) undrawn.push(edge.source().id() + ">" + edge.target().id());
    });
    var edgesDrawn = cy.edges().length - undrawn.length;
    var complete = drawn === data.nodes.length && undrawn.length === 0;
    if (!complete && attempts < 40) { setTimeout(verify, 50); return; }
    cy.viewport(opened);
    boxes();
    var body = document.body;
    body.dataset.cmfNodes = String(data.nodes.length);
    body.dataset.cmfEdges = String(cy.edges().length);
    body.dataset.cmfNested = String(nested);
    body.dataset.cmfCollapsed = String(collapsed);
    body.dataset.cmfDrawn = String(drawn);
    body.dataset.cmfEdgesDrawn = String(edgesDrawn);
    body.dataset.cmfUndrawnEdges = undrawn.join(" ");
    body.dataset.cmfStatus = complete ? "drawn" : "incomplete";
    var ext = cy.extent(), all = cy.elements().boundingBox();
    var partial = all.x1 < ext.x1 || all.x2 > ext.x2 || all.y1 < ext.y1 || all.y2 > ext.y2;
    body.dataset.cmfWhole = partial ? "false" : "true";
    var note = partial ? " (zoomed to read: drag to pan, Fit shows all)" : "";
    document.getElementById("status").textContent =
      drawn + " of " + data.nodes.length + " nodes and " + edgesDrawn + " of " + cy.edges().length +
      " data-flow edges drawn" + note;
  }
  // "page.html#node=<id>" opens with that node selected and its properties shown.
  function selectFromHash() {
    var m = /^#node=(.+)$/.exec(window.location.hash);
    if (!m) return;
    var id = decodeURIComponent(m[1]);
    if (!byId[id]) return;
    cy.elements().unselect();
    cy.getElementById(id).select();
    showDetails(id);
  }
  window.addEventListener("hashchange", selectFromHash);
  selectFromHash();

  cy.ready(function () { setTimeout(verify, 0); });
})();
