// The dashboard: plain JavaScript over the public HTTP API. Data goes into the page as text only (textContent),
// never as markup. The credential (a function key, a bearer token, or an Entra ID sign-in through the bundled MSAL.js
// whose tokens MSAL keeps) lives in this tab's session storage and is sent only to this origin's API: keys to the
// keyed routes, tokens in the Authorization header.
"use strict";

const SESSION = "aci-dispatcher.credential";
const API = location.pathname.replace(/\/ui(\/.*)?$/, "");
const TERMINAL = new Set(["Succeeded", "Failed", "TimedOut", "Cancelled", "Rejected"]);
const REFRESH_MS = 3000;
const BUCKETS = 10; // of the task durations histogram
const REDIRECT = `${location.origin}${API}/ui/redirect.html`;

let entra = null; // the API's Entra ID sign-in (config.json), when it takes tokens and MSAL.js loaded
let msalApp = null;

function credential() {
  try {
    return JSON.parse(sessionStorage.getItem(SESSION) || "null");
  } catch {
    return null;
  }
}

function $(id) {
  return document.getElementById(id);
}

function el(tag, text, attributes) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  for (const [name, value] of Object.entries(attributes || {})) node.setAttribute(name, value);
  return node;
}

function row(cells) {
  const tr = document.createElement("tr");
  for (const cell of cells) {
    const td = document.createElement("td");
    if (cell instanceof Node) td.append(cell);
    else td.textContent = cell === null || cell === undefined ? "" : String(cell);
    tr.append(td);
  }
  return tr;
}

function when(value) {
  return value ? value.replace("T", " ").replace(/(\.\d+)?(Z|\+00:00)$/, "") : "";
}

function duration(seconds) {
  return seconds < 120 ? `${Math.round(seconds)} s` : `${(seconds / 60).toFixed(1)} min`;
}

function money(value, currency) {
  return value ? `${Number(value).toPrecision(2)} ${currency || ""}`.trim() : "0";
}

function status(value) {
  return el("span", value, { class: `status status-${value}` });
}

function showError(message) {
  $("error").textContent = message || "";
}

function showSignIn(message) {
  started = false; // the page's loops stop on a refusal; signing in again starts them anew
  $("content").hidden = true;
  $("signin").hidden = false;
  $("signout").hidden = true;
  $("who").textContent = "";
  showError(message || "");
  $("secret").focus();
}

class Unauthorized extends Error {}

async function api(path, options) {
  const given = credential();
  if (!given) throw new Unauthorized("sign in first");
  const headers = Object.assign({ Accept: "application/json" }, (options && options.headers) || {});
  let base = API;
  if (given.kind === "key") {
    headers["x-functions-key"] = given.secret;
    base = `${API}/keyed`;
  } else if (given.kind === "entra") {
    headers.Authorization = `Bearer ${await entraToken()}`;
  } else {
    headers.Authorization = `Bearer ${given.secret}`;
  }
  const response = await fetch(base + path, Object.assign({}, options, { headers, cache: "no-store", redirect: "error" }));
  if (response.status === 401) {
    sessionStorage.removeItem(SESSION);
    throw new Unauthorized("the API refused these credentials: sign in again");
  }
  if (!response.ok) {
    const problem = await response.json().catch(() => ({}));
    throw new Error(`${response.status} ${problem.title || response.statusText}${problem.detail ? ": " + problem.detail : ""}`);
  }
  return response;
}

// --- Entra ID through MSAL.js --------------------------------------------------------------------------------------

async function setUpEntra() {
  let config;
  try {
    config = await (await fetch(`${API}/ui/config.json`, { cache: "no-store", redirect: "error" })).json();
  } catch {
    return;
  }
  if (!config.entra || typeof msal === "undefined") return;
  msalApp = new msal.PublicClientApplication({
    auth: {
      clientId: config.entra.clientId,
      authority: config.entra.authority,
      knownAuthorities: config.entra.knownAuthorities,
      redirectUri: REDIRECT,
    },
    cache: { cacheLocation: "sessionStorage" },
  });
  await msalApp.initialize();
  entra = config.entra;
  $("entra-signin").hidden = false;
  try {
    const result = await msalApp.handleRedirectPromise();
    if (result && result.account) {
      msalApp.setActiveAccount(result.account);
      sessionStorage.setItem(SESSION, JSON.stringify({ kind: "entra" }));
    }
  } catch (error) {
    showError(`Sign-in failed: ${error.errorCode || error.message}`);
  }
}

async function entraToken() {
  const account = msalApp && (msalApp.getActiveAccount() || msalApp.getAllAccounts()[0]);
  if (!account) throw new Unauthorized("sign in first");
  try {
    return (await msalApp.acquireTokenSilent({ scopes: entra.scopes, account })).accessToken;
  } catch (error) {
    throw new Unauthorized(`sign in again (${error.errorCode || error.message})`);
  }
}

async function json(path, options) {
  return (await api(path, options)).json();
}

function every(ms, work) {
  let stopped = false;
  async function tick() {
    if (stopped) return;
    try {
      const again = await work();
      showError("");
      if (again === false) return;
    } catch (error) {
      if (error instanceof Unauthorized) {
        stopped = true;
        showSignIn(error.message);
        return;
      }
      showError(error.message);
    }
    setTimeout(tick, ms);
  }
  tick();
}

// --- pages ------------------------------------------------------------------------------------------------------

function jobsPage() {
  const tbody = $("jobs").querySelector("tbody");
  const filters = $("filters");
  filters.addEventListener("change", () => refresh());
  filters.addEventListener("submit", (event) => event.preventDefault());
  async function refresh() {
    const query = new URLSearchParams({ limit: "100" });
    if ($("f-status").value) query.set("status", $("f-status").value);
    if ($("f-label").value.trim()) query.set("label", $("f-label").value.trim());
    if ($("f-since").value) {
      query.set("since", new Date(Date.now() - Number($("f-since").value) * 3600e3).toISOString());
    }
    const page = await json(`/jobs?${query}`);
    const rows = page.items.map((job) => {
      const link = el("a", job.id, { href: `job.html?id=${encodeURIComponent(job.id)}` });
      const tasks = job.tasks ? `${job.tasks.succeeded + job.tasks.failed} of ${job.tasks.total}` : "";
      return row([link, status(job.status), job.team || "", job.attempts.length, tasks, money(job.cost, job.currency), when(job.submittedAt)]);
    });
    tbody.replaceChildren(...rows);
    $("updated").textContent = `${page.items.length} jobs, updated ${new Date().toLocaleTimeString()}`;
  }
  every(REFRESH_MS, refresh);
}

function jobPage() {
  const id = new URLSearchParams(location.search).get("id") || "";
  $("job-title").textContent = `Job ${id}`;
  document.title = `${id} · ACI dispatcher`;
  const path = `/jobs/${encodeURIComponent(id)}`;
  let follower = null;

  $("cancel").addEventListener("click", async () => {
    $("cancel").disabled = true;
    try {
      const job = await json(path, { method: "DELETE" });
      $("cancel-result").textContent = job.status === "Cancelled" ? "Cancelled." : "Cancel requested: the reconciler stops it.";
    } catch (error) {
      $("cancel-result").textContent = error.message;
      $("cancel").disabled = false;
    }
  });
  $("attempt").addEventListener("change", () => follow(Number($("attempt").value)));

  function summary(job) {
    const items = [
      ["Status", status(job.status)],
      ["Reason", job.reason || ""],
      ["Team", job.team || ""],
      ["Submitted by", job.owner ? job.owner.name : ""],
      ["Submitted (UTC)", when(job.submittedAt)],
      ["Cost", money(job.cost, job.currency)],
    ];
    if (job.cancelledBy) items.push(["Cancelled by", job.cancelledBy.name]);
    const nodes = [];
    for (const [term, value] of items) {
      nodes.push(el("dt", term));
      const dd = el("dd");
      dd.append(value instanceof Node ? value : document.createTextNode(value));
      nodes.push(dd);
    }
    $("summary").replaceChildren(...nodes);
  }

  function attempts(job) {
    $("attempts").querySelector("tbody").replaceChildren(
      ...job.attempts.map((a) =>
        row([
          a.number,
          a.outcome ? status(a.outcome) : "",
          Object.entries(a.exitCodes || {}).map(([c, code]) => `${c}: ${code}`).join(", "),
          a.pool,
          when(a.startedAt),
          when(a.finishedAt),
          money(a.cost, job.currency),
        ]),
      ),
    );
    const select = $("attempt");
    if (select.options.length !== job.attempts.length) {
      select.replaceChildren(...job.attempts.map((a) => el("option", `#${a.number}`, { value: String(a.number) })));
      if (job.attempts.length) {
        select.value = String(job.attempts[job.attempts.length - 1].number);
        follow(Number(select.value));
      }
    }
  }

  async function tasks(job) {
    if (!job.tasks) return;
    $("tasks-section").hidden = false;
    const t = job.tasks;
    $("progress").value = t.progress;
    $("task-counts").textContent = `${t.succeeded} succeeded, ${t.failed} failed of ${t.total}`;
    const page = await json(`${path}/tasks?limit=1000`);
    $("task-grid").replaceChildren(
      ...page.items.map((task) => {
        const label = `task ${task.index}: ${task.status}`;
        const cell = el("button", null, { type: "button", class: `cell ${task.status}`, title: label, "aria-label": label });
        cell.addEventListener("click", () => taskLog(task.index));
        return cell;
      }),
    );
    durations(page.items);
  }

  // How long the ended tasks ran: up to ten equal buckets from the shortest to the longest run.
  function durations(items) {
    const seconds = items
      .filter((task) => task.startedAt && task.finishedAt)
      .map((task) => (Date.parse(task.finishedAt) - Date.parse(task.startedAt)) / 1000);
    const body = $("durations").querySelector("tbody");
    $("durations").hidden = seconds.length === 0;
    if (!seconds.length) {
      body.replaceChildren();
      return;
    }
    const low = Math.min(...seconds);
    const span = Math.max(...seconds) - low;
    const buckets = Math.max(1, Math.min(BUCKETS, Math.ceil(span))); // buckets of a second at least
    const width = span / buckets || 1;
    const counts = new Array(buckets).fill(0);
    for (const value of seconds) counts[Math.min(buckets - 1, Math.floor((value - low) / width))] += 1;
    const most = Math.max(...counts);
    body.replaceChildren(
      ...counts.map((count, n) => {
        const range = `${duration(low + n * width)} to ${duration(low + (n + 1) * width)}`;
        return row([range, bar(count, most, `tasks that ran ${range}`), count]);
      }),
    );
  }

  async function outputs(job) {
    if (!job.workspace) return;
    const listing = await json(`${path}/outputs`);
    $("outputs").replaceChildren(
      ...listing.entries
        .filter((e) => e.kind === "file")
        .map((entry) => {
          const item = el("li");
          const button = el("button", `Download ${entry.path}`, { type: "button" });
          button.addEventListener("click", async () => {
            const blob = await (await api(`${path}/outputs/${entry.path.split("/").map(encodeURIComponent).join("/")}`)).blob();
            const link = el("a", null, { href: URL.createObjectURL(blob), download: entry.path.split("/").pop() });
            link.click();
            URL.revokeObjectURL(link.href);
          });
          item.append(button, document.createTextNode(` ${entry.size ?? ""} bytes`));
          return item;
        }),
    );
  }

  // One task's log (its latest run): the page stops following an attempt to show it.
  async function taskLog(index) {
    follower = null;
    $("log-state").textContent = `task ${index}`;
    const text = await (await api(`${path}/tasks/${index}/logs`, { headers: { Accept: "text/plain" } })).text();
    $("log").textContent = text;
    $("log").dataset.complete = "true";
  }

  // The log of one attempt, walked with the same cursor as `dispatcher logs -f`: every line once, in order.
  function follow(number) {
    const token = {};
    follower = token;
    const log = $("log");
    log.textContent = "";
    let cursor = "";
    every(1000, async () => {
      if (follower !== token) return false;
      const query = new URLSearchParams({ after: cursor, attempt: String(number) });
      const page = await json(`${path}/logs?${query}`);
      if (follower !== token) return false;
      for (const line of page.lines) log.append(`${line.text}\n`);
      for (const gap of page.gaps || []) log.append(`[lines may be missing between ${gap.after} and ${gap.before}]\n`);
      if (page.next) cursor = page.next;
      $("log-state").textContent = page.complete ? "complete" : page.more ? "following…" : "";
      log.dataset.complete = page.complete && !page.more ? "true" : "false";
      return !(page.complete && !page.more);
    });
  }

  every(REFRESH_MS, async () => {
    const job = await json(path);
    summary(job);
    attempts(job);
    $("cancel").hidden = TERMINAL.has(job.status) || job.cancelRequested;
    await tasks(job);
    await outputs(job);
  });
}

function bar(used, limit, label) {
  const box = el("div", null, { class: "bar", role: "meter", "aria-label": label, "aria-valuemin": "0", "aria-valuemax": String(limit), "aria-valuenow": String(used) });
  const fill = el("span");
  fill.style.width = `${Math.min(100, (100 * used) / Math.max(limit, 1))}%`;
  box.append(fill);
  return box;
}

function chart(points, quota) {
  const ns = "http://www.w3.org/2000/svg";
  const width = 600;
  const height = 120;
  const top = Math.max(1, quota / 5, ...points.map((p) => Math.max(p.creates, p.deletes)));
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("class", "chart");
  svg.setAttribute("width", String(width));
  svg.setAttribute("height", String(height));
  svg.setAttribute("role", "img");
  const total = points.reduce((sum, p) => sum + p.creates, 0);
  svg.setAttribute("aria-label", `Creates per minute over the last hour: ${total} in all`);
  const step = width / points.length;
  points.forEach((p, i) => {
    for (const [value, colour, offset] of [[p.creates, "#0969da", 0], [p.deletes, "#cf222e", step / 2]]) {
      const rect = document.createElementNS(ns, "rect");
      const h = (height - 10) * (value / top);
      rect.setAttribute("x", String(i * step + offset));
      rect.setAttribute("y", String(height - h));
      rect.setAttribute("width", String(Math.max(1, step / 2 - 1)));
      rect.setAttribute("height", String(h));
      rect.setAttribute("fill", colour);
      svg.append(rect);
    }
  });
  return svg;
}

function poolsPage() {
  every(REFRESH_MS * 2, async () => {
    const pools = await json("/pools");
    $("pools").replaceChildren(
      ...pools.items.map((pool) => {
        const section = el("section", null, { "aria-label": `Pool ${pool.name}` });
        section.append(el("h3", `${pool.name} (${pool.location})`));
        const table = el("table");
        table.append(
          row(["Container groups", bar(pool.groups, pool.maxGroups, "groups"), `${pool.groups} of ${pool.maxGroups}`]),
          row(["Cores", bar(pool.cores, pool.maxCores, "cores"), `${pool.cores} of ${pool.maxCores}`]),
          row(["Creates, last 5 minutes", bar(pool.creates5Min, pool.createsPer5Min, "creates in 5 minutes"), `${pool.creates5Min} of ${pool.createsPer5Min}`]),
          row(["Creates, last hour", bar(pool.createsHour, pool.createsPerHour, "creates in an hour"), `${pool.createsHour} of ${pool.createsPerHour}`]),
          row(["Deletes, last 5 minutes", bar(pool.deletes5Min, pool.createsPer5Min, "deletes in 5 minutes"), `${pool.deletes5Min} of ${pool.createsPer5Min}`]),
        );
        section.append(table, el("p", "Creates (blue) and deletes (red) per minute, the last hour:", { class: "muted" }), chart(pool.minutes, pool.createsPer5Min));
        if (pool.saturatedUntil) section.append(el("p", `ACI reported the quota reached; cooling down until ${when(pool.saturatedUntil)}`, { class: "error" }));
        return section;
      }),
    );
    $("updated").textContent = `Updated ${new Date().toLocaleTimeString()}.`;
  });
}

function schedulesPage() {
  every(REFRESH_MS * 2, async () => {
    const list = await json("/schedules");
    $("schedules").querySelector("tbody").replaceChildren(
      ...list.items.map((s) => {
        const last = [...(s.succeeded || []), ...(s.failed || [])]
          .sort((a, b) => String(b.endedAt || "").localeCompare(String(a.endedAt || "")))
          .slice(0, 3)
          .map((r) => `${r.jobId}: ${r.status}`)
          .join(", ");
        return row([s.schedule.name, s.schedule.cron, s.team || "", (s.nextDue || []).slice(0, 1).map(when).join(""), (s.active || []).map((r) => r.jobId).join(", "), last]);
      }),
    );
  });
}

const PAGES = { index: jobsPage, job: jobPage, pools: poolsPage, schedules: schedulesPage };

async function init() {
  $("entra").addEventListener("click", () => {
    msalApp.loginRedirect({ scopes: entra.scopes, redirectUri: REDIRECT }).catch((error) => showError(`Sign-in failed: ${error.errorCode || error.message}`));
  });
  $("signin").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(SESSION, JSON.stringify({ kind: $("kind").value, secret: $("secret").value.trim() }));
    $("secret").value = "";
    start();
  });
  $("signout").addEventListener("click", async () => {
    const given = credential();
    sessionStorage.removeItem(SESSION);
    if (given && given.kind === "entra" && msalApp) await msalApp.clearCache().catch(() => {});
    location.reload();
  });
  await setUpEntra();
  start();
}

let started = false;

async function start() {
  if (!credential()) {
    showSignIn("");
    return;
  }
  try {
    const me = await json("/me");
    $("who").textContent = `Signed in as ${me.name} (${me.roles.join(", ") || "no roles"}${me.teams.length ? "; " + me.teams.join(", ") : ""})`;
  } catch (error) {
    showSignIn(error.message);
    return;
  }
  $("signin").hidden = true;
  $("signout").hidden = false;
  $("content").hidden = false;
  showError("");
  if (!started) {
    started = true;
    PAGES[document.body.dataset.page]();
  }
}

document.addEventListener("DOMContentLoaded", init, { once: true });
