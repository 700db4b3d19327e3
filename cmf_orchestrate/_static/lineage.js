/* cmf-orchestrate lineage view: draws the graph embedded in #cmf-data with Cytoscape.js + dagre.
 * Everything it needs is inlined in the page; it never touches the network.
 * After drawing, every node's list entry gets data-drawn="true" and its on-screen box, checked
 * against the painted canvas, so the page itself states what was drawn. */
(function () {
  "use strict";

  var data = JSON.parse(document.getElementById("cmf-data").textContent);
  var STATE = { COMPLETE: "#2e7d32", FAILED: "#c62828", RUNNING: "#1565c0", CACHED: "#6a1b9a",
                NEW: "#757575", CANCELED: "#ef6c00", UNKNOWN: "#757575" };
  var KIND = {
    pipeline:  { shape: "hexagon",         color: "#ffca28", w: 150, h: 54 },
    stage:     { shape: "round-rectangle", color: "#ffe0b2", w: 130, h: 38 },
    execution: { shape: "ellipse",         color: "#757575", w: 128, h: 48 }
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

  function look(node) {
    if (node.kind === "artifact") {
      var a = ARTIFACT[node.subtype] || DEFAULT_ARTIFACT;
      return { shape: a.shape, color: a.color, w: 62, h: 46 };
    }
    var k = KIND[node.kind];
    var color = node.kind === "execution" ? (STATE[node.state] || STATE.UNKNOWN) : k.color;
    return { shape: k.shape, color: color, w: k.w, h: k.h };
  }

  function text(value) {
    if (value === null || value === undefined) return "";
    if (typeof value === "object") return JSON.stringify(value, null, 1);
    return String(value);
  }

  // On the canvas an artifact shows its file name; the full path is in the details and the list.
  function caption(n) {
    if (n.kind !== "artifact") return n.label;
    if (n.subtype === "Environment") return "python environment";
    var parts = String(n.label).split("/");
    return parts[parts.length - 1] || n.label;
  }

  var byId = {};
  var elements = [];
  data.nodes.forEach(function (n) {
    byId[n.id] = n;
    var l = look(n);
    elements.push({ group: "nodes", data: {
      id: n.id, label: caption(n), kind: n.kind, subtype: n.subtype, state: n.state,
      shape: l.shape, color: l.color, w: l.w, h: l.h, root: n.id === data.root ? 1 : 0 } });
  });
  data.edges.forEach(function (e, i) {
    elements.push({ group: "edges", data: { id: "e" + i, source: e.source, target: e.target, kind: e.kind } });
  });

  document.title = "Lineage: " + data.title;
  document.getElementById("title").textContent = data.title;
  var counts = {};
  data.nodes.forEach(function (n) { counts[n.kind] = (counts[n.kind] || 0) + 1; });
  document.getElementById("summary").textContent =
    (data.direction === "down" ? "downstream" : data.direction === "up" ? "upstream" : "lineage") + " · " +
    ["pipeline", "stage", "execution", "artifact"].filter(function (k) { return counts[k]; })
      .map(function (k) { return counts[k] + " " + k + (counts[k] > 1 ? "s" : ""); }).join(", ");

  // Legend, built from the same tables that style the graph.
  var legend = document.createElement("ul");
  function legendItem(label, color, shape) {
    var li = document.createElement("li");
    var sw = document.createElement("span");
    sw.className = "swatch";
    sw.style.background = color;
    if (shape === "ellipse") sw.style.borderRadius = "50%";
    li.appendChild(sw);
    li.appendChild(document.createTextNode(label));
    legend.appendChild(li);
  }
  legendItem("pipeline (hexagon)", KIND.pipeline.color, "hexagon");
  legendItem("stage (rounded box)", KIND.stage.color, "round-rectangle");
  Object.keys(STATE).forEach(function (s) {
    if (data.nodes.some(function (n) { return n.kind === "execution" && n.state === s; })) {
      legendItem("execution " + s + " (ellipse)", STATE[s], "ellipse");
    }
  });
  Object.keys(ARTIFACT).forEach(function (t) {
    if (data.nodes.some(function (n) { return n.kind === "artifact" && n.subtype === t; })) {
      legendItem(t + " (" + ARTIFACT[t].shape + ")", ARTIFACT[t].color, ARTIFACT[t].shape);
    }
  });
  document.getElementById("legend").appendChild(legend);

  var details = document.getElementById("details");
  function showDetails(id) {
    var n = byId[id];
    var table = document.createElement("table");
    function row(k, v) {
      var tr = document.createElement("tr");
      var th = document.createElement("th");
      var td = document.createElement("td");
      th.textContent = k;
      td.textContent = text(v);
      tr.appendChild(th);
      tr.appendChild(td);
      table.appendChild(tr);
    }
    row("kind", n.subtype ? n.kind + " · " + n.subtype : n.kind);
    row("name", n.label);
    if (n.state) row("state", n.state);
    Object.keys(n.properties).forEach(function (k) { row(k, n.properties[k]); });
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
    var kind = document.createElement("span");
    kind.className = "kind";
    kind.textContent = n.subtype && n.kind === "artifact" ? n.subtype : n.kind;
    li.appendChild(kind);
    li.appendChild(document.createTextNode(n.label));
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
          "shape": "data(shape)", "background-color": "data(color)", "width": "data(w)", "height": "data(h)",
          "label": "data(label)", "font-size": 11, "text-wrap": "ellipsis", "text-max-width": "140px",
          "text-valign": "center", "text-halign": "center", "border-width": 1, "border-color": "#616161",
          "color": "#212121" } },
      { selector: "node[kind = 'execution']", style: { "color": "#fff", "text-max-width": "118px" } },
      { selector: "node[kind = 'stage']", style: { "border-style": "dashed" } },
      { selector: "node[kind = 'artifact']", style: {
          "text-valign": "bottom", "text-margin-y": 4, "text-background-color": "#fff",
          "text-background-opacity": 0.8, "text-background-padding": 1 } },
      { selector: "node[root = 1]", style: { "border-width": 4, "border-color": "#000" } },
      { selector: "node:selected", style: { "border-width": 4, "border-color": "#ff6f00" } },
      { selector: "edge", style: {
          "width": 1.5, "curve-style": "bezier", "target-arrow-shape": "triangle",
          "line-color": "#9e9e9e", "target-arrow-color": "#9e9e9e", "arrow-scale": 0.9 } },
      { selector: "edge[kind = 'output']", style: { "line-color": "#424242", "target-arrow-color": "#424242" } },
      { selector: "edge[kind = 'contains'], edge[kind = 'runs']", style: {
          "line-style": "dashed", "line-color": "#ffb74d", "target-arrow-color": "#ffb74d" } }
    ],
    layout: { name: "preset" }
  });

  function runLayout() {
    // Data flow decides the layout; pipeline and stage edges follow it loosely.
    cy.layout({ name: "dagre", rankDir: rankDir, nodeSep: 24, rankSep: 70, edgeSep: 10,
                fit: true, padding: 30, animate: false,
                edgeWeight: function (edge) { return edge.data("kind") === "input" || edge.data("kind") === "output" ? 4 : 1; }
              }).run();
  }
  runLayout();

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
    tooltip.textContent = lines.join("\n");
    var pos = evt.renderedPosition || evt.target.renderedPosition();
    tooltip.style.left = (pos.x + 14) + "px";
    tooltip.style.top = (pos.y + 14) + "px";
    tooltip.style.display = "block";
  });
  cy.on("mouseout", "node", function () { tooltip.style.display = "none"; });
  document.getElementById("cy").addEventListener("mouseleave", function () { tooltip.style.display = "none"; });
  cy.on("tap", "node", function (evt) { showDetails(evt.target.id()); });
  document.getElementById("fit").addEventListener("click", function () { cy.fit(undefined, 30); });
  document.getElementById("rankdir").addEventListener("click", function (evt) {
    rankDir = rankDir === "LR" ? "TB" : "LR";
    evt.target.textContent = rankDir === "LR" ? "Top to bottom" : "Left to right";
    runLayout();
  });

  // Self-check: is every node inside the viewport and painted on the node canvas?
  function painted(canvas, ratio, x, y) {
    if (!canvas) return false;
    var ctx = canvas.getContext("2d");
    var r = 2;
    var px = Math.round(x * ratio), py = Math.round(y * ratio);
    var img = ctx.getImageData(Math.max(px - r, 0), Math.max(py - r, 0), 2 * r + 1, 2 * r + 1).data;
    for (var i = 3; i < img.length; i += 4) { if (img[i] > 0) return true; }
    return false;
  }

  var attempts = 0;
  function verify() {
    attempts += 1;
    var container = document.getElementById("cy");
    var W = container.clientWidth, H = container.clientHeight;
    var canvas = container.querySelector("canvas[data-id='layer2-node']");
    var ratio = canvas && canvas.width && W ? canvas.width / W : 1;
    var drawn = 0;
    listItems.forEach(function (li) {
      var ele = cy.getElementById(li.dataset.nodeId);
      var bb = ele.renderedBoundingBox({ includeLabels: false });
      var pos = ele.renderedPosition();
      var inside = bb.w > 0 && bb.h > 0 && bb.x2 > 0 && bb.y2 > 0 && bb.x1 < W && bb.y1 < H;
      var ok = inside && painted(canvas, ratio, pos.x, pos.y);
      li.dataset.drawn = ok ? "true" : "false";
      li.dataset.box = [bb.x1, bb.y1, bb.w, bb.h].map(function (v) { return v.toFixed(1); }).join(",");
      if (ok) drawn += 1;
    });
    var body = document.body;
    body.dataset.cmfNodes = String(data.nodes.length);
    body.dataset.cmfEdges = String(cy.edges().length);
    body.dataset.cmfDrawn = String(drawn);
    if (drawn === data.nodes.length || attempts >= 40) {
      body.dataset.cmfStatus = drawn === data.nodes.length ? "drawn" : "incomplete";
      document.getElementById("status").textContent =
        drawn + " of " + data.nodes.length + " nodes drawn, " + cy.edges().length + " edges";
    } else {
      setTimeout(verify, 50);
    }
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

  cy.ready(function () { requestAnimationFrame(function () { setTimeout(verify, 0); }); });
})();
