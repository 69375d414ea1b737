// tio chat: the page of example/im. Plain JavaScript, no build step.
// Everything a peer sends is rendered with textContent, never as HTML.
// The protocol is in docs/im-protocol.md.
"use strict";

const $ = id => document.getElementById(id);
const store = {
  get(k) { try { return localStorage.getItem("tio-chat:" + k); } catch { return null; } },
  set(k, v) { try { localStorage.setItem("tio-chat:" + k, v); } catch { /* private mode */ } },
  del(k) { try { localStorage.removeItem("tio-chat:" + k); } catch { /* private mode */ } },
};

// The page's state. window.chat exposes it for the curious (and for tests).
const chat = {
  user: "", token: "", admin: false,
  ws: null,
  status: "offline", // offline | connecting | online | reconnecting | stopped
  attempt: 0,        // reconnection attempts since the last welcome
  connects: 0,       // welcomes received: 1 + the reconnections
  retryAt: 0, retryTimer: 0, bannerTimer: 0,
  heartbeat: 20000, pingTimer: 0, lastHeard: 0,
  limits: { text: 2000 },
  convs: new Map(),  // "#room" or "@user" → conversation
  current: "",
  refs: new Map(),   // ref → pending message item
  nextRef: 1,
  typingSent: 0,
  want: "",          // the room to show once joined
};
window.chat = chat;

// ---- conversations -------------------------------------------------------

function conv(key) {
  let c = chat.convs.get(key);
  if (!c) {
    c = {
      key, kind: key[0] === "#" ? "room" : "dm", name: key.slice(1),
      items: [], ids: new Set(), unread: 0, online: new Set(), typing: new Map(), seq: 0,
      joined: false,
    };
    chat.convs.set(key, c);
  }
  return c;
}

const MAX_ITEMS = 500;
const PENDING = Number.MAX_SAFE_INTEGER;

// addItem puts a message or notice in its conversation, ordered by id; a
// notice goes after the last message seen. It returns false for a
// message seen already (history after a reconnect repeats messages).
function addItem(c, item) {
  if (item.id !== undefined) {
    if (c.ids.has(item.id)) return false;
    c.ids.add(item.id);
    item.key = item.id;
  } else if (item.key === undefined) {
    item.key = lastKey(c);
  }
  item.seq = ++c.seq;
  let i = c.items.length;
  while (i > 0 && order(c.items[i - 1], item) > 0) i--;
  c.items.splice(i, 0, item);
  if (c.items.length > MAX_ITEMS) {
    const gone = c.items.shift();
    if (gone.id !== undefined) c.ids.delete(gone.id);
    if (gone.el) gone.el.remove();
  }
  if (c.key === chat.current) place(c, item, i);
  return true;
}

function lastKey(c) {
  for (let i = c.items.length - 1; i >= 0; i--) {
    if (c.items[i].key !== PENDING) return c.items[i].key;
  }
  return 0;
}

function order(a, b) {
  if (a.key !== b.key) return a.key < b.key ? -1 : 1;
  const an = a.id === undefined, bn = b.id === undefined; // a message before the notices that follow it
  if (an !== bn) return an ? 1 : -1;
  return a.seq - b.seq;
}

// place inserts item's element at index i of the shown conversation.
function place(c, item, i) {
  const list = $("messages");
  const stick = list.scrollHeight - list.scrollTop - list.clientHeight < 80;
  const el = item.el || render(item);
  const next = c.items[i + 1];
  list.insertBefore(el, next && next.el && next.el.parentNode === list ? next.el : null);
  if (stick || item.own) list.scrollTop = list.scrollHeight;
}

function render(item) {
  const li = document.createElement("li");
  item.el = li;
  if (item.notice) {
    li.className = "notice";
    li.textContent = item.notice;
    return li;
  }
  li.className = "msg";
  li.appendChild(avatar(item.from));
  const body = li.appendChild(document.createElement("div"));
  body.className = "body";
  const meta = body.appendChild(document.createElement("div"));
  meta.className = "meta";
  const from = meta.appendChild(document.createElement("span"));
  from.className = "from";
  from.textContent = item.from;
  const time = meta.appendChild(document.createElement("time"));
  item.timeEl = time;
  const text = body.appendChild(document.createElement("div"));
  text.className = "text";
  text.textContent = item.text;
  const status = body.appendChild(document.createElement("div"));
  status.className = "status";
  item.statusEl = status;
  refresh(item);
  return li;
}

// refresh shows a message's state: sending, sent (with its time), failed.
function refresh(item) {
  const li = item.el;
  if (!li || item.notice) return;
  li.classList.toggle("own", item.from === chat.user);
  li.classList.toggle("pending", !!item.pending);
  li.classList.toggle("failed", !!item.failed);
  if (item.id !== undefined) li.dataset.id = String(item.id);
  if (item.ts) {
    const d = new Date(item.ts);
    item.timeEl.textContent = d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    item.timeEl.dateTime = d.toISOString();
    item.timeEl.title = d.toLocaleString();
  } else {
    item.timeEl.textContent = "";
  }
  item.statusEl.textContent = item.failed ? "not sent: " + item.failed + " " : item.pending ? "sending…" : "";
  if (item.failed) {
    const retry = item.statusEl.appendChild(document.createElement("button"));
    retry.type = "button";
    retry.className = "link";
    retry.textContent = "retry";
    retry.onclick = () => resend(item);
  }
}

function avatar(name) {
  const a = document.createElement("span");
  a.className = "avatar";
  a.textContent = (name || "?").slice(0, 1).toUpperCase();
  a.style.backgroundColor = "hsl(" + hue(name || "") + " 55% 45%)";
  return a;
}

function hue(s) {
  let h = 0;
  for (let i = 0; i < s.length; i++) h = (h * 31 + s.charCodeAt(i)) >>> 0;
  return h % 360;
}

// ---- showing -------------------------------------------------------------

function show(key) {
  if (!chat.convs.has(key)) return;
  chat.current = key;
  const c = conv(key);
  c.unread = 0;
  const list = $("messages");
  list.replaceChildren(...c.items.map(it => it.el || render(it)));
  list.scrollTop = list.scrollHeight;
  $("chat-title").textContent = (c.kind === "room" ? "# " : "@ ") + c.name;
  $("chat-sub").textContent = c.kind === "room" ? "" : "direct message";
  $("leave").hidden = c.kind !== "room";
  $("say-text").placeholder = "Message " + (c.kind === "room" ? "#" : "@") + c.name;
  if (c.kind === "room") store.set("room:" + chat.user, c.name);
  drawConvs();
  drawOnline();
  drawTyping();
  $("say-text").focus();
}

function drawConvs() {
  for (const [id, kind] of [["rooms", "room"], ["dms", "dm"]]) {
    const ul = $(id);
    ul.replaceChildren();
    for (const c of chat.convs.values()) {
      if (c.kind !== kind) continue;
      const li = ul.appendChild(document.createElement("li"));
      li.className = "conv" + (c.key === chat.current ? " active" : "");
      li.dataset.key = c.key;
      const name = li.appendChild(document.createElement("span"));
      name.className = "name";
      name.textContent = (kind === "room" ? "# " : "@ ") + c.name;
      if (c.unread) {
        const b = li.appendChild(document.createElement("span"));
        b.className = "badge";
        b.textContent = c.unread > 99 ? "99+" : String(c.unread);
      }
      li.onclick = () => show(c.key);
    }
  }
}

function drawOnline() {
  const ul = $("online");
  ul.replaceChildren();
  const c = chat.convs.get(chat.current);
  if (!c) return;
  const users = c.kind === "room" ? [...c.online].sort() : [c.name];
  $("online-count").textContent = c.kind === "room" ? String(users.length) : "";
  for (const u of users) {
    const li = ul.appendChild(document.createElement("li"));
    li.appendChild(avatar(u));
    const name = li.appendChild(document.createElement("span"));
    name.className = "name";
    name.textContent = u + (u === chat.user ? " (you)" : "");
    if (u !== chat.user) {
      li.title = "Send " + u + " a direct message";
      li.classList.add("clickable");
      li.onclick = () => { conv("@" + u); show("@" + u); };
      if (chat.admin) {
        const k = li.appendChild(document.createElement("button"));
        k.type = "button";
        k.className = "kick";
        k.textContent = "kick";
        k.title = "Close every connection of " + u;
        k.onclick = e => {
          e.stopPropagation();
          const reason = prompt("Kick " + u + "? Reason (optional):", "");
          if (reason !== null) send({ cmd: "kick", user: u, reason: reason.trim() });
        };
      }
    }
  }
}

function drawTyping() {
  const c = chat.convs.get(chat.current);
  const who = c ? [...c.typing.keys()] : [];
  $("typing").textContent = who.length === 0 ? "" :
    who.length === 1 ? who[0] + " is typing…" : who.slice(0, 3).join(", ") + " are typing…";
}

function notify(c) {
  if (c.key !== chat.current) {
    c.unread++;
    drawConvs();
  }
}

let toastTimer = 0;
function toast(text) {
  const t = $("toast");
  t.textContent = text;
  t.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { t.hidden = true; }, 5000);
}

function setStatus(s, detail) {
  chat.status = s;
  const words = { offline: "offline", connecting: "connecting…", online: "online", reconnecting: "reconnecting…", stopped: "disconnected" };
  $("conn-state").textContent = words[s] || s;
  $("conn-dot").className = "dot " + s;
  document.body.dataset.status = s;
  const banner = $("banner");
  clearInterval(chat.bannerTimer);
  if (s === "reconnecting") {
    banner.hidden = false;
    banner.className = "banner warn";
    $("banner-retry").textContent = "Retry now";
    const tick = () => {
      const secs = Math.max(0, Math.ceil((chat.retryAt - Date.now()) / 1000));
      $("banner-text").textContent = (detail ? detail + ". " : "Connection lost. ") +
        (secs > 0 ? "Reconnecting in " + secs + " s" : "Reconnecting…") + " (attempt " + chat.attempt + ")";
    };
    tick();
    chat.bannerTimer = setInterval(tick, 500);
  } else if (s === "stopped") {
    banner.hidden = false;
    banner.className = "banner error";
    $("banner-text").textContent = detail || "Disconnected.";
    $("banner-retry").textContent = "Reconnect";
  } else {
    banner.hidden = true;
  }
}

// ---- the connection ------------------------------------------------------

function send(cmd) {
  if (chat.ws && chat.ws.readyState === WebSocket.OPEN) {
    chat.ws.send(JSON.stringify(cmd));
    return true;
  }
  return false;
}

function connect() {
  clearTimeout(chat.retryTimer);
  if (chat.ws) detach(chat.ws);
  setStatus(chat.attempt === 0 ? "connecting" : "reconnecting");
  const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws");
  chat.ws = ws;
  ws.onopen = () => {
    chat.lastHeard = Date.now();
    const login = { cmd: "login", user: chat.user };
    if (chat.token) login.token = chat.token;
    send(login);
  };
  ws.onmessage = e => {
    chat.lastHeard = Date.now();
    let m;
    try { m = JSON.parse(e.data); } catch { return; }
    if (m && typeof m.event === "string" && handlers[m.event]) handlers[m.event](m);
  };
  ws.onclose = e => {
    if (chat.ws !== ws) return;
    lost(e.code === 1000 && e.reason ? { stop: e.reason } : { why: closeWords(e) });
  };
}

function closeWords(e) {
  if (e.reason) return "Connection closed: " + e.reason;
  return e.code === 1006 ? "Connection lost" : "Connection closed (" + e.code + ")";
}

function detach(ws) {
  ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
  try { ws.close(); } catch { /* closed */ }
}

// lost handles a connection that ended: sends in flight have failed; the
// page reconnects with exponential backoff and jitter, unless the server
// closed on purpose (a kick), which it shows.
function lost({ stop, why }) {
  clearInterval(chat.pingTimer);
  if (chat.ws) detach(chat.ws);
  chat.ws = null;
  for (const item of chat.refs.values()) {
    item.pending = false;
    item.failed = "connection lost";
    refresh(item);
  }
  chat.refs.clear();
  for (const c of chat.convs.values()) { c.joined = false; c.typing.clear(); }
  drawTyping();
  if (stop) {
    setStatus("stopped", "Disconnected: " + stop);
    return;
  }
  chat.attempt++;
  const base = Math.min(15000, 500 * 2 ** Math.min(chat.attempt - 1, 10));
  const delay = base / 2 + Math.random() * base / 2; // jitter: a restarted server is not hit by every page at once
  chat.retryAt = Date.now() + delay;
  setStatus("reconnecting", why);
  chat.retryTimer = setTimeout(connect, delay);
}

// heartbeat: a browser has no WebSocket ping, so the page sends a small
// command every chat.heartbeat ms; silence from the server for two of them
// means the connection is dead.
function startHeartbeat() {
  clearInterval(chat.pingTimer);
  chat.pingTimer = setInterval(() => {
    if (Date.now() - chat.lastHeard > 2 * chat.heartbeat + 2000) {
      lost({ why: "The server stopped answering" });
      return;
    }
    send({ cmd: "ping" });
  }, chat.heartbeat);
}

// ---- events --------------------------------------------------------------

const handlers = {
  welcome(m) {
    chat.user = m.user;
    chat.admin = !!m.admin;
    chat.attempt = 0;
    chat.connects++;
    if (m.heartbeat > 0) chat.heartbeat = Math.max(1000, m.heartbeat);
    if (m.limits) chat.limits = m.limits;
    store.set("user", chat.user);
    $("login").hidden = true;
    $("app").hidden = false;
    $("me-name").textContent = chat.user + (chat.admin ? " · admin" : "");
    $("me-avatar").replaceWith(Object.assign(avatar(chat.user), { id: "me-avatar" }));
    setStatus("online");
    startHeartbeat();
    // Rejoin the rooms of this page (after a reconnect), or those this
    // user had in this browser, or the lobby.
    let rooms = [...chat.convs.values()].filter(c => c.kind === "room").map(c => c.name);
    if (rooms.length === 0) {
      try { rooms = JSON.parse(store.get("rooms:" + chat.user) || "[]"); } catch { rooms = []; }
      if (!Array.isArray(rooms) || rooms.length === 0) rooms = ["lobby"];
    }
    const last = store.get("room:" + chat.user);
    if (!chat.current && last && rooms.includes(last)) chat.want = "#" + last;
    for (const r of rooms) send({ cmd: "join", room: String(r) });
  },

  joined(m) {
    const c = conv("#" + m.room);
    if (m.user === chat.user) {
      c.joined = true;
      saveRooms();
      if (!chat.current || !chat.convs.has(chat.current) || chat.want === c.key) {
        chat.want = "";
        show(c.key);
      } else {
        drawConvs();
      }
      return;
    }
    c.online.add(m.user);
    addItem(c, { notice: m.user + " joined" });
    if (c.key === chat.current) drawOnline();
  },

  left(m) {
    const key = "#" + m.room;
    const c = chat.convs.get(key);
    if (!c) return;
    if (m.user === chat.user && c.joined && c.leaving) {
      chat.convs.delete(key);
      saveRooms();
      if (chat.current === key) {
        const next = [...chat.convs.keys()][0];
        if (next) show(next); else { chat.current = ""; $("messages").replaceChildren(); drawConvs(); }
      } else {
        drawConvs();
      }
      return;
    }
    if (m.user === chat.user) return; // another tab of ours left; this one stays
    c.online.delete(m.user);
    c.typing.delete(m.user);
    addItem(c, { notice: m.user + " left" });
    if (c.key === chat.current) { drawOnline(); drawTyping(); }
  },

  history(m) {
    const c = conv("#" + m.room);
    for (const x of m.messages || []) {
      addItem(c, { id: x.id, ts: x.ts, from: x.from, text: x.text });
    }
  },

  online(m) {
    const c = conv("#" + m.room);
    c.online = new Set(m.users || []);
    if (c.key === chat.current) drawOnline();
  },

  message(m) {
    const c = conv("#" + m.room);
    c.typing.delete(m.from);
    if (addItem(c, { id: m.id, ts: m.ts, from: m.from, text: m.text })) notify(c);
    if (c.key === chat.current) drawTyping();
  },

  dm(m) {
    const peer = m.from === chat.user ? m.to : m.from;
    const c = conv("@" + peer);
    c.typing.delete(m.from);
    const fresh = addItem(c, { id: m.id, ts: m.ts, from: m.from, text: m.text });
    if (fresh && m.from !== chat.user) notify(c); else drawConvs();
    if (c.key === chat.current) drawTyping();
  },

  ack(m) {
    const item = chat.refs.get(m.ref);
    if (!item) return;
    chat.refs.delete(m.ref);
    const c = conv(item.conv);
    item.pending = false;
    const i = c.items.indexOf(item);
    if (i >= 0) c.items.splice(i, 1);
    if (c.ids.has(m.id)) { if (item.el) item.el.remove(); return; }
    item.id = m.id;
    item.ts = m.ts;
    const el = item.el;
    addItem(c, item);
    if (el) refresh(item);
  },

  typing(m) {
    const c = chat.convs.get(m.room ? "#" + m.room : "@" + m.user); // typing opens no conversation
    if (!c || m.user === chat.user) return;
    clearTimeout(c.typing.get(m.user));
    c.typing.set(m.user, setTimeout(() => { c.typing.delete(m.user); if (c.key === chat.current) drawTyping(); }, 3500));
    if (c.key === chat.current) drawTyping();
  },

  rooms(m) {
    const dl = $("room-list");
    dl.replaceChildren(...(m.rooms || []).map(r => {
      const o = document.createElement("option");
      o.value = r.room;
      o.label = r.users + (r.users === 1 ? " user" : " users");
      return o;
    }));
  },

  kicked(m) {
    toast("Kicked " + m.user + " (" + m.conns + " connection" + (m.conns === 1 ? "" : "s") + ")");
  },

  pong() {},

  error(m) {
    const item = m.ref && chat.refs.get(m.ref);
    if (item) {
      chat.refs.delete(m.ref);
      item.pending = false;
      item.failed = m.text;
      refresh(item);
      return;
    }
    if (m.cmd === "login") {
      // Not logged in: back to the form, with the server's words.
      const ws = chat.ws;
      chat.ws = null;
      if (ws) detach(ws);
      clearInterval(chat.pingTimer);
      setStatus("offline");
      showLogin(m.text);
      return;
    }
    if (m.cmd === "join" && m.code !== "bad_request") {
      for (const c of chat.convs.values()) {
        if (c.kind === "room" && !c.joined && c.items.length === 0) chat.convs.delete(c.key);
      }
      drawConvs();
    }
    toast(m.text);
  },
};

function saveRooms() {
  const rooms = [...chat.convs.values()].filter(c => c.kind === "room").map(c => c.name);
  store.set("rooms:" + chat.user, JSON.stringify(rooms));
}

// ---- the user's actions --------------------------------------------------

function say() {
  const ta = $("say-text");
  const text = ta.value.trim();
  if (!text) { ta.value = ""; return; }
  const c = chat.convs.get(chat.current);
  if (!c) return;
  if (new TextEncoder().encode(text).length > chat.limits.text) {
    toast("A message is at most " + chat.limits.text + " bytes.");
    return;
  }
  const ref = "m" + chat.nextRef++;
  const item = { from: chat.user, text, pending: true, own: true, conv: c.key, key: PENDING };
  const cmd = c.kind === "room" ? { cmd: "say", room: c.name, text, ref } : { cmd: "dm", to: c.name, text, ref };
  if (send(cmd)) {
    chat.refs.set(ref, item);
  } else {
    item.pending = false;
    item.failed = "offline";
  }
  item.cmd = cmd;
  addItem(c, item);
  ta.value = "";
  grow(ta);
}

function resend(item) {
  const c = conv(item.conv);
  const i = c.items.indexOf(item);
  if (i >= 0) c.items.splice(i, 1);
  if (item.el) item.el.remove();
  item.el = null;
  const ref = "m" + chat.nextRef++;
  const cmd = Object.assign({}, item.cmd, { ref });
  const again = { from: chat.user, text: item.text, pending: true, own: true, conv: item.conv, key: PENDING, cmd };
  if (send(cmd)) chat.refs.set(ref, again); else { again.pending = false; again.failed = "offline"; }
  addItem(c, again);
}

function typing() {
  const c = chat.convs.get(chat.current);
  if (!c || Date.now() - chat.typingSent < 2500) return;
  chat.typingSent = Date.now();
  send(c.kind === "room" ? { cmd: "typing", room: c.name } : { cmd: "typing", to: c.name });
}

function grow(ta) {
  ta.style.height = "auto";
  ta.style.height = Math.min(ta.scrollHeight, 160) + "px";
}

function showLogin(err) {
  $("app").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = err || "";
  $("login-user").value = chat.user || store.get("user") || "";
  $("login-user").focus();
}

function start(user, token) {
  chat.user = user;
  chat.token = token || "";
  chat.attempt = 0;
  chat.convs.clear();
  chat.current = "";
  $("login-error").textContent = "";
  connect();
}

function init() {
  $("login-form").onsubmit = e => {
    e.preventDefault();
    start($("login-user").value.trim(), $("login-token").value);
  };
  $("say-form").onsubmit = e => { e.preventDefault(); say(); };
  $("say-text").onkeydown = e => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); say(); }
  };
  $("say-text").oninput = e => { grow(e.target); typing(); };
  $("join-form").onsubmit = e => {
    e.preventDefault();
    const room = $("join-room").value.trim();
    if (!room) return;
    $("join-room").value = "";
    const key = "#" + room;
    if (chat.convs.has(key) && chat.convs.get(key).joined) { show(key); return; }
    conv(key);
    chat.want = key;
    send({ cmd: "join", room });
  };
  $("join-room").onfocus = () => send({ cmd: "rooms" });
  $("leave").onclick = () => {
    const c = chat.convs.get(chat.current);
    if (!c || c.kind !== "room") return;
    c.leaving = true;
    if (!send({ cmd: "leave", room: c.name })) handlers.left({ room: c.name, user: chat.user });
  };
  $("logout").onclick = () => {
    if (chat.ws) detach(chat.ws);
    chat.ws = null;
    clearInterval(chat.pingTimer);
    clearTimeout(chat.retryTimer);
    store.del("user");
    setStatus("offline");
    showLogin("");
  };
  $("banner-retry").onclick = () => { chat.attempt = Math.max(chat.attempt, 1); connect(); };

  // ?user=NAME logs in at once (each tab may be someone else); otherwise
  // the name this browser used last.
  const q = new URLSearchParams(location.search);
  const user = q.get("user") || store.get("user");
  if (user) start(user, "");
  else showLogin("");
}

init();
