/**
 * Types of hubbub.js, the browser client of hubbub channel routes (envelope protocol v1,
 * JSON codec, subprotocol "hubbub.v1.json"). The script is a classic script that defines
 * the global `Hubbub`:
 *
 *     <script src="/hubbub/hubbub.js"></script>
 *
 * Reference these declarations with `/// <reference path="hubbub.d.ts" />` (the global `Hubbub`),
 * or install the npm package "hubbub-client" (package.json beside this file) and `import Hubbub = require("hubbub-client")`.
 */

declare namespace Hubbub {
  /** JSON-compatible data: what travels in an envelope's "data". */
  type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

  /** A token, or a function asked for one before every handshake (e.g. to fetch a fresh JWT). */
  type TokenSource = string | null | (() => string | null | Promise<string | null>);

  interface BackoffOptions {
    /** Delay before the first reconnect attempt, in ms. Default 250. */
    initialMs?: number;
    /** Upper bound of the delay, in ms. Default 10000. */
    maxMs?: number;
    /** Each attempt waits `factor` times longer than the one before. Default 2. */
    factor?: number;
    /** Random spread: the delay is multiplied by a factor in [1 - jitter, 1 + jitter]. Default 0.2. */
    jitter?: number;
  }

  interface ClientOptions {
    /** Sent as the offered subprotocol "bearer.<token>" (browsers cannot set headers); never echoed back. */
    token?: TokenSource;
    /** More subprotocols to offer after "hubbub.v1.json" (the client speaks only the JSON codec). */
    protocols?: string[];
    /** Reconnect after an abnormal close. Default true. */
    reconnect?: boolean;
    /** Reconnect delays: min(maxMs, initialMs * factor^(attempt-1)) +- jitter. */
    backoff?: BackoffOptions;
    /** Default timeout of `request` in ms; 0 or Infinity for none. Default 10000. */
    requestTimeoutMs?: number;
    /**
     * Close codes after which the client does not reconnect. Default `Hubbub.NO_RECONNECT_CODES`:
     * 1000 (normal closure: the server meant it), 1008 (policy, e.g. rate limit), 4001 (no token),
     * 4002 (invalid or expired token), 4003 (too many connections for the user).
     */
    noReconnectCodes?: number[];
    /** Events and requests kept while (re)connecting, sent after the welcome; beyond it `emit` throws and
     * `request` rejects with "buffer_full". Default 1000. */
    maxBuffered?: number;
    /** After close code 1013 (server at capacity, try again later) the next attempt waits at least this long, in ms.
     * Default 5000 (the server's retry-after). */
    overCapacityDelayMs?: number;
    /** Connect in the constructor. Default true; with false, call `connect()`. */
    autoConnect?: boolean;
    /**
     * On a device connection (`?device=<id>` in the URL), acknowledge each durable message (one carrying
     * `inbox`) once its listeners ran: one `hubbub.ack` per burst, with the highest offset. Default true;
     * with false, call `ack(offset)`.
     */
    autoAck?: boolean;
    /**
     * The transports to use, in order: ["websocket"] (default) or ["websocket", "sse"], which falls back
     * to Server-Sent Events + POST on the same route when the WebSocket closes before it opened, or has
     * not opened within `fallbackAfterMs` (default 5000); the fallback is kept for reconnects. The token
     * goes as `?token=` on that transport (EventSource cannot set headers).
     */
    transports?: ReadonlyArray<"websocket" | "sse">;
    fallbackAfterMs?: number;
    /**
     * The inbox device this client speaks for, sent as `?device=<id>` (1-64 of A-Z a-z 0-9 _ . : -):
     * an id of your own, or `true` for this browser's stable id, made once and kept in localStorage
     * under `deviceKey` (for this page only when storage is unavailable). Default: none.
     */
    device?: string | true;
    /** The localStorage key of the stable device id. Default "hubbub.device". */
    deviceKey?: string;
  }

  interface RequestOptions {
    /** Reject with code "timeout" when no reply came within this many ms (0 or Infinity: never). */
    timeoutMs?: number;
    /** Made while disconnected: "wait" (default) sends it after the next welcome, "fail" rejects at once
     * with "disconnected". */
    offline?: "wait" | "fail";
  }

  interface JoinOptions extends RequestOptions {
    /** Ask for the room's last `history` publications; they reach the listeners first, in order. */
    history?: number;
  }

  /** A room's position: the offset of the last publication handed to the app, and the room's epoch. */
  interface Position {
    offset: number;
    epoch: string;
  }

  /** The reply to hubbub.join (offset and epoch: the room's latest position; "" epoch: no history kept). */
  interface JoinReply {
    room: string;
    offset: number;
    epoch: string;
    recovered?: boolean;
    publications?: Envelope[];
  }

  /**
   * After a re-join or a gap: whether every publication missed since the room's position was recovered
   * (and handed to the listeners, in order, once). `recovered: false` means the server's history no
   * longer covers the gap (or the room's epoch changed): reload the room's state.
   */
  interface RecoveryInfo {
    room: string;
    recovered: boolean;
    /** How many missed publications were recovered. */
    missed: number;
    offset: number | null;
    epoch: string;
  }

  /** What "open" listeners and `ready()` get: the server's welcome. */
  interface Welcome {
    /** The connection's id on the server (`event.client_id`). */
    clientId: string;
    /** The authenticated user's id, or null on an anonymous route. */
    user: string | null;
    /** The envelope protocol version (1). */
    protocol: number;
    /** True when this is not the client's first connection. */
    reconnected: boolean;
    /** The inbox device this connection speaks for (`?device=` in the URL), or null. */
    device: string | null;
  }

  interface CloseInfo {
    /** The WebSocket close code (1006 when the connection dropped without a close frame). */
    code: number;
    reason: string;
    /** Whether a reconnect is scheduled (a "reconnecting" event follows). */
    willReconnect: boolean;
    wasClean: boolean;
  }

  interface ReconnectingInfo {
    /** 1 for the first attempt after a connection was lost; reset by the next welcome. */
    attempt: number;
    /** How long the client waits before this attempt. */
    delayMs: number;
  }

  interface RejoinInfo {
    /** Rooms joined again after a reconnect. */
    rooms: string[];
    /** Rooms the server refused (these are forgotten) or that could not be asked (connection lost; kept). */
    failed: { room: string; error: HubbubError }[];
    /** Rooms with history whose missed publications could not all be recovered (trimmed, expired, or a new
     * epoch): the app should reload their state. In the others every missed publication was delivered,
     * in order, before any later one. */
    unrecovered: string[];
  }

  interface ClientErrorInfo {
    error: unknown;
    /** "token": the token function threw (retried with backoff); "connect": the URL or a subprotocol
     * is invalid (the client stops); "receive": a frame that is not a JSON envelope (ignored);
     * "recover": asking for the publications missed in a gap failed (`room` says where). */
    phase: "token" | "connect" | "receive" | "recover";
    room?: string;
  }

  /** The error object of a server's error reply or "hubbub.error" event. */
  interface ErrorBody {
    code: string;
    message: string;
    /** For "validation_error": where and what, one entry per problem. */
    fields?: { loc: (string | number)[]; message: string }[];
    /** On "hubbub.error": the type of the event that failed. */
    type?: string;
    [extra: string]: unknown;
  }

  /** {"type": "hubbub.presence"} data: a client joined or left a room this client is in. */
  interface Presence {
    room: string;
    action: "join" | "leave";
    client_id: string;
    user: string | null;
    info: { [key: string]: Json };
  }

  /** Data of an event sent with `publish` (type given there, or "hubbub.message"). */
  interface Published<T = Json> {
    room: string;
    /** Client id of the publisher. */
    from: string;
    /** User id of the publisher (null when anonymous). */
    user: string | null;
    data: T;
  }

  /** The raw envelope as received. */
  interface Envelope {
    type?: string;
    id?: string | number;
    data?: Json;
    error?: ErrorBody;
    /** A publication in a room with history: its room and its offset in the room's history. */
    room?: string;
    offset?: number;
  }

  interface LifecycleEvents {
    open: Welcome;
    close: CloseInfo;
    reconnecting: ReconnectingInfo;
    rejoin: RejoinInfo;
    recovery: RecoveryInfo;
    error: ClientErrorInfo;
    "hubbub.presence": Presence;
    "hubbub.error": ErrorBody;
    "hubbub.message": Published;
  }

  type Listener<T> = (data: T, envelope?: Envelope) => void;

  /**
   * A failed request, or a lost connection. `code` is the server's error code ("invalid_message",
   * "unknown_type", "validation_error", "handler_error", "timeout", "forbidden", "rate_limited", "overloaded",
   * "unauthorized", "bad_request", or an app's own), or one of the client's:
   * "timeout" (no reply in time), "disconnected" (the connection closed before the reply),
   * "closed" (client.close() was called), "buffer_full" (too much waiting for a connection);
   * "disconnected" also for a request made offline with `offline: "fail"`.
   */
  class HubbubError extends Error {
    constructor(code: string, message?: string, extra?: { [key: string]: unknown });
    readonly name: "HubbubError";
    code: string;
    /** For "validation_error": one entry per invalid field. */
    fields?: { loc: (string | number)[]; message: string }[];
    /** For "disconnected": the close code. */
    closeCode?: number;
    [extra: string]: unknown;
  }

  /**
   * What a channel route accepts and sends, by event type: `requests` maps each type a client may
   * send (as an event or a request) to its payload and reply, `events` each type the server sends
   * to its payload. `hubbub schema FILE:app --typescript out.d.ts` writes one per route
   * (`HubbubApp.<Route>`); `new Hubbub.Client<HubbubApp.Rooms>("/rooms")` is then typed by it.
   */
  interface ChannelSpec {
    requests: { [type: string]: { data: unknown; reply: unknown } };
    events: { [type: string]: unknown };
  }

  /** The spec of a client without generated types: any type, any payload. */
  interface UntypedSpec extends ChannelSpec {
    requests: { [type: string]: { data: any; reply: any } };
    events: { [type: string]: any };
  }

  type RequestType<S extends ChannelSpec> = keyof S["requests"] & string;
  type EventType<S extends ChannelSpec> = keyof S["events"] & string;
  /** The payload argument: optional when the type's data may be undefined (untyped), else required. */
  type DataArgument<D> = undefined extends D ? [data?: D] : [data: D];

  class Client<S extends ChannelSpec = UntypedSpec> {
    /**
     * Connect to a channel route (unless `options.autoConnect` is false).
     * @param url ws://, wss://, http(s):// or a path relative to the page ("/chat").
     */
    constructor(url: string, options?: ClientOptions);

    /** The ws:// or wss:// URL connected to. */
    readonly url: string;
    /** Id of the current connection, from its welcome; null while disconnected. */
    readonly clientId: string | null;
    /** The authenticated user id from the last welcome; null when anonymous. */
    readonly user: string | null;
    /** True between a welcome and the connection's close; sends go out at once only then. */
    readonly connected: boolean;
    /** Rooms joined with `join`; they are joined again after each reconnect. */
    readonly rooms: ReadonlySet<string>;
    /** Per joined room that keeps history, the position of the last publication received; a rejoin
     * recovers everything after it (each missed publication is delivered to the listeners as if live). */
    readonly positions: ReadonlyMap<string, Position>;
    /** The inbox device of the current connection (from its welcome), or null. */
    readonly device: string | null;
    /** The device id this client sends (`options.device`), or null. */
    readonly deviceId: string | null;
    /** The transport of the current or last connection ("websocket" or "sse"), null before the first. */
    readonly transport: "websocket" | "sse" | null;

    /**
     * Listen to an event: a server event type (data is the envelope's "data"; for "hubbub.error" its
     * "error"), or a lifecycle event ("open", "close", "reconnecting", "rejoin", "recovery", "error").
     * Returns a function that removes the listener.
     */
    on<K extends keyof LifecycleEvents>(type: K, fn: Listener<LifecycleEvents[K]>): () => void;
    on<K extends EventType<S>>(type: K, fn: Listener<S["events"][K]>): () => void;
    /** Like `on`, for one call only. */
    once<K extends keyof LifecycleEvents>(type: K, fn: Listener<LifecycleEvents[K]>): () => void;
    once<K extends EventType<S>>(type: K, fn: Listener<S["events"][K]>): () => void;
    /** Remove a listener (without `fn`: all listeners of `type`). */
    off(type: string, fn?: Listener<any>): void;

    /** Send an event without waiting for a reply. Buffered while (re)connecting (at most `maxBuffered`;
     * past it, throws a HubbubError "buffer_full"); throws "closed" after `close()`. */
    emit<K extends RequestType<S>>(type: K, ...data: DataArgument<S["requests"][K]["data"]>): void;

    /** Send a request; resolves with the reply's data, rejects with a HubbubError (error reply,
     * timeout, disconnect). Made while (re)connecting, it is sent after the welcome. */
    request<K extends RequestType<S>>(
      type: K,
      ...args: [...DataArgument<S["requests"][K]["data"]>, RequestOptions?]
    ): Promise<S["requests"][K]["reply"]>;

    /**
     * Answer the server's requests of `type` (`await connection.call(type, data)` on the server)
     * with the value `fn` returns (or resolves to). A throw or rejection answers with an error
     * whose code is `error.code` (a string) or "handler_error". Without a handler the client answers
     * "unknown_type". Pass null to remove the handler.
     */
    handle<T = any, R = unknown>(type: string, fn: ((data: T, envelope: Envelope) => R | Promise<R>) | null): void;

    /** How many events and requests wait for the connection. */
    readonly queued: number;

    /** Join a room (needs the route's `authorize` hook to allow it). Joined rooms are re-joined after a
     * reconnect, from their position: missed publications reach the listeners in order, once, then a
     * "recovery" event says whether everything was recovered. */
    join(room: string, options?: JoinOptions): Promise<JoinReply>;
    /** The position of a joined room that keeps history (null otherwise). */
    position(room: string): Position | null;
    /** Leave a room; while disconnected it only forgets the room (membership ended with the connection). */
    leave(room: string, options?: RequestOptions): Promise<{ room: string }>;
    /** Send `data` to every member of a room as an event of `type` (null: "hubbub.message");
     * members receive `Published` data. Resolves with how many it was delivered to, and in a room with
     * history where it was kept (resolved once kept). With `idempotencyKey`, a retry (say after a lost
     * connection) is published once: the retry answers the first one's offset with `duplicate: true`. */
    publish(
      room: string,
      type: string | null,
      data?: unknown,
      options?: RequestOptions & { idempotencyKey?: string },
    ): Promise<{ room: string; delivered: number; offset?: number; epoch?: string; duplicate?: boolean }>;

    /** Acknowledge durable messages up to inbox offset `offset` on this device (hubbub.ack; needed only
     * with `autoAck: false`). Resolves with the device's cursor. */
    ack(offset: number, options?: RequestOptions): Promise<{ inbox: number }>;

    /** Use this token (or token function) for the next handshakes. */
    setToken(token: TokenSource): void;
    /**
     * `setToken(token)`, then extend the current connection with it (hubbub.refresh; same user only).
     * Resolves with the new expiry (Unix seconds), or null when not connected (the token is kept for the
     * next handshake). Rejects with code "unauthorized" when the server refuses the token.
     */
    refresh(token: string, options?: RequestOptions): Promise<{ expires_at: number | null } | null>;

    /** Resolves with the welcome once connected (at once when connected); rejects when the client
     * stops without reconnecting. */
    ready(): Promise<Welcome>;
    /** Start connecting; needed with `autoConnect: false` or to start again after `close()`. */
    connect(): void;
    /** Close for good: no reconnect; pending requests reject with "closed", buffered messages are dropped. */
    close(code?: number, reason?: string): void;
  }

  /** "hubbub.v1.json". */
  const SUBPROTOCOL: string;
  /** Close codes not retried by default: 1000, 1008, 4001, 4002, 4003. */
  const NO_RECONNECT_CODES: readonly number[];
  /** Names of the client's own events: "open", "close", "reconnecting", "rejoin", "recovery", "error". */
  const LIFECYCLE_EVENTS: readonly string[];
}

export = Hubbub;
export as namespace Hubbub;

declare global {
  interface Window {
    Hubbub: typeof Hubbub;
  }
}
