// An application that makes its prom-client metrics scrapeable through a promproxy server.
//   PROMPROXY_SERVER=http://127.0.0.1:8080 PROMPROXY_NAME=app-1 node examples/embedded-client.ts
import { Counter, register } from "prom-client";
import { createClient } from "promproxy/client";

const jobs = new Counter({ name: "example_jobs_total", help: "Jobs done by the example app." });
const timer = setInterval(() => jobs.inc(), 1000);

// The two lines:
const client = createClient({ name: process.env["PROMPROXY_NAME"] ?? "app-1", serverUrl: process.env["PROMPROXY_SERVER"] ?? "http://127.0.0.1:8080" });
await client.start(); // returns at once: the app starts whatever the server does
await client.ready(); // this example waits for the welcome, to print the curl line

console.log(`connected; scrape with: curl -x ${process.env["PROMPROXY_SERVER"] ?? "http://127.0.0.1:8080"} http://${process.env["PROMPROXY_NAME"] ?? "app-1"}/metrics`);
for (const sig of ["SIGINT", "SIGTERM"] as const) {
  process.once(sig, () => {
    clearInterval(timer);
    void client.stop().then(() => register.clear());
  });
}
