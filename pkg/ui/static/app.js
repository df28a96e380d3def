// mizzen web view: each page polls mizzen's own JSON (/debug/* and /ui/api/*)
// and renders it with DOM calls (never innerHTML of data, so a name in a
// config can't inject markup). The one exception is the mesh graph, an SVG
// the server draws with every text escaped.
"use strict";

const page = document.body.dataset.page;
const content = document.getElementById("content");
const statusLine = document.getElementById("status");

for (const a of document.querySelectorAll("nav a")) {
  if (a.dataset.nav === page) a.setAttribute("aria-current", "page");
}

// h builds an element: h("td", {class: "num"}, "text", child, ...).
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function badge(state) {
  const s = state || "none";
  return h("span", { class: "badge st-" + s.replace(/ /g, "_") }, s);
}

function ms(ns) {
  if (!ns) return "";
  const v = ns / 1e6;
  return (v < 10 ? v.toFixed(1) : Math.round(v)) + " ms";
}

function shortProxy(id) {
  const p = id.split("~");
  return p.length === 4 ? p[2] : id;
}

function clock(t) {
  return t ? new Date(t).toLocaleTimeString() : "";
}

async function getJSON(url) {
  const r = await fetch(url, { cache: "no-store" });
  if (!r.ok) throw new Error(url + ": " + r.status + " " + (await r.text()));
  return r.json();
}

// poll calls load every interval and render when the data changed, so a
// page that does not change keeps its focus and scroll position.
function poll(load, render, interval) {
  let last = "";
  async function tick() {
    try {
      const data = await load();
      const key = JSON.stringify(data);
      if (key !== last) {
        last = key;
        render(data);
      }
      statusLine.textContent = "live · updated " + new Date().toLocaleTimeString();
    } catch (e) {
      statusLine.textContent = "mizzen unreachable: " + e.message;
    }
    setTimeout(tick, interval);
  }
  tick();
}

const TYPES = ["cds", "eds", "lds", "rds", "sds"];

// ---- Proxies ---------------------------------------------------------------

function renderProxies(rows) {
  rows = rows || [];
  const help = h("p", { class: "help" },
    "Every proxy connected to mizzen and, per xDS type, whether it holds what mizzen would send it now: ",
    "SYNCED (ACKed the current version), STALE (sent, not ACKed yet, or newer config waiting), NACKED (Envoy refused it; its message below), NOT SENT.");
  if (rows.length === 0) {
    content.replaceChildren(help, h("p", {}, "No proxy is connected."));
    return;
  }
  const head = h("tr", {}, h("th", { scope: "col" }, "Proxy"), h("th", { scope: "col" }, "Type"),
    h("th", { scope: "col" }, "Namespace"), h("th", { scope: "col" }, "xDS"),
    TYPES.map((t) => h("th", { scope: "col" }, t.toUpperCase())), h("th", { scope: "col" }, "Last change"));
  const body = rows.map((r) => h("tr", { "data-proxy": r.proxy },
    h("th", { scope: "row" }, h("span", { class: "mono", title: r.proxy }, shortProxy(r.proxy)),
      h("div", { class: "muted mono" }, r.proxy.split("~")[1] || "")),
    h("td", {}, r.type), h("td", {}, r.namespace), h("td", {}, r.protocol),
    TYPES.map((t) => {
      const st = (r.types || {})[t];
      if (!st) return h("td", { "data-type": t }, h("span", { class: "muted" }, "–"));
      return h("td", { "data-type": t, "data-state": st.state }, badge(st.state),
        st.nack_message ? h("div", { class: "nack" }, "Envoy: " + st.nack_message) : null);
    }),
    h("td", {}, r.last_change ? [h("a", { href: "/ui/changes#change-" + r.last_change.id }, "#" + r.last_change.id), " ",
      badge(r.last_change.state), " ", ms(r.last_change.latency_ns)] : h("span", { class: "muted" }, "none yet"))));
  content.replaceChildren(help, h("table", { id: "proxies" },
    h("caption", { class: "muted" }, rows.length + " connected"), h("thead", {}, head), h("tbody", {}, body)));
}

// ---- Changes ---------------------------------------------------------------

const BUCKETS = [5, 10, 25, 50, 100, 250, 500, 1000, 2500, Infinity];

function changedText(c) {
  const parts = [];
  for (const [t, names] of Object.entries(c.changed || {})) {
    parts.push(t + ": " + names.slice(0, 4).join(", ") + (names.length > 4 ? " (+" + (names.length - 4) + ")" : ""));
  }
  if (c.changed_truncated) parts.push("…");
  if (parts.length) return parts.join("; ");
  // Per-proxy config (a gateway's routes, a sidecar's scoped view) is not in
  // the shared view "changed" lists: say which types the proxies were sent.
  const types = new Set(), proxies = Object.values(c.proxies || {});
  for (const p of proxies) for (const t of p.types || []) types.add(t);
  if (types.size) return [...types].sort().join(", ") + " of " + proxies.length + (proxies.length === 1 ? " proxy" : " proxies");
  return "nothing any proxy holds";
}

function quantile(sorted, q) {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

function renderChanges(changes) {
  changes = changes || [];
  const help = h("p", { class: "help" },
    "The last config changes mizzen pushed (newest first), what each changed, and when every proxy it touched ACKed it: ",
    "latency is from the moment mizzen saw the change to the proxy's ACK.");
  if (changes.length === 0) {
    content.replaceChildren(help, h("p", {}, "No change yet: edit a file in the config directory."));
    return;
  }
  const wanted = Number((location.hash.match(/change-(\d+)/) || [])[1]) || changes[0].id;
  const sel = changes.find((c) => c.id === wanted) || changes[0];
  const rows = changes.slice(0, 25).map((c) => {
    const lat = Object.values(c.proxies || {}).filter((p) => p.latency_ns).map((p) => p.latency_ns).sort((a, b) => a - b);
    return h("tr", { "data-change": c.id, class: c.id === sel.id ? "selected" : null },
      h("th", { scope: "row" }, h("a", { href: "#change-" + c.id, "aria-current": c.id === sel.id ? "true" : null }, "#" + c.id)),
      h("td", {}, c.trigger), h("td", {}, clock(c.at)), h("td", { class: "mono" }, changedText(c)),
      h("td", {}, Object.entries(c.counts || {}).map(([s, n]) => [badge(s), " " + n + " "])),
      h("td", { class: "num" }, lat.length ? ms(quantile(lat, 0.5)) : ""), h("td", { class: "num" }, lat.length ? ms(lat[lat.length - 1]) : ""));
  });
  const list = h("table", { id: "changes" }, h("thead", {}, h("tr", {},
    ["Change", "Trigger", "Seen at", "What changed", "Proxies", "p50", "Slowest"].map((t) => h("th", { scope: "col" }, t)))),
  h("tbody", {}, rows));

  const proxies = Object.entries(sel.proxies || {}).map(([id, p]) => ({ id, ...p }));
  proxies.sort((a, b) => (b.latency_ns || Infinity) - (a.latency_ns || Infinity));
  const counts = BUCKETS.map(() => 0);
  for (const p of proxies) {
    if (!p.latency_ns) continue;
    const v = p.latency_ns / 1e6;
    counts[BUCKETS.findIndex((b) => v < b)]++;
  }
  const top = Math.max(1, ...counts);
  const bars = h("div", { class: "bars", role: "list", "aria-label": "ACK latency distribution" },
    BUCKETS.map((b, i) => {
      const lo = i === 0 ? 0 : BUCKETS[i - 1];
      const label = b === Infinity ? "≥ " + lo + " ms" : lo + "–" + b + " ms";
      return [h("span", { class: "bar-label", role: "listitem" }, label),
        h("div", { "aria-hidden": "true" }, h("div", { class: "bar", style: "width:" + (counts[i] / top * 100) + "%" })),
        h("span", { class: "bar-label" }, counts[i] + (counts[i] === 1 ? " proxy" : " proxies"))];
    }));
  const detail = h("section", { id: "change-" + sel.id, "aria-labelledby": "detail-h" },
    h("h2", { id: "detail-h" }, "Change #" + sel.id + " (" + sel.trigger + ", " + clock(sel.at) + ")"),
    h("p", { class: "mono" }, changedText(sel)),
    h("h3", {}, "ACK latency"), bars,
    h("h3", {}, "Proxies, slowest first"),
    h("table", { id: "change-proxies" }, h("thead", {}, h("tr", {},
      ["Proxy", "State", "Latency", "Types", "ACKed at", "NACK"].map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, proxies.map((p) => h("tr", { "data-proxy": p.id, "data-state": p.state },
      h("th", { scope: "row" }, h("span", { class: "mono", title: p.id }, shortProxy(p.id))),
      h("td", {}, badge(p.state)), h("td", { class: "num" }, ms(p.latency_ns)), h("td", {}, (p.types || []).join(", ")),
      h("td", {}, p.acked_at && !p.acked_at.startsWith("0001") ? clock(p.acked_at) : ""),
      h("td", {}, p.nack_message ? h("span", { class: "nack" }, (p.nack_type || "") + ": " + p.nack_message) : ""))))));
  content.replaceChildren(help, list, detail);
}

// ---- Mesh ------------------------------------------------------------------

function renderMesh(m) {
  const graph = h("div", { class: "graph" });
  graph.innerHTML = m.svg; // drawn by mizzen, every text escaped (pkg/ui/svg.go)
  const routes = h("table", { id: "routes" }, h("caption", { class: "muted" }, "VirtualService rules"),
    h("thead", {}, h("tr", {}, ["VirtualService", "Rule", "From", "Hosts", "Match", "Destinations", "Fault", "Mirror", "Errors"]
      .map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, (m.routes || []).map((r) => h("tr", { "data-vs": r.virtual_service },
      h("th", { scope: "row" }, r.virtual_service), h("td", {}, r.rule), h("td", {}, r.from.join(", ")),
      h("td", {}, (r.hosts || []).join(", ")), h("td", { class: "mono" }, r.match || "any"),
      h("td", {}, (r.to || []).map((d) => h("div", { class: "dest" }, d.service + (d.subset ? " " + d.subset : "") + " " + d.weight + "%"))),
      h("td", {}, r.fault || ""), h("td", {}, r.mirror || ""),
      h("td", { class: "err" }, (r.errors || []).join("; "))))));
  const wl = [];
  for (const s of m.services || []) {
    for (const w of s.workloads || []) {
      wl.push(h("tr", { "data-pod": w.pod }, h("th", { scope: "row" }, w.pod), h("td", {}, s.key), h("td", {}, w.version || ""),
        h("td", {}, w.mtls + " (" + w.mtls_from + ")"), h("td", {}, (w.authorization_policies || []).join(", ") || "none"),
        h("td", { class: "err" }, (w.errors || []).join("; "))));
    }
  }
  const workloads = h("table", { id: "workloads" }, h("caption", { class: "muted" }, "Workloads"),
    h("thead", {}, h("tr", {}, ["Pod", "Service", "Version", "mTLS (from)", "AuthorizationPolicies", "Errors"].map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, wl));
  const svcErrs = (m.services || []).filter((s) => (s.errors || []).length)
    .map((s) => h("li", {}, s.key + ": " + s.errors.join("; ")));
  const other = (m.errors || []).map((e) => h("li", {}, e));
  content.replaceChildren(
    h("p", { class: "help" }, "Where requests enter (gateways, the mesh's sidecars), the VirtualService rules they meet with their weights, faults and mirrors, and the Services they reach: each workload with its mTLS mode and the AuthorizationPolicies that apply. Config errors show on the object they belong to. Config version " + m.version + "."),
    graph, routes, workloads,
    h("h2", {}, "Config errors"),
    svcErrs.length + other.length ? h("ul", { class: "err", id: "config-errors" }, svcErrs, other) : h("p", {}, "None."));
}

// ---- Explain ---------------------------------------------------------------

function renderExplainForm(proxies) {
  const params = new URLSearchParams(location.search);
  const select = h("select", { id: "proxy", name: "proxy", required: true },
    proxies.map((p) => h("option", { value: p.proxy, selected: p.proxy === params.get("proxy") ? true : null },
      shortProxy(p.proxy) + " (" + p.type + ")")));
  const defaultURL = (id) => {
    const p = proxies.find((x) => x.proxy === id);
    if (!p) return "";
    const ip = id.split("~")[1];
    return p.type === "router" ? "http://" + ip + "/api/v1/reviews/1" : "http://reviews.default:9080/reviews/1";
  };
  const url = h("input", { id: "url", name: "url", type: "url", size: 50, required: true,
    value: params.get("url") || defaultURL(select.value) });
  select.addEventListener("change", () => { url.value = defaultURL(select.value); });
  const method = h("select", { id: "method", name: "method" }, ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD"].map((m) => h("option", {}, m)));
  const headers = h("textarea", { id: "headers", name: "headers", rows: 3, cols: 50, placeholder: "end-user: jason" }, params.get("headers") || "");
  const out = h("div", { id: "result", "aria-live": "polite" });
  const form = h("form", { class: "explain", onsubmit: async (ev) => {
    ev.preventDefault();
    const q = new URLSearchParams({ proxy: select.value, url: url.value, method: method.value });
    for (const line of headers.value.split("\n")) if (line.trim()) q.append("header", line);
    out.replaceChildren(h("p", {}, "Walking the request…"));
    try {
      const r = await fetch("/ui/api/explain?" + q, { cache: "no-store" });
      if (!r.ok) throw new Error(await r.text());
      renderTrace(out, await r.json());
    } catch (e) {
      out.replaceChildren(h("p", { class: "err" }, "explain failed: " + e.message));
    }
  } },
  h("label", { for: "proxy" }, "Calling proxy"), select,
  h("label", { for: "url" }, "URL"), url,
  h("label", { for: "method" }, "Method"), method,
  h("label", { for: "headers" }, "Headers (one per line)"), headers,
  h("span"), h("button", { type: "submit" }, "Explain"));
  content.replaceChildren(
    h("p", { class: "help" }, "Walk a request through the config mizzen pushed to a proxy, as Envoy would: listener, filter chain, virtual host, every route tried, the weighted destinations, clusters and endpoints; then, when the destination's sidecar is connected, its inbound chain and AuthorizationPolicies. The same trace as ",
      h("code", {}, "mizzen explain"), "."),
    proxies.length ? form : h("p", {}, "No proxy is connected."), out);
  if (params.get("proxy") && proxies.length) form.requestSubmit();
}

function renderTrace(out, res) {
  const t = res.trace || {};
  const cls = t.decision || (t.destinations && t.destinations.length ? "ALLOWED" : "DENIED");
  out.replaceChildren(
    h("p", { class: "verdict badge st-" + cls, id: "verdict" }, "Verdict: " + res.verdict),
    h("table", { id: "trace" }, h("thead", {}, h("tr", {}, ["Stage", "Result", "Why"].map((x) => h("th", { scope: "col" }, x)))),
      h("tbody", {}, (t.steps || []).map((s) => h("tr", {}, h("th", { scope: "row" }, s.stage), h("td", { class: "mono" }, s.result),
        h("td", {}, (s.why || []).map((w) => h("div", {}, w))))))));
}

// ---- dispatch --------------------------------------------------------------

switch (page) {
  case "proxies":
    poll(() => getJSON("/debug/syncz"), renderProxies, 1000);
    break;
  case "changes":
    poll(() => getJSON("/debug/changes"), renderChanges, 1500);
    window.addEventListener("hashchange", () => getJSON("/debug/changes").then(renderChanges));
    break;
  case "mesh":
    poll(() => getJSON("/ui/api/mesh"), renderMesh, 3000);
    break;
  case "explain":
    getJSON("/debug/syncz").then((p) => { renderExplainForm(p || []); statusLine.textContent = "ready"; })
      .catch((e) => { content.replaceChildren(h("p", { class: "err" }, "mizzen unreachable: " + e.message)); });
    break;
}
