// Enclave's page. Plain JavaScript, no build step, no third-party code.
//
// Rules:
// - Text from peers and from the server is put into the page with textContent or as
//   attribute values, never parsed as HTML: there is no innerHTML in this file.
// - The launch token comes from the URL fragment (#token=...), which browsers never
//   send to a server. It is kept in sessionStorage for reloads of this tab and
//   removed from the address bar. It travels as a Bearer header on API calls and as an
//   offered WebSocket subprotocol.
// - One WebSocket brings every event; actions are JSON POSTs. After a reconnect the
//   page refetches what it shows, so nothing is missed.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const SVG = "http://www.w3.org/2000/svg";
  const ICONS = {
    lock: "M12 1a5 5 0 0 0-5 5v3H6a2 2 0 0 0-2 2v10a2 2 0 0 0 2 2h12a2 2 0 0 0 2-2V11a2 2 0 0 0-2-2h-1V6a5 5 0 0 0-5-5zm-3 8V6a3 3 0 0 1 6 0v3zm3 4a2 2 0 0 1 1 3.73V19h-2v-2.27A2 2 0 0 1 12 13z",
    key: "M7 14a2 2 0 1 1 0-4 2 2 0 0 1 0 4zm5.65-4A6 6 0 1 0 12.65 14H17v4h4v-4h2v-4z",
    shield: "M12 2 4 5v6c0 5.25 3.4 10.15 8 11.5 4.6-1.35 8-6.25 8-11.5V5zm-1.2 14.2-3.5-3.5 1.4-1.4 2.1 2.1 4.9-4.9 1.4 1.4z",
    server: "M17 16a3 3 0 0 0-2.4 1.2l-5.1-2.6a3 3 0 0 0 0-1.2l5.1-2.6A3 3 0 1 0 14 9c0 .2 0 .4.1.6L9 12.2a3 3 0 1 0 0 3.6l5.1 2.6-.1.6a3 3 0 1 0 3-3z",
    broadcast: "M3 10v4a1 1 0 0 0 1 1h2l5 4V5L6 9H4a1 1 0 0 0-1 1zm13.5 2A4.5 4.5 0 0 0 14 8v8a4.5 4.5 0 0 0 2.5-4zM14 3.2v2.1a7 7 0 0 1 0 13.4v2.1a9 9 0 0 0 0-17.6z",
    "add-user": "M15 12a4 4 0 1 0-4-4 4 4 0 0 0 4 4zm-9-2V7H4v3H1v2h3v3h2v-3h3v-2zm9 4c-2.7 0-8 1.3-8 4v2h16v-2c0-2.7-5.3-4-8-4z",
    qr: "M3 3h8v8H3zm2 2v4h4V5zm8-2h8v8h-8zm2 2v4h4V5zM3 13h8v8H3zm2 2v4h4v-4zm8-2h2v2h-2zm2 2h2v2h-2zm2-2h2v2h-2zm2 2h2v2h-2zm-4 2h2v2h-2zm2 2h2v2h-2zm2-2h2v2h-2zm-4 2h2v2h-2z",
    search: "M15.5 14h-.8l-.3-.3A6.5 6.5 0 1 0 14 15.5l.3.3v.8l5 5 1.5-1.5zm-6 0a4.5 4.5 0 1 1 0-9 4.5 4.5 0 0 1 0 9z",
    back: "M20 11H7.8l5.6-5.6L12 4l-8 8 8 8 1.4-1.4L7.8 13H20z",
    send: "M2 21l21-9L2 3v7l15 2-15 2z",
    upload: "M5 20h14v-2H5zm0-10h4v6h6v-6h4l-7-7z",
    close: "M19 6.4 17.6 5 12 10.6 6.4 5 5 6.4 10.6 12 5 17.6 6.4 19 12 13.4 17.6 19 19 17.6 13.4 12z",
    verified: "M12 1 3 5v6c0 5.5 3.8 10.7 9 12 5.2-1.3 9-6.5 9-12V5zm-2 16-4-4 1.4-1.4 2.6 2.6 6.6-6.6L18 9z",
    sent: "M9 16.2 4.8 12l-1.4 1.4L9 19 21 7l-1.4-1.4z",
    delivered: "M18 7l-1.4-1.4-6.3 6.3 1.4 1.4zm4.2-1.4L11.7 16.2 7.5 12l-1.4 1.4 5.6 5.6 12-12zM.4 13.4 6 19l1.4-1.4L1.8 12z",
    queued: "M12 2a10 10 0 1 0 0 20 10 10 0 0 0 0-20zm0 18a8 8 0 1 1 0-16 8 8 0 0 1 0 16zm.5-13H11v6l5.2 3.2.8-1.3-4.5-2.7z",
    failed: "M12 2a10 10 0 1 0 0 20 10 10 0 0 0 0-20zm1 15h-2v-2h2zm0-4h-2V7h2z",
  };
  const TICK_WORDS = { queued: "Queued", sent: "Sent", delivered: "Delivered", failed: "Not delivered" };
  const PAGE = 50;
  const TYPING_EVERY = 3000;
  const TYPING_IDLE = 4000;
  const TYPING_SHOWN = 6000;

  const state = {
    token: null,
    me: null,
    peers: new Map(),
    current: null,
    convos: new Map(),
    typing: new Map(),
    socket: null,
    socketTries: 0,
    everConnected: false,
    ready: false,
    query: "",
  };

  // --- small DOM helpers --------------------------------------------------------------

  function icon(name) {
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("class", "icon");
    svg.setAttribute("aria-hidden", "true");
    const path = document.createElementNS(SVG, "path");
    path.setAttribute("d", ICONS[name] || "");
    svg.appendChild(path);
    return svg;
  }

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  function fillIcons(root) {
    root.querySelectorAll("[data-icon]").forEach((node) => {
      if (!node.querySelector("svg")) node.prepend(icon(node.dataset.icon));
    });
  }

  function show(node, visible) {
    node.hidden = !visible;
  }

  // --- time ---------------------------------------------------------------------------

  const clock = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
  const dayFormat = new Intl.DateTimeFormat(undefined, { weekday: "long" });
  const dateFormat = new Intl.DateTimeFormat(undefined, { day: "numeric", month: "short", year: "numeric" });

  function startOfDay(ms) {
    const d = new Date(ms);
    d.setHours(0, 0, 0, 0);
    return d.getTime();
  }

  function dayLabel(ms) {
    const days = Math.round((startOfDay(Date.now()) - startOfDay(ms)) / 86400000);
    if (days === 0) return "Today";
    if (days === 1) return "Yesterday";
    if (days < 7) return dayFormat.format(ms);
    return dateFormat.format(ms);
  }

  function shortTime(ms) {
    const days = Math.round((startOfDay(Date.now()) - startOfDay(ms)) / 86400000);
    return days === 0 ? clock.format(ms) : dayLabel(ms);
  }

  // --- the server ---------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  async function api(method, path, body) {
    const options = { method, headers: { Authorization: `Bearer ${state.token}` }, cache: "no-store" };
    if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, options);
    } catch (err) {
      throw new ApiError(0, "Enclave is not answering; is it still running?");
    }
    let data = null;
    try {
      data = await response.json();
    } catch (err) {
      data = null;
    }
    if (!response.ok) {
      throw new ApiError(response.status, (data && data.error) || `request failed (${response.status})`);
    }
    return data;
  }

  function readToken() {
    const match = /(?:^#|&)token=([A-Za-z0-9_-]+)/.exec(location.hash);
    if (match) {
      sessionStorage.setItem("enclave-token", match[1]);
      history.replaceState(null, "", location.pathname + location.search);
    }
    return sessionStorage.getItem("enclave-token");
  }

  function connect() {
    // wss: on a page served over HTTPS, so the token never crosses the network in clear.
    const url = `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}/ws`;
    const socket = new WebSocket(url, ["enclave.v1", `enclave.token.${state.token}`]);
    state.socket = socket;
    socket.addEventListener("open", () => {
      const again = state.everConnected;
      state.everConnected = true;
      state.socketTries = 0;
      show($("conn-banner"), false);
      if (again && state.ready) resync();
    });
    socket.addEventListener("message", (msg) => {
      let event;
      try {
        event = JSON.parse(msg.data);
      } catch (err) {
        return;
      }
      onEvent(event);
    });
    socket.addEventListener("close", () => {
      if (state.socket !== socket || !sessionStorage.getItem("enclave-token")) return;
      state.socket = null;
      if (state.everConnected) show($("conn-banner"), true);
      const delay = Math.min(10000, 500 * 2 ** state.socketTries++);
      if (state.socketTries > 2) checkToken();
      setTimeout(connect, delay);
    });
  }

  // A restarted Enclave has a new token: say so instead of reconnecting for ever.
  async function checkToken() {
    try {
      await api("GET", "/api/state");
    } catch (err) {
      if (err.status === 401) {
        sessionStorage.removeItem("enclave-token");
        state.ready = false;
        gate("token", "Enclave was restarted, so this address's key no longer works. Open the address it printed this time.");
      }
    }
  }

  function sendSocket(message) {
    if (state.socket && state.socket.readyState === WebSocket.OPEN) {
      state.socket.send(JSON.stringify(message));
    }
  }

  // --- events -------------------------------------------------------------------------

  function onEvent(event) {
    switch (event.type) {
      case "hello":
      case "state":
        if (event.state === "ready" && !state.ready) startApp();
        break;
      case "message":
        onMessage(event.message, true);
        break;
      case "sent":
        onMessage(event.message, false);
        break;
      case "delivery":
        onDelivery(event);
        break;
      case "presence":
        onPresence(event.peer, event.online);
        break;
      case "typing":
        onTyping(event.peer, event.active);
        break;
      case "read": {
        const peer = state.peers.get(event.peer);
        if (peer) {
          peer.unread = 0;
          renderPeers();
        }
        break;
      }
      case "peers":
        loadPeers();
        break;
      case "resync":
        resync();
        break;
      case "problem":
        toast(event.text, { error: true, long: true });
        break;
      case "error":
        toast(event.text, { error: true });
        break;
      default:
        break;
    }
  }

  function keyOf(m) {
    return `${m.direction}:${m.id}`;
  }

  function convo(fp) {
    let c = state.convos.get(fp);
    if (!c) {
      c = { list: [], byKey: new Map(), loaded: false, loading: false, more: true, buffer: [], states: new Map() };
      state.convos.set(fp, c);
    }
    return c;
  }

  function addToConvo(c, m, atStart) {
    const key = keyOf(m);
    const known = c.byKey.get(key);
    if (known) {
      if (m.rowid && !known.rowid) known.rowid = m.rowid;
      return false;
    }
    const pending = m.direction === "out" ? c.states.get(m.id) : null;
    if (pending && rank(pending.state) > rank(m.state)) {
      m.state = pending.state;
      m.reason = pending.reason;
    }
    c.byKey.set(key, m);
    if (atStart) c.list.unshift(m);
    else c.list.push(m);
    return true;
  }

  function rank(s) {
    return { queued: 0, sent: 1, failed: 2, delivered: 3 }[s] ?? 0;
  }

  function onMessage(m, incoming) {
    const c = convo(m.peer);
    let added = true;
    if (c.loading) c.buffer.push(m);
    else if (c.loaded) added = addToConvo(c, m, false);
    const peer = state.peers.get(m.peer);
    if (peer && added) {
      peer.last = m;
      const open = state.current === m.peer && document.visibilityState === "visible";
      if (incoming) {
        if (open) markRead(m.peer);
        else {
          peer.unread = (peer.unread || 0) + 1;
          toast(m.body, { who: label(peer), onClick: () => openChat(m.peer) });
        }
        clearTyping(m.peer);
      }
    }
    renderPeers();
    if (state.current === m.peer) renderMessages({ stick: !incoming || nearBottom() ? "bottom" : null });
  }

  function onDelivery(event) {
    const c = convo(event.peer);
    const m = c.byKey.get(`out:${event.id}`);
    const known = c.states.get(event.id);
    if (!known || rank(event.state) >= rank(known.state) || event.state === "queued") {
      c.states.set(event.id, { state: event.state, reason: event.reason });
    }
    if (m) {
      m.state = event.state;
      m.reason = event.reason;
      if (!m.rowid) m.rowid = event.rowid;
    }
    const peer = state.peers.get(event.peer);
    if (peer && peer.last && peer.last.direction === "out" && peer.last.id === event.id) {
      peer.last.state = event.state;
      renderPeers();
    }
    if (state.current === event.peer && m) renderMessages({});
    if (event.state === "failed" && state.current !== event.peer && peer) {
      toast(`Not delivered to ${label(peer)}: ${event.reason || "failed"}`, { error: true });
    }
  }

  function onPresence(fp, online) {
    const peer = state.peers.get(fp);
    if (!peer) return;
    peer.online = online;
    if (!online) clearTyping(fp);
    renderPeers();
    if (state.current === fp) renderHeader();
  }

  function onTyping(fp, active) {
    clearTimeout(state.typing.get(fp));
    if (active) state.typing.set(fp, setTimeout(() => clearTyping(fp), TYPING_SHOWN));
    else state.typing.delete(fp);
    renderPeers();
    if (state.current === fp) renderHeader();
  }

  function clearTyping(fp) {
    if (!state.typing.has(fp)) return;
    clearTimeout(state.typing.get(fp));
    state.typing.delete(fp);
    renderPeers();
    if (state.current === fp) renderHeader();
  }

  // --- first run and unlock -----------------------------------------------------------

  function gate(kind, text, homeDir) {
    show($("app"), false);
    show($("gate"), true);
    const titles = {
      setup: "Create your identity",
      locked: "Unlock Enclave",
      token: "Open Enclave's address",
    };
    $("gate-title").textContent = titles[kind];
    $("gate-text").textContent = text;
    $("gate-home").textContent = homeDir ? `Home folder: ${homeDir}` : "";
    show($("gate-home"), Boolean(homeDir));
    show($("create-form"), kind === "setup");
    show($("unlock-form"), kind === "locked");
    show($("gate-error"), false);
    const focus = kind === "setup" ? $("create-password") : kind === "locked" ? $("unlock-password") : null;
    if (focus) focus.focus();
  }

  function gateBusy(text) {
    show($("gate-busy"), Boolean(text));
    $("gate-busy-text").textContent = text || "";
    document.querySelectorAll("#gate button, #gate input").forEach((node) => {
      node.disabled = Boolean(text);
    });
  }

  function gateError(text) {
    $("gate-error").textContent = text;
    show($("gate-error"), Boolean(text));
  }

  function strength(password) {
    let score = 0;
    if (password.length >= 8) score++;
    if (password.length >= 12) score++;
    if (password.length >= 16) score++;
    const kinds = [/[a-z]/, /[A-Z]/, /[0-9]/, /[^A-Za-z0-9]/].filter((re) => re.test(password)).length;
    if (kinds >= 3) score++;
    return password ? Math.max(1, score) : 0;
  }

  function onPasswordInput() {
    const score = strength($("create-password").value);
    $("meter-bar").className = `meter-bar${score ? ` s${score}` : ""}`;
    const words = ["Use 12 or more characters. It cannot be recovered if lost.", "Weak password", "Fair password", "Good password", "Strong password"];
    $("meter-text").textContent = words[score];
  }

  async function onCreate(event) {
    event.preventDefault();
    const password = $("create-password").value;
    const repeat = $("create-repeat").value;
    if (password !== repeat) {
      gateError("The two passwords do not match.");
      return;
    }
    gateError("");
    gateBusy("Creating your RSA-4096 identity… this takes a few seconds");
    try {
      const answer = await api("POST", "/api/identity/create", { password, repeat });
      $("create-password").value = "";
      $("create-repeat").value = "";
      await startApp();
      if (answer.warning) toast(`Note: ${answer.warning}`, { long: true });
      toast("Your identity is ready. Share your key with the QR button.");
    } catch (err) {
      gateError(err.message);
    } finally {
      gateBusy(null);
    }
  }

  async function onUnlock(event) {
    event.preventDefault();
    const password = $("unlock-password").value;
    gateError("");
    gateBusy("Unlocking…");
    try {
      await api("POST", "/api/identity/unlock", { password });
      $("unlock-password").value = "";
      await startApp();
    } catch (err) {
      gateError(err.message);
      $("unlock-password").select();
    } finally {
      gateBusy(null);
    }
  }

  // --- the app ------------------------------------------------------------------------

  async function startApp() {
    if (state.ready) return;
    state.ready = true;
    try {
      state.me = await api("GET", "/api/me");
      await loadPeers();
    } catch (err) {
      state.ready = false;
      throw err;
    }
    $("me-fp").textContent = state.me.grouped.split(" ").slice(0, 4).join(" ") + " …";
    $("me-fp").title = state.me.grouped;
    $("listening").textContent = `Listening for peers on ${state.me.listening}`;
    show($("gate"), false);
    show($("app"), true);
  }

  async function loadPeers() {
    const data = await api("GET", "/api/peers");
    const before = state.peers;
    state.peers = new Map(data.peers.map((p) => [p.fingerprint, p]));
    for (const [fp, peer] of state.peers) {
      const old = before.get(fp);
      if (old && old.last && peer.last && old.last.id === peer.last.id) peer.last.state = peer.last.state || old.last.state;
    }
    renderPeers();
    if (state.current) renderHeader();
  }

  async function resync() {
    try {
      await loadPeers();
      for (const fp of [...state.convos.keys()]) if (fp !== state.current) state.convos.delete(fp);
      if (state.current) {
        state.convos.delete(state.current);
        await loadOlder(state.current, true);
      }
    } catch (err) {
      toast(err.message, { error: true });
    }
  }

  function label(peer) {
    return peer.name || peer.grouped.split(" ").slice(0, 2).join(" ");
  }

  function hue(fp) {
    return `hue${parseInt(fp.slice(0, 2), 16) % 8}`;
  }

  function avatar(peer, node) {
    const a = node || el("div");
    a.className = `avatar ${hue(peer.fingerprint)} ${peer.online ? "dot-on" : "dot-off"}`;
    a.textContent = (peer.name || peer.fingerprint).slice(0, 1);
    a.title = peer.online ? "online" : "offline";
    return a;
  }

  function badges(peer) {
    const out = [];
    if (peer.verified) {
      const v = el("span", "badge-verified");
      v.title = "Verified: fingerprints compared";
      v.appendChild(icon("verified"));
      out.push(v);
    }
    if (peer.legacy) {
      const t = el("span", "tag tag-legacy", "legacy v1");
      t.title = "Original client: not forward-secret";
      out.push(t);
    }
    return out;
  }

  function tick(stateName) {
    const span = el("span", `tick ${stateName}`);
    span.title = TICK_WORDS[stateName] || stateName;
    span.dataset.state = stateName;
    span.appendChild(icon(stateName === "delivered" ? "delivered" : stateName));
    return span;
  }

  function sortedPeers() {
    const peers = [...state.peers.values()];
    peers.sort((a, b) => {
      const ta = a.last ? a.last.created_ms : 0;
      const tb = b.last ? b.last.created_ms : 0;
      if (ta !== tb) return tb - ta;
      return label(a).localeCompare(label(b));
    });
    return peers;
  }

  function matches(peer, q) {
    if (!q) return true;
    const hay = [peer.name || "", peer.fingerprint, peer.grouped, peer.address || ""].join(" ").toLowerCase();
    return hay.includes(q.toLowerCase());
  }

  function renderPeers() {
    const list = $("peer-list");
    list.replaceChildren();
    const q = state.query.trim();
    for (const peer of sortedPeers()) {
      if (!matches(peer, q)) continue;
      list.appendChild(peerRow(peer));
    }
    show($("no-peers"), state.peers.size === 0);
  }

  function peerRow(peer) {
    const li = el("li", `peer${state.current === peer.fingerprint ? " active" : ""}`);
    li.dataset.fp = peer.fingerprint;
    li.tabIndex = 0;
    li.setAttribute("role", "button");
    li.appendChild(avatar(peer));
    const main = el("div", "peer-main");
    const top = el("div", "peer-top");
    top.appendChild(el("span", "peer-name", label(peer)));
    badges(peer).forEach((b) => top.appendChild(b));
    if (peer.last) top.appendChild(el("span", `peer-time${peer.unread ? " fresh" : ""}`, shortTime(peer.last.created_ms)));
    const bottom = el("div", "peer-bottom");
    const preview = el("span", "peer-preview");
    if (state.typing.has(peer.fingerprint)) {
      preview.classList.add("typing");
      preview.textContent = "typing…";
    } else if (peer.last) {
      if (peer.last.direction === "out") preview.appendChild(tick(peer.last.state));
      preview.appendChild(el("span", "text", (peer.last.body || "").split("\n")[0]));
    } else {
      preview.textContent = peer.online ? "online" : peer.address || "";
    }
    bottom.appendChild(preview);
    if (peer.unread) bottom.appendChild(el("span", "unread", String(peer.unread)));
    main.append(top, bottom);
    li.appendChild(main);
    li.addEventListener("click", () => openChat(peer.fingerprint));
    li.addEventListener("keydown", (e) => {
      if (e.key === "Enter") openChat(peer.fingerprint);
    });
    return li;
  }

  // --- one chat -----------------------------------------------------------------------

  async function openChat(fp, focusKey) {
    const peer = state.peers.get(fp);
    if (!peer) return;
    if (state.current !== fp) stopTyping();
    state.current = fp;
    show($("chat-empty"), false);
    show($("chat-view"), true);
    $("app").classList.add("show-chat");
    renderHeader();
    renderPeers();
    const c = convo(fp);
    if (!c.loaded) await loadOlder(fp, true);
    else renderMessages({ stick: "bottom" });
    if (focusKey) await reveal(fp, focusKey);
    if (peer.unread) markRead(fp);
    if (window.matchMedia("(min-width: 721px)").matches) $("input").focus();
  }

  function closeChat() {
    $("app").classList.remove("show-chat");
  }

  async function markRead(fp) {
    const peer = state.peers.get(fp);
    if (peer) peer.unread = 0;
    renderPeers();
    try {
      await api("POST", `/api/peers/${fp}/read`, {});
    } catch (err) {
      // The next peers load shows the server's count; nothing else to do.
    }
  }

  function renderHeader() {
    const peer = state.peers.get(state.current);
    if (!peer) return;
    avatar(peer, $("chat-avatar"));
    $("chat-name").textContent = label(peer);
    $("chat-name").title = peer.grouped;
    $("chat-badges").replaceChildren(...badges(peer));
    const status = $("chat-status");
    const typing = state.typing.has(peer.fingerprint);
    status.classList.toggle("typing", typing);
    status.textContent = typing ? "typing…" : peer.online ? `online · ${peer.address || ""}` : `offline · ${peer.address || "no address"}`;
    show($("legacy-note"), peer.legacy);
    $("btn-verify").title = peer.verified ? "Verified: see fingerprints" : "Verify fingerprints";
  }

  async function loadOlder(fp, first) {
    const c = convo(fp);
    if (c.loading || (!first && !c.more)) return;
    c.loading = true;
    if (!first) show($("older"), true);
    const oldest = c.list.find((m) => m.rowid);
    const query = !first && oldest ? `?limit=${PAGE}&before=${oldest.rowid}` : `?limit=${PAGE}`;
    try {
      const data = await api("GET", `/api/peers/${fp}/messages${query}`);
      if (first) {
        c.list = [];
        c.byKey = new Map();
      }
      const box = $("messages");
      const fromBottom = box.scrollHeight - box.scrollTop;
      for (const m of data.messages.slice().reverse()) addToConvo(c, m, true);
      for (const m of c.buffer.splice(0)) addToConvo(c, m, false);
      c.more = data.more;
      c.loaded = true;
      if (state.current === fp) {
        renderMessages({ stick: first ? "bottom" : null });
        if (!first) box.scrollTop = box.scrollHeight - fromBottom;
      }
    } catch (err) {
      toast(err.message, { error: true });
    } finally {
      c.loading = false;
      show($("older"), false);
    }
  }

  async function reveal(fp, key) {
    const c = convo(fp);
    for (let i = 0; i < 20 && !c.byKey.has(key) && c.more; i++) await loadOlder(fp, false);
    const node = $("message-list").querySelector(`[data-key="${CSS.escape(key)}"]`);
    if (node) {
      node.scrollIntoView({ block: "center" });
      node.classList.add("flash");
    }
  }

  function nearBottom() {
    const box = $("messages");
    return box.scrollHeight - box.scrollTop - box.clientHeight < 120;
  }

  function renderMessages({ stick }) {
    const c = convo(state.current);
    const list = $("message-list");
    const box = $("messages");
    const keep = box.scrollTop;
    list.replaceChildren();
    let lastDay = null;
    let lastDir = null;
    for (const m of c.list) {
      const day = startOfDay(m.created_ms);
      if (day !== lastDay) {
        list.appendChild(el("li", "day", dayLabel(m.created_ms)));
        lastDay = day;
        lastDir = null;
      }
      list.appendChild(bubble(m, m.direction !== lastDir));
      lastDir = m.direction;
    }
    if (stick === "bottom") box.scrollTop = box.scrollHeight;
    else box.scrollTop = keep;
  }

  function bubble(m, first) {
    const li = el("li", `msg ${m.direction}${first ? " first" : ""}`);
    li.dataset.key = keyOf(m);
    if (m.direction === "out") li.dataset.state = m.state;
    const b = el("div", "bubble");
    b.appendChild(el("span", "body", m.body === null ? "(deleted)" : m.body));
    const meta = el("span", "meta");
    if (m.legacy) meta.appendChild(el("span", "legacy-mark", "legacy v1"));
    meta.appendChild(el("span", "time", clock.format(m.created_ms)));
    if (m.direction === "out") meta.appendChild(tick(m.state));
    b.appendChild(meta);
    if (m.direction === "out" && m.state === "failed") {
      const fail = el("div", "fail");
      fail.appendChild(el("span", "", `Not delivered${m.reason ? `: ${m.reason}` : ""}`));
      const retry = el("button", "retry", "Retry");
      retry.type = "button";
      retry.addEventListener("click", () => retryPeer(m.peer));
      fail.appendChild(retry);
      b.appendChild(fail);
    }
    li.appendChild(b);
    return li;
  }

  async function retryPeer(fp) {
    try {
      const data = await api("POST", `/api/peers/${fp}/retry`, {});
      toast(data.retried.length ? `Retrying ${data.retried.length} message(s)` : "Nothing to retry");
    } catch (err) {
      toast(err.message, { error: true });
    }
  }

  // --- writing ------------------------------------------------------------------------

  const typingOut = { peer: null, at: 0, idle: null };

  function onComposerInput() {
    const input = $("input");
    input.style.height = "auto"; // CSSOM, allowed by the CSP (no style attribute in markup)
    input.style.height = `${Math.min(input.scrollHeight, 140)}px`;
    const peer = state.peers.get(state.current);
    if (!peer || !peer.online || !input.value.trim()) {
      stopTyping();
      return;
    }
    const now = Date.now();
    if (typingOut.peer !== peer.fingerprint || now - typingOut.at > TYPING_EVERY) {
      typingOut.peer = peer.fingerprint;
      typingOut.at = now;
      sendSocket({ type: "typing", peer: peer.fingerprint, active: true });
    }
    clearTimeout(typingOut.idle);
    typingOut.idle = setTimeout(stopTyping, TYPING_IDLE);
  }

  function stopTyping() {
    clearTimeout(typingOut.idle);
    if (typingOut.peer) sendSocket({ type: "typing", peer: typingOut.peer, active: false });
    typingOut.peer = null;
    typingOut.at = 0;
  }

  async function onSend(event) {
    event.preventDefault();
    const input = $("input");
    const text = input.value;
    const fp = state.current;
    if (!text.trim() || !fp) return;
    stopTyping();
    input.value = "";
    onComposerInput();
    try {
      const data = await api("POST", "/api/send", { peer: fp, text });
      onMessage(data.message, false);
    } catch (err) {
      input.value = text;
      toast(err.message, { error: true });
    }
    input.focus();
  }

  function onComposerKey(event) {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      $("composer").requestSubmit();
    }
  }

  // --- dialogs ------------------------------------------------------------------------

  function openDialog(id) {
    const dialog = $(id);
    if (!dialog.open) dialog.showModal();
    return dialog;
  }

  function fpGrid(node, grouped) {
    node.replaceChildren(...grouped.split(" ").map((g) => el("span", "", g)));
  }

  function openShare() {
    fpGrid($("share-fp"), state.me.grouped);
    $("share-address").textContent = state.me.listening;
    drawQr($("qr"), state.me.qr);
    openDialog("dlg-share");
  }

  function drawQr(canvas, rows) {
    const n = rows.length;
    const quiet = 3;
    const scale = Math.max(2, Math.floor(232 / (n + 2 * quiet)));
    const size = (n + 2 * quiet) * scale;
    canvas.width = size;
    canvas.height = size;
    const g = canvas.getContext("2d");
    g.fillStyle = "#ffffff";
    g.fillRect(0, 0, size, size);
    g.fillStyle = "#111b21";
    rows.forEach((row, y) => {
      for (let x = 0; x < row.length; x++) {
        if (row[x] === "1") g.fillRect((x + quiet) * scale, (y + quiet) * scale, scale, scale);
      }
    });
  }

  async function copy(text, what) {
    try {
      await navigator.clipboard.writeText(text);
      toast(`${what} copied`);
    } catch (err) {
      toast(`Could not copy the ${what.toLowerCase()}; select it and copy by hand`, { error: true });
    }
  }

  function downloadKey() {
    const blob = new Blob([state.me.public_key], { type: "application/x-pem-file" });
    const a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    a.download = `enclave-${state.me.fingerprint.slice(0, 8)}.pem`;
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 1000);
  }

  function openAdd() {
    $("add-form").reset();
    show($("add-error"), false);
    openDialog("dlg-add");
    $("add-key").focus();
  }

  function onKeyFile() {
    const file = $("add-file").files[0];
    if (!file) return;
    if (file.size > 65536) {
      showError("add-error", "That file is too large to be a public key.");
      return;
    }
    const reader = new FileReader();
    reader.onload = () => {
      $("add-key").value = String(reader.result);
    };
    reader.readAsText(file);
  }

  function showError(id, text) {
    $(id).textContent = text;
    show($(id), true);
  }

  async function onAdd(event) {
    event.preventDefault();
    const body = {
      public_key: $("add-key").value.trim(),
      address: $("add-address").value.trim(),
      name: $("add-name").value.trim() || null,
      protocol: $("add-protocol").value || null, // null: a known peer keeps its protocol
    };
    if (!body.public_key) return showError("add-error", "Paste your peer's public key, or choose its file.");
    if (!body.address) return showError("add-error", "Enter your peer's address, like 192.168.1.100:8000.");
    try {
      const data = await api("POST", "/api/peers", body);
      $("dlg-add").close();
      await loadPeers();
      const peer = state.peers.get(data.fingerprint);
      toast(`${data.added ? "Added" : "Updated"} ${peer ? label(peer) : "peer"}. Compare fingerprints before relying on it.`, { long: true });
      if (data.warning) toast(`Note: ${data.warning}`, { long: true });
      openChat(data.fingerprint);
    } catch (err) {
      showError("add-error", err.message);
    }
  }

  function openVerify() {
    const peer = state.peers.get(state.current);
    if (!peer) return;
    $("verify-name").textContent = label(peer);
    fpGrid($("verify-mine"), state.me.grouped);
    fpGrid($("verify-theirs"), peer.grouped);
    $("verify-theirs-label").textContent = `${label(peer)}'s fingerprint`;
    $("btn-mark-verified").textContent = peer.verified ? "Remove verification" : "They match: mark verified";
    openDialog("dlg-verify");
  }

  async function onMarkVerified() {
    const peer = state.peers.get(state.current);
    if (!peer) return;
    try {
      await api("POST", `/api/peers/${peer.fingerprint}/verified`, { verified: !peer.verified });
      $("dlg-verify").close();
      await loadPeers();
      toast(peer.verified ? `${label(peer)} is no longer marked verified` : `${label(peer)} is verified`);
    } catch (err) {
      toast(err.message, { error: true });
    }
  }

  function openBroadcast() {
    $("broadcast-form").reset();
    show($("broadcast-error"), false);
    const n = state.peers.size;
    $("broadcast-text").textContent = n
      ? `Sends to all ${n} peer${n === 1 ? "" : "s"} at once. Peers that are offline get it when they are back.`
      : "You have no peers yet.";
    openDialog("dlg-broadcast");
    $("broadcast-input").focus();
  }

  async function onBroadcast(event) {
    event.preventDefault();
    const text = $("broadcast-input").value;
    if (!text.trim()) return showError("broadcast-error", "Write a message first.");
    try {
      const data = await api("POST", "/api/broadcast", { text });
      $("dlg-broadcast").close();
      toast(`Broadcast to ${data.messages.length} peer(s)`);
    } catch (err) {
      showError("broadcast-error", err.message);
    }
  }

  // --- search -------------------------------------------------------------------------

  let searchTimer = null;

  function onSearch() {
    state.query = $("search").value;
    renderPeers();
    clearTimeout(searchTimer);
    const q = state.query.trim();
    if (q.length < 2) {
      show($("search-results"), false);
      return;
    }
    searchTimer = setTimeout(() => searchMessages(q), 200);
  }

  async function searchMessages(q) {
    try {
      const data = await api("GET", `/api/search?q=${encodeURIComponent(q)}`);
      if (state.query.trim() !== q) return;
      const list = $("result-list");
      list.replaceChildren();
      for (const m of data.messages) list.appendChild(resultRow(m, q));
      show($("search-results"), data.messages.length > 0);
    } catch (err) {
      toast(err.message, { error: true });
    }
  }

  function resultRow(m, q) {
    const peer = state.peers.get(m.peer);
    const li = el("li", "result");
    const head = el("div", "result-head");
    head.append(el("span", "", `${m.direction === "out" ? "You → " : ""}${peer ? label(peer) : m.peer.slice(0, 8)}`), el("span", "", shortTime(m.created_ms)));
    const body = el("div", "result-body");
    const text = (m.body || "").replace(/\s+/g, " ");
    const at = text.toLowerCase().indexOf(q.toLowerCase());
    if (at >= 0) {
      const start = Math.max(0, at - 24);
      body.append((start ? "…" : "") + text.slice(start, at), el("mark", "", text.slice(at, at + q.length)), text.slice(at + q.length));
    } else body.textContent = text;
    li.append(head, body);
    li.addEventListener("click", () => openChat(m.peer, keyOf(m)));
    return li;
  }

  // --- toasts -------------------------------------------------------------------------

  function toast(text, { who, error, long, onClick } = {}) {
    const box = $("toasts");
    const t = el("div", `toast${error ? " error" : ""}`);
    if (who) t.appendChild(el("span", "who", who));
    t.appendChild(el("span", "text", text));
    if (onClick) {
      t.classList.add("clickable");
      t.addEventListener("click", () => {
        onClick();
        t.remove();
      });
    }
    box.appendChild(t);
    while (box.children.length > 4) box.firstChild.remove();
    setTimeout(() => {
      t.classList.add("leaving");
      setTimeout(() => t.remove(), 400);
    }, long ? 7000 : 3500);
  }

  // --- start --------------------------------------------------------------------------

  function wire() {
    fillIcons(document);
    $("create-form").addEventListener("submit", onCreate);
    $("unlock-form").addEventListener("submit", onUnlock);
    $("create-password").addEventListener("input", onPasswordInput);
    $("composer").addEventListener("submit", onSend);
    $("input").addEventListener("input", onComposerInput);
    $("input").addEventListener("keydown", onComposerKey);
    $("search").addEventListener("input", onSearch);
    $("btn-back").addEventListener("click", closeChat);
    $("btn-share").addEventListener("click", openShare);
    $("btn-add").addEventListener("click", openAdd);
    $("btn-add-empty").addEventListener("click", openAdd);
    $("btn-broadcast").addEventListener("click", openBroadcast);
    $("btn-verify").addEventListener("click", openVerify);
    $("btn-mark-verified").addEventListener("click", onMarkVerified);
    $("btn-copy-key").addEventListener("click", () => copy(state.me.public_key, "Public key"));
    $("btn-copy-fp").addEventListener("click", () => copy(state.me.fingerprint, "Fingerprint"));
    $("btn-download").addEventListener("click", downloadKey);
    $("add-file").addEventListener("change", onKeyFile);
    $("add-form").addEventListener("submit", onAdd);
    $("broadcast-form").addEventListener("submit", onBroadcast);
    document.querySelectorAll("[data-close]").forEach((b) => b.addEventListener("click", () => b.closest("dialog").close()));
    $("messages").addEventListener("scroll", () => {
      if (state.current && $("messages").scrollTop < 80) loadOlder(state.current, false);
    });
    document.addEventListener("visibilitychange", () => {
      const peer = state.peers.get(state.current);
      if (document.visibilityState === "visible" && peer && peer.unread) markRead(peer.fingerprint);
    });
  }

  async function boot() {
    wire();
    state.token = readToken();
    const noToken = "This page needs the address Enclave printed when it started; it ends with #token=…. Start Enclave with enclave --web and open that address.";
    if (!state.token) return gate("token", noToken);
    let answer;
    try {
      answer = await api("GET", "/api/state");
    } catch (err) {
      if (err.status === 401) {
        sessionStorage.removeItem("enclave-token");
        return gate("token", "This address's key belongs to an earlier launch of Enclave. Open the address it printed this time.");
      }
      return gate("token", err.message);
    }
    connect();
    if (answer.state === "ready") await startApp();
    else if (answer.state === "setup") gate("setup", "Choose a password to protect your new RSA-4096 key. Enclave asks for it each time it starts; it never leaves this computer.", answer.home);
    else gate("locked", "Enter the password of your identity to start your node.", answer.home);
  }

  document.addEventListener("DOMContentLoaded", boot);
})();
