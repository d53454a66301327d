// Target's Delivery API with the real Adobe Target Node.js SDK
// (npm @adobe/target-nodejs-sdk): the SDK is pointed at tandem
// (serverDomain 127.0.0.1:PORT, secure: false), asks for an mbox mapped to
// a design with entity.id, gets the recommended items, keeps talking to the
// same server with the plain tntId it was given, and sends notifications.
// Usage: node delivery.test.mjs <path to tandem binary>
import { spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const TargetClient = require("@adobe/target-nodejs-sdk");

const ADMIN_KEY = "delivery-test-admin-key-0123456789";
const bin = process.argv[2];
let failures = 0;

function check(cond, what, detail) {
  if (cond) {
    console.log(`ok   ${what}`);
  } else {
    failures++;
    console.log(`FAIL ${what}${detail === undefined ? "" : ": " + JSON.stringify(detail)}`);
  }
}

function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

async function admin(base, method, p, body, type = "application/json") {
  const r = await fetch(base + p, {
    method,
    headers: { Authorization: `Bearer ${ADMIN_KEY}`, "Content-Type": type },
    body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
  });
  const text = await r.text();
  return { status: r.status, body: text ? JSON.parse(text) : null };
}

async function main() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tandem-delivery-"));
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const srv = spawn(bin, ["serve", "--listen", `127.0.0.1:${port}`, "--data", dir,
                          "--admin-key", ADMIN_KEY, "--clock", "virtual"],
                    { stdio: ["ignore", "inherit", "inherit"] });
  let exitCode = null;
  srv.on("exit", (code) => { exitCode = code; });
  try {
    for (let i = 0; i < 200; i++) {
      try {
        if ((await fetch(base + "/healthz")).ok) break;
      } catch { /* not yet */ }
      await new Promise((r) => setTimeout(r, 50));
    }
    const items = [
      ["P-1", "Red wool winter coat", 189],
      ["P-2", "Black wool winter coat", 229],
      ["P-3", "Navy wool winter coat", 199],
      ["P-4", "Cotton sweatshirt", 49],
    ];
    for (const [id, name, value] of items) {
      const r = await admin(base, "PUT", `/v1/entities/${id}`,
                            { name, categories: ["Coats"], attributes: { value } });
      check(r.status === 201, `entity ${id} stored`, r);
    }
    let r = await admin(base, "PUT", "/v1/criteria/similar",
                        { criteriaGroup: "ITEM", type: "SIMILARITY", backupDisabled: true });
    check(r.status === 201, "criteria stored", r);
    r = await admin(base, "PUT", "/v1/designs/pdp-recs", { criteria: "similar", count: 2 });
    check(r.status === 201, "design stored", r);
    r = await admin(base, "PUT", "/v1/designs/pdp-html",
                    { criteria: "similar", count: 2, html: true });
    check(r.status === 201, "html design stored", r);

    const logs = [];
    const client = TargetClient.create({
      client: "acme",
      organizationId: "ACME@AdobeOrg",
      serverDomain: `127.0.0.1:${port}`,
      secure: false,
      timeout: 5000,
      logger: { debug: () => {}, error: (...a) => logs.push(a.join(" ")) },
    });
    const res = await client.getOffers({
      request: {
        execute: {
          mboxes: [
            { name: "pdp-recs", index: 0, parameters: { "entity.id": "P-1" } },
            { name: "pdp-html", index: 1, parameters: { "entity.id": "P-1" } },
            { name: "no-such-mbox", index: 2 },
          ],
        },
        prefetch: { mboxes: [{ name: "pdp-recs", index: 0, parameters: { "entity.id": "P-2" } }] },
      },
      sessionId: "session-1",
    });
    const resp = res.response;
    check(resp.status === 200, "status 200", resp.status);
    check(typeof resp.requestId === "string" && resp.requestId.length > 0, "requestId");
    // the Node SDK sends imsOrgId, not the client code, to a custom serverDomain
    check(typeof resp.client === "string", "client", resp.client);
    const tnt = resp.id && resp.id.tntId;
    check(typeof tnt === "string" && /^[0-9a-f]{32}$/.test(tnt), "plain tntId", resp.id);
    check(resp.edgeHost === undefined, "no edgeHost", resp.edgeHost);
    const mboxes = resp.execute.mboxes;
    const json = mboxes.find((m) => m.name === "pdp-recs");
    const opt = json.options[0];
    check(opt.type === "json", "json option", opt);
    const ids = opt.content.items.map((i) => i.id);
    check(ids.length === 2 && ids.includes("P-2") && ids.includes("P-3") && !ids.includes("P-1"),
          "similar items recommended", ids);
    check(opt.content.items[0].name.endsWith("winter coat"), "items carry attributes",
          opt.content.items[0]);
    const html = mboxes.find((m) => m.name === "pdp-html").options[0];
    check(html.type === "html" && html.content.includes("tandem-rec") &&
          html.content.includes('data-id="P-'), "html option", html);
    const none = mboxes.find((m) => m.name === "no-such-mbox");
    check(none && none.options.length === 0, "unknown mbox: no offer", none);
    const pre = resp.prefetch.mboxes[0];
    check(pre.options[0].eventToken && pre.options[0].content.items.length === 2,
          "prefetch with an event token", pre);
    check(res.targetCookie && res.targetCookie.value.includes(tnt), "target cookie keeps tntId",
          res.targetCookie);

    // a second call with the cookie: same visitor, still this server
    const again = await client.getOffers({
      request: { execute: { mboxes: [{ name: "pdp-recs", index: 0,
                                       parameters: { "entity.id": "P-3" } }] } },
      targetCookie: res.targetCookie.value,
    });
    check(again.response.id.tntId === tnt, "tntId kept across calls", again.response.id);

    const sent = await client.sendNotifications({
      request: {
        id: { tntId: tnt },
        notifications: [{
          id: "n-1", type: "display", timestamp: Date.now(),
          mbox: { name: "pdp-recs" }, tokens: [pre.options[0].eventToken],
        }],
      },
    });
    check(sent.response.status === 200, "notifications accepted", sent.response);

    // the mbox call recorded a product view of P-1 for this visitor
    let viewed = null;
    for (let i = 0; i < 100 && !viewed; i++) {
      const p = await admin(base, "GET", `/v1/profiles/ecid/${tnt}`);
      if (p.status === 200 && (p.body.viewed || []).some((v) => v.id === "P-1")) viewed = p.body;
      else await new Promise((r) => setTimeout(r, 50));
    }
    check(viewed, "the mbox call recorded a view");
    check(logs.length === 0, "the SDK logged no error", logs);
  } catch (e) {
    failures++;
    console.log(`FAIL exception: ${e.stack || e}`);
  } finally {
    srv.kill("SIGTERM");
    for (let i = 0; i < 200 && exitCode === null; i++) {
      await new Promise((r) => setTimeout(r, 50));
    }
    check(exitCode === 0, "tandem exited cleanly", exitCode);
    fs.rmSync(dir, { recursive: true, force: true });
  }
  console.log(failures ? `delivery: ${failures} failed` : "delivery: all passed");
  process.exit(failures ? 1 : 0);
}

main();
