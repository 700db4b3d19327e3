"""`lineage` in every format, the HTML page rendered by Chromium, and `diff`."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from _chromium import DevTools, dump_dom, elements, screenshot
from cli_testlib import Recorded

from cmf_orchestrate import CmfQuery, CmfSettings

REPO = Path(__file__).resolve().parents[2]


def _graph(recorded: Recorded, run_cli: Any, *args: str) -> dict[str, Any]:
    result = run_cli(recorded.root, "lineage", *args, "--format", "json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_json_upstream_of_the_final_metrics_reaches_the_raw_data(recorded: Recorded, run_cli: Any) -> None:
    graph = _graph(recorded, run_cli, "metrics/scores.json")
    nodes = {n["id"]: n for n in graph["nodes"]}
    root = nodes[graph["root"]]
    assert root["kind"] == "artifact" and root["label"] == "metrics/scores.json"
    # The newest metrics came from run v2: evaluate <- train(8 trees) <- featurize <- prepare(ratio .25) <- raw.
    executions = [n for n in nodes.values() if n["kind"] == "execution"]
    assert sorted(n["subtype"] for n in executions) == ["evaluate", "featurize", "prepare", "train"]
    assert {n["state"] for n in executions} == {"COMPLETE"}
    train = next(n for n in executions if n["subtype"] == "train")
    assert train["properties"]["parameters"] == {"n_estimators": 16}
    assert len(train["properties"]["code_fingerprint"]) == 32
    paths = {n["label"] for n in nodes.values() if n["kind"] == "artifact"}
    assert {"data/raw.csv", "data/train.csv", "features/train.csv", "models/model.pkl"} <= paths
    assert {n["kind"] for n in nodes.values()} == {"pipeline", "stage", "execution", "artifact"}
    for edge in graph["edges"]:
        assert edge["source"] in nodes and edge["target"] in nodes
    relations = {(nodes[e["source"]]["kind"], e["kind"], nodes[e["target"]]["kind"]) for e in graph["edges"]}
    assert relations == {
        ("artifact", "input", "execution"),
        ("execution", "output", "artifact"),
        ("stage", "runs", "execution"),
        ("pipeline", "contains", "stage"),
    }


def test_down_and_depth_limit_what_is_walked(recorded: Recorded, run_cli: Any) -> None:
    down = _graph(recorded, run_cli, "data/raw.csv", "--down", "--no-contexts")
    labels = {n["label"] for n in down["nodes"] if n["kind"] == "artifact"}
    assert {"data/train.csv", "features/test.csv", "models/model.pkl", "metrics/scores.json"} <= labels
    # Both versions of prepare read raw.csv, and the failed publish run read a model.
    assert sum(1 for n in down["nodes"] if n["kind"] == "execution" and n["subtype"] == "prepare") == 2
    assert any(n["state"] == "FAILED" for n in down["nodes"] if n["kind"] == "execution")
    one_hop = _graph(recorded, run_cli, "data/raw.csv", "--down", "--depth", "1", "--no-contexts")
    assert {n["subtype"] for n in one_hop["nodes"] if n["kind"] == "execution"} == {"prepare"}


def test_tree_mermaid_and_dot(recorded: Recorded, run_cli: Any, tmp_path: Path) -> None:
    tree = run_cli(recorded.root, "lineage", recorded.model_v1)
    assert tree.exit_code == 0, tree.output
    lines = tree.output.splitlines()
    assert lines[0].startswith(f"Model models/model.pkl md5 {recorded.md5_v1}")
    assert re.search(r"train #\d+ COMPLETE params n_estimators=12; code [0-9a-f]{8}", tree.output)
    assert "Dataset data/raw.csv md5" in tree.output
    mermaid = run_cli(recorded.root, "lineage", recorded.md5_v2, "--format", "mermaid", "-o", str(tmp_path / "g.mmd"))
    assert mermaid.exit_code == 0, mermaid.output
    text = (tmp_path / "g.mmd").read_text()
    assert text.startswith("flowchart LR\n")
    assert re.search(r'n\d+\{"Model: models/model.pkl [0-9a-f]{8}…"\}', text)
    assert re.search(r"n\d+ -->\|output\| n\d+", text)
    dot = run_cli(recorded.root, "lineage", "models/model.pkl", "-f", "dot")
    assert dot.exit_code == 0, dot.output
    assert dot.output.startswith('digraph "lineage" {') and dot.output.rstrip().endswith("}")
    assert 'shape="diamond", peripheries="2"' in dot.output  # the model, marked as the root
    if shutil.which("dot"):  # Graphviz, when present, must accept the file
        import subprocess

        subprocess.run(["dot", "-Tsvg"], input=dot.output, text=True, check=True, capture_output=True)


def test_html_is_self_contained_and_draws_every_node(recorded: Recorded, run_cli: Any, tmp_path: Path) -> None:
    page = tmp_path / "lineage.html"
    result = run_cli(recorded.root, "lineage", "metrics/scores.json", "--format", "html", "-o", str(page))
    assert result.exit_code == 0, result.output
    html = page.read_text()
    # One file, nothing to fetch: no external scripts, styles, images or fonts.
    assert not re.search(r"<(script|img|iframe)[^>]+src=", html)
    assert not re.search(r"<link[^>]+href=", html)
    assert "@import" not in html and "url(http" not in html
    expected = _graph(recorded, run_cli, "metrics/scores.json")
    node_ids = {n["id"] for n in expected["nodes"]}

    dom = dump_dom(page, tmp_path)
    found = elements(dom)
    body = next(e for e in found if e.tag == "body")
    assert body.attrs["data-cmf-status"] == "drawn", body.attrs
    assert int(body.attrs["data-cmf-nodes"]) == len(node_ids)
    assert int(body.attrs["data-cmf-drawn"]) == len(node_ids)
    assert body.attrs["data-cmf-edges-drawn"] == body.attrs["data-cmf-edges"], body.attrs["data-cmf-undrawn-edges"]
    # Every relation is shown: data flow as edges, stages and pipelines as boxes, the environment once.
    shown = sum(int(body.attrs[f"data-cmf-{k}"]) for k in ("edges", "nested", "collapsed"))
    assert shown == len(expected["edges"])
    items = {e.attrs["data-node-id"]: e for e in found if e.tag == "li" and "data-node-id" in e.attrs}
    assert set(items) == node_ids
    for node_id, item in items.items():
        # Drawn = painted on the canvas at its centre when the whole graph is in view; the box is
        # where the node is in the opening view (which may leave some of a large graph to panning).
        assert item.attrs["data-drawn"] == "true", node_id
        x, y, w, h = (float(v) for v in item.attrs["data-box"].split(","))
        assert w > 0 and h > 0, (node_id, item.attrs["data-box"])
        if body.attrs["data-cmf-whole"] == "true":
            assert x + w > 0 and y + h > 0, (node_id, item.attrs["data-box"])
    legend = {e.attrs["data-legend"] for e in found if e.tag == "li" and "data-legend" in e.attrs}
    assert {"pipeline", "stage", "execution:COMPLETE", "artifact:Model", "edge:input"} <= legend

    # Clicking a node (here: selecting it through the URL) shows md5, parameters and times.
    train = next(n for n in expected["nodes"] if n["kind"] == "execution" and n["subtype"] == "train")
    selected = elements(dump_dom(page, tmp_path, f"#node={train['id']}"))
    cells = [e.text for e in selected if e.tag in ("th", "td")]
    table = dict(zip(cells[::2], cells[1::2], strict=False))
    assert table["state"] == "COMPLETE"
    assert json.loads(table["parameters"]) == {"n_estimators": 16}
    assert table["start_time"] and table["end_time"] and len(table["code_fingerprint"]) == 32
    model = next(n for n in expected["nodes"] if n["kind"] == "artifact" and n["subtype"] == "Model")
    selected = elements(dump_dom(page, tmp_path, f"#node={model['id']}"))
    cells = [e.text for e in selected if e.tag in ("th", "td")]
    assert dict(zip(cells[::2], cells[1::2], strict=False))["md5"] == recorded.md5_v2

    shot = screenshot(page, tmp_path / "lineage.png", tmp_path)
    assert shot.stat().st_size > 10_000
    keep = REPO / "test-artifacts" / "cli"
    keep.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(shot, keep / "lineage.png")
    shutil.copyfile(page, keep / "lineage.html")


@pytest.mark.parametrize("width", [1400, 1920])
def test_page_is_readable_and_labels_what_it_draws(
    recorded: Recorded, run_cli: Any, tmp_path: Path, width: int
) -> None:
    """At the opening zoom: readable labels, distinct captions, one unwired environment, a true legend."""
    page = tmp_path / "lineage.html"
    assert run_cli(recorded.root, "lineage", "metrics/scores.json", "-f", "html", "-o", str(page)).exit_code == 0
    graph = _graph(recorded, run_cli, "metrics/scores.json")
    nodes = {n["id"]: n for n in graph["nodes"]}
    found = elements(dump_dom(page, tmp_path, width=width))
    body = next(e for e in found if e.tag == "body")
    assert body.attrs["data-cmf-status"] == "drawn"
    assert float(body.attrs["data-cmf-font-px"]) >= 11, body.attrs  # label size on screen, in pixels

    items = {e.attrs["data-node-id"]: e for e in found if e.tag == "li" and "data-node-id" in e.attrs}
    captions: dict[str, str] = {}
    for node_id, item in items.items():
        node = nodes[node_id]
        if node["kind"] == "artifact" and node["subtype"] != "Environment":
            caption = item.attrs["data-caption"]
            assert caption.split()[0] == captions.setdefault(node["label"], caption).split()[0]
            assert caption.endswith(node["properties"]["md5"][:8])  # versions of one path differ by md5
    assert {"data/train.csv", "features/train.csv"} <= set(captions)
    names = [c.split()[0] for c in captions.values()]
    assert len(names) == len(set(names)), captions  # two different files never share a caption

    # Only data flow is drawn as edges; the environment is one node, wired to nothing.
    environments = [n for n in nodes.values() if n["kind"] == "artifact" and n["subtype"] == "Environment"]
    assert len(environments) == 1
    env_edges = [e for e in graph["edges"] if environments[0]["id"] in (e["source"], e["target"])]
    flow = [e for e in graph["edges"] if e["kind"] in ("input", "output") and e not in env_edges]
    assert len(env_edges) == 4  # one per execution upstream
    assert int(body.attrs["data-cmf-edges"]) == len(flow)
    assert int(body.attrs["data-cmf-collapsed"]) == len(env_edges)
    assert int(body.attrs["data-cmf-nested"]) == sum(1 for e in graph["edges"] if e["kind"] in ("runs", "contains"))
    assert "python environment" in items[environments[0]["id"]].attrs["data-caption"]

    legend = {e.attrs["data-legend"] for e in found if e.tag == "li" and "data-legend" in e.attrs}
    expected = {"pipeline", "stage", *{f"edge:{e['kind']}" for e in flow}}
    expected |= {f"execution:{n['state']}" for n in nodes.values() if n["kind"] == "execution"}
    expected |= {f"artifact:{n['subtype']}" for n in nodes.values() if n["kind"] == "artifact"}
    expected |= {"root"} if graph.get("root") in nodes else set()  # the bold outline of what was asked about
    assert legend == expected

    shot = screenshot(page, tmp_path / f"lineage-{width}.png", tmp_path, width=width)
    assert shot.stat().st_size > 10_000
    keep = REPO / "test-artifacts" / "cli"
    keep.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(shot, keep / f"lineage-{width}.png")


@pytest.mark.parametrize("width", [1400, 1920])
def test_every_edge_is_drawn_around_a_file_shared_by_two_pipelines(
    project: Path, run_cli: Any, tmp_path: Path, width: int
) -> None:
    """A file written by one pipeline and read by another sits outside both pipeline boxes; its
    edges, and every other edge of the executions at its ends, are drawn like all the others."""
    from cmf_orchestrate import Dataset, Model, RunInfo, task_run

    settings = CmfSettings(store="mlmd", project_root=project)
    Path("data").mkdir()
    steps = [
        ("ingest", "generate", [], ["data/raw.csv"]),
        ("training", "prepare", ["data/raw.csv"], ["data/train.csv", "data/test.csv"]),
        ("training", "featurize", ["data/train.csv", "data/test.csv"], ["data/features.csv"]),
        ("training", "train", ["data/features.csv"], ["models/model.pkl"]),
    ]
    for pipeline, stage, inputs, outputs in steps:
        made = [Model(p) if p.endswith(".pkl") else Dataset(p) for p in outputs]
        with task_run(RunInfo("cmf", pipeline, stage, inputs=[Dataset(p) for p in inputs], outputs=made), settings):
            for path in outputs:
                Path(path).parent.mkdir(exist_ok=True)
                Path(path).write_text(f"{stage} {path}\n")

    listed = run_cli(project, "lineage", "models/model.pkl", "--format", "json")
    assert listed.exit_code == 0, listed.output
    graph = json.loads(listed.output)
    nodes = {n["id"]: n for n in graph["nodes"]}
    assert {n["label"] for n in nodes.values() if n["kind"] == "pipeline"} == {"ingest", "training"}
    raw = next(n["id"] for n in nodes.values() if n["label"] == "data/raw.csv")
    flow = [
        e
        for e in graph["edges"]
        if e["kind"] in ("input", "output")
        and "Environment" not in (nodes[e["source"]]["subtype"], nodes[e["target"]]["subtype"])
    ]
    assert sum(raw in (e["source"], e["target"]) for e in flow) == 2  # written by ingest, read by training

    page = tmp_path / "shared.html"
    assert run_cli(project, "lineage", "models/model.pkl", "-f", "html", "-o", str(page)).exit_code == 0
    body = next(e for e in elements(dump_dom(page, tmp_path, width=width)) if e.tag == "body")
    # The page checks each edge: a non-empty box (Cytoscape skips an edge it has no path for),
    # both ends drawn, and paint at its midpoint with the whole graph in view.
    assert body.attrs["data-cmf-undrawn-edges"] == "", body.attrs
    assert int(body.attrs["data-cmf-edges"]) == len(flow)
    assert int(body.attrs["data-cmf-edges-drawn"]) == len(flow)
    assert int(body.attrs["data-cmf-drawn"]) == len(nodes)
    assert body.attrs["data-cmf-status"] == "drawn", body.attrs

    shot = screenshot(page, tmp_path / f"shared-{width}.png", tmp_path, width=width)
    keep = REPO / "test-artifacts" / "cli"
    keep.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(shot, keep / f"lineage-shared-{width}.png")


def test_diff_explains_why_model_v2_differs_from_v1(recorded: Recorded, run_cli: Any) -> None:
    result = run_cli(recorded.root, "diff", recorded.model_v1, recorded.model_v2, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["a"]["md5"] == recorded.md5_v1 and report["b"]["md5"] == recorded.md5_v2
    assert report["same_content"] is False
    changes = {(d["stage"], d["what"], d["name"]): (d["a"], d["b"]) for d in report["differences"]}
    assert changes[("get_started/train", "parameter", "n_estimators")] == (12, 16)
    assert changes[("get_started/prepare", "parameter", "ratio")] == (0.2, 0.25)
    old_train, new_train = changes[("get_started/train", "input", "features/train.csv")]
    assert old_train != new_train and len(old_train) == 32
    assert ("get_started/featurize", "input", "data/train.csv") in changes
    # The raw data and the code did not change.
    assert not any(name == "data/raw.csv" for _, _, name in changes)
    assert not any(what == "code" for _, what, _ in changes)
    settings = CmfSettings(store="mlmd", project_root=recorded.root)
    query = CmfQuery(settings=settings)
    assert query.get_artifact(recorded.model_v1).md5 == recorded.md5_v1

    # As a user types them: path:md5 (the Model's full name also ends with the execution id).
    v1, v2 = f"models/model.pkl:{recorded.md5_v1}", f"models/model.pkl:{recorded.md5_v2[:10]}"
    table = run_cli(recorded.root, "diff", v1, v2)
    assert table.exit_code == 0, table.output
    assert "n_estimators\t12\t16" in table.output
    same = run_cli(recorded.root, "diff", recorded.model_v1, recorded.model_v1)
    assert same.exit_code == 1 and "same artifact" in same.output


def test_hostile_names_and_values_are_escaped_everywhere(project: Path, run_cli: Any, tmp_path: Path) -> None:
    """A recorded path with quotes and brackets and a parameter holding markup break no format."""
    from cmf_orchestrate import Dataset, RunInfo, task_run

    weird = 'data/we"ird <b>&amp; \\ name.csv'
    payload = "</script><script>document.title='owned'</script>"
    Path("data").mkdir()
    Path(weird).write_text("a,b\n1,2\n")
    info = RunInfo(
        "cmf",
        'pipe "one"',
        "step",
        parameters={"note": payload},
        inputs=[Dataset(weird)],
        outputs=[Dataset("data/out.csv")],
    )
    with task_run(info, CmfSettings(store="mlmd", project_root=project)):
        Path("data/out.csv").write_text("x\n")
    info = RunInfo("cmf", 'pipe "one"', "next", inputs=[Dataset("data/out.csv")], outputs=[Dataset("data/final.csv")])
    with task_run(info, CmfSettings(store="mlmd", project_root=project)):
        Path("data/final.csv").write_text("y\n")

    graph = json.loads(run_cli(project, "lineage", "data/final.csv", "--format", "json").output)
    assert any(n["label"] == weird for n in graph["nodes"])
    dot = run_cli(project, "lineage", "data/final.csv", "--format", "dot").output
    assert 'label="Dataset: data/we\\"ird <b>&amp; \\\\ name.csv' in dot
    mermaid = run_cli(project, "lineage", "data/final.csv", "--format", "mermaid").output
    assert "we#quot;ird #lt;b#gt;&amp; \\ name.csv" in mermaid and '"ird' not in mermaid

    page = tmp_path / "weird.html"
    assert run_cli(project, "lineage", "data/final.csv", "--format", "html", "-o", str(page)).exit_code == 0
    assert payload not in page.read_text()  # the markup never appears raw in the page
    found = elements(dump_dom(page, tmp_path))
    body = next(e for e in found if e.tag == "body")
    assert body.attrs["data-cmf-status"] == "drawn"
    assert next(e for e in found if e.tag == "title").text.startswith("Lineage: data/final.csv")
    step = next(n for n in graph["nodes"] if n["kind"] == "execution" and n["subtype"] == "step")
    selected = elements(dump_dom(page, tmp_path, f"#node={step['id']}"))
    cells = [e.text for e in selected if e.tag in ("th", "td")]
    assert json.loads(dict(zip(cells[::2], cells[1::2], strict=False))["parameters"]) == {"note": payload}


def test_hover_and_click_show_properties_with_real_mouse_events(
    recorded: Recorded, run_cli: Any, tmp_path: Path
) -> None:
    page = tmp_path / "lineage.html"
    assert run_cli(recorded.root, "lineage", "metrics/scores.json", "-f", "html", "-o", str(page)).exit_code == 0
    nodes = _graph(recorded, run_cli, "metrics/scores.json")["nodes"]
    model = next(n for n in nodes if n["kind"] == "artifact" and n["subtype"] == "Model")
    train = next(n for n in nodes if n["kind"] == "execution" and n["subtype"] == "train")
    browser = DevTools(page, tmp_path)
    try:
        assert browser.wait_for("document.body.dataset.cmfStatus === 'drawn'")

        box = (
            "(() => { const b = document.querySelector('li[data-node-id=\"ID\"]').dataset.box.split(',').map(Number);"
            " const r = document.getElementById('cy').getBoundingClientRect();"
            " return [r.left + b[0] + b[2] / 2, r.top + b[1] + b[3] / 2]; })()"
        )

        def centre(node_id: str) -> tuple[float, float]:
            point = browser.evaluate(box.replace("ID", node_id))
            assert isinstance(point, list)
            return float(point[0]), float(point[1])

        # The page opens at a readable zoom; Fit brings every node into view.
        browser.evaluate("document.getElementById('fit').click()")
        browser.wait_for("document.body.dataset.cmfWhole !== undefined")
        browser.evaluate("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
        browser.mouse("mouseMoved", *centre(model["id"]))
        tooltip = browser.wait_for(
            "getComputedStyle(document.getElementById('tooltip')).display === 'block'"
            " && document.getElementById('tooltip').textContent"
        )
        assert f"md5: {recorded.md5_v2}" in str(tooltip) and "models/model.pkl" in str(tooltip)

        browser.mouse("mouseMoved", 5, 5)  # off the graph
        assert browser.wait_for("getComputedStyle(document.getElementById('tooltip')).display === 'none'")
        x, y = centre(train["id"])
        browser.mouse("mouseMoved", x, y)
        browser.mouse("mousePressed", x, y)
        browser.mouse("mouseReleased", x, y)
        details = str(
            browser.wait_for(
                "document.querySelector('#details table') && document.querySelector('#details table').innerText"
            )
        )
        assert "execution · train" in details and '"n_estimators": 16' in details
        assert "start_time" in details and "end_time" in details and "code_fingerprint" in details
    finally:
        browser.close()


def test_diff_takes_ids_as_the_listings_print_them(recorded: Recorded, run_cli: Any) -> None:
    listing = run_cli(recorded.root, "artifacts", "--type", "Model").output.splitlines()[1:]
    ids = {line.split("\t")[3]: line.split("\t")[0] for line in listing}  # md5 -> id as printed
    assert all(i.startswith("artifact:") for i in ids.values())
    by_ids = json.loads(run_cli(recorded.root, "diff", ids[recorded.md5_v1], ids[recorded.md5_v2], "--json").output)
    by_names = json.loads(run_cli(recorded.root, "diff", recorded.model_v1, recorded.model_v2, "--json").output)
    assert by_ids == by_names and by_ids["a"]["kind"] == "artifact"

    trains = json.loads(run_cli(recorded.root, "executions", "--stage", "train", "--json").output)
    new, old = (str(e["id"]) for e in trains)
    report = json.loads(run_cli(recorded.root, "diff", old, new, "--json").output)
    assert report["a"] == {**report["a"], "kind": "execution", "id": int(old)}
    changes = {(d["stage"], d["what"], d["name"]): (d["a"], d["b"]) for d in report["differences"]}
    assert changes[("get_started/train", "parameter", "n_estimators")] == (12, 16)
    assert changes[("get_started/prepare", "parameter", "ratio")] == (0.2, 0.25)
    table = run_cli(recorded.root, "diff", old, new)
    assert f"A: execution {old}" in table.output and "n_estimators\t12\t16\t+4" in table.output
    assert run_cli(recorded.root, "diff", old, "artifact:999999").exit_code == 1


def test_diff_shows_metric_differences(recorded: Recorded, run_cli: Any) -> None:
    versions = json.loads(run_cli(recorded.root, "show", "metrics/scores.json", "--json").output)["versions"]
    new, old = (f"artifact:{v['id']}" for v in versions)
    report = json.loads(run_cli(recorded.root, "diff", old, new, "--json").output)
    metrics = {d["name"]: (d["a"], d["b"]) for d in report["differences"] if d["what"] == "metric"}
    assert set(metrics) == {"metrics/scores.json:accuracy", "metrics/scores.json:roc_auc"}
    assert all(isinstance(v, float) for pair in metrics.values() for v in pair)
    assert all(d["stage"] == "get_started/evaluate" for d in report["differences"] if d["what"] == "metric")


def test_diff_ignores_how_the_process_was_launched(project: Path, run_cli: Any) -> None:
    from cmf_orchestrate import Dataset, RunInfo, task_run
    from cmf_orchestrate.cli._lineage import launch_free

    Path("raw.csv").write_text("a\n1\n")
    settings = CmfSettings(store="mlmd", project_root=project)
    commands = [
        "/opt/venv/bin/python3.11 -u /home/ana/project/train.py --lr 0.1",
        "python train.py --lr 0.1",
        "./train.py --lr 0.2",
    ]
    ids = []
    for command in commands:
        info = RunInfo("cmf", "p", "train", command=command, inputs=[Dataset("raw.csv")])
        with task_run(info, settings) as run:
            pass
        ids.append(str(run.execution_id))
    assert launch_free(commands[0]) == launch_free(commands[1]) == "train.py --lr 0.1"
    assert launch_free("python -m flows.get_started") == "flows.get_started"
    assert launch_free("examples.get_started.steps:train") == "examples.get_started.steps:train"
    same = json.loads(run_cli(project, "diff", ids[0], ids[1], "--json").output)
    assert same["differences"] == []
    other = json.loads(run_cli(project, "diff", ids[1], ids[2], "--json").output)
    assert [(d["what"], d["a"], d["b"]) for d in other["differences"]] == [("command", commands[1], commands[2])]


def test_metrics_logged_as_values_read_by_name_and_values(project: Path, run_cli: Any) -> None:
    from cmf_orchestrate import Dataset, RunInfo, current_run, task_run

    Path("in.csv").write_text("a\n1\n")
    info = RunInfo("cmf", "p", "train", inputs=[Dataset("in.csv")], outputs=[Dataset("out.csv")])
    with task_run(info, CmfSettings(store="mlmd", project_root=project)):
        Path("out.csv").write_text("b\n2\n")
        current_run().log_execution_metrics("train_metrics", {"oob_score": 0.91, "trees": 12})
    tree = run_cli(project, "lineage", "in.csv", "--down")
    assert tree.exit_code == 0, tree.output
    assert "Metrics train_metrics oob_score=0.91, trees=12" in tree.output
    mermaid = run_cli(project, "lineage", "in.csv", "--down", "-f", "mermaid").output
    assert '"Metrics: train_metrics"' in mermaid
    listed = run_cli(project, "artifacts", "--type", "Metrics").output.splitlines()[1]
    assert listed.split("\t")[2] == "train_metrics"
