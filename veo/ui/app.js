// veo UI: reads the REST API, listens to /ws for events, and re-reads what an event changes.
// Plain JS, no build step and nothing fetched from elsewhere. Every name shown comes from users'
// files, so text goes in through textContent, never innerHTML.
"use strict";

const state = {
  token: sessionStorage.getItem("veoToken") || "",
  lastIndex: null,      // the last event index seen: the websocket resumes after it
  fetchedAt: 0,         // when containers were read (uptimes tick from there)
  containers: [],
  refreshTimer: null,
  socket: null,
  retry: 500,
};

// ---- helpers -------------------------------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k.startsWith("data-")) node.setAttribute(k, v);
    else if (k === "title") node.title = v;
    else node[k] = v;
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(c ?? ""));
  return node;
}

function size(bytes) {
  if (!bytes) return "0";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (bytes >= 1024 && i < units.length - 1) { bytes /= 1024; i++; }
  return `${bytes >= 10 || i === 0 ? Math.round(bytes) : bytes.toFixed(1)}${units[i]}`;
}

function duration(s) {
  if (s == null) return "";
  s = Math.floor(s);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h${String(Math.floor(s / 60) % 60).padStart(2, "0")}m`;
  return `${Math.floor(s / 86400)}d${Math.floor(s / 3600) % 24}h`;
}

function meter(used, total, text) {
  const pct = total > 0 ? Math.min(100, (used / total) * 100) : 0;
  const bar = el("span");
  bar.style.width = `${pct}%`;
  return el("div", { class: `meter${pct > 85 ? " high" : ""}`, title: `${pct.toFixed(0)}%` }, bar, el("em", {}, text));
}

function badge(kind, value) {
  return el("span", { class: `badge ${kind}-${value}` }, value);
}

function notice(text, kind = "error") {
  const bar = document.getElementById("notice");
  bar.textContent = text;
  bar.className = `bar ${kind}`;
  clearTimeout(notice.timer);
  notice.timer = setTimeout(() => bar.classList.add("hidden"), kind === "error" ? 8000 : 3000);
}

// ---- the API -------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, body) {
    super(body && body.message ? body.message : `HTTP ${status}`);
    this.status = status;
    this.problems = (body && body.problems) || [];
  }
}

async function api(method, path, body, type = "application/json") {
  const headers = {};
  if (state.token) headers.Authorization = `Bearer ${state.token}`;
  const init = { method, headers };
  if (body !== undefined) {
    headers["Content-Type"] = type;
    init.body = type === "application/json" ? JSON.stringify(body) : body;
  }
  const res = await fetch(path, init);
  const data = res.headers.get("content-type")?.includes("json") ? await res.json() : await res.text();
  if (res.status === 401) askToken();
  if (!res.ok) throw new ApiError(res.status, data);
  return data;
}

function askToken() {
  document.getElementById("token-bar").classList.remove("hidden");
  document.getElementById("token-input").focus();
}

// ---- reading and drawing -------------------------------------------------------------------

async function refresh() {
  try {
    const [cluster, nodes, containers, updates, tasks] = await Promise.all([
      api("GET", "/api/cluster"), api("GET", "/api/nodes"), api("GET", "/api/containers"),
      api("GET", "/api/updates"), api("GET", "/api/tasks"),
    ]);
    state.containers = containers;
    state.fetchedAt = Date.now();
    drawSummary(cluster);
    drawNodes(nodes);
    drawContainers();
    drawPending(containers);
    drawUpdates(updates);
    drawTasks(tasks);
  } catch (e) {
    if (e.status !== 401) notice(`cannot read the cluster: ${e.message}`);
  }
}

function scheduleRefresh(delay = 250) {
  // a burst of events (a group restarting) costs one re-read, not one per event
  clearTimeout(state.refreshTimer);
  state.refreshTimer = setTimeout(refresh, delay);
}

function card(label, value, sub) {
  return el("div", { class: "card" }, el("div", { class: "label" }, label),
            el("div", { class: "value" }, value), sub);
}

function drawSummary(c) {
  document.getElementById("cluster-name").textContent = c.name;
  document.title = `veo: ${c.name}`;
  document.getElementById("dashboard-link").href = c.dashboard_url;
  const t = c.totals;
  const n = c.containers;
  document.getElementById("summary").replaceChildren(
    card("nodes", `${c.nodes_alive}/${c.nodes_total}`, el("div", { class: "sub" }, "live / known")),
    card("containers", String(n.running), el("div", { class: "sub" },
      `running · ${n.pending} pending · ${n.failed} failed · ${n.backoff + n.starting} starting`)),
    card("cpu", `${t.cpus_allocated.toFixed(2)} / ${t.cpus_total}`, meter(t.cpus_allocated, t.cpus_total, "allocated")),
    card("memory", `${size(t.memory_allocated)} / ${size(t.memory_total)}`, meter(t.memory_allocated, t.memory_total, "allocated")),
    card("disk", `${size(t.disk_allocated)} / ${size(t.disk_total)}`, meter(t.disk_allocated, t.disk_total, "allocated")),
  );
}

function nodeState(n) {
  const parts = [badge("n", n.alive ? "alive" : "down")];
  if (n.cordoned) parts.push(" ", badge("n", "cordoned"));
  return el("td", {}, ...parts);
}

function drawNodes(nodes) {
  const rows = nodes.map((n) => {
    const actions = el("td", { class: "actions" },
      n.cordoned ? action("uncordon", () => api("POST", `/api/nodes/${enc(n.name)}/uncordon`))
                 : action("cordon", () => api("POST", `/api/nodes/${enc(n.name)}/cordon`)),
      action("drain", () => api("POST", `/api/nodes/${enc(n.name)}/drain`), true,
             "move everything off this node and cordon it"));
    return el("tr", { "data-node": n.name },
      el("td", {}, el("strong", {}, n.name)), el("td", {}, n.role || ""), nodeState(n),
      el("td", {}, meter(n.cpus_allocated, n.cpus_total, `${n.cpus_allocated.toFixed(2)} / ${n.cpus_total}`)),
      el("td", {}, meter(n.memory_allocated, n.memory_total, `${size(n.memory_allocated)} / ${size(n.memory_total)}`)),
      el("td", {}, meter(n.disk_allocated, n.disk_total, `${size(n.disk_allocated)} / ${size(n.disk_total)}`)),
      el("td", { class: "num" }, String(n.containers)), actions);
  });
  document.querySelector("#nodes tbody").replaceChildren(...rows);
}

function uptimeNow(c) {
  return c.uptime_seconds == null ? null : c.uptime_seconds + (Date.now() - state.fetchedAt) / 1000;
}

function containerRow(c) {
  const hot = c.restarts > 0 ? "num restarts-hot" : "num";
  return el("tr", { "data-service": c.service, "data-instance": String(c.instance),
                    "data-status": c.status, "data-restarts": String(c.restarts), "data-key": c.key },
    el("td", {}, el("strong", {}, c.service)), el("td", { class: "num" }, String(c.instance)),
    el("td", {}, c.group || ""), el("td", {}, c.node || ""),
    el("td", { title: c.reason || "" }, badge("s", c.status)),
    el("td", {}, c.health === "none" ? "" : badge("h", c.health)),
    el("td", { class: hot }, String(c.restarts)),
    el("td", { class: "num uptime" }, duration(uptimeNow(c))),
    el("td", { class: "id", title: c.id || "" }, (c.id || "").slice(0, 12)),
    el("td", { class: "actions" },
      action("restart", () => api("POST", `/api/containers/${enc(c.key)}/restart`), false,
             `restart ${c.service}#${c.instance}`),
      action("remove", () => api("DELETE", `/api/services/${enc(c.service)}`), true,
             `remove the service ${c.service} (every instance)`)));
}

function drawContainers() {
  const filter = document.getElementById("filter").value.trim().toLowerCase();
  const shown = state.containers.filter((c) => !filter ||
    [c.service, c.node, c.group, c.status, c.health].some((v) => (v || "").toLowerCase().includes(filter)));
  document.querySelector("#containers tbody").replaceChildren(...shown.map(containerRow));
  document.getElementById("no-containers").classList.toggle("hidden", state.containers.length > 0);
}

function drawPending(containers) {
  const pending = containers.filter((c) => c.status === "pending");
  const items = pending.map((c) => el("li", { "data-key": c.key }, el("strong", {}, `${c.service}#${c.instance}`),
    ": ", el("span", { class: "reason" }, c.reason || "waiting for a node")));
  if (!items.length) items.push(el("li", { class: "muted" }, "nothing is waiting for a node"));
  document.getElementById("pending").replaceChildren(...items);
}

// Rolling updates: progress, and the buttons that drive one (pause / resume / promote / rollback).
function drawUpdates(updates) {
  const active = ["running", "canary", "paused"];
  const items = updates.filter((u) => active.includes(u.state)).map((u) => {
    const total = u.units.length;
    const progress = el("progress", { max: total, value: u.done.length, title: `${u.done.length}/${total}` });
    const buttons = [];
    const go = (verb) => () => api("POST", `/api/updates/${enc(u.target)}/${verb}`);
    if (u.state === "running") buttons.push(action("pause", go("pause")));
    if (u.state === "paused") buttons.push(action("resume", go("resume")));
    if (u.state === "canary") buttons.push(action("promote", go("promote")));
    buttons.push(action("rollback", go("rollback"), true, "revert the replaced units now"));
    return el("li", { "data-target": u.target }, el("strong", {}, u.target), " ", badge("update", u.state), " ",
      progress, ` ${u.done.length}/${total} replaced`,
      Object.keys(u.in_flight).length ? ` · in flight: ${Object.keys(u.in_flight).join(", ")}` : "",
      u.failed.length ? ` · failed: ${u.failed.join(", ")}` : "", " ", ...buttons,
      u.reason ? el("div", { class: "reason" }, u.reason) : "");
  });
  if (!items.length) items.push(el("li", { class: "muted" }, "no update in progress"));
  document.getElementById("updates").replaceChildren(...items);
}

// Scheduled tasks: when each runs next, how its last run ended, and a button to run it now.
function when(iso) {
  return iso ? iso.replace("T", " ").replace("Z", " UTC") : "";
}

function taskRow(t) {
  const last = t.last_run;
  const lastCell = last
    ? el("td", { title: `scheduled ${when(last.scheduled)}${last.manual ? " (run now)" : ""}` },
         badge("run", last.state), " ", when(last.started || last.scheduled))
    : el("td", { class: "muted" }, "never");
  return el("tr", { "data-task": t.name, "data-next": t.next_run || "",
                    "data-last-state": last ? last.state : "", "data-active": String(t.active) },
    el("td", {}, el("strong", {}, t.name)),
    el("td", { class: "schedule", title: t.time_zone ? `time zone ${t.time_zone}` : "" },
       el("code", {}, t.schedule.join(" | ")), el("div", { class: "reason" }, t.words)),
    el("td", { class: "next" }, when(t.next_run)),
    lastCell,
    el("td", { class: "num exit" }, last && last.exit_code != null ? String(last.exit_code) : ""),
    el("td", { class: "num took" }, last && last.duration != null ? `${last.duration}s` : ""),
    el("td", { class: "num" }, String(t.active)),
    el("td", { class: "actions" },
      action("run now", () => api("POST", `/api/tasks/${enc(t.name)}/run`), false,
             `start a run of ${t.name} now, outside its schedule`)));
}

function drawTasks(tasks) {
  document.querySelector("#tasks tbody").replaceChildren(...tasks.map(taskRow));
  document.getElementById("no-tasks").classList.toggle("hidden", tasks.length > 0);
}

function tickUptimes() {
  const rows = document.querySelectorAll("#containers tbody tr");
  rows.forEach((row) => {
    const c = state.containers.find((x) => x.key === row.dataset.key);
    if (c) row.querySelector(".uptime").textContent = duration(uptimeNow(c));
  });
}

function enc(s) { return encodeURIComponent(s); }

// A button; `risky` ones ask for a second click (no modal dialogs to get in the way).
function action(label, run, risky = false, title = "") {
  const b = el("button", { type: "button", class: risky ? "danger" : "", title }, label);
  b.addEventListener("click", async () => {
    if (risky && !b.classList.contains("confirming")) {
      b.classList.add("confirming");
      b.textContent = `${label}?`;
      setTimeout(() => { b.classList.remove("confirming"); b.textContent = label; }, 3000);
      return;
    }
    b.disabled = true;
    try {
      const out = await run();
      notice(out && out.detail ? out.detail : `${label}: done`, "ok");
    } catch (e) {
      notice(`${label}: ${e.message}`);
    }
    scheduleRefresh(0);
  });
  return b;
}

// ---- events --------------------------------------------------------------------------------

function eventItem(e) {
  const when = new Date(e.time * 1000).toTimeString().slice(0, 8);
  const who = [e.service != null ? `${e.service}${e.instance != null ? "#" + e.instance : ""}` : "",
               e.node ? `on ${e.node}` : ""].filter(Boolean).join(" ");
  const what = el("span", {}, who);
  if (e.reason) what.append(el("span", { class: "why" }, e.reason));
  return el("li", { "data-index": String(e.index), "data-kind": e.kind },
    el("span", { class: "t" }, when), el("span", { class: `k k-${e.kind}` }, e.kind), what);
}

function addEvent(e) {
  if (state.lastIndex != null && e.index <= state.lastIndex) return;
  state.lastIndex = e.index;
  const list = document.getElementById("events");
  list.prepend(eventItem(e));
  while (list.children.length > 200) list.lastChild.remove();
  document.getElementById("event-index").textContent = `#${e.index}`;
}

async function loadRecentEvents() {
  try {
    const events = await api("GET", "/api/events?limit=60");
    events.forEach(addEvent);
  } catch (e) { /* the websocket replays what is missing */ }
}

function setConn(text, cls) {
  const c = document.getElementById("conn");
  c.textContent = text;
  c.className = `pill ${cls}`;
}

function connect() {
  const proto = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${proto}://${location.host}/ws`);
  state.socket = ws;
  ws.onopen = () => {
    if (state.token) ws.send(JSON.stringify({ op: "auth", token: state.token }));
    const sub = { op: "subscribe", id: "ui", cluster: true };
    if (state.lastIndex != null) sub.since = state.lastIndex;
    ws.send(JSON.stringify(sub));
  };
  ws.onmessage = (m) => onMessage(JSON.parse(m.data));
  ws.onclose = () => {
    setConn("offline", "pill-down");
    setTimeout(connect, state.retry);
    state.retry = Math.min(state.retry * 2, 10000);
  };
}

function onMessage(msg) {
  if (msg.type === "subscribed") {
    setConn("live", "pill-live");
    state.retry = 500;
    scheduleRefresh(0);
  } else if (msg.type === "event") {
    addEvent(msg.event);
    scheduleRefresh();
  } else if (msg.type === "error") {
    if (msg.code === "unauthorized") askToken();
    else if (msg.code === "overflow") state.socket.close();  // reconnect resumes from lastIndex
    else notice(`live updates: ${msg.message}`);
  }
}

// ---- adding a service ----------------------------------------------------------------------

function formService(form) {
  const f = new FormData(form);
  const svc = { name: f.get("name").trim(), image: f.get("image").trim(), restart: f.get("restart") };
  const optional = { command: f.get("command").trim(), cpus: f.get("cpus").trim(),
                     memory: f.get("memory").trim(), network_mode: f.get("network_mode") };
  for (const [k, v] of Object.entries(optional)) if (v) svc[k] = v;
  const inst = f.get("instances").trim();
  if (inst) svc.instances = inst === "all" ? "all" : Number(inst);
  return svc;
}

function showProblems(e) {
  const list = document.getElementById("add-errors");
  const lines = e.problems && e.problems.length ? e.problems.map((p) => p.text) : [e.message];
  list.replaceChildren(...lines.map((t) => el("li", {}, t)));
}

async function onAdd(ev) {
  ev.preventDefault();
  const form = ev.target;
  const yaml = !document.getElementById("yaml-pane").classList.contains("hidden");
  document.getElementById("add-errors").replaceChildren();
  try {
    const out = yaml ? await api("POST", "/api/services", form.yaml.value, "application/yaml")
                     : await api("POST", "/api/services", formService(form));
    notice(`added ${out.created.join(", ")}`, "ok");
    if (!yaml) form.name.value = "";
    scheduleRefresh(0);
  } catch (e) {
    showProblems(e);
  }
}

function switchTab(button) {
  document.querySelectorAll(".tab").forEach((t) => t.classList.toggle("active", t === button));
  document.querySelectorAll(".tab-pane").forEach((p) => p.classList.toggle("hidden", p.id !== button.dataset.tab));
  document.querySelector("#form-pane input[name=name]").required = button.dataset.tab === "form-pane";
  document.querySelector("#form-pane input[name=image]").required = button.dataset.tab === "form-pane";
}

// ---- start ---------------------------------------------------------------------------------

function start() {
  document.getElementById("add-form").addEventListener("submit", onAdd);
  document.querySelectorAll(".tab").forEach((t) => t.addEventListener("click", () => switchTab(t)));
  document.getElementById("filter").addEventListener("input", drawContainers);
  document.getElementById("token-button").addEventListener("click", askToken);
  document.getElementById("token-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    state.token = document.getElementById("token-input").value.trim();
    sessionStorage.setItem("veoToken", state.token);
    document.getElementById("token-bar").classList.add("hidden");
    if (state.socket) state.socket.close();
    refresh();
  });
  loadRecentEvents().then(connect);
  refresh();
  setInterval(tickUptimes, 1000);
  setInterval(refresh, 5000);  // health and allocation change without an event too
}

start();
