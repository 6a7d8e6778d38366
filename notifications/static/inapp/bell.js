// The bell: the reference client of the in-app protocol v1 (docs/inapp-protocol.md).
// No framework, no build step. Copy it, or read it to write your own:
//  - the list and the unread count come from the inbox REST API (/api/v1/me/inbox);
//  - live notifications come over the WebSocket, authenticated by the first message;
//  - on a lost connection it reconnects with exponential backoff and resumes from the last
//    cursor it saw (no gap, no duplicate);
//  - where WebSockets fail to open at all, it falls back to Server-Sent Events.
(function () {
  "use strict";

  var script = document.currentScript;
  var TOKEN = script.dataset.token;
  var API = script.dataset.api || "/api/v1/me";
  var WS_PATH = script.dataset.ws || "/ws/notifications/";
  var BACKOFF_MIN = 1000, BACKOFF_MAX = 30000, PING_EVERY = 25000;
  var UNAUTHORIZED = 4401;

  var el = function (id) { return document.getElementById(id); };
  var badge = el("badge"), list = el("list"), empty = el("empty"), more = el("more");
  var button = el("bell-button"), dropdown = el("dropdown"), statusText = el("status");

  var items = new Map();     // id -> item, everything shown
  // Newest cursor seen: what a (re)connect resumes from. Before anything is seen, a cursor
  // before every id, so that what arrives between the first page and the socket is replayed.
  var lastCursor = "00000000-0000-0000-0000-000000000000";
  var nextPage = null;       // cursor of the next (older) page
  var backoff = BACKOFF_MIN, socket = null, source = null, pinger = null, everOpened = false, failures = 0;

  function setStatus(text) { statusText.textContent = text; }

  function setCount(count) {
    badge.textContent = count > 99 ? "99+" : String(count);
    badge.hidden = count === 0;
    button.setAttribute("aria-label", count + " unread notifications");
  }

  function newer(a, b) { return a > b; } // cursors are UUIDv7 strings: they sort by time

  function remember(cursor) { if (newer(cursor, lastCursor)) lastCursor = cursor; }

  function api(method, path, body) {
    var options = { method: method, headers: { Authorization: "Bearer " + TOKEN, Accept: "application/json" } };
    if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    return fetch(API + path, options).then(function (response) {
      if (response.status === 401) { setStatus("token expired: ask the app for a new one"); throw new Error("401"); }
      return response.json();
    });
  }

  function render() {
    var sorted = Array.from(items.values()).sort(function (a, b) { return a.id < b.id ? 1 : -1; });
    list.textContent = "";
    sorted.forEach(function (item) {
      var li = document.createElement("li");
      li.className = item.read ? "read" : "unread";
      li.dataset.id = item.id;
      var title = document.createElement("div"); title.className = "title"; title.textContent = item.title;
      var body = document.createElement("div"); body.className = "body"; body.textContent = item.body;
      var meta = document.createElement("div"); meta.className = "meta";
      meta.textContent = new Date(item.created_at).toLocaleString() + (item.category ? " · " + item.category : "");
      li.append(title, body, meta);
      li.addEventListener("click", function () { markRead(item); });
      list.append(li);
    });
    empty.hidden = sorted.length > 0;
    more.hidden = !nextPage;
  }

  function add(item) {
    var known = items.get(item.id);
    items.set(item.id, Object.assign({ read: false }, known || {}, item));
    remember(item.cursor);
  }

  function loadPage(cursor) {
    var query = "?limit=20" + (cursor ? "&cursor=" + encodeURIComponent(cursor) : "");
    return api("GET", "/inbox" + query).then(function (page) {
      page.items.forEach(add);
      nextPage = page.next_cursor;
      setCount(page.unread_count);
      render();
    });
  }

  function markRead(item) {
    if (item.read) return;
    item.read = true;
    render();
    // Over the socket when open (every tab gets the new count); else the REST API.
    if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ type: "read", ids: [item.id] }));
    else api("POST", "/inbox/" + item.id + "/read").then(function (r) { setCount(r.unread_count); });
  }

  function markAllRead() {
    items.forEach(function (item) { item.read = true; });
    render();
    if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ type: "read_all" }));
    else api("POST", "/inbox/read-all").then(function (r) { setCount(r.unread_count); });
  }

  function onFrame(frame) {
    if (frame.type === "notification") { add(frame); render(); }
    else if (frame.type === "unread_count") setCount(frame.count);
  }

  // --- WebSocket, with backoff and resume ---------------------------------------------

  function connect() {
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    socket = new WebSocket(scheme + location.host + WS_PATH);
    socket.onopen = function () {
      // The token goes in the first message, not the URL (URLs end up in access logs).
      socket.send(JSON.stringify({ type: "auth", token: TOKEN, cursor: lastCursor }));
    };
    socket.onmessage = function (event) {
      var frame = JSON.parse(event.data);
      if (frame.type === "hello") {
        everOpened = true; failures = 0; backoff = BACKOFF_MIN;
        setStatus("live (WebSocket)");
        pinger = setInterval(function () { socket.send(JSON.stringify({ type: "ping" })); }, PING_EVERY);
        return;
      }
      if (frame.type === "notification") socket.send(JSON.stringify({ type: "ack", ids: [frame.id] }));
      onFrame(frame);
    };
    socket.onclose = function (event) {
      clearInterval(pinger);
      socket = null;
      if (event.code === UNAUTHORIZED) { setStatus("token expired or invalid: ask the app for a new one"); return; }
      failures += 1;
      if (!everOpened && failures >= 2) { streamEvents(); return; } // WebSockets blocked here
      var delay = backoff * (0.75 + Math.random() * 0.5);
      backoff = Math.min(backoff * 2, BACKOFF_MAX);
      setStatus("reconnecting in " + Math.round(delay / 1000) + " s…");
      setTimeout(connect, delay);
    };
  }

  // --- Server-Sent Events fallback (EventSource reconnects and sends Last-Event-ID itself) ---

  function streamEvents() {
    var url = API + "/stream?token=" + encodeURIComponent(TOKEN) + "&cursor=" + encodeURIComponent(lastCursor);
    source = new EventSource(url);
    source.onopen = function () { setStatus("live (Server-Sent Events)"); };
    source.onerror = function () { setStatus("reconnecting (Server-Sent Events)…"); };
    source.addEventListener("notification", function (event) { onFrame(JSON.parse(event.data)); });
    source.addEventListener("unread_count", function (event) { onFrame(JSON.parse(event.data)); });
  }

  // --- UI ----------------------------------------------------------------------------------

  button.addEventListener("click", function () {
    var open = dropdown.hidden;
    dropdown.hidden = !open;
    button.setAttribute("aria-expanded", String(open));
  });
  document.addEventListener("click", function (event) {
    if (!el("bell").contains(event.target)) { dropdown.hidden = true; button.setAttribute("aria-expanded", "false"); }
  });
  el("read-all").addEventListener("click", markAllRead);
  more.addEventListener("click", function () { loadPage(nextPage); });

  if (!TOKEN) { setStatus("no token: open this page as /inbox/?token=<user token>"); return; }
  var forceSse = new URLSearchParams(location.search).get("transport") === "sse";
  loadPage(null).then(function () { if (forceSse || !("WebSocket" in window)) streamEvents(); else connect(); });
})();
