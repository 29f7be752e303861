// The hubbub chat demo page. The protocol is documented in hubbub/demos/chat.py.
// User data only ever reaches the page through textContent, never as parsed HTML.
"use strict";

(() => {
  const MAX_LOG = 500;
  const BACKOFF_START_MS = 500;
  const BACKOFF_MAX_MS = 15000;

  const $ = (id) => document.getElementById(id);
  const el = {
    status: $("status"), me: $("me"), login: $("login"), chat: $("chat"),
    nickForm: $("nick-form"), nickInput: $("nick-input"), nickError: $("nick-error"),
    joinForm: $("join-form"), roomInput: $("room-input"),
    joined: $("joined-rooms"), noRooms: $("no-rooms"), all: $("all-rooms"), noAll: $("no-all-rooms"),
    title: $("room-title"), leave: $("leave-button"), messages: $("messages"), emptyRoom: $("empty-room"),
    sayForm: $("say-form"), sayInput: $("say-input"), sayButton: document.querySelector("#say-form button"),
    memberList: $("member-list"), memberCount: $("member-count"), toast: $("toast"),
  };

  const state = {
    socket: null,
    connected: false,
    attempt: 0,
    nick: null,          // accepted by the server
    wantedNick: null,    // what to (re)send on every connect
    rooms: new Map(),    // name -> {log, members, unread}
    active: null,
    switchTo: null,      // a room the user asked to join: show it once joined
  };

  function node(tag, className, text) {
    const n = document.createElement(tag);
    if (className) n.className = className;
    if (text !== undefined) n.textContent = text;
    return n;
  }

  const NICK_COLORS = ["#4f46e5", "#0891b2", "#c026d3", "#16a34a", "#ea580c", "#db2777", "#0d9488", "#9333ea"];
  function nickColor(nick) {
    let hash = 0;
    for (const char of nick) hash = (hash * 31 + char.codePointAt(0)) >>> 0;
    return NICK_COLORS[hash % NICK_COLORS.length];
  }

  function clock(ts) {
    return new Date(ts).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
  }

  let toastTimer = null;
  function toast(message) {
    el.toast.textContent = message;
    el.toast.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { el.toast.hidden = true; }, 4000);
  }

  // ---- the socket ---------------------------------------------------------------------

  function send(message) {
    if (state.socket && state.socket.readyState === WebSocket.OPEN) {
      state.socket.send(JSON.stringify(message));
      return true;
    }
    toast("Not connected; trying again shortly.");
    return false;
  }

  function setStatus(kind, text) {
    el.status.dataset.state = kind;
    el.status.textContent = text;
  }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    const socket = new WebSocket(scheme + location.host + "/ws");
    state.socket = socket;
    setStatus("connecting", "connecting…");
    socket.addEventListener("open", () => {
      state.connected = true;
      state.attempt = 0;
      el.status.dataset.attempts = "0";
      setStatus("connected", "connected");
      if (state.wantedNick) send({ type: "nick", nick: state.wantedNick });
      for (const room of state.rooms.keys()) send({ type: "join", room });
      render();
    });
    socket.addEventListener("message", (e) => {
      let message;
      try { message = JSON.parse(e.data); } catch { return; }
      const handler = handlers[message.type];
      if (handler) handler(message);
    });
    socket.addEventListener("close", () => {
      const wasConnected = state.connected;
      state.connected = false;
      state.socket = null;
      const delay = Math.min(BACKOFF_MAX_MS, BACKOFF_START_MS * 2 ** state.attempt) * (0.8 + Math.random() * 0.4);
      state.attempt += 1;
      setStatus("offline", `offline, retrying in ${Math.ceil(delay / 1000)} s`);
      el.status.dataset.attempts = String(state.attempt);
      el.status.dataset.retryMs = String(Math.round(delay));
      if (wasConnected) for (const room of state.rooms.keys()) addLine(room, "system", "connection lost", Date.now());
      render();
      setTimeout(connect, delay);
    });
  }

  // ---- what the server says -------------------------------------------------------------

  const handlers = {
    rooms(message) { renderAllRooms(message.rooms); },
    nick(message) {
      state.nick = message.nick;
      state.wantedNick = message.nick;
      try { localStorage.setItem("hubbub-chat-nick", message.nick); } catch { /* private mode */ }
      el.nickError.textContent = "";
      render();
      if (!el.chat.hidden && !state.active) el.roomInput.focus();
    },
    joined(message) {
      if (!state.rooms.has(message.room)) {
        const log = node("ol", "log");
        log.dataset.room = message.room;
        log.hidden = true;
        el.messages.appendChild(log);
        state.rooms.set(message.room, { log, members: [], unread: 0 });
      }
      if (state.switchTo === message.room || !state.active) {
        state.switchTo = null;
        activate(message.room);
      }
      render();
    },
    left(message) {
      const room = state.rooms.get(message.room);
      if (!room) return;
      room.log.remove();
      state.rooms.delete(message.room);
      if (state.active === message.room) {
        const next = state.rooms.keys().next().value;
        if (next) { activate(next); return; }
        state.active = null;
      }
      render();
    },
    members(message) {
      const room = state.rooms.get(message.room);
      if (!room) return;
      room.members = message.members;
      if (state.active === message.room) renderMembers();
    },
    system(message) { addLine(message.room, "system", message.text, message.ts); },
    message(message) { addLine(message.room, "message", message.text, message.ts, message.nick); },
    error(message) {
      if (message.request === "nick" && !state.nick) {
        el.nickError.textContent = message.message;
        state.wantedNick = null;
      } else {
        toast(message.message);
      }
    },
  };

  function addLine(roomName, kind, text, ts, nick) {
    const room = state.rooms.get(roomName);
    if (!room) return;
    const log = room.log;
    const atBottom = el.messages.scrollHeight - el.messages.scrollTop - el.messages.clientHeight < 40;
    const line = node("li", kind);
    line.appendChild(node("time", "time", clock(ts)));
    if (nick !== undefined) {
      const who = node("span", "nick", nick);
      who.style.setProperty("--nick", nickColor(nick));
      line.appendChild(who);
      if (nick === state.nick) line.classList.add("mine");
    }
    line.appendChild(node("span", "text", text));
    log.appendChild(line);
    while (log.childElementCount > MAX_LOG) log.firstElementChild.remove();
    if (roomName === state.active) {
      if (atBottom || nick === state.nick) el.messages.scrollTop = el.messages.scrollHeight;
    } else if (kind === "message") {
      room.unread += 1;
      renderJoinedRooms();
    }
  }

  // ---- rendering --------------------------------------------------------------------------

  function activate(name) {
    state.active = name;
    const room = state.rooms.get(name);
    if (room) room.unread = 0;
    render();
    el.messages.scrollTop = el.messages.scrollHeight;
    el.sayInput.focus();
  }

  function renderJoinedRooms() {
    el.joined.replaceChildren();
    for (const [name, room] of state.rooms) {
      const item = node("li");
      const button = node("button", "room" + (name === state.active ? " active" : ""));
      button.type = "button";
      button.appendChild(node("span", "room-name", "#" + name));
      if (room.unread) button.appendChild(node("span", "badge", String(room.unread)));
      button.addEventListener("click", () => activate(name));
      item.appendChild(button);
      el.joined.appendChild(item);
    }
    el.noRooms.hidden = state.rooms.size > 0;
  }

  function renderAllRooms(rooms) {
    el.all.replaceChildren();
    for (const { name, count } of rooms) {
      const item = node("li");
      const button = node("button", "room");
      button.type = "button";
      button.title = state.rooms.has(name) ? "show this room" : "join this room";
      button.appendChild(node("span", "room-name", "#" + name));
      button.appendChild(node("span", "count", String(count)));
      button.addEventListener("click", () => joinRoom(name));
      item.appendChild(button);
      el.all.appendChild(item);
    }
    el.noAll.hidden = rooms.length > 0;
  }

  function renderMembers() {
    const room = state.rooms.get(state.active);
    const members = room ? room.members : [];
    el.memberList.replaceChildren(...members.map((name) => node("li", name === state.nick ? "mine" : "", name)));
    el.memberCount.textContent = room ? String(members.length) : "";
  }

  function render() {
    el.login.hidden = state.nick !== null;
    el.chat.hidden = state.nick === null;
    el.me.hidden = state.nick === null;
    el.me.textContent = state.nick ? "you are " + state.nick : "";
    for (const [name, room] of state.rooms) room.log.hidden = name !== state.active;
    const canTalk = state.active !== null && state.connected;
    el.title.textContent = state.active ? "#" + state.active : "No room";
    el.leave.hidden = state.active === null;
    el.emptyRoom.hidden = state.active !== null;
    el.sayInput.disabled = !canTalk;
    el.sayButton.disabled = !canTalk;
    renderJoinedRooms();
    renderMembers();
  }

  // ---- what the user does -------------------------------------------------------------------

  function joinRoom(name) {
    if (state.rooms.has(name)) { activate(name); return; }
    state.switchTo = name;
    send({ type: "join", room: name });
  }

  el.nickForm.addEventListener("submit", (e) => {
    e.preventDefault();
    const nick = el.nickInput.value.trim();
    if (!nick) return;
    state.wantedNick = nick;
    send({ type: "nick", nick });
  });

  el.joinForm.addEventListener("submit", (e) => {
    e.preventDefault();
    const name = el.roomInput.value.trim().toLowerCase();
    if (!name) return;
    el.roomInput.value = "";
    joinRoom(name);
  });

  el.sayForm.addEventListener("submit", (e) => {
    e.preventDefault();
    const text = el.sayInput.value.trim();
    if (!text || !state.active) return;
    if (send({ type: "say", room: state.active, text })) el.sayInput.value = "";
  });

  el.leave.addEventListener("click", () => {
    if (state.active) send({ type: "leave", room: state.active });
  });

  try { el.nickInput.value = localStorage.getItem("hubbub-chat-nick") || ""; } catch { /* private mode */ }
  render();
  connect();
})();
