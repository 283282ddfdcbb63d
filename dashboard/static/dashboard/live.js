// Live dashboard pages: listen on /ws/ops/ and re-render this page's regions when something changes.
// Whenever the socket cannot carry updates (it will not open, a Content-Security-Policy makes `new WebSocket()`
// throw, it closes), fetch the same regions from the JSON status endpoint every few seconds instead, and say so.
(function () {
  "use strict";
  const body = document.body;
  const statusUrl = body.dataset.statusUrl;
  const wsPath = body.dataset.wsPath;
  const badge = document.getElementById("live-status");
  const POLL_MS = 5000;
  const REFRESH_DEBOUNCE_MS = 250;
  // Realtime traffic can be hundreds of messages a second: pages without a feed refresh for it at most
  // this often (enough to keep the messages-per-second figure current).
  const TRAFFIC_REFRESH_MS = 2000;
  const FEED_LIMIT = 200;
  let pollTimer = null;
  let refreshTimer = null;
  let trafficTimer = null;
  // A socket that neither opens nor fails within this long (a proxy holding the upgrade) counts as failed.
  const OPEN_TIMEOUT_MS = 5000;
  let retryMs = 1000;
  let openTimer = null;

  function setState(state, text) {
    badge.dataset.state = state;
    badge.textContent = text;
  }

  async function refresh() {
    refreshTimer = null;
    const regions = document.querySelectorAll("[data-region]");
    if (!regions.length) return;
    try {
      const response = await fetch(statusUrl, { headers: { Accept: "application/json" }, credentials: "same-origin" });
      if (!response.ok) return;
      const data = await response.json();
      regions.forEach(function (node) {
        const html = data.regions[node.dataset.region];
        if (html !== undefined) swap(node, html);
      });
      body.dataset.refreshedAt = data.at;
    } catch (error) {
      /* the next event or poll tries again */
    }
  }

  // Re-render a region, keeping where its tables were scrolled to (on a phone the Kill button is scrolled to).
  function swap(node, html) {
    const offsets = Array.from(node.querySelectorAll(".table-scroll"), function (box) { return box.scrollLeft; });
    node.innerHTML = html;
    node.querySelectorAll(".table-scroll").forEach(function (box, index) {
      if (offsets[index]) box.scrollLeft = offsets[index];
    });
  }

  function scheduleRefresh() {
    if (refreshTimer === null) refreshTimer = setTimeout(refresh, REFRESH_DEBOUNCE_MS);
  }

  function scheduleTrafficRefresh() {
    if (trafficTimer !== null) return;
    trafficTimer = setTimeout(function () {
      trafficTimer = null;
      scheduleRefresh();
    }, TRAFFIC_REFRESH_MS);
  }

  function startPolling() {
    setState("polling", "Polling every " + POLL_MS / 1000 + " s");
    if (pollTimer !== null) return;
    pollTimer = setInterval(refresh, POLL_MS);
    refresh(); // catch up at once on what the socket may have missed
  }

  function stopPolling() {
    if (pollTimer !== null) clearInterval(pollTimer);
    pollTimer = null;
  }

  // The same text as the server's `when` filter (dashboard/templatetags/dashboard.py): UTC, zone said.
  function utcText(iso) {
    return new Date(iso).toISOString().slice(0, 19).replace("T", " ") + " UTC";
  }

  function timeCell(row, iso) {
    const td = document.createElement("td");
    const time = document.createElement("time");
    time.dateTime = new Date(iso).toISOString().slice(0, 19) + "Z";
    time.textContent = utcText(iso);
    td.appendChild(time);
    row.appendChild(td);
  }

  function cell(row, text, numeric) {
    const td = document.createElement("td");
    td.textContent = text === null || text === undefined ? "–" : String(text);
    if (numeric) td.className = "num";
    row.appendChild(td);
  }

  function appendSync(event) {
    const feed = document.getElementById("sync-feed");
    if (!feed) return;
    const empty = feed.querySelector(".empty");
    if (empty) empty.remove();
    const data = event.data;
    const row = document.createElement("tr");
    row.dataset.live = "1"; // arrived on the socket (the server's rows come from the kept records)
    const lag = data.event === "file:synced" ? (data.latency_ms ?? data.ack_lag_ms) : data.lag_ms;
    timeCell(row, event.at);
    cell(row, data.event);
    cell(row, data.path);
    cell(row, data.version, true);
    cell(row, data.size === undefined || data.size === null ? null : data.size + " B", true);
    cell(row, lag === undefined || lag === null ? null : Math.round(lag) + " ms", true);
    feed.prepend(row);
    while (feed.children.length > FEED_LIMIT) feed.lastElementChild.remove();
  }

  function appendLog(event) {
    const logs = document.getElementById("log-feed");
    if (!logs) return;
    logs.textContent += "[" + (event.data.stream || "agent") + "] " + (event.data.line || "") + "\n";
    logs.scrollTop = logs.scrollHeight;
  }

  function onEvent(event) {
    if (event.kind === "realtime.message") {
      const name = event.data.event;
      if (name === "file:update" || name === "file:synced" || name === "file:delete") appendSync(event);
      else if (name === "agent:log") appendLog(event);
      // The session page's unacknowledged-updates warning is computed from the stored events: re-read it
      // (throttled) when updates or acks pass. Pages without a feed refresh their traffic figures so.
      const backlog = document.querySelector('[data-region="session_sync_backlog"]');
      if (!document.getElementById("sync-feed") || (backlog && name !== "agent:log")) scheduleTrafficRefresh();
      return;
    }
    scheduleRefresh();
  }

  // "N file updates unacknowledged for M s": M counts on between refreshes, from the server's figure.
  function tickAges() {
    document.querySelectorAll("[data-age-seconds]").forEach(function (node) {
      if (!node.dataset.shownAt) node.dataset.shownAt = String(Date.now());
      const elapsed = Math.floor((Date.now() - Number(node.dataset.shownAt)) / 1000);
      node.textContent = Number(node.dataset.ageSeconds) + elapsed + " s";
    });
  }

  function scrollLogsToEnd() {
    const logs = document.getElementById("log-feed");
    if (logs) logs.scrollTop = logs.scrollHeight;
  }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    let socket;
    try {
      socket = new WebSocket(scheme + location.host + wsPath);
    } catch (error) {
      failed(); // e.g. blocked by a Content-Security-Policy: it throws instead of closing
      return;
    }
    openTimer = setTimeout(startPolling, OPEN_TIMEOUT_MS);
    socket.onopen = function () {
      clearTimeout(openTimer);
      retryMs = 1000;
      stopPolling();
      setState("live", "Live");
    };
    socket.onmessage = function (message) {
      const data = JSON.parse(message.data);
      if (data.type === "snapshot") scheduleRefresh();
      else if (data.type === "event") onEvent(data);
    };
    socket.onclose = function () {
      clearTimeout(openTimer);
      failed();
    };
  }

  // Every failure ends here: poll now, and try the socket again later (backing off to 30 s).
  function failed() {
    startPolling();
    setTimeout(connect, retryMs);
    retryMs = Math.min(retryMs * 2, 30000);
  }

  scrollLogsToEnd();
  setInterval(tickAges, 1000);
  // Health is mostly about what does not happen (a stopped worker sends no event): a region that says
  // data-refresh-ms is also refreshed on that timer, socket or not.
  const ticking = document.querySelector("[data-region][data-refresh-ms]");
  if (ticking) setInterval(refresh, Number(ticking.dataset.refreshMs));

  connect();
})();
