// The classroom test: a LibreSpeed-protocol client for the collector's /librespeed/<code>/
// endpoints, measuring the way the agent's on-net test does, then saving the result.
//
// Idle round trips, then download and upload for a fixed time over several streams (bytes
// counted as they move, sampled every 250 ms, the warm-up left out: mean and p90 of the
// samples), with round trips timed meanwhile (latency under load, as round trips per minute).
// Browsers open at most 6 connections to one server over HTTP/1.1, so the bulk streams use 5
// and the round trips the sixth: a round trip queued behind a bulk stream would time the queue.
//
// Query parameters: code, room (prefill the form); duration_s, warmup_s, pings (shorter tests
// for checks; bounded below).
"use strict";

(function () {
  const MIB = 1048576;
  const SAMPLE_MS = 250;
  const STREAMS = 5;
  const DOWNLOAD_CHUNK_MIB = 100; // LibreSpeed's default ckSize; a stream asks again when done
  const UPLOAD_BLOB_BYTES = 4 * MIB;
  const LOADED_PING_EVERY_MS = 100;
  const MAX_ERROR_CHARS = 1000; // the wire's bound on `error`

  const page = {};
  let lastResult = null;

  function bounded(text, low, high, fallback) {
    const value = Number(text);
    if (text === null || text === "" || !Number.isFinite(value)) return fallback;
    return Math.min(high, Math.max(low, value));
  }

  function testSettings(query) {
    const durationS = bounded(query.get("duration_s"), 1, 30, 10);
    return {
      durationS: durationS,
      warmupS: bounded(query.get("warmup_s"), 0, durationS / 2, Math.min(2, durationS / 2)),
      pings: Math.round(bounded(query.get("pings"), 3, 50, 10)),
    };
  }

  function normaliseCode(typed) {
    const symbols = typed.replace(/[\s-]+/g, "").toUpperCase();
    if (!/^[2-9A-HJKMNP-TV-Z]{8}$/.test(symbols)) return null;
    return symbols.slice(0, 4) + "-" + symbols.slice(4);
  }

  // crypto.randomUUID needs a secure context; a district collector is often plain http.
  function uuid4() {
    const b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const hex = Array.from(b, function (x) { return x.toString(16).padStart(2, "0"); }).join("");
    return hex.slice(0, 8) + "-" + hex.slice(8, 12) + "-" + hex.slice(12, 16) + "-" +
      hex.slice(16, 20) + "-" + hex.slice(20);
  }

  function sleep(ms) {
    return new Promise(function (resolve) { setTimeout(resolve, ms); });
  }

  class TestFailure extends Error {
    constructor(message, codeRefused) {
      super(message);
      this.codeRefused = Boolean(codeRefused);
    }
  }

  async function failureFrom(response, what) {
    let detail = "";
    try { detail = (await response.json()).detail || ""; } catch (e) { detail = ""; }
    if (response.status === 404) {
      return new TestFailure("This classroom code is not known or has been revoked. " +
        "Check it with your district's IT team.", true);
    }
    const retry = response.headers.get("Retry-After");
    return new TestFailure(what + " was refused (HTTP " + response.status + (detail ? ": " + detail : "") +
      ")" + (retry ? "; try again in " + retry + " s" : "") + ".");
  }

  // ---- measuring -------------------------------------------------------------------------

  function endpoint(code, name) {
    return "librespeed/" + encodeURIComponent(code) + "/" + name;
  }

  // One round trip, in ms: the browser's own timing of request to first byte where it has
  // it (Resource Timing), else the time around the request.
  async function roundTrip(url) {
    const target = new URL(url + "?r=" + Math.random(), location.href).href;
    const started = performance.now();
    const response = await fetch(target, { cache: "no-store" });
    await response.arrayBuffer();
    const ended = performance.now();
    if (!response.ok) throw await failureFrom(response, "A round trip");
    const entries = performance.getEntriesByName(target);
    performance.clearResourceTimings();
    const entry = entries[entries.length - 1];
    if (entry && entry.requestStart > 0 && entry.responseStart >= entry.requestStart) {
      return entry.responseStart - entry.requestStart;
    }
    return ended - started;
  }

  function median(values) {
    if (values.length === 0) return null;
    const sorted = values.slice().sort(function (a, b) { return a - b; });
    const mid = Math.floor(sorted.length / 2);
    return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
  }

  // Linear interpolation between closest ranks, as the agent computes it (numpy's default).
  function percentile(values, q) {
    const sorted = values.slice().sort(function (a, b) { return a - b; });
    const position = (sorted.length - 1) * q;
    const low = Math.floor(position);
    const high = Math.min(low + 1, sorted.length - 1);
    return sorted[low] + (sorted[high] - sorted[low]) * (position - low);
  }

  // Mean and p90 over the samples after the warm-up; null when nothing was measured after it.
  function summarise(samples, warmupS) {
    const kept = samples.filter(function (s) { return s.at >= warmupS; });
    if (kept.length < 2 || kept[kept.length - 1].at <= kept[0].at) return null;
    const first = kept[0];
    const last = kept[kept.length - 1];
    const rates = [];
    for (let i = 1; i < kept.length; i++) {
      const seconds = kept[i].at - kept[i - 1].at;
      if (seconds > 0) rates.push((kept[i].total - kept[i - 1].total) * 8 / seconds);
    }
    return {
      meanBps: (last.total - first.total) * 8 / (last.at - first.at),
      p90Bps: percentile(rates, 0.9),
    };
  }

  async function idleLatency(code, count, onStep) {
    const url = endpoint(code, "empty.php");
    await roundTrip(url); // opens the connection; not counted
    const samples = [];
    for (let i = 0; i < count; i++) {
      samples.push(await roundTrip(url));
      onStep((i + 1) / count);
    }
    return median(samples);
  }

  async function downloadStream(code, meter, signal) {
    const url = endpoint(code, "garbage.php");
    while (!signal.aborted) {
      let response;
      try {
        response = await fetch(url + "?ckSize=" + DOWNLOAD_CHUNK_MIB + "&r=" + Math.random(),
          { cache: "no-store", signal: signal });
      } catch (error) {
        throw lostConnection(error, signal, "The download");
      }
      if (!response.ok) throw await failureFrom(response, "The download");
      const reader = response.body.getReader();
      for (;;) {
        let part;
        try {
          part = await reader.read();
        } catch (error) {
          throw lostConnection(error, signal, "The download");
        }
        if (part.done) break;
        meter.total += part.value.byteLength;
      }
    }
  }

  // Our own stop (AbortError) stays as it is; anything else is a connection that broke.
  function lostConnection(error, signal, what) {
    if (signal.aborted && error && error.name === "AbortError") return error;
    return new TestFailure(what + " lost its connection part-way (the school's classroom " +
      "budget may have run out, or the network dropped).");
  }

  function uploadOnce(url, body, meter, signal) {
    return new Promise(function (resolve, reject) {
      const xhr = new XMLHttpRequest();
      let counted = 0;
      const count = function (sent) { meter.total += sent - counted; counted = sent; };
      const abort = function () { xhr.abort(); };
      signal.addEventListener("abort", abort, { once: true });
      const settle = function (fn, value) { signal.removeEventListener("abort", abort); fn(value); };
      // fetch cannot report upload progress over HTTP/1.1; XHR can, as LibreSpeed uses it.
      xhr.upload.onprogress = function (event) { count(event.loaded); };
      xhr.onload = function () {
        if (xhr.status === 200) {
          count(body.size);
          settle(resolve);
          return;
        }
        const response = new Response(xhr.responseText, {
          status: xhr.status, headers: { "Retry-After": xhr.getResponseHeader("Retry-After") || "" },
        });
        failureFrom(response, "The upload").then(function (f) { settle(reject, f); });
      };
      xhr.onerror = function () { settle(reject, lostConnection(null, signal, "The upload")); };
      xhr.onabort = function () { settle(resolve); };
      xhr.open("POST", url + "?r=" + Math.random());
      xhr.setRequestHeader("Content-Type", "application/octet-stream");
      xhr.send(body);
    });
  }

  async function uploadStream(code, body, meter, signal) {
    const url = endpoint(code, "empty.php");
    while (!signal.aborted) await uploadOnce(url, body, meter, signal);
  }

  function randomBody() {
    const bytes = new Uint8Array(UPLOAD_BLOB_BYTES);
    for (let at = 0; at < bytes.length; at += 65536) {
      crypto.getRandomValues(bytes.subarray(at, at + 65536)); // its limit per call
    }
    return new Blob([bytes], { type: "application/octet-stream" });
  }

  // One direction: STREAMS streams for durationS, sampled on a 250 ms grid, round trips
  // timed meanwhile (into `loaded`). Resolves with the samples; rejects on the first failure.
  async function loadPhase(startStream, settings, loaded, code, onStep) {
    const controller = new AbortController();
    const meter = { total: 0 };
    const samples = [{ at: 0, total: 0 }];
    const started = performance.now();
    const elapsedS = function () { return (performance.now() - started) / 1000; };
    let failure = null;
    const fail = function (error) {
      // Stopping the streams at the end rejects them with AbortError: that is no failure.
      const stopped = controller.signal.aborted && error && error.name === "AbortError";
      if (failure === null && !stopped) failure = error;
      controller.abort();
    };
    const streams = [];
    for (let i = 0; i < STREAMS; i++) {
      streams.push(startStream(meter, controller.signal).catch(fail));
    }
    const pinger = (async function () {
      const url = endpoint(code, "empty.php");
      while (!controller.signal.aborted) {
        const began = performance.now();
        try { loaded.push(await roundTrip(url)); } catch (e) { if (!controller.signal.aborted) fail(e); }
        await sleep(Math.max(0, began + LOADED_PING_EVERY_MS - performance.now()));
      }
    })();
    let n = 1;
    while (!controller.signal.aborted && elapsedS() < settings.durationS) {
      await sleep(Math.max(0, n * SAMPLE_MS - (performance.now() - started)));
      samples.push({ at: elapsedS(), total: meter.total });
      onStep(Math.min(1, elapsedS() / settings.durationS));
      n += 1;
    }
    controller.abort();
    await Promise.all(streams.concat([pinger]));
    if (failure) throw failure;
    return { samples: samples, bytes: meter.total, seconds: samples[samples.length - 1].at };
  }

  async function runTest(code, room, settings, onPhase) {
    const loaded = [];
    const result = { id: uuid4(), room: room };
    const phases = [
      ["Checking the classroom code", 0.03],
      ["Timing round trips on the idle connection", 0.07],
      ["Measuring download", 0.45],
      ["Measuring upload", 0.45],
    ];
    let done = 0;
    const step = function (index) {
      onPhase(phases[index][0], done);
      return function (fraction) { onPhase(phases[index][0], done + fraction * phases[index][1]); };
    };
    const finish = function (index) { done += phases[index][1]; };
    try {
      step(0)(0);
      const ip = await fetch(endpoint(code, "getIP.php") + "?r=" + Math.random(), { cache: "no-store" });
      if (!ip.ok) throw await failureFrom(ip, "The classroom code");
      finish(0);
      result.latencyMs = await idleLatency(code, settings.pings, step(1));
      finish(1);
      const down = await loadPhase(function (meter, signal) {
        return downloadStream(code, meter, signal);
      }, settings, loaded, code, step(2));
      Object.assign(result, { download: summarise(down.samples, settings.warmupS), downloadBytes: down.bytes, downloadS: down.seconds });
      finish(2);
      const body = randomBody();
      const up = await loadPhase(function (meter, signal) {
        return uploadStream(code, body, meter, signal);
      }, settings, loaded, code, step(3));
      Object.assign(result, { upload: summarise(up.samples, settings.warmupS), uploadBytes: up.bytes, uploadS: up.seconds });
      finish(3);
    } catch (error) {
      result.error = error instanceof TestFailure ? error.message
        : "The test stopped: " + (error && error.message ? error.message : String(error));
      result.codeRefused = error instanceof TestFailure && error.codeRefused;
    }
    result.loadedMs = median(loaded);
    return result;
  }

  // ---- recording -------------------------------------------------------------------------

  function wireTest(result) {
    const test = {
      kind: "throughput",
      id: result.id,
      path: "classroom",
      // The page's own address: never the code, which must not be stored with the result.
      server: new URL(".", location.href).href.slice(0, 300),
      room: result.room,
      streams: STREAMS,
      download_bytes: result.downloadBytes || 0,
      upload_bytes: result.uploadBytes || 0,
      duration_s: (result.downloadS || 0) + (result.uploadS || 0),
    };
    const optional = {
      download_bps: result.download && result.download.meanBps,
      download_p90_bps: result.download && result.download.p90Bps,
      upload_bps: result.upload && result.upload.meanBps,
      upload_p90_bps: result.upload && result.upload.p90Bps,
      latency_ms: result.latencyMs,
      loaded_latency_ms: result.loadedMs,
      responsiveness_rpm: result.loadedMs > 0 ? Math.min(60000 / result.loadedMs, 60000) : null,
      error: result.error ? result.error.slice(0, MAX_ERROR_CHARS) : null,
    };
    for (const key in optional) {
      if (typeof optional[key] === "number" ? Number.isFinite(optional[key]) : optional[key]) {
        test[key] = optional[key];
      }
    }
    return test;
  }

  async function save(code, result) {
    page.saved.textContent = "Saving the result…";
    page.saveAgain.hidden = true;
    try {
      const response = await fetch("api/v1/classroom/results", {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-Classroom-Code": code },
        body: JSON.stringify(wireTest(result)),
      });
      if (!response.ok) throw await failureFrom(response, "Saving");
      page.saved.textContent = "Saved for " + result.room + ". Thank you.";
      page.saved.dataset.state = "saved";
    } catch (error) {
      page.saved.textContent = "The result was not saved: " + error.message;
      page.saved.dataset.state = "failed";
      page.saveAgain.hidden = false; // same id: saving twice stores it once
    }
  }

  // ---- showing ---------------------------------------------------------------------------

  function mbps(bps) {
    if (bps === null || bps === undefined) return "–";
    const value = bps / 1e6;
    return (value >= 100 ? value.toFixed(0) : value >= 10 ? value.toFixed(1) : value.toFixed(2)) + " Mbit/s";
  }

  function ms(value) {
    return value === null || value === undefined ? "–" : value.toFixed(value >= 10 ? 0 : 1) + " ms";
  }

  function plainWords(result) {
    const parts = [];
    if (result.download && result.upload) {
      parts.push("From this device, this room's connection to the district downloaded at " +
        mbps(result.download.meanBps) + " and uploaded at " + mbps(result.upload.meanBps) + ".");
    }
    if (result.loadedMs !== null && result.latencyMs !== null) {
      let feel = "fine for video lessons and online tests";
      if (result.loadedMs > 300) feel = "slow enough under load to disrupt video lessons and online tests";
      else if (result.loadedMs > 100) feel = "slow enough under load that video calls may stutter";
      parts.push("A round trip took " + ms(result.latencyMs) + " when idle and " + ms(result.loadedMs) +
        " while the connection was busy: " + feel + ".");
    }
    parts.push("This covers the whole path: this device, the room's Wi-Fi or cable, the school's " +
      "network and its link to the district.");
    return parts.join(" ");
  }

  function show(result) {
    page.resultTitle.textContent = "Result for " + result.room;
    page.download.textContent = mbps(result.download && result.download.meanBps);
    page.upload.textContent = mbps(result.upload && result.upload.meanBps);
    page.latency.textContent = ms(result.latencyMs);
    page.loaded.textContent = ms(result.loadedMs);
    page.summary.textContent = plainWords(result);
    page.problem.textContent = result.error || "";
    page.problem.hidden = !result.error;
    page.progress.hidden = true;
    page.result.hidden = false;
    page.resultTitle.focus();
  }

  async function start(event) {
    event.preventDefault();
    const code = normaliseCode(page.code.value);
    const room = page.room.value.trim();
    const problem = !code ? "Enter the classroom code: 8 letters and digits, for example 7KX4-M2QD."
      : !room ? "Enter the room you are testing in." : "";
    page.formProblem.textContent = problem;
    page.formProblem.hidden = !problem;
    if (problem) {
      (code ? page.room : page.code).focus();
      return;
    }
    page.code.value = code;
    page.start.disabled = true;
    page.result.hidden = true;
    page.saved.textContent = "";
    delete page.saved.dataset.state;
    page.progress.hidden = false;
    const settings = testSettings(new URLSearchParams(location.search));
    const result = await runTest(code, room, settings, function (phase, fraction) {
      page.phase.textContent = phase + "…";
      page.bar.value = Math.round(fraction * 100);
    });
    lastResult = { code: code, result: result };
    show(result);
    page.start.disabled = false;
    if (result.codeRefused) {
      page.saved.textContent = "Nothing was saved.";
      return;
    }
    // A test that failed part-way is saved too, with what went wrong: that is data as well.
    await save(code, result);
  }

  function init() {
    for (const id of ["setup", "code", "room", "start", "form-problem", "progress", "phase", "bar",
      "result", "result-title", "summary", "download", "upload", "latency", "loaded", "problem",
      "saved", "save-again", "again"]) {
      page[id.replace(/-([a-z])/g, function (_m, c) { return c.toUpperCase(); })] = document.getElementById(id);
    }
    const query = new URLSearchParams(location.search);
    page.code.value = query.get("code") || "";
    page.room.value = query.get("room") || "";
    (page.code.value ? page.room : page.code).focus();
    page.setup.addEventListener("submit", start);
    page.again.addEventListener("click", function () {
      page.result.hidden = true;
      page.room.focus();
    });
    page.saveAgain.addEventListener("click", function () {
      if (lastResult) save(lastResult.code, lastResult.result);
    });
    performance.setResourceTimingBufferSize(1000);
  }

  document.addEventListener("DOMContentLoaded", init);
})();
