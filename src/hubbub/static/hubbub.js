/*!
 * hubbub.js: the browser client of hubbub channel routes (envelope protocol v1, JSON codec).
 *
 *   <script src="/hubbub/hubbub.js"></script>
 *   <script>
 *     const client = new Hubbub.Client("/chat", { token: () => fetchToken() });
 *     client.on("open", ({ clientId }) => console.log("connected as", clientId));
 *     client.on("said", (data) => console.log(data));
 *     await client.join("lobby");
 *     const reply = await client.request("say", { room: "lobby", text: "hi" });
 *   </script>
 *
 * One classic script, no dependencies, no build step; it defines `window.Hubbub` (and is the
 * module's export where `module.exports` exists, as in the npm package "hubbub-client").
 * The wire format is in hubbub's docs/protocol.md ("Envelope routes"); types in hubbub.d.ts.
 */
(function (root) {
  "use strict";

  const SUBPROTOCOL = "hubbub.v1.json";
  const TOKEN_PREFIX = "bearer.";
  const NO_RECONNECT_CODES = [1000, 1008, 4001, 4002, 4003];
  const LIFECYCLE = ["open", "close", "reconnecting", "rejoin", "recovery", "error"];
  const MAX_HELD = 10000;
  const OVER_CAPACITY = 1013;

  /** An error reply, a timeout, or a lost connection: `code` says which (see hubbub.d.ts). */
  class HubbubError extends Error {
    constructor(code, message, extra) {
      super(message || code);
      this.name = "HubbubError";
      this.code = code;
      if (extra) Object.assign(this, extra);
    }
  }

  function report(error) {
    if (typeof root.reportError === "function") root.reportError(error);
    else setTimeout(() => { throw error; });
  }

  function toWebSocketUrl(url) {
    const base = root.location ? root.location.href : undefined;
    const parsed = new URL(url, base);
    if (parsed.protocol === "http:") parsed.protocol = "ws:";
    else if (parsed.protocol === "https:") parsed.protocol = "wss:";
    return parsed.href;
  }

  /**
   * The fallback transport, with the WebSocket interface the Client uses (readyState, send,
   * close, onmessage, onclose): an EventSource on the route's http(s) URL for what the server
   * sends, one POST per message (in order) for what the client sends. EventSource cannot set
   * headers, so the token travels as `?token=`.
   */
  class SseLink {
    constructor(url, token) {
      const parsed = new URL(url);
      parsed.protocol = parsed.protocol === "wss:" ? "https:" : "http:";
      if (token) parsed.searchParams.set("token", token);
      this.url = parsed.href;
      this.readyState = 0;
      this.onmessage = null;
      this.onclose = null;
      this._session = null;
      this._posting = Promise.resolve();
      const source = (this._source = new EventSource(this.url));
      source.addEventListener("session", (event) => {
        this._session = JSON.parse(event.data).session;
        this.readyState = 1;
      });
      source.onmessage = (event) => {
        if (this.readyState === 1 && this.onmessage) this.onmessage({ data: event.data });
      };
      source.addEventListener("close", (event) => {
        const closing = JSON.parse(event.data);
        this._end(closing.code, closing.reason, true);
      });
      source.onerror = () => this._end(1006, "event stream dropped", false);
    }

    send(text) {
      if (this.readyState !== 1) return;
      const target = new URL(this.url);
      target.searchParams.set("session", this._session);
      const post = () =>
        fetch(target.href, { method: "POST", body: text, headers: { "content-type": "application/json" } }).then(
          (answer) => {
            if (answer.status !== 202) this._end(1006, `POST answered ${answer.status}`, false);
          },
          () => this._end(1006, "POST failed", false),
        );
      this._posting = this._posting.then(post);
    }

    close(code = 1000, reason = "") {
      this._end(code, reason, true);
    }

    _end(code, reason, wasClean) {
      if (this.readyState === 3) return;
      this.readyState = 3;
      this._source.close();
      if (this.onclose) this.onclose({ code, reason, wasClean });
    }
  }

  const DEVICE_KEY = "hubbub.device";

  /** This browser's device id: kept in localStorage under `key` (made once), or for this page
   * only when storage is unavailable. */
  function storedDevice(key) {
    const made = () =>
      "d-" + (root.crypto && root.crypto.randomUUID ? root.crypto.randomUUID() : String(Math.random()).slice(2));
    try {
      let id = root.localStorage.getItem(key);
      if (!id) {
        id = made();
        root.localStorage.setItem(key, id);
      }
      return id;
    } catch (error) {
      return made();
    }
  }

  function withDevice(url, device) {
    const parsed = new URL(url);
    parsed.searchParams.set("device", device);
    return parsed.href;
  }

  function backoffDelay(backoff, attempt) {
    const base = Math.min(backoff.maxMs, backoff.initialMs * Math.pow(backoff.factor, attempt - 1));
    const spread = base * backoff.jitter * (2 * Math.random() - 1);
    return Math.max(0, Math.round(base + spread));
  }

  function errorFromReply(error) {
    const body = error && typeof error === "object" ? error : {};
    const { code, message, ...extra } = body;
    return new HubbubError(String(code || "error"), String(message || code || "error"), extra);
  }

  function offsetOf(item) {
    const offset = item && item.offset;
    return Number.isInteger(offset) ? offset : -1;
  }

  /**
   * One joined room's position: its epoch ("" when the room keeps no history) and the offset of the
   * last publication handed to the app. A live publication is delivered when it is the next one,
   * dropped when already delivered, and held while a join is in flight or after a gap; the join's
   * reply (asking "since" the position) supplies what was missed, and the held ones follow.
   */
  class RoomStream {
    constructor(room) {
      this.room = room;
      this.offset = null;
      this.epoch = "";
      this.joining = true;
      this.held = [];
    }

    since() {
      return this.epoch && this.offset !== null ? { offset: this.offset, epoch: this.epoch } : null;
    }

    /** What to deliver for a live publication; null: a gap, recover. */
    live(envelope, offset) {
      if (this.joining) {
        this._hold(envelope);
        return [];
      }
      if (this.offset === null || !this.epoch) return [envelope];
      if (offset <= this.offset) return [];
      if (offset === this.offset + 1) {
        this.offset = offset;
        return [envelope];
      }
      this._hold(envelope);
      this.joining = true;
      return null;
    }

    _hold(envelope) {
      if (this.held.length >= MAX_HELD) this.held.shift();
      this.held.push(envelope);
    }

    /** Apply a hubbub.join reply; returns {deliver, recovered, missed, gap}. */
    settle(reply, recovering) {
      const recovered = reply.recovered;
      this.epoch = typeof reply.epoch === "string" ? reply.epoch : "";
      const deliver = [];
      let last = recovering && recovered === true ? this.offset : null;
      if (!(recovering && recovered === false)) {
        for (const item of reply.publications || []) {
          const position = offsetOf(item);
          if (position >= 0 && (last === null || position > last)) {
            deliver.push(item);
            last = position;
          }
        }
      }
      const missed = deliver.length;
      if (Number.isInteger(reply.offset) && (last === null || reply.offset > last)) last = reply.offset;
      const held = this.held.slice().sort((a, b) => offsetOf(a) - offsetOf(b));
      this.held = [];
      let gap = false;
      for (let index = 0; index < held.length; index++) {
        const position = offsetOf(held[index]);
        if (last !== null && position <= last) continue;
        if (this.epoch && last !== null && position !== last + 1) {
          this.held = held.slice(index);
          gap = true;
          break;
        }
        deliver.push(held[index]);
        last = position;
      }
      this.offset = this.epoch ? last : null;
      this.joining = gap;
      return { deliver, recovered: recovering && typeof recovered === "boolean" ? recovered : null, missed, gap };
    }
  }

  class Client {
    /**
     * @param {string} url  ws://, wss://, http(s):// or a path relative to the page.
     * @param {object} [options]  see ClientOptions in hubbub.d.ts.
     */
    constructor(url, options = {}) {
      this.url = toWebSocketUrl(url);
      /** The device id sent as `?device=` (options.device: an id, or true for one kept in localStorage). */
      this.deviceId = null;
      if (typeof options.device === "string" && options.device) this.deviceId = options.device;
      else if (options.device === true) this.deviceId = storedDevice(options.deviceKey || DEVICE_KEY);
      if (this.deviceId !== null) this.url = withDevice(this.url, this.deviceId);
      const backoff = options.backoff || {};
      this.options = {
        token: options.token === undefined ? null : options.token,
        protocols: options.protocols ? Array.from(options.protocols) : [],
        reconnect: options.reconnect !== false,
        backoff: {
          initialMs: backoff.initialMs ?? 250,
          maxMs: backoff.maxMs ?? 10000,
          factor: backoff.factor ?? 2,
          jitter: backoff.jitter ?? 0.2,
        },
        requestTimeoutMs: options.requestTimeoutMs ?? 10000,
        noReconnectCodes: options.noReconnectCodes ? Array.from(options.noReconnectCodes) : NO_RECONNECT_CODES,
        maxBuffered: options.maxBuffered ?? 1000,
        overCapacityDelayMs: options.overCapacityDelayMs ?? 5000,
        autoAck: options.autoAck !== false,
        transports: options.transports ? Array.from(options.transports) : ["websocket"],
        fallbackAfterMs: options.fallbackAfterMs ?? 5000,
      };
      /** The transport of the current or last connection: "websocket" or "sse" (after a fallback, kept). */
      this.transport = null;
      /** Id of the current connection (from the welcome); null while disconnected. */
      this.clientId = null;
      /** The user id the server authenticated (from the last welcome); null when anonymous. */
      this.user = null;
      /** Whether the welcome of the current connection arrived (sends go out at once). */
      this.connected = false;
      /** The inbox device of the current connection (from the welcome; set by `?device=` in the URL). */
      this.device = null;
      /** Rooms joined through this client; re-joined after every reconnect. */
      this.rooms = new Set();
      /** room -> RoomStream: the position of each joined room. */
      this._streams = new Map();

      this._listeners = new Map();
      this._handlers = new Map();
      this._pending = new Map();
      this._buffer = [];
      this._ready = [];
      this._nextId = 1;
      this._ws = null;
      this._attempt = 0;
      this._timer = null;
      this._stopped = true;
      this._generation = 0;
      this._welcomed = false;
      this._everConnected = false;
      this._welcomeInfo = null;
      this._ackUpTo = 0;
      this._ackQueued = false;
      if (options.autoConnect !== false) this.connect();
    }

    // ---- events ------------------------------------------------------------------------

    /** Listen to a server event type or a lifecycle event; returns a function that stops listening. */
    on(type, fn) {
      let set = this._listeners.get(type);
      if (!set) this._listeners.set(type, (set = new Set()));
      set.add(fn);
      return () => this.off(type, fn);
    }

    /** Like `on`, for the next occurrence only. */
    once(type, fn) {
      const off = this.on(type, (...args) => {
        off();
        fn(...args);
      });
      return off;
    }

    /** Stop calling `fn` for `type` (without `fn`: every listener of `type`). */
    off(type, fn) {
      const set = this._listeners.get(type);
      if (!set) return;
      if (fn === undefined) set.clear();
      else set.delete(fn);
      if (set.size === 0) this._listeners.delete(type);
    }

    _fire(type, data, envelope) {
      const set = this._listeners.get(type);
      if (!set) return;
      for (const fn of Array.from(set)) {
        try {
          fn(data, envelope);
        } catch (error) {
          report(error);
        }
      }
    }

    // ---- sending -----------------------------------------------------------------------

    /** Send an event (no reply). Buffered while (re)connecting; throws after close(). */
    emit(type, data) {
      this._checkType(type);
      this._enqueue({ type, data }, null);
    }

    /** Send a request and wait for its reply's data; rejects with a HubbubError. Made offline, it
     * waits for the connection (`offline: "wait"`, the default) or rejects at once (`"fail"`). */
    request(type, data, options = {}) {
      try {
        this._checkType(type);
      } catch (error) {
        return Promise.reject(error);
      }
      if (options.offline === "fail" && !this.connected) {
        return Promise.reject(new HubbubError("disconnected", "not connected"));
      }
      return this._request(type, data, options.timeoutMs ?? this.options.requestTimeoutMs);
    }

    _request(type, data, timeoutMs) {
      return new Promise((resolve, reject) => {
        const id = "c" + this._nextId++;
        const pending = { resolve, reject, timer: null, sent: false };
        this._pending.set(id, pending);
        if (timeoutMs > 0 && timeoutMs !== Infinity) {
          pending.timer = setTimeout(() => {
            this._pending.delete(id);
            this._buffer = this._buffer.filter((item) => item.id !== id);
            reject(new HubbubError("timeout", `no reply to ${type} within ${timeoutMs} ms`));
          }, timeoutMs);
        }
        try {
          this._enqueue({ type, data, id }, id);
        } catch (error) {
          this._settle(id, error, null);
        }
      });
    }

    _settle(id, error, data) {
      const pending = this._pending.get(id);
      if (!pending) return false;
      this._pending.delete(id);
      clearTimeout(pending.timer);
      if (error) pending.reject(error);
      else pending.resolve(data);
      return true;
    }

    _checkType(type) {
      if (typeof type !== "string" || type === "") throw new TypeError("an event type must be a non-empty string");
    }

    _enqueue(envelope, id) {
      if (this._stopped) throw new HubbubError("closed", "the client is closed");
      const text = JSON.stringify(envelope);
      if (this.connected) {
        this._ws.send(text);
        if (id !== null) this._pending.get(id).sent = true;
        return;
      }
      if (this._buffer.length >= this.options.maxBuffered) {
        throw new HubbubError("buffer_full", `${this._buffer.length} messages already wait for the connection`);
      }
      this._buffer.push({ text, id });
    }

    // ---- answering server requests ---------------------------------------------------

    /** Answer the server's requests of `type` (connection.call) with `fn(data)`'s result; a throw
     * answers with an error ({code: error.code || "handler_error", message}). `null` removes it. */
    handle(type, fn) {
      if (fn === null || fn === undefined) this._handlers.delete(type);
      else this._handlers.set(type, fn);
    }

    async _answer(ws, envelope) {
      const { id, type } = envelope;
      const fn = this._handlers.get(type);
      let reply;
      if (!fn) {
        reply = { id, error: { code: "unknown_type", message: `no handler for ${type}` } };
      } else {
        try {
          const result = await fn(envelope.data, envelope);
          reply = { id, data: result === undefined ? null : result };
        } catch (error) {
          const code = error && typeof error.code === "string" && error.code ? error.code : "handler_error";
          const message = error && error.message ? String(error.message) : String(error);
          reply = { id, error: { code, message } };
        }
      }
      let text;
      try {
        text = JSON.stringify(reply);
      } catch (error) {
        text = JSON.stringify({ id, error: { code: "handler_error", message: `reply is not JSON: ${error.message}` } });
      }
      if (ws === this._ws && this.connected) ws.send(text);
    }

    // ---- rooms -----------------------------------------------------------------------

    /** Join a room (hubbub.join); it is re-joined after every reconnect, asking for what it missed.
     * With `options.history`, its last publications reach the listeners first, in order. */
    async join(room, options = {}) {
      const body = { room };
      if (options.history !== undefined) body.history = options.history;
      const existing = this._streams.get(room);
      const stream = existing || new RoomStream(room);
      stream.joining = true;
      this._streams.set(room, stream);
      let reply;
      try {
        reply = await this.request("hubbub.join", body, options);
      } catch (error) {
        if (!existing && this._streams.get(room) === stream) this._streams.delete(room);
        else stream.joining = false;
        throw error;
      }
      this.rooms.add(room);
      if (this._streams.get(room) === stream) this._settleStream(stream, reply || {}, false);
      return reply;
    }

    /** (offset, epoch) of the last publication of `room` handed to the app, if the room keeps history. */
    position(room) {
      const stream = this._streams.get(room);
      return stream ? stream.since() : null;
    }

    /** Per joined room that keeps history, the position of the last publication handed to the app
     * ({offset, epoch}); a rejoin recovers everything after it (docs/protocol.md, "History and recovery"). */
    get positions() {
      const positions = new Map();
      for (const [room, stream] of this._streams) {
        const since = stream.since();
        if (since && this.rooms.has(room)) positions.set(room, since);
      }
      return positions;
    }

    _settleStream(stream, reply, recovering) {
      const settled = stream.settle(reply, recovering);
      if (settled.recovered !== null) {
        this._fire("recovery", {
          room: stream.room,
          recovered: settled.recovered,
          missed: settled.missed,
          offset: stream.offset,
          epoch: stream.epoch,
        });
      }
      for (const item of settled.deliver) this._deliver(item);
      if (settled.gap) this._recover(stream);
      return settled.recovered;
    }

    _deliver(envelope) {
      if (typeof envelope.type === "string") this._fire(envelope.type, envelope.data, envelope);
    }

    /** A gap in a room's offsets: ask for what is missing with "since". */
    _recover(stream) {
      const since = stream.since();
      if (!since || !this.connected || this._streams.get(stream.room) !== stream) return;
      this._request("hubbub.join", { room: stream.room, since }, this.options.requestTimeoutMs).then(
        (reply) => {
          if (this._streams.get(stream.room) === stream) this._settleStream(stream, reply || {}, true);
        },
        (error) => {
          if (error.code !== "disconnected" && error.code !== "closed") {
            stream.joining = false; // the next publication after the gap asks again
            this._fire("error", { error, phase: "recover", room: stream.room });
          }
        },
      );
    }

    /** Leave a room (hubbub.leave). Resolves at once while disconnected: membership ended with the connection. */
    async leave(room, options = {}) {
      this.rooms.delete(room);
      this._streams.delete(room);
      if (!this.connected) return { room };
      try {
        return await this.request("hubbub.leave", { room }, options);
      } catch (error) {
        if (error.code === "disconnected") return { room };
        throw error;
      }
    }

    /** Send `data` to a room's members as an event of `type` (default "hubbub.message"). */
    publish(room, type, data, options = {}) {
      const body = { room, data };
      if (type !== null && type !== undefined) body.type = type;
      if (options.idempotencyKey !== undefined) body.idempotency_key = options.idempotencyKey;
      return this.request("hubbub.publish", body, options);
    }

    // ---- authentication ----------------------------------------------------------------

    /** The token (or token function) for the next handshakes; sent as the subprotocol "bearer.<token>". */
    setToken(token) {
      this.options.token = token;
    }

    /** Store `token` and, when connected, extend this connection with it (hubbub.refresh);
     * resolves with {expires_at}, or null when only stored for the next handshake. */
    async refresh(token, options = {}) {
      this.setToken(token);
      if (!this.connected) return null;
      return this.request("hubbub.refresh", { token }, options);
    }

    // ---- the connection ------------------------------------------------------------------

    /** Resolves with the welcome once connected (at once if connected now); rejects if the
     * client stops first (close(), or a close code that is not retried). */
    ready() {
      if (this.connected) return Promise.resolve(this._welcomeInfo);
      return new Promise((resolve, reject) => this._ready.push({ resolve, reject }));
    }

    /** Start connecting (done by the constructor unless autoConnect is false); also restarts after close(). */
    connect() {
      if (!this._stopped) return;
      this._stopped = false;
      this._attempt = 0;
      this._open();
    }

    /** Close for good: no reconnect; pending requests and buffered messages are rejected/dropped. */
    close(code = 1000, reason = "") {
      if (this._stopped) return;
      this._stopped = true;
      clearTimeout(this._timer);
      this._timer = null;
      const error = new HubbubError("closed", "the client was closed");
      this._failAll(error, true);
      this._stopReady(error);
      const ws = this._ws;
      if (ws && ws.readyState <= 1) {
        ws.close(code, reason);
      } else {
        this._ws = null;
        this._fire("close", { code, reason, willReconnect: false, wasClean: true });
      }
    }

    async _open() {
      const generation = ++this._generation;
      let token;
      try {
        token = typeof this.options.token === "function" ? await this.options.token() : this.options.token;
      } catch (error) {
        if (generation !== this._generation || this._stopped) return;
        this._fire("error", { error, phase: "token" });
        this._closed({ code: 1006, reason: "token function failed", wasClean: false });
        return;
      }
      if (generation !== this._generation || this._stopped) return;
      const protocols = [SUBPROTOCOL, ...this.options.protocols.filter((name) => name !== SUBPROTOCOL)];
      if (token) protocols.push(TOKEN_PREFIX + token);
      const sse = this.transport === "sse" || !this.options.transports.includes("websocket");
      const mayFallBack = !sse && this.options.transports.includes("sse");
      let ws;
      try {
        ws = sse ? new SseLink(this.url, token) : new WebSocket(this.url, protocols);
        this.transport = sse ? "sse" : "websocket";
      } catch (error) {
        this._fire("error", { error, phase: "connect" });
        this._stopped = true;
        this._closed({ code: 1006, reason: String(error.message || error), wasClean: false });
        return;
      }
      this._ws = ws;
      this._welcomed = false;
      let opened = false;
      ws.onmessage = (event) => {
        if (ws === this._ws) this._received(ws, event.data);
      };
      ws.onclose = (event) => {
        if (ws !== this._ws) return;
        this._ws = null;
        if (mayFallBack && !opened) {
          this._fallBack(generation);
          return;
        }
        this._closed({ code: event.code, reason: event.reason, wasClean: event.wasClean });
      };
      if (mayFallBack) {
        ws.onopen = () => {
          opened = true;
        };
        setTimeout(() => {
          if (ws !== this._ws || opened) return;
          this._ws = null;
          ws.close();
          this._fallBack(generation);
        }, this.options.fallbackAfterMs);
      }
    }

    /** The WebSocket could not be opened (refused, reset, or not within fallbackAfterMs): use SSE + POST. */
    _fallBack(generation) {
      if (generation !== this._generation || this._stopped) return;
      this.transport = "sse";
      this._open();
    }

    _received(ws, text) {
      if (typeof text !== "string") {
        this._fire("error", { error: new HubbubError("invalid_message", "binary frame on a JSON route"), phase: "receive" });
        return;
      }
      let envelope;
      try {
        envelope = JSON.parse(text);
      } catch (error) {
        this._fire("error", { error, phase: "receive" });
        return;
      }
      if (!envelope || typeof envelope !== "object") return;
      const { type, id } = envelope;
      if (type === "hubbub.welcome" && !this._welcomed) {
        this._welcome(ws, envelope.data || {});
      } else if (type === undefined || type === null) {
        if (id !== undefined && id !== null) {
          this._settle(String(id), envelope.error ? errorFromReply(envelope.error) : null, envelope.data);
        }
      } else if (id !== undefined && id !== null) {
        this._answer(ws, envelope);
      } else if (type === "hubbub.error") {
        this._fire(type, envelope.error || envelope.data, envelope);
      } else if (type !== "hubbub.welcome") {
        this._publication(ws, type, envelope);
      }
    }

    _publication(ws, type, envelope) {
      const data = envelope.data;
      if (typeof envelope.inbox === "number") {
        this._fire(type, data, envelope);
        this._inboxReceived(ws, envelope.inbox);
        return;
      }
      const room = typeof envelope.room === "string" ? envelope.room : data && typeof data === "object" ? data.room : undefined;
      const stream = typeof room === "string" ? this._streams.get(room) : undefined;
      if (!stream || !Number.isInteger(envelope.offset)) {
        this._fire(type, data, envelope);
        return;
      }
      const deliver = stream.live(envelope, envelope.offset);
      if (deliver === null) this._recover(stream);
      else for (const item of deliver) this._deliver(item);
    }

    /** A durable message reached the listeners: acknowledge it (one hubbub.ack per burst, the highest offset). */
    _inboxReceived(ws, offset) {
      if (!this.options.autoAck || this.device === null) return;
      if (offset > this._ackUpTo) this._ackUpTo = offset;
      if (this._ackQueued) return;
      this._ackQueued = true;
      setTimeout(() => {
        this._ackQueued = false;
        if (ws === this._ws && this.connected) ws.send(JSON.stringify({ type: "hubbub.ack", data: { inbox: this._ackUpTo } }));
      }, 0);
    }

    /** Acknowledge durable messages up to `offset` (with `autoAck: false`); resolves with {inbox: cursor}. */
    ack(offset, options = {}) {
      return this.request("hubbub.ack", { inbox: offset }, options);
    }

    _welcome(ws, data) {
      const reconnected = this._everConnected;
      this._everConnected = true;
      this._welcomed = true;
      this.connected = true;
      this._attempt = 0;
      this.clientId = data.client_id ?? null;
      this.user = data.user ?? null;
      this.device = data.device ?? null;
      this._ackUpTo = 0;
      this._welcomeInfo = { clientId: this.clientId, user: this.user, protocol: data.protocol, reconnected, device: this.device };
      this._rejoin();
      const buffered = this._buffer;
      this._buffer = [];
      for (const item of buffered) {
        ws.send(item.text);
        const pending = item.id !== null ? this._pending.get(item.id) : null;
        if (pending) pending.sent = true;
      }
      const waiting = this._ready;
      this._ready = [];
      for (const waiter of waiting) waiter.resolve(this._welcomeInfo);
      this._fire("open", this._welcomeInfo);
    }

    _rejoin() {
      const streams = Array.from(this._streams.values()).filter((stream) => this.rooms.has(stream.room));
      if (streams.length === 0) return;
      const timeout = this.options.requestTimeoutMs;
      const attempts = streams.map((stream) => {
        const room = stream.room;
        const since = stream.since();
        const body = since ? { room, since } : { room };
        stream.joining = true;
        return this._request("hubbub.join", body, timeout).then(
          (reply) => {
            let recovered = true;
            if (this._streams.get(room) === stream) {
              recovered = this._settleStream(stream, reply || {}, since !== null) !== false;
            }
            return { room, ok: true, recovered };
          },
          (error) => ({ room, ok: false, error }),
        );
      });
      Promise.all(attempts).then((results) => {
        const failed = [];
        for (const result of results) {
          if (result.ok) continue;
          const lost = result.error.code === "disconnected" || result.error.code === "closed";
          if (!lost) {
            this.rooms.delete(result.room);
            this._streams.delete(result.room);
          }
          failed.push({ room: result.room, error: result.error });
        }
        const rejoined = results.filter((r) => r.ok);
        this._fire("rejoin", {
          rooms: rejoined.map((r) => r.room),
          failed,
          unrecovered: rejoined.filter((r) => !r.recovered).map((r) => r.room),
        });
      });
    }

    _closed({ code, reason, wasClean }) {
      this.connected = false;
      this.clientId = null;
      this._welcomed = false;
      for (const stream of this._streams.values()) stream.joining = true;
      const retry =
        !this._stopped && this.options.reconnect && !this.options.noReconnectCodes.includes(code);
      if (!retry) {
        this._stopped = true;
        const error = new HubbubError("disconnected", `connection closed (${code}${reason ? ": " + reason : ""})`, {
          closeCode: code,
        });
        this._failAll(error, true);
        this._stopReady(error);
      } else {
        this._failAll(new HubbubError("disconnected", `connection lost (${code})`, { closeCode: code }), false);
      }
      this._fire("close", { code, reason, willReconnect: retry, wasClean });
      if (retry && !this._stopped) this._schedule(code === OVER_CAPACITY ? this.options.overCapacityDelayMs : 0);
    }

    /** Plan the next attempt: the backoff's delay, but at least `minimumMs` (the server's hint to wait). */
    _schedule(minimumMs = 0) {
      this._attempt += 1;
      const attempt = this._attempt;
      const delayMs = Math.max(minimumMs, backoffDelay(this.options.backoff, attempt));
      this._fire("reconnecting", { attempt, delayMs });
      clearTimeout(this._timer);
      this._timer = setTimeout(() => {
        this._timer = null;
        if (!this._stopped) this._open();
      }, delayMs);
    }

    _failAll(error, includeBuffered) {
      for (const [id, pending] of Array.from(this._pending)) {
        if (includeBuffered || pending.sent) this._settle(id, error, null);
      }
      if (includeBuffered) this._buffer = [];
    }

    /** How many events and requests wait for the connection (at most `maxBuffered`). */
    get queued() {
      return this._buffer.length;
    }

    _stopReady(error) {
      const waiting = this._ready;
      this._ready = [];
      for (const waiter of waiting) waiter.reject(error);
    }
  }

  root.Hubbub = Object.freeze({
    Client,
    HubbubError,
    SUBPROTOCOL,
    NO_RECONNECT_CODES: Object.freeze(NO_RECONNECT_CODES.slice()),
    LIFECYCLE_EVENTS: Object.freeze(LIFECYCLE.slice()),
  });
  if (typeof module === "object" && module && module.exports) module.exports = root.Hubbub;
})(typeof window !== "undefined" ? window : globalThis);
