// The ticker page: tick the symbols to watch; their rows update on every "tick".
(() => {
  "use strict";

  const $ = (selector) => document.querySelector(selector);
  const client = new Hubbub.Client("/ticker");
  const rows = new Map(); // symbol -> {row, first}: the table row and the first price seen

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

  function checked() {
    return Array.from(document.querySelectorAll("#symbols input:checked"), (box) => box.value);
  }

  function show({ symbol, price, ts }) {
    let entry = rows.get(symbol);
    if (!entry) {
      const row = el("tr");
      row.dataset.symbol = symbol;
      row.append(el("td", "symbol", symbol), el("td", "price"), el("td", "change"), el("td", "time"));
      insertSorted(row, symbol);
      entry = { row, first: price };
      rows.set(symbol, entry);
    }
    const change = price - entry.first;
    const cells = entry.row.children;
    cells[1].textContent = price.toFixed(2);
    cells[2].textContent = `${change >= 0 ? "+" : ""}${change.toFixed(2)}`;
    cells[2].className = change > 0 ? "change up" : change < 0 ? "change down" : "change";
    cells[3].textContent = new Date(ts).toLocaleTimeString();
    entry.row.dataset.ts = String(ts);
  }

  function insertSorted(row, symbol) {
    const body = $("#quotes tbody");
    const after = Array.from(body.children).find((other) => other.dataset.symbol > symbol);
    body.insertBefore(row, after || null);
  }

  function forget(symbol) {
    const entry = rows.get(symbol);
    if (entry) entry.row.remove();
    rows.delete(symbol);
  }

  async function subscribe(symbols) {
    if (symbols.length === 0) return;
    try {
      const { ticks } = await client.request("subscribe", { symbols });
      ticks.forEach(show);
    } catch (error) {
      $("#error").textContent = error.message;
    }
  }

  async function toggled(event) {
    const box = event.target;
    $("#error").textContent = "";
    if (box.checked) {
      await subscribe([box.value]);
      return;
    }
    forget(box.value);
    try {
      await client.request("unsubscribe", { symbols: [box.value] });
    } catch (error) {
      $("#error").textContent = error.message;
    }
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
    if (!reconnected) await listSymbols();
    else await subscribe(checked()); // subscriptions are rooms of the old connection: ask again
  });
  client.on("reconnecting", () => setStatus("reconnecting"));
  client.on("close", ({ willReconnect }) => {
    if (!willReconnect) setStatus("offline");
  });
  client.on("tick", (tick) => {
    if (rows.has(tick.symbol)) show(tick);
  });
})();
