// The chat page: log in, join rooms, talk, whisper, see who is typing and who is here.
// Everything users wrote is shown with textContent, never parsed as HTML.
(() => {
  "use strict";

  const TYPING_SHOWN_MS = 3000;
  const TYPING_SENT_EVERY_MS = 1500;
  const ROOMS_REFRESH_MS = 15000;

  const $ = (selector) => document.querySelector(selector);

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  const state = {
    session: null, // {token, user_id, nickname, expires_at} from /api/login or /api/refresh
    client: null,
    current: null, // the room shown
    rooms: new Map(), // room -> {log: <ul>, members: Map(client_id -> {user, name}), unread}
    online: new Map(), // user id -> nickname
    typing: new Map(), // room -> Map(user id -> {name, timer})
    recovered: new Set(), // rooms whose missed messages hubbub.js recovered after a reconnect
    lastTypingSent: 0,
    refreshTimer: null,
    roomsTimer: null,
  };

  // ---- session ----------------------------------------------------------------------------

  async function post(path, body, token) {
    const headers = { "content-type": "application/json" };
    if (token) headers.authorization = "Bearer " + token;
    const response = await fetch(path, { method: "POST", headers, body: JSON.stringify(body ?? {}) });
    const answer = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(answer.error || `${path} failed (${response.status})`);
    return answer;
  }

  /** Renew the token before it expires: a new one from /api/refresh, then hubbub.refresh on the connection. */
  function scheduleRefresh() {
    clearTimeout(state.refreshTimer);
    $("#me").dataset.expiresAt = String(state.session.expires_at);
    const leftMs = state.session.expires_at * 1000 - Date.now();
    const delay = Math.max(500, leftMs - Math.min(60000, leftMs / 3));
    state.refreshTimer = setTimeout(refreshToken, delay);
  }

  async function refreshToken() {
    if (!state.session || !state.client) return;
    try {
      const renewed = await post("/api/refresh", {}, state.session.token);
      state.session = renewed;
      await state.client.refresh(renewed.token); // null when disconnected: kept for the next handshake
      $("#me").dataset.refreshes = String(Number($("#me").dataset.refreshes || 0) + 1);
      scheduleRefresh();
    } catch (error) {
      showError("could not renew the session: " + error.message);
      if (state.session.expires_at * 1000 - Date.now() > 2000) state.refreshTimer = setTimeout(refreshToken, 1000);
    }
  }

  async function onLogin(event) {
    event.preventDefault();
    $("#login-error").textContent = "";
    try {
      state.session = await post("/api/login", { nickname: $("#nickname").value });
    } catch (error) {
      $("#login-error").textContent = error.message;
      return;
    }
    $("#me").textContent = state.session.nickname;
    $("#login").hidden = true;
    $("#app").hidden = false;
    scheduleRefresh();
    connect();
  }

  function loggedOut(message) {
    clearTimeout(state.refreshTimer);
    clearInterval(state.roomsTimer);
    state.client = null;
    state.session = null;
    state.current = null;
    state.rooms.clear();
    state.online.clear();
    $("#logs").replaceChildren();
    $("#joined-rooms").replaceChildren();
    $("#presence-list").replaceChildren();
    $("#online-list").replaceChildren();
    $("#app").hidden = true;
    $("#login").hidden = false;
    $("#me").textContent = "";
    $("#login-error").textContent = message;
    showRoom(null);
  }

  // ---- the connection ---------------------------------------------------------------------

  function setStatus(status, extra) {
    const badge = $("#status");
    badge.dataset.state = status;
    badge.textContent = extra ? `${status} ${extra}` : status;
  }

  function connect() {
    const client = new Hubbub.Client("/chat", { token: () => state.session && state.session.token });
    state.client = client;
    setStatus("connecting");
    client.on("open", () => {
      setStatus("connected");
      refreshRoomList();
    });
    client.on("reconnecting", ({ attempt, delayMs }) => setStatus("reconnecting", `(#${attempt} in ${delayMs} ms)`));
    client.on("close", ({ code, willReconnect }) => {
      if (willReconnect) {
        setStatus("reconnecting");
        for (const room of state.rooms.values()) room.members.clear();
        renderPresence();
        return;
      }
      setStatus("offline");
      if (code === 4001 || code === 4002) loggedOut("Your session expired; log in again.");
    });
    client.on("users", ({ users }) => {
      state.online = new Map(users.map((user) => [user.id, user.name]));
      renderOnline();
    });
    client.on("user.online", ({ id, name }) => {
      state.online.set(id, name);
      renderOnline();
    });
    client.on("user.offline", ({ id }) => {
      state.online.delete(id);
      renderOnline();
    });
    client.on("joined", onJoined);
    client.on("message", onMessage);
    client.on("typing", onTyping);
    client.on("whisper", onWhisper);
    client.on("hubbub.presence", onPresence);
    client.on("hubbub.error", (error) => showError(describe(error)));
    client.on("rejoin", ({ failed }) => {
      for (const { room, error } of failed) showError(`could not rejoin ${room}: ${describe(error)}`);
    });
    // After a reconnect hubbub.js joins each room again from the last message it showed: what was said
    // meanwhile arrives through onMessage, once, in order. Only when that could not be recovered
    // (recovered: false) does the next "joined" snapshot replace the room's log.
    client.on("recovery", ({ room, recovered }) => {
      if (recovered) state.recovered.add(room);
      else state.recovered.delete(room);
    });
    clearInterval(state.roomsTimer);
    state.roomsTimer = setInterval(refreshRoomList, ROOMS_REFRESH_MS);
  }

  function describe(error) {
    if (error && error.fields && error.fields.length) {
      return error.fields.map((field) => `${field.loc.join(".") || "data"}: ${field.message}`).join("; ");
    }
    return (error && error.message) || String(error);
  }

  function showError(message) {
    $("#error").textContent = message;
  }

  // ---- rooms ----------------------------------------------------------------------------------

  function roomState(name) {
    let room = state.rooms.get(name);
    if (!room) {
      const log = el("ul", "log");
      log.dataset.room = name;
      log.hidden = name !== state.current;
      $("#logs").append(log);
      room = { log, members: new Map(), unread: 0 };
      state.rooms.set(name, room);
    }
    return room;
  }

  async function joinRoom(name) {
    showError("");
    try {
      await state.client.join(name); // the "joined" snapshot follows the reply
      showRoom(name);
      refreshRoomList();
    } catch (error) {
      showError(`cannot join ${name}: ${describe(error)}`);
    }
  }

  async function leaveRoom() {
    const name = state.current;
    if (!name) return;
    try {
      await state.client.leave(name);
    } catch (error) {
      showError(`cannot leave ${name}: ${describe(error)}`);
      return;
    }
    const room = state.rooms.get(name);
    if (room) room.log.remove();
    state.rooms.delete(name);
    state.typing.delete(name);
    const next = state.rooms.keys().next();
    showRoom(next.done ? null : next.value);
    refreshRoomList();
  }

  async function refreshRoomList() {
    if (!state.client || !state.client.connected) return;
    let rooms;
    try {
      ({ rooms } = await state.client.request("rooms"));
    } catch (error) {
      return; // the next refresh tries again
    }
    const list = $("#room-list");
    list.replaceChildren();
    for (const { name, count } of rooms) {
      const item = el("li", "room", "#" + name);
      item.dataset.room = name;
      item.append(el("span", "count", String(count)));
      item.addEventListener("click", () => joinRoom(name));
      list.append(item);
    }
  }

  function onJoined({ room: name, history, presence }) {
    const room = roomState(name);
    if (!state.recovered.delete(name)) room.log.replaceChildren(...history.map(messageItem));
    room.members = new Map(presence.map((p) => [p.client_id, { user: p.user, name: nameOf(p) }]));
    if (!state.current) showRoom(name);
    renderJoined();
    if (name === state.current) {
      renderPresence();
      scrollDown();
    }
  }

  function showRoom(name) {
    state.current = name;
    for (const [roomName, room] of state.rooms) {
      room.log.hidden = roomName !== name;
      if (roomName === name) room.unread = 0;
    }
    $("#room-title").textContent = name ? "#" + name : "No room";
    const talking = Boolean(name);
    $("#say-input").disabled = !talking;
    $("#say-input").placeholder = talking ? `Message #${name}` : "Join a room to talk";
    $("#say-form button").disabled = !talking;
    $("#leave-button").disabled = !talking;
    renderJoined();
    renderPresence();
    renderTyping();
    scrollDown();
  }

  function renderJoined() {
    const list = $("#joined-rooms");
    list.replaceChildren();
    for (const [name, room] of state.rooms) {
      const item = el("li", name === state.current ? "room current" : "room", "#" + name);
      item.dataset.room = name;
      if (room.unread) item.append(el("span", "badge", String(room.unread)));
      item.addEventListener("click", () => showRoom(name));
      list.append(item);
    }
  }

  function nameOf(presence) {
    return (presence.info && presence.info.name) || presence.user || "anonymous";
  }

  function onPresence(p) {
    const room = state.rooms.get(p.room);
    if (!room) return;
    if (p.action === "join") room.members.set(p.client_id, { user: p.user, name: nameOf(p) });
    else room.members.delete(p.client_id);
    if (p.room === state.current) renderPresence();
  }

  function renderPresence() {
    const list = $("#presence-list");
    list.replaceChildren();
    const room = state.current && state.rooms.get(state.current);
    if (!room) return;
    const people = new Map(); // one line per user, however many devices
    for (const member of room.members.values()) people.set(member.user, member.name);
    const sorted = Array.from(people).sort((a, b) => a[1].localeCompare(b[1]));
    for (const [user, name] of sorted) {
      const item = el("li", user === state.session.user_id ? "me" : "", name);
      item.dataset.user = user;
      list.append(item);
    }
  }

  // ---- messages -------------------------------------------------------------------------------

  function clock(ts) {
    const date = new Date(ts);
    return `${String(date.getHours()).padStart(2, "0")}:${String(date.getMinutes()).padStart(2, "0")}`;
  }

  function messageItem(message) {
    const mine = state.session && message.user.id === state.session.user_id;
    const item = el("li", mine ? "message mine" : "message");
    item.dataset.id = String(message.id);
    item.append(el("span", "time", clock(message.ts)), el("span", "nick", message.user.name), el("span", "text", message.text));
    return item;
  }

  function scrollDown() {
    const logs = $("#logs");
    logs.scrollTop = logs.scrollHeight;
  }

  function onMessage(message) {
    const room = state.rooms.get(message.room);
    if (!room) return;
    room.log.append(messageItem(message));
    stopTyping(message.room, message.user.id);
    if (message.room === state.current) scrollDown();
    else {
      room.unread += 1;
      renderJoined();
    }
  }

  async function say(event) {
    event.preventDefault();
    const input = $("#say-input");
    const text = input.value;
    if (!state.current || !text.trim()) return;
    showError("");
    try {
      await state.client.request("say", { room: state.current, text });
      input.value = "";
      state.lastTypingSent = 0;
    } catch (error) {
      showError(describe(error));
    }
  }

  // ---- typing ---------------------------------------------------------------------------------

  function typed() {
    const now = Date.now();
    if (!state.current || !$("#say-input").value || now - state.lastTypingSent < TYPING_SENT_EVERY_MS) return;
    state.lastTypingSent = now;
    if (state.client.connected) state.client.emit("typing", { room: state.current });
  }

  function onTyping({ room, user }) {
    let typists = state.typing.get(room);
    if (!typists) state.typing.set(room, (typists = new Map()));
    const previous = typists.get(user.id);
    if (previous) clearTimeout(previous.timer);
    typists.set(user.id, { name: user.name, timer: setTimeout(() => stopTyping(room, user.id), TYPING_SHOWN_MS) });
    if (room === state.current) renderTyping();
  }

  function stopTyping(room, userId) {
    const typists = state.typing.get(room);
    if (!typists || !typists.has(userId)) return;
    clearTimeout(typists.get(userId).timer);
    typists.delete(userId);
    if (room === state.current) renderTyping();
  }

  function renderTyping() {
    const typists = state.typing.get(state.current);
    const names = typists ? Array.from(typists.values(), (t) => t.name) : [];
    $("#typing").textContent =
      names.length === 0 ? "" : names.length === 1 ? `${names[0]} is typing…` : `${names.join(", ")} are typing…`;
  }

  // ---- who is online and private messages ------------------------------------------------------

  function renderOnline() {
    const list = $("#online-list");
    const select = $("#whisper-to");
    const chosen = select.value;
    list.replaceChildren();
    select.replaceChildren();
    const sorted = Array.from(state.online).sort((a, b) => a[1].localeCompare(b[1]));
    for (const [id, name] of sorted) {
      const mine = state.session && id === state.session.user_id;
      const item = el("li", mine ? "user me" : "user", mine ? `${name} (you)` : name);
      item.dataset.user = id;
      item.title = "whisper to " + name;
      item.addEventListener("click", () => {
        select.value = id;
        $("#whisper-input").focus();
      });
      list.append(item);
      const option = el("option", "", mine ? `${name} (you)` : name);
      option.value = id;
      select.append(option);
    }
    if (chosen && state.online.has(chosen)) select.value = chosen;
    else {
      const other = sorted.find(([id]) => !state.session || id !== state.session.user_id);
      if (other) select.value = other[0];
    }
  }

  function onWhisper({ from, to, text, ts }) {
    const item = el("li", "whisper");
    item.append(el("span", "time", clock(ts)), el("span", "nick", `${from.name} → ${to.name}`), el("span", "text", text));
    $("#whispers").append(item);
  }

  async function whisper(event) {
    event.preventDefault();
    const input = $("#whisper-input");
    const to_user = $("#whisper-to").value;
    $("#whisper-error").textContent = "";
    if (!to_user || !input.value.trim()) return;
    try {
      await state.client.request("whisper", { to_user, text: input.value });
      input.value = "";
    } catch (error) {
      $("#whisper-error").textContent = describe(error);
    }
  }

  // ---- wiring ----------------------------------------------------------------------------------

  $("#login-form").addEventListener("submit", onLogin);
  $("#join-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const input = $("#room-input");
    const name = input.value.trim().toLowerCase();
    if (!name) return;
    input.value = "";
    joinRoom(name);
  });
  $("#leave-button").addEventListener("click", leaveRoom);
  $("#rooms-refresh").addEventListener("click", refreshRoomList);
  $("#say-form").addEventListener("submit", say);
  $("#say-input").addEventListener("input", typed);
  $("#whisper-form").addEventListener("submit", whisper);
})();
