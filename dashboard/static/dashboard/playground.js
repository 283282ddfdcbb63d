// The playground: start a session through the public API, then speak the realtime protocol (vsn 1.0.0,
// JSON objects) like the editor: join realtime:project:<id>, send file:update, read file:synced acks.
// Its session is the operator's: Stop ends it (DELETE through the API, which destroys the machine), and so
// does leaving the page, so a playground never leaves a machine running behind a closed tab.
(function () {
  "use strict";
  const config = JSON.parse(document.getElementById("pg-config").textContent);
  const startButton = document.getElementById("pg-start");
  const stopButton = document.getElementById("pg-stop");
  const statusText = document.getElementById("pg-status");
  const fileSelect = document.getElementById("pg-file");
  const editor = document.getElementById("pg-editor");
  const acks = document.getElementById("pg-acks");
  const preview = document.getElementById("pg-preview");
  const previewLink = document.getElementById("pg-url");
  const HEARTBEAT_MS = 25000;
  const EDIT_DEBOUNCE_MS = 300;
  const files = new Map(config.files.map(function (f) { return [f.path, f.content]; }));
  const versions = new Map();
  const sentAt = new Map();
  const topic = "realtime:project:" + config.project_id;
  let socket = null;
  let ref = 0;
  let joinRef = null;
  let editTimer = null;
  let framework = "";
  let sessionId = null;
  let heartbeatTimer = null;
  let run = 0; // which start() is current: a stop makes the one still waiting moot

  function say(text) { statusText.textContent = text; }

  function api(method, path, body) {
    return fetch(config.api_url + path, {
      method: method,
      headers: { Authorization: "Bearer " + config.token, "Content-Type": "application/json" },
      body: body ? JSON.stringify(body) : undefined,
    }).then(function (response) {
      return response.json().then(function (data) {
        if (!response.ok) throw new Error((data.error && data.error.message) || response.statusText);
        return data;
      });
    });
  }

  function waitActive(session) {
    if (session.status === "active") return Promise.resolve(session);
    if (session.status !== "creating") return Promise.reject(new Error("the session " + session.status));
    return new Promise(function (resolve) { setTimeout(resolve, 1000); })
      .then(function () { return api("GET", "sessions/" + session.id + "/"); })
      .then(waitActive);
  }

  function push(event, payload) {
    ref += 1;
    const frame = { topic: event === "heartbeat" ? "phoenix" : topic, event: event, payload: payload, ref: String(ref) };
    if (event !== "heartbeat") frame.join_ref = joinRef;
    socket.send(JSON.stringify(frame));
    return String(ref);
  }

  function socketUrl() {
    const base = config.realtime_url || (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/realtime/v1/websocket";
    return base + "?apikey=" + encodeURIComponent(config.token) + "&vsn=1.0.0";
  }

  function connect() {
    return new Promise(function (resolve, reject) {
      socket = new WebSocket(socketUrl());
      socket.onopen = function () {
        ref += 1;
        joinRef = String(ref);
        socket.send(JSON.stringify({
          topic: topic, event: "phx_join", ref: joinRef, join_ref: joinRef,
          payload: { config: { broadcast: { self: false, ack: false }, presence: { key: "", enabled: false }, private: true, postgres_changes: [] }, access_token: config.token },
        }));
        heartbeatTimer = setInterval(function () { push("heartbeat", {}); }, HEARTBEAT_MS);
      };
      socket.onmessage = function (message) {
        const frame = JSON.parse(message.data);
        if (frame.event === "phx_reply" && frame.ref === joinRef) {
          if (frame.payload.status === "ok") resolve(); else reject(new Error("join refused"));
        } else if (frame.event === "broadcast" && frame.payload.event === "file:synced") {
          onSynced([frame.payload.payload]);
        } else if (frame.event === "broadcast" && frame.payload.event === "files:synced") {
          onSynced(frame.payload.payload.files || []); // acks that waited their turn, merged by the agent
        } else if (frame.event === "broadcast" && frame.payload.event === "agent:manifest") {
          onManifest(frame.payload.payload);
        }
      };
      socket.onclose = function () { if (sessionId) say("Realtime connection closed."); };
      socket.onerror = function () { reject(new Error("realtime connection failed")); };
    });
  }

  function sendFile(path, content) {
    const version = (versions.get(path) || 0) + 1;
    versions.set(path, version);
    const now = Date.now();
    sentAt.set(path + "@" + version, now);
    push("broadcast", { type: "broadcast", event: "file:update", payload: { path: path, content: content, encoding: "utf-8", version: version, sent_at: now } });
  }

  // The agent publishes its manifest when it joins, which may be after `active` and after this page sent its
  // files: once every part is in, each file the agent lacks at our version goes again (only those: a rewrite
  // of package.json would restart the dev server).
  let manifestSeen = {};
  function onManifest(manifest) {
    Object.assign(manifestSeen, manifest.files || {});
    if (Number(manifest.part || 1) !== Number(manifest.parts || 1)) return;
    const known = manifestSeen;
    manifestSeen = {};
    files.forEach(function (content, path) {
      const held = known[path];
      if (versions.has(path) && (!held || Number(held.version) < versions.get(path))) sendFile(path, content);
    });
  }

  function onSynced(ackList) {
    ackList.forEach(showAck);
    if (!ackList.length) return;
    const last = ackList[ackList.length - 1];
    document.body.dataset.lastAck = last.path + "@" + last.version;
    if (framework !== "vite" && preview.src !== "about:blank") preview.src = preview.dataset.url + "?v=" + Date.now();
  }

  function showAck(ack) {
    const started = sentAt.get(ack.path + "@" + ack.version);
    const lag = started ? Date.now() - started : ack.latency_ms;
    const row = document.createElement("tr");
    [ack.path, ack.version, lag === undefined || lag === null ? "–" : Math.round(lag) + " ms"].forEach(function (text, i) {
      const td = document.createElement("td");
      td.textContent = String(text);
      if (i > 0) td.className = "num";
      row.appendChild(td);
    });
    acks.prepend(row);
  }

  function showPreview(session) {
    framework = session.framework || "";
    preview.dataset.url = session.preview_url;
    preview.src = session.preview_url;
    previewLink.href = session.preview_url;
    previewLink.textContent = session.preview_url;
    previewLink.hidden = false;
  }

  function start() {
    const thisRun = ++run;
    startButton.disabled = true;
    say("Creating a session…");
    api("POST", "sessions/", { project_id: config.project_id })
      .then(function (session) {
        sessionId = session.id;
        stopButton.disabled = false;
        say("Waiting for the machine…");
        return waitActive(session);
      })
      .then(function (session) {
        say("Connecting to realtime…");
        return connect().then(function () { return session; });
      })
      .then(function (session) {
        if (thisRun !== run) return;
        files.forEach(function (content, path) { sendFile(path, content); });
        showPreview(session);
        editor.disabled = false;
        document.body.dataset.sessionId = session.id;
        say("Live: session " + session.id + ". Edits are sent as you type.");
      })
      .catch(function (error) {
        if (thisRun !== run) return; // stopped meanwhile: stop() said what happened
        say("Failed: " + error.message);
        startButton.disabled = false;
      });
  }

  function sessionPath() { return "sessions/" + sessionId + "/"; }

  // Back to "not started": no socket, no preview, nothing to edit.
  function reset() {
    sessionId = null;
    clearInterval(heartbeatTimer);
    if (socket) socket.close();
    socket = null;
    preview.src = "about:blank";
    previewLink.hidden = true;
    editor.disabled = true;
    stopButton.disabled = true;
    startButton.disabled = false;
  }

  function stop() {
    const id = sessionId;
    run += 1;
    stopButton.disabled = true;
    say("Stopping…");
    api("DELETE", sessionPath())
      .then(function (session) {
        reset();
        document.body.dataset.stoppedSessionId = id;
        say("Stopped: session " + id + " " + session.status + ", its machine destroyed.");
      })
      .catch(function (error) { say("Stop failed: " + error.message); stopButton.disabled = false; });
  }

  // The page is going away (closed, reloaded, navigated off): end the session. A keepalive request outlives
  // the page and, unlike sendBeacon, carries the bearer token the API authenticates with.
  function endOnLeave() {
    if (!sessionId) return;
    fetch(config.api_url + sessionPath(), {
      method: "DELETE",
      keepalive: true,
      headers: { Authorization: "Bearer " + config.token },
    });
    sessionId = null;
  }

  files.forEach(function (_content, path) {
    const option = document.createElement("option");
    option.value = path;
    option.textContent = path;
    option.selected = path === config.editable;
    fileSelect.appendChild(option);
  });
  editor.value = files.get(config.editable) || "";
  fileSelect.addEventListener("change", function () { editor.value = files.get(fileSelect.value) || ""; });
  editor.addEventListener("input", function () {
    files.set(fileSelect.value, editor.value);
    clearTimeout(editTimer);
    editTimer = setTimeout(function () { sendFile(fileSelect.value, editor.value); }, EDIT_DEBOUNCE_MS);
  });
  startButton.addEventListener("click", start);
  stopButton.addEventListener("click", stop);
  window.addEventListener("pagehide", endOnLeave);
})();
