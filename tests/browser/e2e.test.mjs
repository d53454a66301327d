// The two use cases end to end, through every real part: `tandem demo` (the
// demo shop with the real Adobe Web SDK, its catalogue from the public click
// log, the shipped journeys), Debian's chromium driven by playwright-core as
// the shoppers, a real SMTP server (aiosmtpd, tests/blackbox/mail_sink.py)
// receiving the mail, and Debian's python3-dkim verifying the signatures.
//
//   1. cart abandonment: three products viewed, two coats and a sweatshirt in
//      the cart, the shopper leaves; after the wait exactly one email with
//      those items (names, pictures that load, prices, links to their pages)
//      and recommendations that exclude them; DKIM verifies; the mailbox
//      page shows it with its pictures (screenshot);
//   2. browse abandonment: the email lists the viewed items, newest first,
//      without the one bought earlier;
//   3. a purchase during the wait: no email, the instance exited (purchased);
//   4. one-click unsubscribe (RFC 8058 POST) stops the next email, reason kept;
//   5. a click in the email, then a purchase: attributed to the journey with
//      the order's revenue;
//   6. the server is SIGKILLed during the wait of 1-3 and restarted: none of
//      the above changes.
//
// Usage: node e2e.test.mjs <path to tandem binary>
// SHOTS_DIR=dir saves the screenshots there (default: the temporary dir);
// the README's pictures are made with SHOTS_DIR=docs/screenshots.
import { execFileSync, spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, "..", "..");
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const SYS_PY = "/usr/bin/python3";
const ADMIN_KEY = "e2e-admin-key-0123456789abcdef";
const DKIM_DOMAIN = "shop.tandem.test";
const DKIM_SELECTOR = "e2e";
const WAIT_S = 120; // --demo-wait
// a person's browser: headless chromium's own User-Agent counts as a bot
const UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) " +
  "Chrome/120.0 Safari/537.36";
const DEADLINE_MS = 420000;

let passed = 0;
const failures = [];
let server;

function check(cond, what, detail) {
  if (cond) {
    passed++;
    console.log("  ok   " + what);
  } else {
    failures.push(what);
    console.log("  FAIL " + what + (detail === undefined ? "" : ": " + JSON.stringify(detail)));
  }
  return cond;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

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

async function waitFor(fn, what, timeoutMs = 30000) {
  const end = Date.now() + timeoutMs;
  let last;
  while (Date.now() < end) {
    last = await fn();
    if (last) return last;
    await sleep(100);
  }
  throw new Error(`timed out waiting for ${what}`);
}

// ---- the parts -----------------------------------------------------------

function startSink(dir) {
  const out = path.join(dir, "sink");
  fs.mkdirSync(out);
  const proc = spawn(SYS_PY, [path.join(ROOT, "tests", "blackbox", "mail_sink.py"), out],
    { stdio: ["ignore", "pipe", "inherit"] });
  return new Promise((resolve, reject) => {
    let buf = "";
    proc.stdout.on("data", (d) => {
      buf += d;
      const m = /PORT (\d+)/.exec(buf);
      if (m) resolve({ proc, dir: out, port: Number(m[1]) });
    });
    proc.on("exit", (code) => reject(new Error(`mail sink exited (${code})`)));
  });
}

function makeDkimKey(dir) {
  const key = path.join(dir, "dkim.pem");
  execFileSync("openssl", ["genrsa", "-out", key, "2048"], { stdio: "ignore" });
  const der = execFileSync("openssl", ["rsa", "-in", key, "-pubout", "-outform", "DER"],
    { stdio: ["ignore", "pipe", "ignore"] });
  const record = path.join(dir, "dkim.txt");
  fs.writeFileSync(record, "v=DKIM1; k=rsa; p=" + der.toString("base64"));
  return { key, record };
}

async function startTandem(bin, dir, ports, sink, dkim) {
  const logPath = path.join(dir, "tandem.log");
  const log = fs.openSync(logPath, "a");
  const args = ["demo", "--data", path.join(dir, "data"), "--listen", `127.0.0.1:${ports.http}`,
    "--tls-listen", `127.0.0.1:${ports.https}`, "--public-url", `https://localhost:${ports.https}`,
    "--clock", "virtual", "--demo-wait", String(WAIT_S), "--admin-key", ADMIN_KEY,
    "--smtp", `smtp://127.0.0.1:${sink.port}`, "--smtp-tls", "off", "--demo-mailbox", sink.dir,
    "--dkim-domain", DKIM_DOMAIN, "--dkim-selector", DKIM_SELECTOR, "--dkim-key", dkim.key,
    "--web-dir", path.join(ROOT, "web")];
  // journeys/, templates/ and demo/ are read relative to the source tree
  const proc = spawn(bin, args, { cwd: ROOT, stdio: ["ignore", log, log] });
  const exited = new Promise((resolve) => proc.on("exit", (code, sig) => resolve({ code, sig })));
  const base = `https://localhost:${ports.https}`;
  const admin = `http://127.0.0.1:${ports.http}`;
  const srv = { proc, exited, base, admin, logPath };
  await waitFor(async () => {
    if (proc.exitCode !== null) {
      throw new Error("tandem demo exited:\n" + fs.readFileSync(logPath, "utf8").slice(-3000));
    }
    try {
      return (await fetch(admin + "/healthz")).ok;
    } catch {
      return false;
    }
  }, "tandem demo to start", 240000);
  return srv;
}

async function api(srv, method, p, body) {
  const r = await fetch(srv.admin + p, {
    method,
    headers: { Authorization: `Bearer ${ADMIN_KEY}`, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = text;
  }
  return { status: r.status, body: json };
}

const advance = (srv, seconds) => api(srv, "POST", "/v1/admin/clock:advance", { seconds });

function readMail(sink, dkim) {
  const out = execFileSync(SYS_PY, [path.join(HERE, "mailread.py"), sink.dir, dkim.record,
    `${DKIM_SELECTOR}._domainkey.${DKIM_DOMAIN}.`], { encoding: "utf8", maxBuffer: 64 << 20 });
  return JSON.parse(out);
}

const mailTo = (sink, dkim, addr) =>
  readMail(sink, dkim).filter((m) => m.rcpt.includes(addr));

async function instancesOf(srv, addr) {
  const r = await api(srv, "GET", `/v1/profiles/email/${encodeURIComponent(addr)}/journeys`);
  return r.status === 200 ? r.body.instances || r.body : [];
}

// ---- shoppers in the browser ---------------------------------------------

async function newShopper(browser, label) {
  const context = await browser.newContext({ ignoreHTTPSErrors: true, userAgent: UA,
    viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(`${label}: ${e}`));
  page.on("console", (m) => {
    if (m.type() === "error" && !/favicon/.test(m.location().url || "")) {
      errors.push(`${label}: ${m.text()}`);
    }
  });
  return { context, page, errors };
}

async function ready(page) {
  await page.waitForSelector("body[data-ready='1']", { timeout: 30000 });
  const err = await page.getAttribute("body", "data-error");
  if (err) throw new Error(`${page.url()}: the page reported: ${err}`);
}

async function identify(srv, s, addr, offers = true) {
  await s.page.goto(`${srv.base}/demo/`);
  await ready(s.page);
  await s.page.fill("input[data-test=email]", addr);
  await s.page.setChecked("input[data-test=consent]", offers);
  await s.page.click("button[data-test=identify]");
  await waitFor(async () => (await api(srv, "GET", `/v1/profiles/email/${encodeURIComponent(addr)}`))
    .status === 200, `a profile for ${addr}`);
}

async function view(srv, s, id) {
  await s.page.goto(`${srv.base}/demo/product.html?id=${encodeURIComponent(id)}`);
  await ready(s.page);
}

async function profile(srv, addr) {
  return (await api(srv, "GET", `/v1/profiles/email/${encodeURIComponent(addr)}`)).body;
}

const cartIds = (p) => (p.cart || []).map((i) => i.id).sort();

async function addToCart(srv, s, addr, id) {
  await view(srv, s, id);
  await s.page.click("button[data-test=add-to-cart]");
  await waitFor(async () => cartIds(await profile(srv, addr)).includes(id),
    `${id} in the cart of ${addr}`);
}

async function checkout(srv, s, addr) {
  await s.page.goto(`${srv.base}/demo/cart.html`);
  await ready(s.page);
  await s.page.click("button[data-test=checkout]");
  await s.page.waitForSelector("[data-test=order-confirmation]", { timeout: 30000 });
  await waitFor(async () => ((await profile(srv, addr)).purchases || []).length > 0,
    `a purchase by ${addr}`);
}

async function products(srv, category, n, skip = 0) {
  const res = await fetch(`${srv.admin}/demo/api/products?category=${category}&limit=${n + skip}`);
  const body = await res.json();
  return body.items.slice(skip, skip + n);
}

// ---- checks on one email -------------------------------------------------

function hrefs(html) {
  return [...html.matchAll(/href="([^"]+)"/g)].map((m) => m[1].replace(/&amp;/g, "&"));
}

function imgs(html) {
  return [...html.matchAll(/<img[^>]*src="([^"]+)"/g)].map((m) => m[1].replace(/&amp;/g, "&"));
}

// Where a tracked link leads, without following it (and without a click
// being counted as a person's: this fetch says it is a script).
async function target(url) {
  const r = await fetch(url, { redirect: "manual", headers: { "User-Agent": "curl/8" } });
  return r.headers.get("location") || url;
}

async function linkedProducts(html) {
  const ids = new Set();
  for (const h of hrefs(html)) {
    if (!/^https?:/.test(h)) continue;
    const to = /\/t\/c\//.test(h) ? await target(h) : h;
    const m = /product\.html\?id=([^&#]+)/.exec(to || "");
    if (m) ids.add(decodeURIComponent(m[1]));
  }
  return ids;
}

// ---- main --------------------------------------------------------------

async function main() {
  const bin = path.resolve(process.argv[2] || "");
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tandem-e2e-"));
  const shots = process.env.SHOTS_DIR ? path.resolve(process.env.SHOTS_DIR) : dir;
  fs.mkdirSync(shots, { recursive: true });
  // the Web SDK is served by the demo from web/node_modules
  if (!fs.existsSync(path.join(ROOT, "web", "node_modules", "@adobe", "alloy"))) {
    throw new Error("web/node_modules/@adobe/alloy is missing: run sh scripts/deps.sh test");
  }
  process.env.NODE_TLS_REJECT_UNAUTHORIZED = "0"; // the demo's self-signed certificate
  const sink = await startSink(dir);
  const dkim = makeDkimKey(dir);
  const ports = { http: await freePort(), https: await freePort() };
  let srv;
  let browser;
  let keep = false;
  const errors = [];
  try {
    console.log("== starting tandem demo (catalogue and history from the click log)");
    srv = server = await startTandem(bin, dir, ports, sink, dkim);
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--ignore-certificate-errors", "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost"],
    });
    const coats = await products(srv, "Coats", 3);
    const sweats = await products(srv, "Sweatshirts", 2);
    const knits = await products(srv, "Knitwear", 4);
    const shoes = await products(srv, "Shoes", 2);
    check(coats.length === 3 && sweats.length === 2 && knits.length === 4 && shoes.length === 2,
      "the demo catalogue has coats, sweatshirts, knitwear and shoes");

    // B's earlier visit: bought a jumper (the instances this started have
    // ended, and the re-entry wait passes)
    console.log("== 2. browse abandonment, B's earlier purchase");
    const B = "bea@example.com";
    const b = await newShopper(browser, "B");
    await identify(srv, b, B);
    await addToCart(srv, b, B, knits[0].id);
    await checkout(srv, b, B);
    await advance(srv, WAIT_S + 30);

    // 1. cart abandonment: views three products, adds two coats and a sweatshirt
    console.log("== 1. cart abandonment (shopper A)");
    const A = "ada@example.com";
    const a = await newShopper(browser, "A");
    await identify(srv, a, A);
    const cartA = [coats[0], coats[1], sweats[0]];
    await view(srv, a, coats[2].id);
    for (const p of cartA) await addToCart(srv, a, A, p.id);
    check(JSON.stringify(cartIds(await profile(srv, A))) ===
      JSON.stringify(cartA.map((p) => p.id).sort()), "A's cart holds the two coats and the sweatshirt");
    await a.page.goto(`${srv.base}/demo/product.html?id=${encodeURIComponent(coats[0].id)}`);
    await ready(a.page);
    const shelves = await a.page.$$eval("section[data-test=shelf] .product-card",
      (els) => els.map((e) => e.getAttribute("data-id")));
    check(shelves.length > 0, "the product page shows recommendation shelves", shelves.length);
    await a.page.screenshot({ path: path.join(shots, "shop.png"), fullPage: true });
    errors.push(...a.errors);
    await a.context.close();

    // 2. browse abandonment: B bought a jumper on an earlier visit, comes back
    // and only looks at three items, the jumper among them
    console.log("== 2. browse abandonment (shopper B)");
    const viewedB = [knits[1], knits[0], knits[2]];
    for (const p of viewedB) await view(srv, b, p.id);
    errors.push(...b.errors);

    // 3. a purchase during the wait
    console.log("== 3. purchase during the wait (shopper C)");
    const C = "cy@example.com";
    const c = await newShopper(browser, "C");
    await identify(srv, c, C);
    await addToCart(srv, c, C, shoes[0].id);
    await advance(srv, WAIT_S / 2);
    await checkout(srv, c, C);
    errors.push(...c.errors);
    await c.context.close();

    // 6. SIGKILL during the wait, restart
    console.log("== 6. SIGKILL during the wait, then restart");
    check(mailTo(sink, dkim, A).length === 0 && mailTo(sink, dkim, B).length === 0,
      "no email before the wait is over");
    srv.proc.kill("SIGKILL");
    await srv.exited;
    srv = server = await startTandem(bin, dir, ports, sink, dkim);
    await advance(srv, WAIT_S + 30);

    // 1. the cart email
    console.log("== 1. the cart email");
    const mailsA = await waitFor(() => {
      const m = mailTo(sink, dkim, A);
      return m.length ? m : null;
    }, "the cart email to A", 60000);
    const mailB = (await waitFor(() => {
      const m = mailTo(sink, dkim, B);
      return m.length ? m : null;
    }, "the browse email to B", 60000))[0];
    await advance(srv, WAIT_S + 30); // nothing more may come, even later
    await sleep(1500);
    check(mailTo(sink, dkim, A).length === 1, "exactly one email to A", mailTo(sink, dkim, A).length);
    const mA = mailsA[0];
    check(mA.headers.To.includes(A), "addressed to A", mA.headers.To);
    check(mA.dkim, "the DKIM signature verifies (python3-dkim)");
    for (const p of cartA) {
      check(mA.html.includes(p.name), `the email names ${p.name}`);
      check(mA.html.includes(p.value.toFixed(2)), `the email shows the price of ${p.name}`, p.value);
      check(imgs(mA.html).includes(p.thumbnailUrl), `the email shows the picture of ${p.name}`);
    }
    for (const src of imgs(mA.html).filter((u) => u.includes("/demo/img/"))) {
      const r = await fetch(src);
      check(r.status === 200 && r.headers.get("content-type") === "image/png",
        `picture ${src.split("/").pop()} loads`, r.status);
    }
    const linked = await linkedProducts(mA.html);
    for (const p of cartA) check(linked.has(p.id), `the email links to the page of ${p.name}`);
    const instA = (await instancesOf(srv, A)).find((i) => i.journey === "cart-abandonment");
    const full = instA && (await api(srv, "GET",
      `/v1/journeys/cart-abandonment/instances/${instA.id}`)).body;
    const recs = ((full && full.actions && full.actions.recs && full.actions.recs.items) || [])
      .map((i) => i.id);
    check(recs.length > 0, "the journey recommended items", full && full.actions);
    check(recs.every((id) => !cartA.some((p) => p.id === id)),
      "the recommendations exclude the cart's items", recs);
    check(recs.slice(0, 3).every((id) => linked.has(id)), "the email links the recommendations",
      { recs, linked: [...linked] });

    // the mailbox page shows it, pictures loaded
    const mb = await newShopper(browser, "mailbox");
    await mb.page.goto(`${srv.base}/demo/mailbox`);
    await ready(mb.page);
    const n = mA.file.replace(".eml", "");
    await mb.page.click(`.mail-row[data-id="${n}"]`);
    const frame = await (await mb.page.waitForSelector("iframe[data-test=mail-body]")).contentFrame();
    await waitFor(async () => frame.evaluate(() => {
      const im = [...document.images].filter((i) => i.src.includes("/demo/img/"));
      return im.length > 0 && im.every((i) => i.complete && i.naturalWidth > 0);
    }), "the email's pictures to load in the mailbox");
    check(true, "the mailbox page renders the email with its pictures");
    await mb.page.screenshot({ path: path.join(shots, "email.png"), fullPage: true });
    errors.push(...mb.errors);

    // 2. the browse email: viewed items newest first, the bought one left out
    console.log("== 2. the browse email");
    check(mailB.dkim, "B's email: the DKIM signature verifies");
    const pos = (p) => mailB.html.indexOf(p.name);
    check(pos(viewedB[2]) >= 0 && pos(viewedB[0]) >= 0 && pos(viewedB[2]) < pos(viewedB[0]),
      "B's email lists the viewed items newest first", viewedB.map(pos));
    const instB = (await instancesOf(srv, B)).find((i) => i.journey === "browse-abandonment" &&
      i.state === "ended" && i.reason === "emailed");
    const fullB = instB && (await api(srv, "GET",
      `/v1/journeys/browse-abandonment/instances/${instB.id}`)).body;
    const listed = ((fullB && fullB.actions.viewed && fullB.actions.viewed.items) || [])
      .map((i) => i.id);
    check(JSON.stringify(listed) === JSON.stringify([knits[2].id, knits[1].id]),
      "B's email lists what B viewed, newest first, without the item B bought",
      { listed, viewed: viewedB.map((p) => p.id), bought: knits[0].id });

    // 3. C bought during the wait
    console.log("== 3. purchase during the wait");
    check(mailTo(sink, dkim, C).length === 0, "no email to C");
    const instC = (await instancesOf(srv, C)).filter((i) => i.journey === "cart-abandonment");
    check(instC.length === 1 && instC[0].state === "ended" && instC[0].outcome === "exited",
      "C's instance exited", instC);
    check(JSON.stringify(instC).includes("purchase"), "... because of the purchase", instC);

    // 5. a click in B's email, then a purchase: attributed with its revenue
    console.log("== 5. click then purchase (attribution)");
    await advance(srv, 60); // a person clicks after a while, not a scanner at once
    let link;
    for (const h of hrefs(mailB.html).filter((u) => /\/t\/c\//.test(u))) {
      if (/product\.html\?id=/.test(await target(h))) {
        link = h;
        break;
      }
    }
    await b.page.goto(link);
    await ready(b.page);
    check(/product\.html\?id=/.test(b.page.url()), "the tracked link leads to a product page",
      b.page.url());
    const boughtId = new URL(b.page.url()).searchParams.get("id");
    await b.page.click("button[data-test=add-to-cart]");
    await waitFor(async () => cartIds(await profile(srv, B)).includes(boughtId), "B's cart");
    await checkout(srv, b, B);
    const total = await b.page.textContent("[data-test=order-confirmation]");
    const rep = await waitFor(async () => {
      const r = (await api(srv, "GET", "/v1/journeys/browse-abandonment/messages")).body;
      return r.converted >= 1 ? r : null;
    }, "the conversion in the browse journey's report");
    const item = (await (await fetch(`${srv.admin}/demo/api/products/${boughtId}`)).json());
    check(rep.clicked >= 1 && rep.converted === 1, "the report counts the click and the order", rep);
    check(Math.abs(rep.revenue - item.value) < 0.01, "... with the order's revenue",
      { revenue: rep.revenue, price: item.value, confirmation: total });
    errors.push(...b.errors);
    await b.context.close();

    // 4. one-click unsubscribe stops A's next email
    console.log("== 4. one-click unsubscribe");
    const lu = /<([^>]+\/t\/u\/[^>]+)>/.exec(mA.headers["List-Unsubscribe"] || "");
    check(lu && /One-Click/.test(mA.headers["List-Unsubscribe-Post"] || ""),
      "the email offers one-click unsubscribe", mA.headers["List-Unsubscribe"]);
    const u = await fetch(lu[1], { method: "POST", headers: { "Content-Type":
      "application/x-www-form-urlencoded" }, body: "List-Unsubscribe=One-Click" });
    check(u.status === 200, "the unsubscribe POST is accepted", u.status);
    // A shops again on another device, without ticking "Email me offers"
    const a2 = await newShopper(browser, "A again");
    await identify(srv, a2, A, false);
    await addToCart(srv, a2, A, shoes[1].id);
    await a2.context.close();
    await advance(srv, WAIT_S + 30);
    const ended = await waitFor(async () => {
      const i = (await instancesOf(srv, A)).filter((x) => x.journey === "cart-abandonment");
      return i.length === 2 && i[0].state === "ended" ? i[0] : null;
    }, "A's second cart-abandonment instance to end");
    await sleep(1000);
    check(mailTo(sink, dkim, A).length === 1, "no second email to A after unsubscribing");
    check(ended.reason === "consent_refused", "the reason is recorded on the instance", ended);
    const prof = await profile(srv, A);
    check(JSON.stringify(prof.consent).includes("out"), "A's profile says marketing: out",
      prof.consent);
    check(errors.length === 0, "no errors in the browser consoles", errors.slice(0, 5));
  } catch (e) {
    failures.push(String(e && e.stack ? e.stack : e));
    console.log("  FAIL " + (e && e.stack ? e.stack : e));
  } finally {
    if (browser) await browser.close();
    if (srv) {
      srv.proc.kill("SIGTERM");
      const { code, sig } = await srv.exited;
      check(code === 0, "tandem exited cleanly (sanitizers found nothing)", { code, sig });
      if (failures.length) {
        console.log("---- tandem log (tail)");
        console.log(fs.readFileSync(srv.logPath, "utf8").split("\n").slice(-80).join("\n"));
        keep = process.env.KEEP_TMP === "1";
      }
    }
    sink.proc.kill("SIGTERM");
    if (keep) {
      console.log(`(kept ${dir})`);
    } else {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }
  console.log(`\ne2e: ${passed} checks passed, ${failures.length} failed`);
  process.exit(failures.length ? 1 : 0);
}

setTimeout(() => {
  console.log(`e2e: FAIL, no result after ${DEADLINE_MS / 1000} s`);
  if (server) server.proc.kill("SIGKILL");
  process.exit(1);
}, DEADLINE_MS);
main();
