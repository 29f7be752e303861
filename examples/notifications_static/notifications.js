// The notifications page: log in (development login), connect with ?token=, show what arrives.
// Notification data comes from other systems: it is shown with textContent, never as HTML.
(() => {
  "use strict";

  const MAX_SHOWN = 100;
  const $ = (selector) => document.querySelector(selector);

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function clock(ts) {
    return new Date(ts).toLocaleTimeString();
  }

  function setStatus(status) {
    $("#status").dataset.state = status;
    $("#status").textContent = status;
  }

  function show(kind, title, body, ts) {
    const item = el("li", kind);
    item.append(el("span", "time", clock(ts)));
    if (title) item.append(el("span", "title", title));
    item.append(el("span", "body", body));
    const list = $("#notifications");
    list.prepend(item);
    while (list.children.length > MAX_SHOWN) list.lastElementChild.remove();
  }

  /** A notification's data is whatever the backend posted: show title/body when it has them. */
  function onNotification(data) {
    if (data && typeof data === "object" && !Array.isArray(data) && ("title" in data || "body" in data)) {
      show("notification", String(data.title ?? ""), String(data.body ?? ""), Date.now());
    } else {
      show("notification", "", JSON.stringify(data), Date.now());
    }
  }

  function connect(session) {
    // The token travels as ?token= here (hubbub also takes the "bearer.<token>" subprotocol). hubbub.js
    // names this browser's device (an id it keeps in localStorage: notifications sent while it was away
    // wait for it) and acknowledges each notification once it is shown, so it is not sent here again.
    const query = "?token=" + encodeURIComponent(session.token);
    const client = new Hubbub.Client("/notifications" + query, { device: true, deviceKey: "notifications.device" });
    setStatus("connecting");
    client.on("open", () => setStatus("connected"));
    client.on("reconnecting", () => setStatus("reconnecting"));
    client.on("close", ({ code, willReconnect }) => {
      if (willReconnect) return;
      setStatus("offline");
      if (code === 4001 || code === 4002) $("#login-error").textContent = "Your session ended; log in again.";
    });
    client.on("hubbub.inbox", ({ pending, missed }) => {
      if (pending || missed) {
        const lost = missed ? ` (${missed} older ones expired)` : "";
        show("notice", "", `${pending} notification${pending === 1 ? "" : "s"} while you were away${lost}`, Date.now());
      }
    });
    client.on("notification", onNotification);
    client.on("notice", ({ text, ts }) => show("notice", "", text, ts));
    return client;
  }

  async function postJson(path, body, headers) {
    const response = await fetch(path, {
      method: "POST",
      headers: { "content-type": "application/json", ...headers },
      body: JSON.stringify(body),
    });
    const answer = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(answer.error || `${path} failed (${response.status})`);
    return answer;
  }

  $("#login-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    $("#login-error").textContent = "";
    let session;
    try {
      session = await postJson("/api/login", { user_id: $("#user-id").value.trim() });
    } catch (error) {
      $("#login-error").textContent = error.message;
      return;
    }
    $("#me").textContent = session.user_id;
    $("#login").hidden = true;
    $("#feed").hidden = false;
    if (!$("#send-to").value) $("#send-to").value = session.user_id;
    connect(session);
  });

  $("#send-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const to = $("#send-to").value.trim();
    const body = { title: $("#send-title").value, body: $("#send-body").value };
    try {
      const { delivered } = await postJson("/api/notify/" + encodeURIComponent(to), body, {
        "x-api-key": $("#send-key").value,
      });
      const live = `delivered now to ${delivered} connection${delivered === 1 ? "" : "s"} of ${to}`;
      $("#send-result").textContent = `${live}; kept for ${to}'s devices that are away`;
    } catch (error) {
      $("#send-result").textContent = error.message;
    }
  });
})();
