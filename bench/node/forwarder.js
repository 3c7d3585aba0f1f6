// The Node baseline of bench/relay.py: the same bare forwarder as its websockets floor, on npm's
// `ws`. Connections pair by URL path ("/N" sends, "/N/r" receives); each binary message from
// one is copied to the other. No compression, the same size limit.
"use strict";
const { WebSocketServer } = require("ws");

const receivers = new Map();
const server = new WebSocketServer({
  host: "127.0.0.1",
  port: 0,
  perMessageDeflate: false,
  maxPayload: 65536,
});

server.on("connection", (ws, request) => {
  const path = request.url || "/";
  if (path.endsWith("/r")) {
    const key = path.slice(0, -2);
    receivers.set(key, ws);
    ws.on("close", () => {
      if (receivers.get(key) === ws) receivers.delete(key);
    });
    return;
  }
  ws.on("message", (data, isBinary) => {
    const target = receivers.get(path);
    if (target !== undefined) target.send(data, { binary: isBinary });
  });
});

server.on("listening", () => {
  console.log(`listening on ws://127.0.0.1:${server.address().port}/`);
});
