/*
 * InsightOS tracker: page views, identify and custom events for the InsightOS collector.
 * Dependency-free; served by the collector at /tracker.js.
 *
 *   <script src="https://collector.example.com/tracker.js"></script>
 *   <script>
 *     insightos.init({ endpoint: "https://collector.example.com", writeKey: "wk_..." });
 *     // on signup:      insightos.identify("user-123", { createdAt: new Date() });
 *     // anywhere:       insightos.track("project_created", { template: "kanban" });
 *   </script>
 *
 * How events stay attached to a known user (the collector's ingest rejects events whose
 * user_id is not in `users`):
 *   - Before identify, the visitor has an anonymous id (kept in localStorage). Events tracked
 *     then are HELD in the local queue, not sent: an anonymous visitor is not a lead, and
 *     creating a user row for every visitor would flood the open leads with people who never
 *     signed up.
 *   - identify(userId) queues a POST /v1/identify with the marketing data captured on landing
 *     (utm_* parameters of the first URL seen, kept in localStorage), and re-assigns the held
 *     anonymous events to userId: the pre-signup page views belong to the new lead.
 *   - Events are sent only for users whose identify the collector has acknowledged (HTTP 200),
 *     so no event reaches the database before its user does.
 *
 * Delivery: events carry a client-generated event_id (crypto.randomUUID, with a fallback), are
 * batched (flush at `batchSize` events or every `flushIntervalMs`), and stay in a retry queue in
 * localStorage until the collector acknowledges them, so a reload or a network failure loses
 * nothing (retries back off up to a minute). On pagehide the pending items also go out by
 * navigator.sendBeacon, which cannot set headers: the write key then travels as `?key=` and the
 * body as text/plain. Beaconed items stay queued and are sent again on the next visit; the
 * collector stores an event_id once, so a repeat only counts as a duplicate.
 * Bad input refused by the collector (400/413/422) is dropped with a console warning; anything
 * else (network, 401, 429, 5xx) is retried.
 */
(function (window) {
  "use strict";

  var KEYS = {
    anonymousId: "insightos:anonymous_id",
    user: "insightos:user_id",
    acked: "insightos:identified",
    marketing: "insightos:marketing",
    queue: "insightos:queue"
  };
  var UTM_PARAMETERS = ["utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content"];
  var MAX_QUEUE = 1000;
  var MAX_BEACON_BYTES = 60000;
  var MAX_BACKOFF_MS = 60000;
  var DROP_STATUSES = [400, 413, 422];

  var config = null;
  var memory = {}; // used when localStorage is unavailable (privacy modes)
  var inFlight = null;
  var backoffMs = 0;
  var retryAt = 0;
  var timer = null;
  var listening = false;
  var lastExit = 0;

  // --- storage ----------------------------------------------------------------------------------

  function read(key, fallback) {
    var text;
    try {
      text = window.localStorage.getItem(key);
    } catch (e) {
      text = Object.prototype.hasOwnProperty.call(memory, key) ? memory[key] : null;
    }
    if (text === null || text === undefined) return fallback;
    try {
      return JSON.parse(text);
    } catch (e) {
      return fallback;
    }
  }

  function write(key, value) {
    var text = JSON.stringify(value);
    try {
      window.localStorage.setItem(key, text);
    } catch (e) {
      memory[key] = text;
    }
  }

  function remove(key) {
    try {
      window.localStorage.removeItem(key);
    } catch (e) {
      /* ignore */
    }
    delete memory[key];
  }

  function loadQueue() {
    var queue = read(KEYS.queue, []);
    return Object.prototype.toString.call(queue) === "[object Array]" ? queue : [];
  }

  function saveQueue(queue) {
    if (queue.length > MAX_QUEUE) {
      // keep every identify; drop the oldest events beyond the cap
      var excess = queue.length - MAX_QUEUE;
      queue = queue.filter(function (item) {
        if (excess > 0 && item.kind === "event") {
          excess -= 1;
          return false;
        }
        return true;
      });
    }
    write(KEYS.queue, queue);
  }

  function removeFromQueue(ids) {
    var gone = {};
    ids.forEach(function (id) {
      gone[id] = true;
    });
    saveQueue(
      loadQueue().filter(function (item) {
        return !gone[item.id];
      })
    );
  }

  // --- ids and time -----------------------------------------------------------------------------

  function uuid() {
    var cryptoApi = window.crypto;
    if (cryptoApi && typeof cryptoApi.randomUUID === "function") return cryptoApi.randomUUID();
    var bytes = new Array(16);
    if (cryptoApi && typeof cryptoApi.getRandomValues === "function") {
      var random = new Uint8Array(16);
      cryptoApi.getRandomValues(random);
      for (var i = 0; i < 16; i++) bytes[i] = random[i];
    } else {
      for (var j = 0; j < 16; j++) bytes[j] = Math.floor(Math.random() * 256);
    }
    bytes[6] = (bytes[6] & 0x0f) | 0x40; // version 4
    bytes[8] = (bytes[8] & 0x3f) | 0x80; // RFC 4122 variant
    var hex = bytes.map(function (b) {
      return (b + 0x100).toString(16).slice(1);
    });
    return (
      hex.slice(0, 4).join("") + "-" + hex.slice(4, 6).join("") + "-" + hex.slice(6, 8).join("") +
      "-" + hex.slice(8, 10).join("") + "-" + hex.slice(10, 16).join("")
    );
  }

  function isoTime(value) {
    var date = value === undefined || value === null ? new Date() : new Date(value);
    if (isNaN(date.getTime())) date = new Date();
    return date.toISOString();
  }

  function anonymousId() {
    var id = read(KEYS.anonymousId, null);
    if (typeof id !== "string" || !id) {
      id = "anon-" + uuid();
      write(KEYS.anonymousId, id);
    }
    return id;
  }

  function currentUserId() {
    var user = read(KEYS.user, null);
    return typeof user === "string" && user ? user : anonymousId();
  }

  function isAcknowledged(userId) {
    return read(KEYS.acked, []).indexOf(userId) !== -1;
  }

  function acknowledge(userId) {
    var acked = read(KEYS.acked, []);
    if (acked.indexOf(userId) === -1) acked.push(userId);
    write(KEYS.acked, acked.slice(-20));
  }

  // --- marketing (UTM parameters of the landing URL, captured once) ------------------------------

  function utmFromUrl() {
    var found = {};
    var any = false;
    var search = window.location.search || "";
    var params = typeof URLSearchParams === "function" ? new URLSearchParams(search) : null;
    UTM_PARAMETERS.forEach(function (name) {
      var value = params ? params.get(name) : null;
      if (value) {
        found[name] = value.slice(0, 200);
        any = true;
      }
    });
    return any ? found : null;
  }

  function captureMarketing() {
    var utm = utmFromUrl();
    if (utm && !read(KEYS.marketing, null)) write(KEYS.marketing, utm); // first touch wins
    return utm;
  }

  // --- sending ----------------------------------------------------------------------------------

  function post(path, body) {
    var text = JSON.stringify(body);
    return window.fetch(config.endpoint + path, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-Write-Key": config.writeKey },
      body: text,
      keepalive: text.length < MAX_BEACON_BYTES,
      credentials: "omit"
    });
  }

  function warnDropped(what, status) {
    if (window.console && window.console.warn) {
      window.console.warn("insightos: the collector refused " + what + " (HTTP " + status + ")");
    }
  }

  function sendableEvents(queue) {
    return queue.filter(function (item) {
      return item.kind === "event" && isAcknowledged(item.body.user_id);
    });
  }

  function sendNext() {
    var queue = loadQueue();
    var identifies = queue.filter(function (item) {
      return item.kind === "identify";
    });
    if (identifies.length) {
      var item = identifies[0];
      return post("/v1/identify", item.body).then(function (response) {
        if (response.ok) {
          acknowledge(item.body.user_id);
        } else if (DROP_STATUSES.indexOf(response.status) !== -1) {
          warnDropped("identify", response.status);
          removeFromQueue(
            loadQueue()
              .filter(function (other) {
                return other.kind === "event" && other.body.user_id === item.body.user_id;
              })
              .map(function (other) {
                return other.id;
              })
          );
        } else {
          throw new Error("identify: HTTP " + response.status);
        }
        removeFromQueue([item.id]);
        return sendNext();
      });
    }
    var batch = sendableEvents(queue).slice(0, config.maxBatch);
    if (!batch.length) return Promise.resolve();
    var bodies = batch.map(function (item) {
      return item.body;
    });
    return post("/v1/events", { events: bodies }).then(function (response) {
      if (response.ok) {
        removeFromQueue(idsOf(batch));
        return sendNext();
      }
      if (DROP_STATUSES.indexOf(response.status) === -1) {
        throw new Error("events: HTTP " + response.status);
      }
      return refusedEvents(response, batch).then(function (refused) {
        warnDropped(refused.length + " of " + batch.length + " events", response.status);
        removeFromQueue(idsOf(refused));
        return sendNext();
      });
    });
  }

  function idsOf(items) {
    return items.map(function (item) {
      return item.id;
    });
  }

  /** The events a 422 names (detail[].loc = ["body", "events", index, ...]); else all of them. */
  function refusedEvents(response, batch) {
    return response
      .json()
      .then(function (answer) {
        var named = {};
        (answer && answer.detail && answer.detail.forEach ? answer.detail : []).forEach(function (d) {
          var loc = d && d.loc;
          if (loc && loc[0] === "body" && loc[1] === "events" && typeof loc[2] === "number") {
            named[loc[2]] = true;
          }
        });
        var refused = batch.filter(function (item, index) {
          return named[index];
        });
        return refused.length ? refused : batch;
      })
      .catch(function () {
        return batch;
      });
  }

  /** Send everything that can be sent now; resolves when done (failures are retried later). */
  function flush() {
    if (!config) return Promise.resolve();
    if (inFlight) return inFlight;
    inFlight = Promise.resolve()
      .then(sendNext)
      .then(
        function () {
          backoffMs = 0;
          retryAt = 0;
        },
        function () {
          backoffMs = Math.min(Math.max(backoffMs * 2, 1000), MAX_BACKOFF_MS);
          retryAt = Date.now() + backoffMs;
        }
      )
      .then(function () {
        inFlight = null;
        return { pending: loadQueue().length };
      });
    return inFlight;
  }

  function beacon(path, body) {
    var text = JSON.stringify(body);
    var url = config.endpoint + path + "?key=" + encodeURIComponent(config.writeKey);
    if (navigator.sendBeacon) {
      try {
        if (navigator.sendBeacon(url, new Blob([text], { type: "text/plain;charset=UTF-8" }))) return;
      } catch (e) {
        /* fall through to fetch */
      }
    }
    try {
      window.fetch(url, { method: "POST", body: text, keepalive: true, credentials: "omit" });
    } catch (e) {
      /* the queue keeps it for the next visit */
    }
  }

  /** Last chance on pagehide: beacon what is pending; the queue keeps it until acknowledged. */
  function flushOnExit() {
    if (!config || Date.now() - lastExit < 1000) return; // pagehide and visibilitychange both fire
    lastExit = Date.now();
    var queue = loadQueue();
    queue.forEach(function (item) {
      if (item.kind === "identify") beacon("/v1/identify", item.body);
    });
    var chunk = [];
    var size = 0;
    sendableEvents(queue).forEach(function (item) {
      var itemSize = JSON.stringify(item.body).length + 1;
      if (chunk.length && (chunk.length >= config.maxBatch || size + itemSize > MAX_BEACON_BYTES / 2)) {
        beacon("/v1/events", { events: chunk });
        chunk = [];
        size = 0;
      }
      chunk.push(item.body);
      size += itemSize;
    });
    if (chunk.length) beacon("/v1/events", { events: chunk });
  }

  // --- public API -------------------------------------------------------------------------------

  function enqueue(item) {
    var queue = loadQueue();
    queue.push(item);
    saveQueue(queue);
  }

  // The collector's rules (collector.py), checked here so a mistake throws at the call site
  // instead of costing a refused batch later.
  var ID_PATTERN = /^[A-Za-z0-9_.:@+|\/=-]{1,128}$/;
  var EVENT_NAME_PATTERN = /^[A-Za-z][A-Za-z0-9_.:\- ]{0,99}$/;
  var MAX_JSON_DEPTH = 5;
  var MAX_JSON_BYTES = 8192;

  function checkObject(what, value) {
    var text = JSON.stringify(value);
    if (typeof Blob === "function" ? new Blob([text]).size > MAX_JSON_BYTES : text.length > MAX_JSON_BYTES) {
      throw new Error("insightos: " + what + " is larger than " + MAX_JSON_BYTES + " bytes as JSON");
    }
    (function walk(node, depth) {
      if (depth > MAX_JSON_DEPTH) {
        throw new Error("insightos: " + what + " is nested deeper than " + MAX_JSON_DEPTH + " levels");
      }
      for (var key in node) {
        if (node[key] && typeof node[key] === "object") walk(node[key], depth + 1);
      }
    })(value, 1);
  }

  /** Record an event for the current user (anonymous until identify). */
  function track(name, properties) {
    if (!config) throw new Error("insightos.init({endpoint, writeKey}) first");
    name = String(name);
    if (!EVENT_NAME_PATTERN.test(name)) {
      throw new Error("insightos: event name must match " + EVENT_NAME_PATTERN + ": " + name);
    }
    properties = properties && typeof properties === "object" ? properties : {};
    checkObject("properties", properties);
    var body = {
      event_id: uuid(),
      user_id: currentUserId(),
      event_name: name,
      occurred_at: isoTime(),
      properties: properties
    };
    enqueue({ id: body.event_id, kind: "event", body: body });
    if (sendableEvents(loadQueue()).length >= config.batchSize) flush();
    return body.event_id;
  }

  /** The visitor signed up (or logged in) as userId: create the lead, re-assign held events. */
  function identify(userId, options) {
    if (!config) throw new Error("insightos.init({endpoint, writeKey}) first");
    userId = String(userId);
    if (!ID_PATTERN.test(userId)) {
      throw new Error("insightos: user id must match " + ID_PATTERN + ": " + userId);
    }
    options = options || {};
    var previous = currentUserId();
    write(KEYS.user, userId);
    if (previous !== userId && previous.indexOf("anon-") === 0) {
      saveQueue(
        loadQueue().map(function (item) {
          if (item.kind === "event" && item.body.user_id === previous) item.body.user_id = userId;
          return item;
        })
      );
    }
    if (!isAcknowledged(userId)) {
      enqueue({
        id: "identify-" + uuid(),
        kind: "identify",
        body: {
          user_id: userId,
          created_at: isoTime(options.createdAt),
          marketing: read(KEYS.marketing, null) || {}
        }
      });
    }
    return flush();
  }

  /** Forget the identified user (logout): later events are anonymous again. */
  function reset() {
    remove(KEYS.user);
    remove(KEYS.anonymousId);
  }

  function init(options) {
    options = options || {};
    if (!options.endpoint || !options.writeKey) {
      throw new Error("insightos.init needs {endpoint, writeKey}");
    }
    config = {
      endpoint: String(options.endpoint).replace(/\/+$/, ""),
      writeKey: String(options.writeKey),
      batchSize: options.batchSize || 20,
      maxBatch: Math.min(options.maxBatch || 100, 500),
      flushIntervalMs: options.flushIntervalMs || 5000
    };
    var utm = captureMarketing();
    if (options.trackPageView !== false) {
      var properties = { path: window.location.pathname };
      if (utm) {
        for (var name in utm) properties[name] = utm[name];
      }
      track("page_view", properties);
    }
    if (timer) window.clearInterval(timer);
    timer = window.setInterval(function () {
      if (Date.now() >= retryAt) flush();
    }, config.flushIntervalMs);
    if (!listening) {
      listening = true;
      window.addEventListener("pagehide", flushOnExit);
      document.addEventListener("visibilitychange", function () {
        if (document.visibilityState === "hidden") flushOnExit();
      });
    }
    flush(); // whatever a previous visit left in the queue
  }

  window.insightos = {
    init: init,
    track: track,
    identify: identify,
    flush: flush,
    reset: reset,
    userId: currentUserId,
    pending: function () {
      return loadQueue().length;
    }
  };
})(window);
