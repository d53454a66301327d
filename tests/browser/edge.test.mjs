// The real Adobe Web SDK (npm @adobe/alloy, unmodified) in Debian's
// chromium, pointed at Tandem's Edge endpoints over HTTPS.
//
// Tandem serves the shop page and alloy's built standalone script from a
// temporary web dir; chromium maps the edge and shop host names to Tandem's
// TLS port and accepts a throwaway self-signed certificate. A shopper makes
// two visits (page views, product views, cart adds, consent, a purchase);
// then the profile read back from Tandem must hold every event, the cart and
// the purchase under ONE ECID, the one alloy reports. Run twice: with the
// edge on the shop's own domain (the identity cookie travels in the Cookie
// header) and on another domain (alloy copies it into meta.state.entries).
//
// Usage: node edge.test.mjs <path to tandem binary>
import { execFileSync, spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const EDGE_HOST = "edge.tandem.test";
const DATASTREAM = "6c7e0e3a-0d1c-4b6e-9a53-7a1f0c2b9d11";
const ORG = "0123456789ABCDEF01234567@AdobeOrg";
const ADMIN_KEY = "browser-test-admin-key-0123456789";
const COOKIE = "kndctr_" + ORG.replace("@", "_") + "_identity";
const DEADLINE_MS = 150000;

let passed = 0;
const failures = [];
let server; // the running tandem, so a timeout can stop it

function check(cond, what, detail) {
  if (cond) {
    passed++;
    console.log("  ok   " + what);
  } else {
    failures.push(what);
    console.log("  FAIL " + what + (detail === undefined ? "" : ": " + JSON.stringify(detail)));
  }
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function canConnect(port) {
  return new Promise((resolve) => {
    const sock = net.connect(port, "127.0.0.1");
    sock.on("connect", () => {
      sock.destroy();
      resolve(true);
    });
    sock.on("error", () => resolve(false));
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// A self-signed certificate for the test host names, made now and thrown away.
function makeCert(dir) {
  const key = path.join(dir, "key.pem");
  const cert = path.join(dir, "cert.pem");
  execFileSync(
    "openssl",
    ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
      "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=" + EDGE_HOST,
      "-addext", "subjectAltName=DNS:edge.tandem.test,DNS:shop.tandem.test,DNS:shop.example.test"],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  return { key, cert };
}

function makeWebDir(dir) {
  const web = path.join(dir, "web");
  fs.mkdirSync(web);
  for (const f of ["shop.html", "shop.js"]) {
    fs.copyFileSync(path.join(HERE, "site", f), path.join(web, f));
  }
  // the package's built standalone script, as a site would host it
  const alloy = path.join(HERE, "node_modules", "@adobe", "alloy", "dist", "alloy.js");
  fs.copyFileSync(alloy, path.join(web, "alloy.js"));
  const version = JSON.parse(
    fs.readFileSync(path.join(HERE, "node_modules", "@adobe", "alloy", "package.json"), "utf8"),
  ).version;
  return { web, version };
}

async function startTandem(bin, dir, web, cert) {
  const port = await freePort();
  const tlsPort = await freePort();
  const logPath = path.join(dir, "tandem.log");
  const log = fs.openSync(logPath, "a");
  const args = ["serve", "--listen", `127.0.0.1:${port}`, "--data", path.join(dir, "data"),
    "--tls-listen", `127.0.0.1:${tlsPort}`, "--tls-cert", cert.cert, "--tls-key", cert.key,
    "--web-dir", web, "--admin-key", ADMIN_KEY, "--datastream", `${DATASTREAM}=${ORG}`];
  const proc = spawn(bin, args, { stdio: ["ignore", log, log] });
  const exited = new Promise((resolve) => proc.on("exit", (code, sig) => resolve({ code, sig })));
  const base = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 400; i++) {
    if (proc.exitCode !== null) break;
    try {
      // the plain port answers first; the TLS one listens a moment later
      if ((await fetch(base + "/healthz")).ok && (await canConnect(tlsPort))) {
        return { proc, exited, base, tlsPort, logPath };
      }
    } catch {
      // not listening yet
    }
    await sleep(50);
  }
  throw new Error("tandem did not start:\n" + fs.readFileSync(logPath, "utf8"));
}

async function profile(base, ns, id) {
  const r = await fetch(`${base}/v1/profiles/${ns}/${encodeURIComponent(id)}`, {
    headers: { Authorization: `Bearer ${ADMIN_KEY}` },
  });
  return { status: r.status, body: await r.json() };
}

// One shopper, two visits, in a fresh browser profile.
async function scenario(srv, dir, shopHost, email, label) {
  console.log(`== ${label}: page on https://${shopHost}, edge on https://${EDGE_HOST}`);
  const userData = fs.mkdtempSync(path.join(dir, "chromium-"));
  const rules = [EDGE_HOST, "shop.tandem.test", "shop.example.test"]
    .map((h) => `MAP ${h} 127.0.0.1:${srv.tlsPort}`)
    .concat(["MAP * ~NOTFOUND"]) // nothing leaves the machine
    .join(", ");
  const context = await chromium.launchPersistentContext(userData, {
    executablePath: CHROMIUM,
    headless: true,
    ignoreHTTPSErrors: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
      "--ignore-certificate-errors", `--host-resolver-rules=${rules}`],
  });
  const edgeCalls = [];
  const consoleErrors = [];
  const failedLoads = [];
  context.on("request", (req) => {
    const u = new URL(req.url());
    if (u.hostname === EDGE_HOST) {
      const call = { path: u.pathname, body: req.postData() || "", headers: {} };
      // allHeaders() includes the Cookie header the network stack adds
      call.headersDone = req.allHeaders().then((h) => { call.headers = h; }, () => {});
      edgeCalls.push(call);
    }
  });
  context.on("response", (res) => {
    if (res.status() >= 400 && !res.url().endsWith("/favicon.ico")) {
      failedLoads.push(`${res.status()} ${res.url()}`);
    }
  });
  const results = [];
  try {
    for (const visit of ["1", "2"]) {
      const page = await context.newPage();
      page.on("console", (m) => {
        if (process.env.SHOW_CONSOLE) console.log(`  [console.${m.type()}] ${m.text()}`);
        if (m.type() === "error" && !(m.location().url || "").endsWith("/favicon.ico")) {
          consoleErrors.push(m.text());
        }
      });
      page.on("pageerror", (e) => consoleErrors.push(String(e)));
      const q = new URLSearchParams({ visit, email, edge: EDGE_HOST, datastream: DATASTREAM,
        org: ORG });
      const url = `https://${shopHost}/web/shop.html?${q}`;
      const resp = await page.goto(url, { waitUntil: "load" });
      if (!resp || resp.status() !== 200) {
        throw new Error(`GET ${url} answered ${resp ? resp.status() : "nothing"}, not 200`);
      }
      await page.waitForFunction(() => window.shopResult !== undefined, null, { timeout: 30000 });
      const r = await page.evaluate(() => window.shopResult);
      results.push(r);
      check(r.ok, `visit ${visit}: every alloy command resolved`, r.error);
      // give the unload beacon time to leave before the page goes
      await sleep(300);
      await page.close();
    }
    const cookies = await context.cookies();
    const kndctr = cookies.find((c) => c.name === COOKIE);
    check(kndctr !== undefined, `alloy stored the ${COOKIE} cookie`, cookies.map((c) => c.name));
    // the cookie alloy keeps is the one Tandem wrote
    if (kndctr) {
      const bytes = Buffer.from(kndctr.value, "base64url");
      const ecidInCookie = bytes.subarray(2, 2 + bytes[1]).toString();
      check(bytes[0] === 0x0a && ecidInCookie === results[0].ecid,
        "the cookie is protobuf {1: ECID} holding the ECID alloy reports", bytes.toString("hex"));
    }
    await Promise.all(edgeCalls.map((c) => c.headersDone));
    check(failedLoads.length === 0, `${label}: no request failed`, failedLoads);
    return { results, edgeCalls, consoleErrors, shopHost, email };
  } finally {
    await context.close();
  }
}

async function checkProfile(srv, run, label) {
  const [v1, v2] = run.results;
  const ecid = v1.ecid;
  check(typeof ecid === "string" && /^[0-9]{38}$/.test(ecid), `${label}: alloy's ECID is 38 digits`, ecid);
  check(v2.ecid === ecid, `${label}: the same ECID on both visits`, [v1.ecid, v2.ecid]);

  const paths = run.edgeCalls.map((c) => c.path);
  check(paths.includes("/ee/v1/interact"), `${label}: alloy called /ee/v1/interact`, paths);
  check(paths.includes("/ee/v1/collect"), `${label}: alloy sent a beacon to /ee/v1/collect`, paths);
  check(paths.includes("/ee/v1/privacy/set-consent"), `${label}: alloy called set-consent`, paths);
  // on the second visit the ECID must come from the cookie, never from identityMap
  const second = run.edgeCalls.filter((c) => c.path === "/ee/v1/interact").slice(-1)[0];
  if (second) {
    const body = JSON.parse(second.body);
    const entries = (body.meta && body.meta.state && body.meta.state.entries) || [];
    const inBody = entries.some((e) => e.key === COOKIE);
    const inHeader = (second.headers.cookie || "").includes(COOKIE);
    check(!JSON.stringify(body.events[0].xdm.identityMap || {}).includes(ecid),
      `${label}: later calls carry no ECID in identityMap`);
    if (label === "first-party edge") {
      check(inHeader, `${label}: the identity cookie travels in the Cookie header`, second.headers.cookie);
    } else {
      check(inBody, `${label}: the identity cookie travels in meta.state.entries`, entries);
    }
  }

  // the beacon is answered before its commit can be observed: wait for it
  let p;
  for (let i = 0; i < 100; i++) {
    p = await profile(srv.base, "ecid", ecid);
    if (p.status === 200 && p.body.counts["web.webinteraction.linkClicks"] === 1) break;
    await sleep(100);
  }
  check(p.status === 200, `${label}: GET /v1/profiles/ecid/<ecid> finds the profile`, p.body);
  if (p.status !== 200) return;
  const prof = p.body;
  check(JSON.stringify(prof.identities.ecid) === JSON.stringify([ecid]),
    `${label}: the profile has exactly alloy's ECID`, prof.identities.ecid);
  check(JSON.stringify(prof.identities.email) === JSON.stringify([run.email]),
    `${label}: the Email from identityMap is linked`, prof.identities.email);
  const counts = prof.counts;
  check(counts.page_view === 2 && counts.product_view === 2 && counts.cart_add === 2 &&
    counts.purchase === 1 && counts["web.webinteraction.linkClicks"] === 1 && counts.consent === 1,
  `${label}: every event was stored with its type`, counts);
  check(prof.cart.length === 1 && prof.cart[0].id === "SWEAT-2" && prof.cart[0].quantity === 1 &&
    prof.cart[0].price === 19.5,
  `${label}: the cart holds the sweatshirt (the coats were bought)`, prof.cart);
  const viewed = prof.viewed.map((i) => i.id);
  check(viewed.includes("COAT-1") && viewed.includes("SWEAT-2"), `${label}: both products viewed`, viewed);
  const order = prof.purchases[0] || {};
  check(prof.purchases.length === 1 && order.order_id === "ORD-1" && order.total === 119.8 &&
    order.currency === "EUR",
  `${label}: the purchase ORD-1 of 119.8 EUR`, prof.purchases);
  const coat = (order.items || [])[0] || {};
  check(coat.id === "COAT-1" && coat.quantity === 2 && coat.price === 59.9,
    `${label}: the purchased line is 2 x 59.9 (priceTotal / quantity)`, order.items);
  check(prof.consent.marketing && prof.consent.marketing.value === "in" &&
    prof.consent.marketing.source === "edge",
  `${label}: setConsent recorded marketing consent`, prof.consent);
  const byEmail = await profile(srv.base, "email", run.email);
  check(byEmail.status === 200 && byEmail.body.id === prof.id,
    `${label}: the same profile by email`, byEmail.body.id);
}

async function main() {
  const bin = process.argv[2];
  if (!bin || !fs.existsSync(bin)) {
    throw new Error("usage: node edge.test.mjs <path to tandem binary>");
  }
  if (!fs.existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} not found (Debian package chromium; scripts/deps.sh test)`);
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tandem-browser-"));
  let srv;
  let keep = false;
  try {
    const cert = makeCert(dir);
    const { web, version } = makeWebDir(dir);
    console.log(`alloy ${version}, chromium ${CHROMIUM}, tandem ${bin}`);
    srv = server = await startTandem(path.resolve(bin), dir, web, cert);
    const runs = [
      [await scenario(srv, dir, "shop.tandem.test", "jane.doe@example.com", "first-party edge"),
        "first-party edge"],
      [await scenario(srv, dir, "shop.example.test", "john.roe@example.com", "third-party edge"),
        "third-party edge"],
    ];
    for (const [run, label] of runs) {
      console.log(`== ${label}: profile`);
      await checkProfile(srv, run, label);
      // alloy (debugEnabled) logs through console.error when a reply displeases it
      check(run.consoleErrors.length === 0, `${label}: no errors in the browser console`,
        run.consoleErrors.slice(0, 5));
    }
    check(runs[0][0].results[0].ecid !== runs[1][0].results[0].ecid,
      "two browsers got two different ECIDs");
  } catch (e) {
    failures.push(String(e && e.stack ? e.stack : e));
    console.log("  FAIL " + (e && e.stack ? e.stack : e));
  } finally {
    if (srv) {
      srv.proc.kill("SIGTERM");
      const { code, sig } = await srv.exited;
      check(code === 0, "tandem exited cleanly (sanitizers found nothing)", { code, sig });
      if (failures.length) {
        console.log("---- tandem log (tail)");
        console.log(fs.readFileSync(srv.logPath, "utf8").split("\n").slice(-60).join("\n"));
        keep = process.env.KEEP_TMP === "1";
      }
    }
    if (keep) {
      console.log(`(kept ${dir})`);
    } else {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }
  console.log(`\nbrowser: ${passed} checks passed, ${failures.length} failed`);
  process.exit(failures.length ? 1 : 0);
}

setTimeout(() => {
  console.log(`browser: FAIL, no result after ${DEADLINE_MS / 1000} s`);
  if (server) server.proc.kill("SIGKILL");
  process.exit(1);
}, DEADLINE_MS);
main();
