// Fetches a challenge, has Web Workers solve it, submits the solution and
// shows the token. Every URL is relative: the page also lives under
// /proxy/ behind Firebase Hosting.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  let workers = [];
  let abort = null; // rejects the running solve

  function show(id, on) { $(id).hidden = !on; }

  function setError(msg) {
    $("error").textContent = msg;
    show("error", !!msg);
  }

  function busy(on) {
    $("start").disabled = on;
    $("refresh").disabled = on;
    show("work", on);
  }

  function stopWorkers() {
    for (const w of workers) {
      w.postMessage({ type: "stop" });
      w.terminate();
    }
    workers = [];
  }

  async function post(path, body) {
    const res = await fetch(path, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
      credentials: "omit",
    });
    let data = {};
    try { data = await res.json(); } catch (e) { /* not JSON */ }
    if (!res.ok) {
      throw new Error(data.error || "The server answered " + res.status + ".");
    }
    return data;
  }

  // solve runs one worker per core (at most 4: each takes the argon2
  // memory) on interleaved nonces from a random start.
  function solve(challenge) {
    return new Promise((resolve, reject) => {
      abort = () => { stopWorkers(); reject(new Error("Stopped.")); };
      const n = Math.max(1, Math.min(navigator.hardwareConcurrency || 1, 4));
      const base = Math.floor(Math.random() * 1e9);
      const expected = challenge.work;
      const began = Date.now();
      let hashes = 0;
      const update = () => {
        const secs = (Date.now() - began) / 1000;
        const rate = secs > 0 ? hashes / secs : 0;
        // The chance of having found a solution by now, 1-(1-1/w)^h:
        // a bar that fills as the odds do.
        const odds = 1 - Math.pow(1 - 1 / expected, hashes);
        $("progress").value = Math.round(odds * 100);
        $("hashes").textContent = hashes + " hashes of about " + expected + " expected, " +
          rate.toFixed(1) + " per second, " + Math.round(secs) + " s.";
      };
      $("status").textContent = "Solving with " + n + " worker" + (n > 1 ? "s" : "") + "...";
      update();
      for (let i = 0; i < n; i++) {
        const w = new Worker("captcha/worker.js");
        w.onmessage = (ev) => {
          const m = ev.data;
          if (m.type === "progress") {
            hashes += m.hashes;
            update();
          } else if (m.type === "solved") {
            hashes += m.hashes;
            update();
            stopWorkers();
            resolve(m.solution);
          } else if (m.type === "error") {
            stopWorkers();
            reject(new Error("The solver failed: " + m.error));
          }
        };
        w.onerror = (ev) => {
          stopWorkers();
          reject(new Error("The solver could not start: " + (ev.message || "unknown error")));
        };
        w.postMessage({ type: "start", params: challenge.params, start: base + i, step: n });
        workers.push(w);
      }
    });
  }

  function showToken(t) {
    $("result-title").textContent = t.refreshed ? "Your token, extended" : "Your token";
    $("token").textContent = t.token;
    $("expires").textContent = new Date(t.expiresAt).toLocaleString();
    $("maxips").textContent = t.maxIps > 0 ? "at most " + t.maxIps + " addresses" : "any number of addresses";
    const body = $("quotas").querySelector("tbody");
    body.textContent = "";
    const families = Object.keys(t.tokenLimits || {}).sort();
    for (const f of families) {
      const tr = document.createElement("tr");
      const a = document.createElement("td");
      a.textContent = f;
      const b = document.createElement("td");
      b.textContent = t.tokenLimits[f].toLocaleString();
      tr.append(a, b);
      body.append(tr);
    }
    show("quotas", families.length > 0);
    show("noquota", families.length === 0);
    show("result", true);
  }

  async function run(request) {
    setError("");
    show("result", false);
    busy(true);
    $("status").textContent = "Requesting a challenge...";
    try {
      const challenge = await post("captcha/challenge", request);
      const solution = await solve(challenge);
      $("status").textContent = "Solved; checking...";
      const token = await post("captcha/verify", { challenge: challenge.challenge, solution });
      showToken(token);
    } catch (err) {
      setError(err.message);
    } finally {
      abort = null;
      stopWorkers();
      busy(false);
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("start").addEventListener("click", () => run({ action: "new" }));
    $("refresh").addEventListener("click", () => {
      const token = $("refresh-token").value.trim();
      if (!token) {
        setError("Enter the token to extend.");
        return;
      }
      run({ action: "refresh", token });
    });
    $("stop").addEventListener("click", () => { if (abort) abort(); });
    $("copy").addEventListener("click", () => {
      navigator.clipboard.writeText($("token").textContent).catch(() => {});
    });
  });
})();
