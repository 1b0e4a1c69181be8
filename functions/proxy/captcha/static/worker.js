// Solves one share of a proof-of-work challenge: argon2id of decimal
// nonces start, start+step, ... until a hash is at most the target.
"use strict";
importScripts("argon2.umd.min.js");

let running = false;

self.onmessage = (event) => {
  const msg = event.data;
  if (msg.type === "stop") {
    running = false;
    return;
  }
  if (msg.type === "start") {
    running = true;
    solve(msg).catch((err) => {
      running = false;
      self.postMessage({ type: "error", error: String(err && err.message ? err.message : err) });
    });
  }
};

function hexToBytes(hex) {
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) {
    out[i] = parseInt(hex.substr(i * 2, 2), 16);
  }
  return out;
}

async function solve({ params, start, step }) {
  const salt = hexToBytes(params.s);
  // Both are lower-case hex of hl bytes: string order is numeric order.
  const target = params.d;
  let nonce = start;
  let done = 0;
  let lastReport = Date.now();
  while (running) {
    const hash = await self.hashwasm.argon2id({
      password: String(nonce),
      salt,
      parallelism: params.p,
      iterations: params.t,
      memorySize: params.m,
      hashLength: params.hl,
      outputType: "hex",
    });
    done++;
    if (hash <= target) {
      running = false;
      self.postMessage({ type: "solved", solution: String(nonce), hashes: done });
      return;
    }
    nonce += step;
    if (Date.now() - lastReport >= 250) {
      self.postMessage({ type: "progress", hashes: done });
      done = 0;
      lastReport = Date.now();
    }
  }
}
