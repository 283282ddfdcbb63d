// Live dashboard pages: listen on /ws/ops/ and re-render this page's regions when something changes.
// While the socket is down, fetch the same regions from the JSON status endpoint every few seconds.
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
  let retryMs = 1000;

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
        if (html !== undefined) node.innerHTML = html;
      });
      body.dataset.refreshedAt = data.at;
    } catch (error) {
      /* the next event or poll tries again */
    }
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
    if (pollTimer === null) pollTimer = setInterval(refresh, POLL_MS);
  }

  function stopPolling() {
    if (pollTimer !== null) clearInterval(pollTimer);
    pollTimer = null;
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
    const lag = data.event === "file:synced" ? (data.latency_ms ?? data.ack_lag_ms) : data.lag_ms;
    cell(row, new Date(event.at).toLocaleTimeString());
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
      if (!document.getElementById("sync-feed")) scheduleTrafficRefresh();
      return;
    }
    scheduleRefresh();
  }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    let socket;
    try {
      socket = new WebSocket(scheme + location.host + wsPath);
    } catch (error) {
      reconnectLater();
      return;
    }
    socket.onopen = function () {
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
      setState("polling", "Offline: refreshing every " + POLL_MS / 1000 + " s");
      startPolling();
      reconnectLater();
    };
  }

  function reconnectLater() {
    setTimeout(connect, retryMs);
    retryMs = Math.min(retryMs * 2, 30000);
  }

  // Health is mostly about what does not happen (a stopped worker sends no event): a region that says
  // data-refresh-ms is also refreshed on that timer, socket or not.
  const ticking = document.querySelector("[data-region][data-refresh-ms]");
  if (ticking) setInterval(refresh, Number(ticking.dataset.refreshMs));

  connect();
})();
