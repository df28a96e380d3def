// One check of mizzen's web view in real headless Chromium (Debian's
// /usr/bin/chromium driven by playwright-core), run by e2e/ui_test.go:
//
//   node ui.mjs '<json>'   with {base, page, check, params, screenshot}
//
// It opens base+page, waits (bounded) until the check holds, saves a
// screenshot, audits accessibility (every control labelled, text contrast
// ≥ 4.5:1, keyboard reachability of the navigation) and prints one JSON line:
// {ok, detail, a11y: {unlabelled, lowContrast, focusable}}.
import { chromium } from "playwright-core";

const spec = JSON.parse(process.argv[2]);
const deadline = (spec.timeoutMs || 20000);

// Checks run in the page: each returns a string when it holds, else null.
const checks = {
  // The gateway's row shows SYNCED for CDS and LDS.
  proxySynced: ({ proxy }) => {
    const row = [...document.querySelectorAll("#proxies tr[data-proxy]")].find((r) => r.dataset.proxy === proxy);
    if (!row) return null;
    const st = (t) => row.querySelector(`td[data-type="${t}"]`)?.dataset.state;
    return st("cds") === "SYNCED" && st("lds") === "SYNCED" ? row.innerText : null;
  },
  // The proxy's row shows a type NACKED with Envoy's message.
  proxyNacked: ({ proxy, message }) => {
    const row = [...document.querySelectorAll("#proxies tr[data-proxy]")].find((r) => r.dataset.proxy === proxy);
    if (!row) return null;
    const cell = row.querySelector('td[data-state="NACKED"]');
    const msg = cell?.querySelector(".nack")?.innerText || "";
    return cell && msg.includes(message) ? cell.dataset.type + ": " + msg : null;
  },
  // Change #id lists the proxy ACKED with a latency.
  changeAcked: ({ proxy, id }) => {
    if (location.hash !== "#change-" + id) location.hash = "change-" + id;
    const sec = document.getElementById("change-" + id);
    const row = sec && [...sec.querySelectorAll("tr[data-proxy]")].find((r) => r.dataset.proxy === proxy);
    if (!row || row.dataset.state !== "ACKED") return null;
    const lat = row.querySelector("td.num")?.innerText || "";
    return /\d ms$/.test(lat) ? "ACKED in " + lat : null;
  },
  // The mesh shows reviews' split with the given weights, in the graph and the table.
  meshWeights: ({ service, weights }) => {
    const svg = document.querySelector(".graph svg")?.textContent || "";
    const cells = [...document.querySelectorAll("#routes .dest")].map((d) => d.innerText);
    for (const [subset, w] of Object.entries(weights)) {
      const want = `${service} ${subset} ${w}%`;
      if (!cells.includes(want) || !svg.includes(`→ ${service} ${subset}  ${w}%`)) return null;
    }
    return cells.join(", ");
  },
  // Submitting the form (prefilled from the query) shows a verdict.
  explainVerdict: ({ contains }) => {
    const v = document.getElementById("verdict")?.innerText || "";
    return v.startsWith("Verdict: ") && v.includes(contains) && document.querySelectorAll("#trace tbody tr").length > 0 ? v : null;
  },
};

// audit runs in the page.
function audit() {
  const lum = (c) => {
    const m = c.match(/rgba?\(([^)]+)\)/);
    if (!m) return null;
    const [r, g, b, a = 1] = m[1].split(",").map((x) => parseFloat(x));
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
    return { l: 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b), a, rgb: [r, g, b] };
  };
  const bgOf = (el) => {
    for (let e = el; e; e = e.parentElement) {
      const c = getComputedStyle(e).backgroundColor;
      const p = lum(c);
      if (p && p.a > 0) return c;
    }
    return "rgb(255, 255, 255)";
  };
  const lowContrast = [];
  let checked = 0;
  for (const el of document.querySelectorAll("body *")) {
    if (el.closest("svg") || ["SCRIPT", "STYLE"].includes(el.tagName)) continue;
    const own = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
    const r = el.getBoundingClientRect();
    if (!own || r.width === 0 || r.height === 0 || getComputedStyle(el).visibility === "hidden") continue;
    const fg = lum(getComputedStyle(el).color), bg = lum(bgOf(el));
    const ratio = (Math.max(fg.l, bg.l) + 0.05) / (Math.min(fg.l, bg.l) + 0.05);
    checked++;
    if (ratio < 4.5) lowContrast.push(`${el.tagName.toLowerCase()} "${el.textContent.trim().slice(0, 40)}": ${ratio.toFixed(2)}`);
  }
  // SVG text against the fill of the box it sits in.
  for (const t of document.querySelectorAll("svg text")) {
    const rect = t.parentElement.querySelector("rect");
    const fg = lum(getComputedStyle(t).fill), bg = lum(rect ? getComputedStyle(rect).fill : "rgb(255, 255, 255)");
    if (!fg || !bg) continue;
    const ratio = (Math.max(fg.l, bg.l) + 0.05) / (Math.min(fg.l, bg.l) + 0.05);
    checked++;
    if (ratio < 4.5) lowContrast.push(`svg text "${t.textContent.slice(0, 40)}": ${ratio.toFixed(2)}`);
  }
  const unlabelled = [];
  for (const el of document.querySelectorAll("input, select, textarea, button")) {
    const name = el.labels?.length ? [...el.labels].map((l) => l.innerText).join(" ") : (el.getAttribute("aria-label") || (el.tagName === "BUTTON" ? el.innerText : ""));
    if (!name.trim()) unlabelled.push(el.outerHTML.slice(0, 80));
  }
  const svgs = [...document.querySelectorAll("svg")].filter((s) => !s.getAttribute("aria-labelledby") && !s.getAttribute("aria-label"));
  for (const s of svgs) unlabelled.push("svg without a label");
  return { unlabelled, lowContrast, checked };
}

const browser = await chromium.launch({
  executablePath: spec.chromium || "/usr/bin/chromium",
  headless: true,
  // Root in a container: Chromium's sandbox needs user namespaces it may not get.
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
  timeout: 30000,
});
let result = { ok: false };
try {
  const page = await browser.newPage({ viewport: { width: 1366, height: 900 } });
  const consoleErrors = [];
  page.on("pageerror", (e) => consoleErrors.push(String(e)));
  await page.goto(spec.base + spec.page, { timeout: 15000 });
  let detail = null;
  try {
    const h = await page.waitForFunction(checks[spec.check], spec.params || {}, { timeout: deadline, polling: 250 });
    detail = await h.jsonValue();
    // A value rendered as "[object …]" is a page bug, whatever the check saw.
    if ((await page.innerText("main")).includes("[object ")) {
      detail = null;
      result.error = "the page shows [object …]";
    }
  } catch (e) {
    detail = null;
    result.error = String(e).split("\n")[0];
  }
  // Keyboard: Tab from the top reaches the skip link and every nav link.
  const focused = [];
  for (let i = 0; i < 6; i++) {
    await page.keyboard.press("Tab");
    focused.push(await page.evaluate(() => document.activeElement?.innerText?.trim() || document.activeElement?.tagName));
  }
  await page.screenshot({ path: spec.screenshot, fullPage: true });
  const a11y = await page.evaluate(audit);
  a11y.focusable = focused;
  result = { ...result, ok: detail !== null, detail, a11y, consoleErrors, text: detail === null ? (await page.innerText("main")).slice(0, 3000) : undefined };
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
