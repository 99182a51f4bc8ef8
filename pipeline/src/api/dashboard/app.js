// Rapport dashboard: plain JavaScript over the HTTP API, no build step, no external assets.
// Pages by URL fragment: #/portfolio, #/flags, #/customer/ID, #/search, #/connectors.
// The API token lives in sessionStorage (gone with the tab); `#token=…` signs in directly.
"use strict";

const TEXT = {
  en: {
    "nav.portfolio": "Portfolio", "nav.flags": "Flags", "nav.search": "Search", "nav.connectors": "Connectors",
    "you": "Your name", "logout": "Sign out", "login.title": "API token",
    "login.help": "Paste the token from api.token, RAPPORT_API_TOKEN or <data_dir>/api.token.",
    "login.go": "Sign in", "login.wrong": "That token was refused.",
    "portfolio.title": "Relationship portfolio", "portfolio.customers": "customers",
    "portfolio.type": "Relationship type", "portfolio.share": "Share", "portfolio.confidence": "Confidence",
    "portfolio.means": "Dimension means per type", "portfolio.treatment": "How to treat them",
    "portfolio.examples": "Examples", "portfolio.none": "Not enough evidence yet",
    "portfolio.trend": "Trend: sentiment, and customers by month of their latest contact",
    "flags.title": "Flag queue", "flags.kind": "Kind", "flags.status": "Status", "flags.all": "all",
    "flags.severity": "Severity", "flags.customer": "Customer", "flags.channel": "Channel",
    "flags.raised": "Raised", "flags.excerpt": "Evidence", "flags.actions": "",
    "flags.ack": "Acknowledge", "flags.resolve": "Resolve", "flags.reopen": "Reopen",
    "flags.by": "by", "flags.empty": "No flags match.", "flags.name": "Enter your name (top right) first.",
    "customer.title": "Customer", "customer.relationship": "Relationship", "customer.runner": "runner-up",
    "customer.confidence": "confidence", "customer.treatment": "Treatment", "customer.evidence": "Evidence",
    "customer.dimensions": "Dimensions", "customer.sentiment": "Sentiment", "customer.trend": "trend",
    "customer.timeline": "Timeline across channels", "customer.flags": "Flags", "customer.similar": "Similar customers",
    "customer.notenough": "Not enough evidence", "customer.messages": "own messages",
    "customer.interactions": "interactions", "customer.first": "first contact", "customer.last": "last contact",
    "customer.when": "When", "customer.who": "Who", "customer.text": "Text", "customer.signals": "Signals",
    "search.title": "Semantic search", "search.q": "Text (any language)", "search.channel": "Channel",
    "search.since": "Since", "search.go": "Search", "search.empty": "Nothing found.",
    "connectors.title": "Connectors", "connectors.name": "Connector", "connectors.kind": "Kind",
    "connectors.state": "State", "connectors.read": "Read", "connectors.published": "Published",
    "connectors.duplicates": "Duplicates", "connectors.failed": "Failed", "connectors.restarts": "Restarts",
    "connectors.error": "Last error", "connectors.lag": "Lag", "connectors.updated": "Updated", "connectors.running": "running",
    "connectors.stopped": "stopped", "connectors.off": "off", "connectors.never": "not run yet",
    "connectors.pipeline": "Pipeline", "connectors.backlog": "Waiting for analysis",
    "connectors.dlq": "Dead letters", "connectors.stored": "Stored",
    "loading": "Loading…", "error": "Error",
  },
  da: {
    "nav.portfolio": "Portefølje", "nav.flags": "Flag", "nav.search": "Søg", "nav.connectors": "Forbindelser",
    "you": "Dit navn", "logout": "Log ud", "login.title": "API-nøgle",
    "login.help": "Indsæt nøglen fra api.token, RAPPORT_API_TOKEN eller <data_dir>/api.token.",
    "login.go": "Log ind", "login.wrong": "Nøglen blev afvist.",
    "portfolio.title": "Relationsportefølje", "portfolio.customers": "kunder",
    "portfolio.type": "Relationstype", "portfolio.share": "Andel", "portfolio.confidence": "Sikkerhed",
    "portfolio.means": "Gennemsnit pr. dimension og type", "portfolio.treatment": "Sådan behandles de",
    "portfolio.examples": "Eksempler", "portfolio.none": "Ikke nok grundlag endnu",
    "portfolio.trend": "Udvikling: stemning, og kunder efter måned for seneste kontakt",
    "flags.title": "Flagkø", "flags.kind": "Type", "flags.status": "Status", "flags.all": "alle",
    "flags.severity": "Alvor", "flags.customer": "Kunde", "flags.channel": "Kanal",
    "flags.raised": "Rejst", "flags.excerpt": "Grundlag", "flags.actions": "",
    "flags.ack": "Kvittér", "flags.resolve": "Løs", "flags.reopen": "Genåbn",
    "flags.by": "af", "flags.empty": "Ingen flag passer.", "flags.name": "Skriv dit navn (øverst til højre) først.",
    "customer.title": "Kunde", "customer.relationship": "Relation", "customer.runner": "næstbedst",
    "customer.confidence": "sikkerhed", "customer.treatment": "Behandling", "customer.evidence": "Grundlag",
    "customer.dimensions": "Dimensioner", "customer.sentiment": "Stemning", "customer.trend": "udvikling",
    "customer.timeline": "Tidslinje på tværs af kanaler", "customer.flags": "Flag", "customer.similar": "Lignende kunder",
    "customer.notenough": "Ikke nok grundlag", "customer.messages": "egne beskeder",
    "customer.interactions": "henvendelser", "customer.first": "første kontakt", "customer.last": "seneste kontakt",
    "customer.when": "Hvornår", "customer.who": "Hvem", "customer.text": "Tekst", "customer.signals": "Signaler",
    "search.title": "Semantisk søgning", "search.q": "Tekst (alle sprog)", "search.channel": "Kanal",
    "search.since": "Siden", "search.go": "Søg", "search.empty": "Intet fundet.",
    "connectors.title": "Forbindelser", "connectors.name": "Forbindelse", "connectors.kind": "Type",
    "connectors.state": "Tilstand", "connectors.read": "Læst", "connectors.published": "Udgivet",
    "connectors.duplicates": "Dubletter", "connectors.failed": "Fejlet", "connectors.restarts": "Genstarter",
    "connectors.error": "Seneste fejl", "connectors.lag": "Forsinkelse", "connectors.updated": "Opdateret", "connectors.running": "kører",
    "connectors.stopped": "stoppet", "connectors.off": "slået fra", "connectors.never": "ikke kørt endnu",
    "connectors.pipeline": "Pipeline", "connectors.backlog": "Venter på analyse",
    "connectors.dlq": "Døde breve", "connectors.stored": "Gemt",
    "loading": "Henter…", "error": "Fejl",
  },
};

const DIMENSIONS = ["valence", "intensity", "reciprocity", "power_balance", "novelty_seeking",
  "price_focus", "contribution", "trust", "commitment", "publicness"];
const DIMENSION_NAMES = {
  en: { valence: "valence", intensity: "intensity", reciprocity: "reciprocity", power_balance: "power",
    novelty_seeking: "novelty", price_focus: "price focus", contribution: "contribution", trust: "trust",
    commitment: "commitment", publicness: "publicness" },
  da: { valence: "følelse", intensity: "intensitet", reciprocity: "gensidighed", power_balance: "magt",
    novelty_seeking: "nyhedslyst", price_focus: "prisfokus", contribution: "bidrag", trust: "tillid",
    commitment: "loyalitet", publicness: "offentlighed" },
};

// Values shown to people: flag kinds and reasons, statuses, severities, channels, roles.
const VALUES = {
  en: {},
  da: {
    complaint: "klage", honesty: "ærlighed", churn_risk: "risiko for at miste kunden",
    public_escalation: "offentlig klage", public: "offentlig", superuser: "superbruger", allegation: "beskyldning",
    evasive_reply: "undvigende svar", open: "åben", acknowledged: "kvitteret", resolved: "løst",
    high: "høj", medium: "middel", low: "lav", email: "e-mail", chat: "chat", call: "opkald",
    social: "sociale medier", customer: "kunde", agent: "medarbejder", bot: "bot", unknown: "ukendt",
    positive: "positiv", neutral: "neutral", negative: "negativ",
  },
};

let lang = localStorage.getItem("rapport.lang") || (/^(da|nb|no|sv)/.test(navigator.language) ? "da" : "en");
const t = (key) => (TEXT[lang] && TEXT[lang][key]) || TEXT.en[key] || key;
const val = (value) => esc((VALUES[lang] && VALUES[lang][value]) || value);
const dim = (name) => DIMENSION_NAMES[lang][name] || name;
const main = () => document.getElementById("main");

function esc(value) {
  return String(value ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}
const date = (iso) => (iso ? esc(String(iso).slice(0, 10)) : "–");
const datetime = (iso) => (iso ? esc(String(iso).slice(0, 16).replace("T", " ")) : "–");
const pct = (x) => `${Math.round((x || 0) * 100)} %`;
const customerLink = (id, name) => id ? `<a href="#/customer/${encodeURIComponent(id)}">${esc(name || id)}</a>` : "–";

class Unauthorised extends Error {}

async function api(path, options = {}) {
  const token = sessionStorage.getItem("rapport.token");
  if (!token) throw new Unauthorised();
  const response = await fetch(path, {
    ...options,
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json", ...(options.headers || {}) },
  });
  if (response.status === 401) throw new Unauthorised();
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.error || `${response.status}`);
  return body;
}

function signIn(refused) {
  const dialog = document.getElementById("login");
  document.getElementById("login-error").textContent = refused ? t("login.wrong") : "";
  if (!dialog.open) dialog.showModal();
}

function translateStatic() {
  document.documentElement.lang = lang;
  document.querySelectorAll("[data-t]").forEach((el) => { el.textContent = t(el.dataset.t); });
  document.getElementById("lang").textContent = lang === "da" ? "EN" : "DA";
}

function dimensionBars(dimensions) {
  return DIMENSIONS.map((name) => {
    const v = Math.max(-1, Math.min(1, dimensions[name] || 0));
    const left = v < 0 ? 50 + v * 50 : 50;
    const colour = v < 0 ? "var(--bad)" : "var(--good)";
    return `<div class="dim"><span>${esc(dim(name))}</span>
      <span class="track"><span class="fill" style="left:${left}%;width:${Math.abs(v) * 50}%;background:${colour}"></span></span>
      <span class="num">${v >= 0 ? "+" : ""}${v.toFixed(2)}</span></div>`;
  }).join("");
}

function heat(v) {
  const a = Math.min(1, Math.abs(v || 0));
  const rgb = v < 0 ? "192,57,43" : "46,139,87";
  return `<td class="heat" style="background:rgba(${rgb},${(a * 0.7).toFixed(2)})">${(v || 0).toFixed(1)}</td>`;
}

const pages = {
  async portfolio() {
    const [rows, flags] = await Promise.all([api("/api/portfolio"), api("/api/flags?status=open")]);
    const total = rows.reduce((n, r) => n + r.customers, 0);
    const biggest = Math.max(1, ...rows.map((r) => r.customers));
    const bars = rows.map((r) => `<div class="bar"><span>${esc(r.relationship ? r.name : t("portfolio.none"))}</span>
      <span class="track"><span class="fill" style="width:${(100 * r.customers) / biggest}%"></span></span>
      <span class="num">${r.customers} · ${pct(r.share)}</span></div>`).join("");
    const table = `<table><thead><tr><th>${t("portfolio.type")}</th><th class="num">${t("portfolio.confidence")}</th>
      ${DIMENSIONS.map((d) => `<th class="num">${esc(dim(d))}</th>`).join("")}</tr></thead><tbody>
      ${rows.map((r) => `<tr><td>${esc(r.relationship ? r.name : t("portfolio.none"))}</td>
        <td class="num">${r.mean_confidence == null ? "–" : r.mean_confidence.toFixed(2)}</td>
        ${DIMENSIONS.map((d) => heat(r.dimensions[d])).join("")}</tr>`).join("")}</tbody></table>`;
    const treatments = rows.filter((r) => r.treatment).map((r) => `<div class="card"><strong>${esc(r.name)}</strong>
      <span class="muted">· ${r.customers} ${t("portfolio.customers")}</span><p>${esc(r.treatment)}</p>
      <div class="muted">${t("portfolio.examples")}: ${r.examples.map((id) => customerLink(id)).join(", ")}</div></div>`).join("");
    const months = [...new Set(rows.flatMap((r) => Object.keys(r.last_contact_by_month)))].sort().slice(-6);
    const arrow = (x) => (x > 0.05 ? "↗" : x < -0.05 ? "↘" : "→");
    const trend = `<table id="portfolio-trend"><thead><tr><th>${t("portfolio.type")}</th><th class="num">${t("customer.sentiment")}</th>
      ${months.map((m) => `<th class="num">${esc(m)}</th>`).join("")}</tr></thead><tbody>
      ${rows.map((r) => `<tr><td>${esc(r.relationship ? r.name : t("portfolio.none"))}</td>
        <td class="num">${arrow(r.sentiment_trend)} ${r.sentiment_trend.toFixed(2)}</td>
        ${months.map((m) => `<td class="num">${r.last_contact_by_month[m] || ""}</td>`).join("")}</tr>`).join("")}</tbody></table>`;
    const open = {};
    flags.forEach((f) => { open[f.kind] = (open[f.kind] || 0) + 1; });
    main().innerHTML = `<h1>${t("portfolio.title")} <span class="muted">· ${total} ${t("portfolio.customers")}</span></h1>
      <div class="grid"><div class="card" id="portfolio-chart">${bars}</div>
      <div class="card"><h2 style="margin-top:0">${t("nav.flags")}</h2>${Object.entries(open).map(([k, n]) =>
        `<a class="pill high" href="#/flags?kind=${encodeURIComponent(k)}&status=open">${val(k)} ${n}</a>`).join(" ") || "–"}</div></div>
      <h2>${t("portfolio.means")}</h2><div class="card" style="overflow-x:auto">${table}</div>
      <h2>${t("portfolio.trend")}</h2><div class="card" style="overflow-x:auto">${trend}</div>
      <h2>${t("portfolio.treatment")}</h2><div class="grid">${treatments}</div>`;
  },

  async flags(params) {
    const kind = params.get("kind") || "";
    const status = params.get("status") || "";
    const query = new URLSearchParams();
    if (kind) query.set("kind", kind);
    if (status) query.set("status", status);
    const flags = await api(`/api/flags?${query}`);
    const option = (value, current, label) => `<option value="${esc(value)}" ${value === current ? "selected" : ""}>${esc(label)}</option>`;
    const kinds = ["", "complaint", "honesty", "churn_risk", "public_escalation", "superuser"];
    const statuses = ["", "open", "acknowledged", "resolved"];
    const actions = (f) => {
      const id = esc(f.id);
      if (f.status === "open") return `<button data-flag="${id}" data-status="acknowledged">${t("flags.ack")}</button> <button data-flag="${id}" data-status="resolved">${t("flags.resolve")}</button>`;
      if (f.status === "acknowledged") return `<button data-flag="${id}" data-status="resolved">${t("flags.resolve")}</button>`;
      return `<button data-flag="${id}" data-status="open">${t("flags.reopen")}</button>`;
    };
    main().innerHTML = `<h1>${t("flags.title")} <span class="muted">· ${flags.length}</span></h1>
      <form class="toolbar" id="flag-filter">
        <label>${t("flags.kind")}<select name="kind">${kinds.map((k) => option(k, kind, k ? (VALUES[lang][k] || k) : t("flags.all"))).join("")}</select></label>
        <label>${t("flags.status")}<select name="status">${statuses.map((s) => option(s, status, s ? (VALUES[lang][s] || s) : t("flags.all"))).join("")}</select></label>
      </form>
      <p class="error" id="flag-error"></p>
      ${flags.length === 0 ? `<p class="muted">${t("flags.empty")}</p>` : `<table id="flag-table"><thead><tr>
        <th>${t("flags.kind")}</th><th>${t("flags.severity")}</th><th>${t("flags.customer")}</th><th>${t("flags.channel")}</th>
        <th>${t("flags.raised")}</th><th>${t("flags.excerpt")}</th><th>${t("flags.status")}</th><th></th></tr></thead><tbody>
        ${flags.map((f) => `<tr data-row="${esc(f.id)}"><td>${val(f.kind)}${f.reason ? `<br><span class="muted">${val(f.reason)}</span>` : ""}${f.public ? `<br><span class="muted">${val("public")}</span>` : ""}</td>
          <td><span class="pill ${esc(f.severity)}">${val(f.severity)}</span></td><td>${customerLink(f.customer_id)}</td>
          <td>${f.channel ? val(f.channel) : "–"}</td><td>${datetime(f.raised_at)}</td><td class="excerpt">${esc(f.excerpt)}</td>
          <td><span class="pill ${esc(f.status)}">${val(f.status)}</span>${f.status_by ? `<br><span class="muted">${t("flags.by")} ${esc(f.status_by)} ${datetime(f.status_at)}</span>` : ""}</td>
          <td>${actions(f)}</td></tr>`).join("")}</tbody></table>`}`;
    document.getElementById("flag-filter").addEventListener("change", (e) => {
      const form = new FormData(e.currentTarget);
      const next = new URLSearchParams();
      for (const [k, v] of form) if (v) next.set(k, v);
      location.hash = `#/flags?${next}`;
    });
    main().querySelectorAll("button[data-flag]").forEach((button) => button.addEventListener("click", async () => {
      const by = document.getElementById("me").value.trim();
      if (!by) { document.getElementById("flag-error").textContent = t("flags.name"); document.getElementById("me").focus(); return; }
      try {
        await api(`/api/flags/${encodeURIComponent(button.dataset.flag)}`, { method: "POST", body: JSON.stringify({ status: button.dataset.status, by }) });
        route();
      } catch (e) { if (e instanceof Unauthorised) signIn(true); else document.getElementById("flag-error").textContent = e.message; }
    }));
  },

  async customer(params, id) {
    const v = await api(`/api/customers/${encodeURIComponent(id)}`);
    const p = v.profile;
    const r = p.relationship;
    const typed = r.status === "typed";
    const series = p.sentiment.series || [];
    const points = series.map((s, i) => `${(i / Math.max(1, series.length - 1)) * 300},${30 - s.valence * 28}`).join(" ");
    const signals = (s) => {
      const heads = s.signals.heads || {};
      const out = [];
      if (heads.sentiment) out.push(`<span class="pill">${val(heads.sentiment.label)}</span>`);
      if (heads.complaint && heads.complaint.probabilities.complaint >= 0.5) out.push(`<span class="pill high">complaint ${heads.complaint.probabilities.complaint.toFixed(2)}</span>`);
      Object.entries(s.signals.prototypes || {}).filter(([, score]) => score.flagged).forEach(([label]) => out.push(`<span class="pill medium">${esc(label)}</span>`));
      return out.join("");
    };
    main().innerHTML = `<h1>${esc(p.name || p.customer_id)} <span class="muted">· ${esc(p.customer_id)}</span></h1>
      <div class="grid">
        <div class="card" id="relationship"><h2 style="margin-top:0">${t("customer.relationship")}</h2>
          ${typed ? `<p><strong style="font-size:1.2rem">${esc(r.name)}</strong> <span class="muted">· ${t("customer.confidence")} ${r.confidence.toFixed(2)}
            · ${t("customer.runner")} ${esc(r.runner_up || "–")}</span></p><p>${esc(v.relationship_description || "")}</p>
            <p><strong>${t("customer.treatment")}:</strong> ${esc(v.treatment || "")}</p>`
            : `<p>${t("customer.notenough")} (${r.messages}/${r.needed})</p>`}
          <p class="muted">${p.interactions} ${t("customer.interactions")}, ${p.messages} ${t("customer.messages")} ·
            ${Object.entries(p.channels).map(([c, n]) => `${esc(c)} ${n}`).join(", ")} · ${t("customer.first")} ${date(p.first_seen)} · ${t("customer.last")} ${date(p.last_seen)}</p>
        </div>
        <div class="card"><h2 style="margin-top:0">${t("customer.dimensions")}</h2>${dimensionBars(p.dimensions)}
          <h2>${t("customer.sentiment")} <span class="muted">${p.sentiment.mean.toFixed(2)} · ${t("customer.trend")} ${p.sentiment.trend >= 0 ? "+" : ""}${p.sentiment.trend.toFixed(2)}</span></h2>
          <svg class="spark" viewBox="0 -2 300 64" preserveAspectRatio="none"><line x1="0" y1="30" x2="300" y2="30" stroke="#ccd"/>
            <polyline fill="none" stroke="#2457c5" stroke-width="2" points="${points}"/></svg></div>
      </div>
      ${v.evidence.length ? `<h2>${t("customer.evidence")}</h2><div class="card">${v.evidence.map((s) => `<div class="hit">${esc(s.text)}
        <div class="muted">${esc(s.channel)} · ${date(s.occurred_at)}</div></div>`).join("")}</div>` : ""}
      ${v.flags.length ? `<h2>${t("customer.flags")}</h2><div class="card">${v.flags.map((f) => `<span class="pill ${esc(f.status)}">${val(f.kind)}${f.reason ? ` · ${val(f.reason)}` : ""} · ${val(f.status)}</span>`).join(" ")}</div>` : ""}
      <h2>${t("customer.timeline")}</h2><table id="timeline"><thead><tr><th>${t("customer.when")}</th><th>${t("flags.channel")}</th>
        <th>${t("customer.who")}</th><th>${t("customer.text")}</th><th>${t("customer.signals")}</th></tr></thead><tbody>
        ${v.timeline.map((s) => `<tr><td>${datetime(s.occurred_at)}</td><td>${val(s.channel)}</td>
          <td>${val(s.author.role)}</td><td class="excerpt">${esc(s.text)}</td><td>${signals(s)}</td></tr>`).join("")}</tbody></table>
      <h2>${t("customer.similar")}</h2><table id="similar"><tbody>${v.similar.map((s) => `<tr><td>${customerLink(s.customer_id, s.name)}</td>
        <td>${esc(s.relationship || "–")}</td><td class="num">${s.score.toFixed(3)}</td>
        <td class="muted">${Object.entries(s.channels).map(([c, n]) => `${esc(c)} ${n}`).join(", ")}</td></tr>`).join("")}</tbody></table>`;
  },

  async search(params) {
    const q = params.get("q") || "";
    const channel = params.get("channel") || "";
    const since = params.get("since") || "";
    let results = "";
    if (q) {
      const query = new URLSearchParams({ q });
      if (channel) query.set("channel", channel);
      if (since) query.set("since", since);
      const groups = await api(`/api/search?${query}`);
      results = groups.length === 0 ? `<p class="muted">${t("search.empty")}</p>` : groups.map((g) => `<div class="card">
        <strong>${customerLink(g.customer_id)}</strong> <span class="muted">· ${g.best.toFixed(3)}</span>
        ${g.hits.map((h) => `<div class="hit">${esc(h.text)}<div class="muted">${esc(h.channel)} · ${date(h.occurred_at)} · ${h.score.toFixed(3)}</div></div>`).join("")}</div>`).join("");
    }
    const channels = ["", "email", "chat", "call", "social"];
    main().innerHTML = `<h1>${t("search.title")}</h1>
      <form class="toolbar" id="search-form">
        <label>${t("search.q")}<input name="q" value="${esc(q)}" size="40" required></label>
        <label>${t("search.channel")}<select name="channel">${channels.map((c) => `<option value="${c}" ${c === channel ? "selected" : ""}>${esc(c || t("flags.all"))}</option>`).join("")}</select></label>
        <label>${t("search.since")}<input name="since" type="date" value="${esc(since)}"></label>
        <button class="primary" type="submit">${t("search.go")}</button>
      </form><div id="results">${results}</div>`;
    document.getElementById("search-form").addEventListener("submit", (e) => {
      e.preventDefault();
      const next = new URLSearchParams();
      for (const [k, v] of new FormData(e.currentTarget)) if (v) next.set(k, v);
      location.hash = `#/search?${next}`;
    });
  },

  async connectors() {
    const [rows, metrics] = await Promise.all([api("/api/connectors"), fetchMetrics()]);
    const state = (r) => !r.enabled ? t("connectors.off") : !r.status ? t("connectors.never")
      : r.status.running ? t("connectors.running") : t("connectors.stopped");
    main().innerHTML = `<h1>${t("connectors.title")}</h1>
      <table id="connector-table"><thead><tr><th>${t("connectors.name")}</th><th>${t("connectors.kind")}</th><th>${t("connectors.state")}</th>
        <th class="num">${t("connectors.read")}</th><th class="num">${t("connectors.published")}</th><th class="num">${t("connectors.duplicates")}</th>
        <th class="num">${t("connectors.failed")}</th><th class="num">${t("connectors.restarts")}</th><th class="num">${t("connectors.lag")}</th><th>${t("connectors.error")}</th><th>${t("connectors.updated")}</th></tr></thead><tbody>
        ${rows.map((r) => { const s = r.status || {}; return `<tr><td>${esc(r.name)}</td><td>${esc(r.kind)}</td>
          <td><span class="pill ${s.running ? "low" : "high"}">${esc(state(r))}</span></td>
          <td class="num">${s.read ?? "–"}</td><td class="num">${s.published ?? "–"}</td><td class="num">${s.duplicates ?? "–"}</td>
          <td class="num">${s.failed ?? "–"}</td><td class="num">${s.restarts ?? "–"}</td><td class="num">${lag(s.lag_seconds)}</td>
          <td class="excerpt error">${esc(s.last_error || "")}</td><td>${datetime(s.updated_at)}</td></tr>`; }).join("")}</tbody></table>
      <h2>${t("connectors.pipeline")}</h2><div class="card" id="pipeline-metrics">
        ${t("connectors.stored")}: <strong>${metrics.stored ?? "–"}</strong> ·
        ${t("connectors.backlog")}: <strong>${metrics.backlog ?? "–"}</strong> ·
        ${t("connectors.dlq")}: <strong>${metrics.dlq ?? "–"}</strong></div>`;
  },
};

function lag(seconds) {
  if (seconds == null) return "–";
  if (seconds < 120) return `${seconds} s`;
  if (seconds < 7200) return `${Math.floor(seconds / 60)} min`;
  if (seconds < 172800) return `${Math.floor(seconds / 3600)} h`;
  return `${Math.floor(seconds / 86400)} d`;
}

async function fetchMetrics() {
  const token = sessionStorage.getItem("rapport.token");
  const response = await fetch("/metrics", { headers: { Authorization: `Bearer ${token}` } });
  if (!response.ok) return {};
  const text = await response.text();
  const value = (series) => {
    const line = text.split("\n").find((l) => l.startsWith(`${series} `));
    return line ? Number(line.slice(series.length + 1)) : undefined;
  };
  return {
    stored: value('rapport_stage_interactions_total{stage="analysis",outcome="stored"}'),
    backlog: value("rapport_analysis_backlog"),
    dlq: value("rapport_dlq_messages"),
  };
}

async function route() {
  const hash = location.hash.replace(/^#/, "");
  const tokenMatch = hash.match(/(?:^|[?&])token=([^&]+)/);
  if (tokenMatch) {
    sessionStorage.setItem("rapport.token", decodeURIComponent(tokenMatch[1]));
    location.replace("#/portfolio");
    return;
  }
  const [path, query] = hash.split("?");
  const parts = (path || "/portfolio").split("/").filter(Boolean);
  const page = pages[parts[0]] ? parts[0] : "portfolio";
  document.querySelectorAll("nav a").forEach((a) => a.classList.toggle("active", a.dataset.page === page));
  main().innerHTML = `<p class="muted">${t("loading")}</p>`;
  try {
    await pages[page](new URLSearchParams(query || ""), decodeURIComponent(parts.slice(1).join("/")));
    main().dataset.page = page;
  } catch (e) {
    if (e instanceof Unauthorised) { signIn(Boolean(sessionStorage.getItem("rapport.token"))); return; }
    main().innerHTML = `<p class="error">${t("error")}: ${esc(e.message)}</p>`;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  translateStatic();
  const me = document.getElementById("me");
  me.value = localStorage.getItem("rapport.me") || "";
  me.addEventListener("change", () => localStorage.setItem("rapport.me", me.value.trim()));
  document.getElementById("lang").addEventListener("click", () => {
    lang = lang === "da" ? "en" : "da";
    localStorage.setItem("rapport.lang", lang);
    translateStatic();
    route();
  });
  document.getElementById("logout").addEventListener("click", () => { sessionStorage.removeItem("rapport.token"); signIn(false); });
  document.getElementById("login-form").addEventListener("submit", () => {
    sessionStorage.setItem("rapport.token", document.getElementById("token").value.trim());
    route();
  });
  window.addEventListener("hashchange", route);
  route();
});
