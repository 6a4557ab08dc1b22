// nats.ws (the official JavaScript client for browsers) in Node: publish/subscribe and
// request/reply over a WebSocket. Usage: NATS_WS=<path of nats.ws/cjs/nats.js>
//   node --experimental-websocket natsws_roundtrip.js ws://host:port
// Prints "echo:<text>" and "reply:<text>"; exits 1 on any error.
const { connect, StringCodec } = require(process.env.NATS_WS);

(async () => {
  const nc = await connect({ servers: process.argv[2], timeout: 3000 });
  const sc = StringCodec();
  const sub = nc.subscribe("njs.echo", { max: 1 });
  nc.publish("njs.echo", sc.encode("from nats.ws"));
  for await (const m of sub) {
    console.log("echo:" + sc.decode(m.data));
  }
  nc.subscribe("njs.service", { callback: (_err, m) => m.respond(sc.encode("answered")) });
  const reply = await nc.request("njs.service", sc.encode("q"), { timeout: 3000 });
  console.log("reply:" + sc.decode(reply.data));
  await nc.drain();
})().catch((err) => {
  console.error(err);
  process.exit(1);
});
