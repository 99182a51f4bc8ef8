// Drives the dashboard in headless Chromium (playwright-core): signs in, checks that every
// page renders the demo's data, acknowledges a flag through the UI, switches to Danish,
// and writes a screenshot per page. Run by tests/dashboard.rs:
//   node dashboard.cjs BASE_URL TOKEN SCREENSHOT_DIR
// with PLAYWRIGHT_CORE (the module's directory) and CHROMIUM (the browser) in the env.
"use strict";
const { chromium } = require(process.env.PLAYWRIGHT_CORE);
const [base, token, out] = process.argv.slice(2);

function check(condition, message) {
  if (!condition) throw new Error(message);
}

const errors = [];

(async () => {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM,
    args: ["--no-sandbox", "--disable-dev-shm-usage"],
  });
  const page = await browser.newPage({ viewport: { width: 1366, height: 820 }, locale: "en-GB" });
  page.on("pageerror", (e) => errors.push(`page error: ${e.message}`));
  page.on("response", (r) => { if (r.status() >= 400) errors.push(`${r.status()} ${r.request().method()} ${r.url()}`); });
  page.on("console", (m) => { if (m.type() === "error") errors.push(`console: ${m.text()}`); });
  const shot = (name) => page.screenshot({ path: `${out}/${name}.png`, fullPage: true });
  const report = { pages: {} };

  // Sign in through the form, as a person would.
  await page.goto(`${base}/dashboard/`);
  await page.waitForSelector("#login[open]");
  await page.fill("#token", token);
  await page.click("#login-form button[type=submit]");
  await page.waitForSelector("#portfolio-chart .bar");

  // Portfolio: a bar per relationship type, the dimension means, the trend.
  const bars = await page.$$eval("#portfolio-chart .bar", (els) => els.map((e) => e.textContent));
  check(bars.length >= 6, `portfolio: ${bars.length} bars`);
  const chart = bars.join(" ");
  check(/Ex-friends|Buddies|Basic exchange/.test(chart), `portfolio chart: ${chart}`);
  check((await page.$$("#portfolio-trend tbody tr")).length === bars.length, "a trend row per type");
  report.pages.portfolio = bars.length;
  await shot("portfolio");

  // Flags: the open queue; acknowledge the first through its button.
  await page.fill("#me", "mette");
  await page.dispatchEvent("#me", "change");
  await page.goto(`${base}/dashboard/#/flags?status=open`);
  await page.waitForSelector("#flag-table tbody tr");
  const open = await page.$$eval("#flag-table tbody tr", (rows) => rows.map((r) => r.dataset.row));
  check(open.length > 20, `open flags: ${open.length}`);
  await shot("flags");
  const acknowledged = open[0];
  await page.click(`#flag-table tr[data-row="${acknowledged}"] button[data-status=acknowledged]`);
  await page.waitForFunction((id) => !document.querySelector(`#flag-table tr[data-row="${CSS.escape(id)}"]`), acknowledged);
  await page.goto(`${base}/dashboard/#/flags?status=acknowledged`);
  await page.waitForSelector("#flag-table tbody tr");
  const row = await page.textContent(`#flag-table tr[data-row="${acknowledged}"]`);
  check(row.includes("acknowledged") && row.includes("mette"), `acknowledged row: ${row}`);
  report.acknowledged = acknowledged;
  await shot("flags-acknowledged");

  // A customer: type with evidence, dimensions, timeline across channels, similar customers.
  await page.goto(`${base}/dashboard/#/customer/crm-jens-kofoed`);
  await page.waitForSelector("#timeline tbody tr");
  const relationship = await page.textContent("#relationship");
  check(relationship.includes("Jens") || relationship.length > 40, `relationship: ${relationship}`);
  const channels = await page.$$eval("#timeline tbody tr td:nth-child(2)", (tds) => [...new Set(tds.map((t) => t.textContent))]);
  check(channels.length >= 2, `timeline channels: ${channels}`);
  check((await page.$$("#similar tr")).length > 0, "similar customers");
  report.pages.customer = channels;
  await shot("customer");

  // Semantic search across languages.
  await page.goto(`${base}/dashboard/#/search?q=${encodeURIComponent("charged twice for one order")}`);
  await page.waitForSelector("#results .card");
  const results = await page.textContent("#results");
  check(/dobbelt|twice|to ganger|två gånger|DOBBELT/i.test(results), `search results: ${results.slice(0, 300)}`);
  report.pages.search = (await page.$$("#results .card")).length;
  await shot("search");

  // Connectors and the pipeline's counters, for ops.
  await page.goto(`${base}/dashboard/#/connectors`);
  await page.waitForSelector("#pipeline-metrics");
  const pipeline = await page.textContent("#pipeline-metrics");
  check(/\d/.test(pipeline), `pipeline metrics: ${pipeline}`);
  const connectors = await page.textContent("#connector-table tbody");
  check(connectors.includes("shop-chat"), `connectors: ${connectors}`);
  report.pages.connectors = (await page.$$("#connector-table tbody tr")).length;
  await shot("connectors");

  // Danish labels.
  await page.goto(`${base}/dashboard/#/portfolio`);
  await page.waitForSelector("#portfolio-chart .bar");
  await page.click("#lang");
  await page.waitForFunction(() => document.querySelector("nav a[data-page=portfolio]").textContent === "Portefølje");
  await page.waitForSelector("#portfolio-chart .bar");
  const heading = await page.textContent("h1");
  check(heading.includes("Relationsportefølje"), `Danish heading: ${heading}`);
  await shot("portfolio-da");
  await page.goto(`${base}/dashboard/#/flags?status=acknowledged`);
  await page.waitForSelector("#flag-table tbody tr");
  const danish = await page.textContent("#flag-table");
  check(danish.includes("kvitteret") && danish.includes("Løs"), `Danish queue: ${danish.slice(0, 200)}`);
  check((await page.textContent("h1")).includes("Flagkø"), "Danish flag heading");
  await shot("flags-da");

  check(errors.length === 0, errors.join("\n"));
  await browser.close();
  console.log(JSON.stringify(report));
})().catch((e) => {
  console.error(e.stack || String(e));
  if (errors.length) console.error(`and in the page:\n${errors.join("\n")}`);
  process.exit(1);
});
