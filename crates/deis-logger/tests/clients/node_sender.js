// Sends records to a Forward listener with Fluentd's Node client (npm
// fluent-logger 3.4.1), requiring an ack for every frame.
//
// Usage: node node_sender.js HOST PORT EVENT_MODE COUNT
// Record i is {app: "nodeapp", process: "web.<i>", log: "node <mode> <i>\n"}
// at EventTime(1700000000 + i, 1000 + i). Exits 0 once every emit callback
// has run without error, 1 on an error, 2 on a timeout.

'use strict';

const logger = require('fluent-logger');

const [host, port, eventMode, count] = process.argv.slice(2);
const total = Number(count);

const sender = logger.createFluentSender('deis', {
  host,
  port: Number(port),
  requireAckResponse: true,
  ackResponseTimeout: 3000,
  eventMode,
});
sender.on('error', (err) => {
  console.error(`sender error: ${err}`);
  process.exit(1);
});

setTimeout(() => {
  console.error(`timed out with ${done} of ${total} emits acknowledged`);
  process.exit(2);
}, 15000);

let done = 0;
for (let i = 0; i < total; i++) {
  const record = { app: 'nodeapp', process: `web.${i}`, log: `node ${eventMode} ${i}\n` };
  const time = new logger.EventTime(1700000000 + i, 1000 + i);
  sender.emit('app', record, time, (err) => {
    if (err) {
      console.error(`emit ${i} failed: ${err}`);
      process.exit(1);
    }
    done += 1;
    if (done === total) {
      // The sender keeps the process alive after end().
      process.exit(0);
    }
  });
}
