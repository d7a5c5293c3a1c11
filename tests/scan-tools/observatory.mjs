// Runs Mozilla's HTTP Observatory (1.4.8) on one target, offline: its
// retriever with explicit ports, then each of its tests, printed as JSON
// {TestName: {result, pass}}. The downloaded lists it normally fetches
// (conf/hsts-preload.json, conf/tld-list.json) are stubbed by scripts/test.
//   node observatory.mjs HOST HTTP_PORT HTTPS_PORT PATH
import { retrieve } from "@mdn/mdn-http-observatory/src/retriever/retriever.js";
import { ALL_TESTS } from "@mdn/mdn-http-observatory/src/constants.js";

const [host, httpPort, httpsPort, path] = process.argv.slice(2);
const requests = await retrieve(host, { httpPort, httpsPort, path });
const out = {};
for (const test of ALL_TESTS) {
  const r = test(requests);
  out[r.constructor.name] = { result: r.result, pass: r.pass };
}
process.stdout.write(JSON.stringify(out) + "\n");
