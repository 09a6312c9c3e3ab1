//! The matrix as one self-contained HTML file: no network, no CDN. The run
//! document is embedded as JSON; a small script draws the matrix, the
//! filters (area, level, status, target) and, on a click, the evidence of a
//! cell: requests, responses, decoded claims as trees, the `act` chain drawn
//! as a chain, and timings.

use std::fmt::Write as _;

use crate::document::RunDocument;
use crate::markdown::LEGEND;

/// Escapes JSON for a `<script type="application/json">` element.
fn embed(json: &str) -> String {
    json.replace('<', "\\u003c").replace('>', "\\u003e").replace('&', "\\u0026")
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Renders the document.
#[must_use]
pub fn render(doc: &RunDocument) -> String {
    let data = embed(&serde_json::to_string(doc).expect("the document serialises"));
    let legend = LEGEND.iter().fold(String::new(), |mut out, (s, m)| {
        let _ = write!(out, "<li><span class=\"st st-{w}\">{w}</span> {m}</li>", w = s.word(), m = esc(m));
        out
    });
    TEMPLATE
        .replace("{{legend}}", &legend)
        .replace("{{version}}", &esc(&doc.fourleg_version))
        .replace("{{generated}}", &esc(&doc.generated_at))
        .replace("{{profile}}", &esc(&doc.profile_version))
        .replace("{{data}}", &data)
}

const TEMPLATE: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>fourleg compatibility matrix</title>
<style>
:root { --fg:#1d232a; --muted:#5b6670; --line:#d8dde2; --bg:#fff; --panel:#f6f8fa;
  --pass:#1a7f37; --fail:#cf222e; --warn:#9a6700; --info:#0969da; --na:#6e7781; --untestable:#8250df; --error:#bc4c00; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg); background: var(--bg); margin: 0; }
header { padding: 16px 24px; border-bottom: 1px solid var(--line); }
h1 { font-size: 20px; margin: 0 0 4px; }
.meta { color: var(--muted); }
main { display: flex; gap: 0; align-items: flex-start; }
#left { flex: 1 1 60%; padding: 12px 24px; overflow-x: auto; }
#evidence { flex: 1 1 40%; border-left: 1px solid var(--line); padding: 12px 20px; background: var(--panel); min-height: 100vh; position: sticky; top: 0; max-height: 100vh; overflow-y: auto; }
#evidence.empty { color: var(--muted); }
.filters { display: flex; flex-wrap: wrap; gap: 12px; margin: 8px 0 12px; }
.filters label { display: flex; flex-direction: column; font-size: 12px; color: var(--muted); }
select { font: inherit; padding: 2px 4px; }
table.matrix { border-collapse: collapse; width: 100%; }
.matrix th, .matrix td { border-bottom: 1px solid var(--line); padding: 4px 6px; text-align: left; vertical-align: top; }
.matrix th.t { writing-mode: horizontal-tb; font-size: 12px; white-space: nowrap; }
.matrix tr.area td { background: var(--panel); font-weight: 600; padding-top: 10px; }
.sid { font-family: ui-monospace, monospace; font-size: 12px; }
.title { color: var(--muted); font-size: 12px; }
button.cell { font: inherit; font-size: 12px; border: 1px solid var(--line); border-radius: 4px; padding: 1px 6px; cursor: pointer; background: #fff; white-space: nowrap; }
button.cell.sel { outline: 2px solid var(--info); }
.st { display: inline-block; font-size: 12px; font-weight: 600; padding: 0 6px; border-radius: 10px; color: #fff; }
.st-pass { background: var(--pass); } .st-fail { background: var(--fail); } .st-warn { background: var(--warn); }
.st-info { background: var(--info); } .st-not-applicable { background: var(--na); } .st-untestable { background: var(--untestable); } .st-error { background: var(--error); }
.xf { font-size: 11px; color: var(--muted); }
.rules { font-size: 10px; color: var(--muted); font-family: ui-monospace, monospace; max-width: 16em; overflow-wrap: anywhere; }
.legend li { margin: 2px 0; }
.rates td, .rates th { padding: 2px 8px; border-bottom: 1px solid var(--line); }
details { margin: 4px 0; } summary { cursor: pointer; }
pre { background: #fff; border: 1px solid var(--line); padding: 6px; overflow-x: auto; font-size: 12px; margin: 4px 0; }
.kv { font-size: 12px; border-collapse: collapse; } .kv td { padding: 1px 6px; border-bottom: 1px solid var(--line); vertical-align: top; }
.tree { font-family: ui-monospace, monospace; font-size: 12px; } .tree ul { list-style: none; margin: 0; padding-left: 14px; } .tree .k { color: #953800; }
.chain { display: flex; align-items: center; flex-wrap: wrap; gap: 4px; margin: 4px 0; }
.chain .node { border: 1px solid var(--line); background: #fff; border-radius: 4px; padding: 1px 6px; font-family: ui-monospace, monospace; font-size: 12px; }
.chain .arrow { color: var(--muted); }
.checks td { font-size: 12px; }
.profile { font-size: 11px; border: 1px solid var(--untestable); color: var(--untestable); border-radius: 3px; padding: 0 3px; }
</style>
</head>
<body>
<header>
<h1>fourleg compatibility matrix</h1>
<div class="meta">fourleg {{version}} · agent delegation profile v{{profile}} · generated {{generated}}</div>
</header>
<main>
<div id="left">
<table class="rates" id="rates"></table>
<div class="filters">
<label>area <select id="f-area"><option value="">all</option></select></label>
<label>level <select id="f-level"><option value="">all</option><option>MUST</option><option>SHOULD</option><option>MAY</option><option>profile</option><option>info</option></select></label>
<label>status <select id="f-status"><option value="">all</option><option>pass</option><option>info</option><option>not-applicable</option><option>warn</option><option>fail</option><option>untestable</option><option>error</option></select></label>
<label>target <select id="f-target"><option value="">all</option></select></label>
</div>
<table class="matrix" id="matrix"></table>
<h2>Legend</h2>
<ul class="legend">{{legend}}
<li><span class="xf">expected</span> the target's profile lists this failure with a reason; <span class="xf">stale</span> listed but no longer failing</li>
<li><span class="profile">profile</span> a rule of the agent delegation profile, not an RFC requirement. RFC rules (and the MCP specification's, <code>MCP-…</code>, counted with them) are graded by their keyword: MUST → fail, SHOULD → warn, MAY → info.</li>
</ul>
</div>
<aside id="evidence" class="empty">Click a cell to see its evidence: requests, responses, decoded claims, the act chain and timings.</aside>
</main>
<script id="data" type="application/json">{{data}}</script>
<script>
"use strict";
const doc = JSON.parse(document.getElementById("data").textContent);
const el = (tag, attrs, ...kids) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v; else if (k.startsWith("on")) e.addEventListener(k.slice(2), v); else e.setAttribute(k, v);
  }
  for (const k of kids) if (k !== null && k !== undefined) e.append(k instanceof Node ? k : String(k));
  return e;
};
const targets = doc.runs.map(r => r.target.name);
const scenarios = [];
for (const run of doc.runs) for (const s of run.scenarios) if (!scenarios.some(x => x.id === s.id)) scenarios.push({ id: s.id, area: s.area, title: s.title });
const areas = [...new Set(scenarios.map(s => s.area))];
const cellOf = (t, id) => { const r = doc.runs.find(r => r.target.name === t); return r ? r.scenarios.find(s => s.id === id) : undefined; };
for (const a of areas) document.getElementById("f-area").append(el("option", {}, a));
for (const t of targets) document.getElementById("f-target").append(el("option", {}, t));

function rates() {
  const tbl = document.getElementById("rates");
  tbl.replaceChildren(el("tr", {}, el("th", {}, "target"), el("th", {}, "product"), el("th", {}, "version"), el("th", {}, "RFC rules passed"), el("th", {}, "profile rules passed")));
  for (const run of doc.runs) {
    let rp = 0, ra = 0, pp = 0, pa = 0;
    for (const s of run.scenarios) for (const c of s.checks) {
      if (c.status === "not-applicable" || c.status === "info") continue;
      if (c.kind === "rfc") { ra++; if (c.status === "pass") rp++; } else { pa++; if (c.status === "pass") pp++; }
    }
    const show = (p, a) => a ? `${p}/${a} (${Math.floor(p * 100 / a)}%)` : "n/a";
    tbl.append(el("tr", {}, el("td", {}, run.target.name), el("td", {}, run.target.product), el("td", {}, run.target.version || "?"), el("td", {}, show(rp, ra)), el("td", {}, show(pp, pa))));
  }
}

function draw() {
  const fa = document.getElementById("f-area").value, fl = document.getElementById("f-level").value;
  const fs = document.getElementById("f-status").value, ft = document.getElementById("f-target").value;
  const shown = ft ? [ft] : targets;
  const tbl = document.getElementById("matrix");
  tbl.replaceChildren(el("tr", {}, el("th", {}, "scenario"), ...shown.map(t => el("th", { class: "t" }, t))));
  for (const a of areas) {
    if (fa && fa !== a) continue;
    const rows = [];
    for (const s of scenarios.filter(s => s.area === a)) {
      const cells = shown.map(t => cellOf(t, s.id));
      if (fs && !cells.some(c => c && c.status === fs)) continue;
      if (fl && !cells.some(c => c && c.checks.some(k => k.level === fl))) continue;
      const tr = el("tr", { "data-scenario": s.id }, el("td", {}, el("div", { class: "sid" }, s.id), el("div", { class: "title" }, s.title)));
      shown.forEach((t, i) => {
        const c = cells[i];
        if (!c) { tr.append(el("td", {}, "·")); return; }
        const note = c.stale_expectation ? "stale" : (c.expected_failure && c.status !== "pass" ? "expected" : "");
        const b = el("button", { class: "cell", "data-target": t, "data-scenario": s.id, onclick: () => show(t, s.id, b) }, el("span", { class: "st st-" + c.status }, c.status));
        const finding = ["warn", "fail", "untestable", "error"].includes(c.status);
        const rules = finding ? [...new Set(c.checks.filter(k => k.status === c.status).map(k => k.rule))] : [];
        tr.append(el("td", {}, b, note ? el("div", { class: "xf" }, note) : null, rules.length ? el("div", { class: "rules" }, rules.join(" ")) : null));
      });
      rows.push(tr);
    }
    if (rows.length) { tbl.append(el("tr", { class: "area" }, el("td", { colspan: String(shown.length + 1) }, a))); for (const r of rows) tbl.append(r); }
  }
}

function tree(v) {
  if (v === null || typeof v !== "object") return el("span", {}, JSON.stringify(v));
  const ul = el("ul");
  for (const [k, x] of Object.entries(v)) {
    if (x !== null && typeof x === "object") ul.append(el("li", {}, el("details", { open: "" }, el("summary", {}, el("span", { class: "k" }, k)), tree(x))));
    else ul.append(el("li", {}, el("span", { class: "k" }, k + ": "), JSON.stringify(x)));
  }
  return ul;
}

function chain(claims) {
  const nodes = [];
  let a = claims && claims.act;
  while (a && typeof a === "object") { nodes.push(a.client_id || a.sub || JSON.stringify(a)); a = a.act; }
  if (!nodes.length) return null;
  const d = el("div", { class: "chain" }, el("span", { class: "node" }, "sub " + (claims.preferred_username || claims.sub)));
  for (const n of nodes.reverse()) d.append(el("span", { class: "arrow" }, "←"), el("span", { class: "node" }, n));
  return el("div", {}, el("div", { class: "title" }, "act chain (current actor last):"), d);
}

function http(h) {
  const kv = (obj) => { const t = el("table", { class: "kv" }); for (const [k, v] of obj) t.append(el("tr", {}, el("td", {}, k), el("td", {}, v))); return t; };
  const box = el("details", {}, el("summary", {}, `${h.label}: ${h.method} ${h.url} → ${h.status} (${h.elapsed_ms} ms)`));
  box.append(el("div", { class: "title" }, "client authentication: " + h.auth));
  if (h.form && h.form.length) box.append(el("div", { class: "title" }, "request form"), kv(h.form));
  if (h.dpop) box.append(el("div", { class: "title" }, "DPoP proof sent: decoded (signature removed)"), el("div", { class: "tree" }, tree(h.dpop)));
  box.append(el("div", { class: "title" }, "response headers"), kv(Object.entries(h.headers || {})));
  box.append(el("div", { class: "title" }, "response body"), el("pre", {}, JSON.stringify(h.body, null, 2)));
  for (const [field, tok] of Object.entries(h.tokens || {})) {
    box.append(el("div", { class: "title" }, `${field}: decoded (signature removed)`), chain(tok.claims), el("div", { class: "tree" }, tree({ header: tok.header, claims: tok.claims })));
  }
  return box;
}

function show(t, id, button) {
  for (const b of document.querySelectorAll("button.cell.sel")) b.classList.remove("sel");
  if (button) button.classList.add("sel");
  const c = cellOf(t, id);
  const ev = document.getElementById("evidence");
  ev.classList.remove("empty");
  ev.replaceChildren(el("h2", {}, id), el("div", { class: "title" }, c.title), el("p", {}, "target ", el("b", {}, t), " · ", el("span", { class: "st st-" + c.status }, c.status), ` · ${c.duration_ms} ms`));
  if (c.reason) ev.append(el("p", {}, "reason: " + c.reason));
  if (c.expected_failure) ev.append(el("p", {}, (c.stale_expectation ? "stale expectation: " : "expected failure: ") + c.expected_failure));
  const checks = el("table", { class: "kv checks" }, el("tr", {}, el("th", {}, "rule"), el("th", {}, "level"), el("th", {}, "status"), el("th", {}, "message")));
  for (const k of c.checks) checks.append(el("tr", {}, el("td", {}, k.rule, " ", k.kind === "profile" ? el("span", { class: "profile" }, "profile") : null), el("td", {}, k.level), el("td", {}, el("span", { class: "st st-" + k.status }, k.status)), el("td", {}, k.message)));
  ev.append(el("h3", {}, "checks"), checks);
  if (c.preconditions && c.preconditions.length) {
    const pre = el("table", { class: "kv checks" }, el("tr", {}, el("th", {}, "step"), el("th", {}, "held"), el("th", {}, "precondition (never graded; when it fails, what depends on it is untestable)")));
    for (const p of c.preconditions) pre.append(el("tr", {}, el("td", {}, String(p.step)), el("td", {}, p.held ? "yes" : "no"), el("td", {}, p.message)));
    ev.append(el("h3", {}, "preconditions"), pre);
  }
  if (c.measurements && c.measurements.length) {
    ev.append(el("h3", {}, "measurements"));
    for (const m of c.measurements) ev.append(el("div", {}, `${m.rule}: ${m.value} ${m.unit}` + (m.bound !== undefined && m.bound !== null ? ` (bound ${m.bound} ${m.unit})` : "")));
  }
  ev.append(el("h3", {}, "steps"));
  for (const s of c.steps) {
    const d = el("div", { class: "step" }, el("div", {}, el("b", {}, `${s.index}. ${s.kind}`), " ", s.skipped ? "skipped: " + s.skipped : s.summary, ` (${s.elapsed_ms} ms)`));
    for (const [field, tok] of Object.entries(s.tokens || {})) {
      d.append(el("details", {}, el("summary", {}, `${field} token: decoded (signature removed)`), chain(tok.claims), el("div", { class: "tree" }, tree({ header: tok.header, claims: tok.claims, signed: tok.signed }))));
    }
    for (const h of s.http || []) d.append(http(h));
    ev.append(d);
  }
}

for (const id of ["f-area", "f-level", "f-status", "f-target"]) document.getElementById(id).addEventListener("change", draw);
rates();
draw();
</script>
</body>
</html>
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_json_cannot_close_the_script() {
        assert_eq!(embed("{\"a\":\"</script>\"}"), "{\"a\":\"\\u003c/script\\u003e\"}");
    }
}
