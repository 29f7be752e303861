// The ticker page: tick the symbols to watch; each is a room with history, joined through hubbub.js.
// Joining asks for the room's latest tick, so a price shows at once. After a reconnect hubbub.js joins
// each room again "since" the last tick shown: the ticks missed meanwhile arrive through the same
// "tick" listener, once, in order. When they can no longer be recovered (recovered: false), the page
// reloads the row's state with a "quotes" request.
(() => {
  "use strict";

  const MAX_LOGGED = 2000;
  const $ = (selector) => document.querySelector(selector);
  const client = new Hubbub.Client("/ticker");
  const rows = new Map(); // symbol -> {row, first}: the table row and the first price seen
  // What the page was handed, oldest first: {symbol, price, ts, offset} per tick (the last MAX_LOGGED),
  // and the symbols whose state was reloaded after a recovery failed.
  const state = (window.tickerPage = { ticks: [], reloads: [] });
  let recoveredTicks = 0; // missed ticks recovered since the connection came back

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function setStatus(status) {
    $("#status").dataset.state = status;
    $("#status").textContent = status;
  }

  const roomOf = (symbol) => "ticker:" + symbol;
  const symbolOf = (room) => room.slice("ticker:".length);

  function show({ symbol, price, ts }) {
    const entry = rows.get(symbol);
    if (!entry) return;
    if (entry.first === null) entry.first = price;
    const change = price - entry.first;
    const cells = entry.row.children;
    cells[1].textContent = price.toFixed(2);
    cells[2].textContent = `${change >= 0 ? "+" : ""}${change.toFixed(2)}`;
    cells[2].className = change > 0 ? "change up" : change < 0 ? "change down" : "change";
    cells[3].textContent = new Date(ts).toLocaleTimeString();
    entry.row.dataset.ts = String(ts);
  }

  function addRow(symbol) {
    const row = el("tr");
    row.dataset.symbol = symbol;
    row.append(el("td", "symbol", symbol), el("td", "price"), el("td", "change"), el("td", "time"));
    const body = $("#quotes tbody");
    const after = Array.from(body.children).find((other) => other.dataset.symbol > symbol);
    body.insertBefore(row, after || null);
    rows.set(symbol, { row, first: null });
  }

  function forget(symbol) {
    const entry = rows.get(symbol);
    if (entry) entry.row.remove();
    rows.delete(symbol);
  }

  async function watch(symbol) {
    addRow(symbol);
    try {
      await client.join(roomOf(symbol), { history: 1 }); // the latest tick comes through the "tick" listener
    } catch (error) {
      forget(symbol);
      $("#error").textContent = error.message;
    }
  }

  async function unwatch(symbol) {
    forget(symbol);
    try {
      await client.leave(roomOf(symbol));
    } catch (error) {
      $("#error").textContent = error.message;
    }
  }

  /** The ticks missed could not be recovered: take the symbol's current value instead. */
  async function reload(symbol) {
    state.reloads.push(symbol);
    try {
      const { ticks } = await client.request("quotes", { symbols: [symbol] });
      ticks.forEach(show);
      const entry = rows.get(symbol);
      if (entry) entry.row.dataset.reloaded = "true";
    } catch (error) {
      $("#error").textContent = error.message;
    }
  }

  async function toggled(event) {
    const box = event.target;
    $("#error").textContent = "";
    if (box.checked) await watch(box.value);
    else await unwatch(box.value);
  }

  async function listSymbols() {
    const { symbols } = await client.request("symbols");
    const box = $("#symbols");
    for (const symbol of symbols) {
      const input = el("input");
      input.type = "checkbox";
      input.value = symbol;
      input.id = "symbol-" + symbol;
      input.addEventListener("change", toggled);
      const label = el("label", "", symbol);
      label.htmlFor = input.id;
      box.append(input, label);
    }
  }

  client.on("open", async ({ reconnected }) => {
    setStatus("connected");
    if (!reconnected) await listSymbols(); // after a reconnect hubbub.js rejoins the rooms itself
  });
  client.on("reconnecting", () => setStatus("reconnecting"));
  client.on("close", ({ willReconnect }) => {
    if (!willReconnect) setStatus("offline");
  });
  client.on("recovery", ({ room, recovered, missed }) => {
    if (recovered) recoveredTicks += missed;
    else if (rows.has(symbolOf(room))) reload(symbolOf(room));
  });
  client.on("rejoin", ({ failed, unrecovered }) => {
    const reloaded = unrecovered.length ? `; reloaded ${unrecovered.map(symbolOf).join(", ")}` : "";
    $("#note").textContent = `Back online: ${recoveredTicks} missed ticks recovered${reloaded}.`;
    recoveredTicks = 0;
    for (const { room, error } of failed) {
      if (error.code !== "disconnected") $("#error").textContent = `could not rejoin ${room}: ${error.message}`;
    }
  });
  client.on("tick", (tick, envelope) => {
    if (!rows.has(tick.symbol)) return;
    state.ticks.push({ ...tick, offset: envelope.offset });
    if (state.ticks.length > MAX_LOGGED) state.ticks.shift();
    show(tick);
  });
})();
