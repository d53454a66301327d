/* The demo mailbox: the messages the journeys sent, caught by the demo's
 * SMTP server, newest first; the selected one read from its raw RFC 5322
 * text and shown with its headers; each journey's report; and "Skip 3
 * hours" on a virtual clock. The list and reports are polled every 3 s.
 *
 * The MIME reader handles what mail senders actually write: folded
 * headers with RFC 2047 encoded-words, multipart/* nested to any depth,
 * quoted-printable and base64 bodies in any charset TextDecoder knows, and
 * cid: pictures of multipart/related. It works on the message's bytes held
 * one per char (a "binary string") so an 8-bit body keeps its charset. */
import { start, getJSON, esc, money, done, fail } from "./shop.js";

const POLL_MS = 3000;
const SKIP_SECONDS = 3 * 3600;
const MAX_DEPTH = 20; // multipart nesting followed

/* ---- bytes and charsets ---------------------------------------------------- */

function bytesToBinary(bytes) {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    s += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }
  return s;
}

function binaryToBytes(s) {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i) & 0xff;
  return out;
}

export function decodeCharset(bytes, charset) {
  let dec;
  try {
    dec = new TextDecoder((charset || "utf-8").trim().toLowerCase());
  } catch {
    dec = new TextDecoder("utf-8"); // a label TextDecoder does not know
  }
  return dec.decode(bytes);
}

export function decodeQP(s, inHeader = false) {
  const out = [];
  if (!inHeader) {
    s = s.replace(/[ \t]+(?=\r?\n|$)/g, ""); // trailing blanks are padding
  }
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (inHeader && c === "_") {
      out.push(0x20);
    } else if (c === "=") {
      if (s[i + 1] === "\r" && s[i + 2] === "\n") {
        i += 2; // a soft line break
      } else if (s[i + 1] === "\n") {
        i += 1;
      } else if (/^[0-9A-Fa-f]{2}$/.test(s.substr(i + 1, 2))) {
        out.push(parseInt(s.substr(i + 1, 2), 16));
        i += 2;
      } else if (i + 1 < s.length) {
        out.push(0x3d); // a stray '=' is kept, as readers do
      }
    } else {
      out.push(s.charCodeAt(i) & 0xff);
    }
  }
  return new Uint8Array(out);
}

export function decodeBase64(s) {
  let clean = s.replace(/[^A-Za-z0-9+/]/g, "");
  clean = clean.slice(0, clean.length - (clean.length % 4 === 1 ? 1 : 0));
  while (clean.length % 4) clean += "=";
  try {
    return binaryToBytes(atob(clean));
  } catch {
    return new Uint8Array(0);
  }
}

/* ---- headers ---------------------------------------------------------------- */

const WORD = /=\?([^?\s]+)\?([BbQq])\?([^?\s]*)\?=/g;

/* RFC 2047: encoded-words decoded; the blanks between two adjacent words
 * dropped, and adjacent words in one charset decoded together, since some
 * senders split a multi-byte character across two words. */
export function decodeWords(text) {
  let out = "";
  let last = 0;
  let run = null; // {charset, bytes[]} of adjacent words not yet decoded
  const flush = () => {
    if (run) out += decodeCharset(new Uint8Array(run.bytes), run.charset);
    run = null;
  };
  for (const m of text.matchAll(WORD)) {
    const between = text.slice(last, m.index);
    const charset = m[1].split("*")[0]; // RFC 2231 language suffix
    const bytes = /[Bb]/.test(m[2]) ? decodeBase64(m[3]) : decodeQP(m[3], true);
    if (run && /^[ \t\r\n]*$/.test(between) && run.charset.toLowerCase() === charset.toLowerCase()) {
      run.bytes.push(...bytes);
    } else {
      if (!(run && /^[ \t\r\n]*$/.test(between))) {
        flush();
        out += between;
      }
      flush();
      run = { charset, bytes: Array.from(bytes) };
    }
    last = m.index + m[0].length;
  }
  flush();
  return out + text.slice(last);
}

/* Header text as held in the binary string: raw 8-bit bytes (RFC 6532) are
 * UTF-8; then encoded-words. */
function headerText(binary) {
  return decodeWords(decodeCharset(binaryToBytes(binary), "utf-8"));
}

/* Splits an entity into its header fields (unfolded, in order) and body. */
function splitEntity(s) {
  const m = /\r?\n\r?\n/.exec(s);
  const head = m ? s.slice(0, m.index) : s;
  const body = m ? s.slice(m.index + m[0].length) : "";
  const fields = [];
  for (const line of head.replace(/\r?\n(?=[ \t])/g, "").split(/\r?\n/)) {
    const colon = line.indexOf(":");
    if (colon <= 0) continue;
    fields.push({ name: line.slice(0, colon).trim(), raw: line.slice(colon + 1).trim() });
  }
  return { fields, body };
}

function field(fields, name) {
  const f = fields.find((x) => x.name.toLowerCase() === name);
  return f ? f.raw : "";
}

/* "type/subtype; a=b; c="d"" -> {value: "type/subtype", params: {a, c}}. */
export function parseParams(raw) {
  const out = { value: "", params: {} };
  const re = /\s*([^;=\s]+)\s*=\s*("((?:[^"\\]|\\.)*)"|[^;]*)\s*;?/g;
  const semi = raw.indexOf(";");
  out.value = (semi < 0 ? raw : raw.slice(0, semi)).trim().toLowerCase();
  if (semi < 0) return out;
  const rest = raw.slice(semi + 1);
  let m;
  while ((m = re.exec(rest)) !== null) {
    if (m[0] === "") break;
    const key = m[1].toLowerCase();
    const value = m[3] !== undefined ? m[3].replace(/\\(.)/g, "$1") : m[2].trim();
    out.params[key] = value;
  }
  // RFC 2231 charset'lang'value, for file names that use it
  for (const k of Object.keys(out.params)) {
    if (k.endsWith("*") && !(k.slice(0, -1) in out.params)) {
      const m2 = /^([^']*)'[^']*'(.*)$/.exec(out.params[k]);
      if (m2) {
        const bytes = binaryToBytes(m2[2].replace(/%([0-9A-Fa-f]{2})/g, (_, h) =>
          String.fromCharCode(parseInt(h, 16))));
        out.params[k.slice(0, -1)] = decodeCharset(bytes, m2[1] || "utf-8");
      }
    }
  }
  return out;
}

/* ---- MIME structure ---------------------------------------------------------- */

function splitMultipart(body, boundary) {
  const open = "--" + boundary;
  const parts = [];
  let cur = null;
  for (const line of body.split(/\r?\n/)) {
    if (line.startsWith(open)) {
      const rest = line.slice(open.length);
      if (rest.startsWith("--")) {
        if (cur) parts.push(cur);
        return parts.map((ls) => ls.join("\r\n")); // the epilogue is not read
      }
      if (/^[ \t]*$/.test(rest)) {
        if (cur) parts.push(cur);
        cur = [];
        continue;
      }
    }
    if (cur) cur.push(line); // before the first delimiter: the preamble
  }
  if (cur) parts.push(cur); // no closing delimiter: keep what came
  return parts.map((ls) => ls.join("\r\n"));
}

/* A parsed entity: {type, params, headers (decoded), fields, bytes, text,
 * parts[]}; text is set for text/* leaves. */
export function parseEntity(binary, depth = 0, defaultType = "text/plain") {
  const { fields, body } = splitEntity(binary);
  const ct = parseParams(field(fields, "content-type") || defaultType);
  const cte = field(fields, "content-transfer-encoding").toLowerCase();
  const entity = {
    type: ct.value || "text/plain",
    params: ct.params,
    fields,
    headers: fields.map((f) => ({ name: f.name, value: headerText(f.raw) })),
    id: field(fields, "content-id").replace(/^<|>$/g, ""),
    parts: [],
  };
  if (entity.type.startsWith("multipart/") && ct.params.boundary && depth < MAX_DEPTH) {
    const childDefault = entity.type === "multipart/digest" ? "message/rfc822" : "text/plain";
    entity.parts = splitMultipart(body, ct.params.boundary).map((p) =>
      parseEntity(p, depth + 1, childDefault));
    return entity;
  }
  if (cte === "base64") {
    entity.bytes = decodeBase64(body);
  } else if (cte === "quoted-printable") {
    entity.bytes = decodeQP(body);
  } else {
    entity.bytes = binaryToBytes(body);
  }
  if (entity.type === "message/rfc822" && depth < MAX_DEPTH) {
    entity.parts = [parseEntity(bytesToBinary(entity.bytes), depth + 1)];
  } else if (entity.type.startsWith("text/")) {
    entity.text = decodeCharset(entity.bytes, ct.params.charset);
  }
  return entity;
}

export function parseMessage(bytes) {
  return parseEntity(bytesToBinary(bytes));
}

function isAttachment(e) {
  return /^\s*attachment/i.test(field(e.fields, "content-disposition"));
}

/* The best body of a given type: in multipart/alternative the last
 * (richest) alternative that has one, elsewhere the first. */
function findBody(e, type) {
  if (e.parts.length) {
    const order = e.type === "multipart/alternative" ? [...e.parts].reverse() : e.parts;
    for (const p of order) {
      const found = findBody(p, type);
      if (found) return found;
    }
    return null;
  }
  return e.type === type && e.text !== undefined && !isAttachment(e) ? e : null;
}

function collectCids(e, map = new Map()) {
  if (e.id && e.bytes && !e.type.startsWith("multipart/")) {
    map.set(e.id, `data:${e.type};base64,${btoa(bytesToBinary(e.bytes))}`);
  }
  for (const p of e.parts) collectCids(p, map);
  return map;
}

const URL_RE = /\bhttps?:\/\/[^\s<>"']+[^\s<>"'.,;:!?)\]]/g;

function linkify(text) {
  let out = "";
  let last = 0;
  for (const m of text.matchAll(URL_RE)) {
    out += esc(text.slice(last, m.index)) + `<a href="${esc(m[0])}">${esc(m[0])}</a>`;
    last = m.index + m[0].length;
  }
  return out + esc(text.slice(last));
}

/* What the iframe shows: the HTML part (links to a new tab, cid: pictures
 * inlined), else the plain text escaped. Sandboxed without scripts. */
export function bodyDocument(msg) {
  const base = `<base target="_blank">`;
  const html = findBody(msg, "text/html");
  if (html) {
    let doc = html.text;
    const cids = collectCids(msg);
    if (cids.size) {
      doc = doc.replace(/(["'(])cid:([^"')\s]+)/gi, (m, q, id) => {
        const url = cids.get(decodeURIComponent(id));
        return url ? q + url : m;
      });
    }
    // a <base> of the mail's own would lose the new-tab rule: ours goes last
    doc = doc.replace(/<base\b[^>]*>/gi, "");
    return /<head\b[^>]*>/i.test(doc)
      ? doc.replace(/<head\b[^>]*>/i, (h) => h + base)
      : base + doc;
  }
  const plain = findBody(msg, "text/plain");
  const text = plain ? plain.text : "(this message has no text part)";
  return `<!doctype html><meta charset="utf-8">${base}<style>body{margin:16px;` +
    `font:14px/1.55 system-ui,sans-serif;color:#1d2320}pre{white-space:pre-wrap;` +
    `word-break:break-word;font:inherit}</style><pre>${linkify(text)}</pre>`;
}

/* ---- the page ------------------------------------------------------------------ */

let selected = null;
let lastList = "";
let lastReports = "";
let config = null;

const fmtTime = (iso) => {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso || "") : d.toLocaleString();
};

const listText = (v) => (Array.isArray(v) ? v.join(", ") : String(v ?? ""));

function rowHTML(m) {
  const sel = m.id === selected ? " selected" : "";
  return `<li class="mail-row${sel}" data-id="${esc(m.id)}" tabindex="0" role="button"` +
    ` aria-pressed="${m.id === selected}">
  <span class="mail-subject">${esc(decodeWords(String(m.subject ?? "(no subject)")))}</span>
  <span class="mail-to">To: ${esc(decodeWords(listText(m.to)))}</span>
  <span class="mail-meta"><span class="mail-from">${esc(decodeWords(String(m.from ?? "")))}</span>
  <time datetime="${esc(m.received)}">${esc(fmtTime(m.received || m.date))}</time></span>
</li>`;
}

async function refreshList() {
  const { messages } = await getJSON("api/mailbox");
  const key = JSON.stringify(messages);
  if (key === lastList) return;
  lastList = key;
  document.getElementById("mail-rows").innerHTML = messages.map(rowHTML).join("");
  document.getElementById("mail-empty").hidden = messages.length > 0;
  document.getElementById("mail-count").textContent = messages.length ? `(${messages.length})` : "";
}

const num = (v) => (typeof v === "number" ? v : "—");

function reportHTML(j) {
  const r = j.report || {};
  const m = r.messages || {};
  // without the send log's figures, the email step's passes are the sends
  const emailStep = (r.steps || []).find((s) => s.type === "email");
  const sent = m.sent ?? (emailStep ? emailStep.passed : undefined);
  const metrics = [
    ["entered", "Entered", num(r.entries && r.entries.entered)],
    ["running", "Running", num(r.running)],
    ["sent", "Emails sent", num(sent)],
    ["opened", "Opens", num(m.opened)],
    ["clicked", "Clicks", num(m.clicked)],
    ["converted", "Conversions", num(m.converted)],
    ["revenue", "Revenue", typeof m.revenue === "number" ? money(m.revenue) : "—"],
  ];
  return `<article class="report-card" data-journey="${esc(j.id)}">
  <h3>${esc(j.name || j.id)} <span class="status">${esc(r.status || "")}</span></h3>
  <dl>${metrics.map(([k, label, v]) =>
    `<div data-metric="${k}"><dt>${esc(label)}</dt><dd>${esc(v)}</dd></div>`).join("")}</dl>
</article>`;
}

async function refreshReports() {
  const { journeys } = await getJSON("api/journeys");
  const key = JSON.stringify(journeys);
  if (key === lastReports) return;
  lastReports = key;
  document.getElementById("report-cards").innerHTML = journeys.length
    ? journeys.map(reportHTML).join("")
    : `<p class="empty">No journeys.</p>`;
}

function showClock(now) {
  document.getElementById("clock-kind").textContent = config.clock === "virtual" ? "virtual" : "real";
  const t = document.getElementById("clock-now");
  t.dateTime = now;
  t.textContent = fmtTime(now);
}

async function refreshClock() {
  config = await getJSON("api/config");
  showClock(config.now);
  document.getElementById("advance").hidden = config.clock !== "virtual";
}

function headerRows(msg) {
  const want = ["From", "To", "Cc", "Subject", "Date"];
  return want
    .map((name) => msg.headers.find((h) => h.name.toLowerCase() === name.toLowerCase()))
    .filter(Boolean)
    .map((h) => `<div data-header="${esc(h.name.toLowerCase())}"><dt>${esc(h.name)}</dt>` +
      `<dd>${esc(h.value)}</dd></div>`)
    .join("");
}

async function openMessage(id) {
  selected = id;
  for (const row of document.querySelectorAll(".mail-row")) {
    const on = row.dataset.id === id;
    row.classList.toggle("selected", on);
    row.setAttribute("aria-pressed", String(on));
  }
  const r = await fetch("api/mailbox/" + encodeURIComponent(id));
  if (!r.ok) throw new Error(`message ${id}: ${r.status}`);
  const msg = parseMessage(new Uint8Array(await r.arrayBuffer()));
  if (selected !== id) return; // another one was clicked meanwhile
  document.getElementById("mail-headers").innerHTML = headerRows(msg);
  const all = msg.headers.map((h) => `${esc(h.name)}: ${esc(h.value)}`).join("\n");
  document.getElementById("mail-headers").insertAdjacentHTML("beforeend",
    `<details class="all-headers"><summary>All headers</summary><pre>${all}</pre></details>`);
  document.getElementById("mail-raw").href = "api/mailbox/" + encodeURIComponent(id);
  document.getElementById("mail-body").srcdoc = bodyDocument(msg);
  document.getElementById("mail-none").hidden = true;
  document.getElementById("mail-open").hidden = false;
}

function showPollError(e) {
  let box = document.getElementById("poll-error");
  if (!box) {
    box = document.createElement("p");
    box.id = "poll-error";
    box.className = "page-error";
    document.querySelector("main").prepend(box);
  }
  box.hidden = !e;
  box.textContent = e ? "Could not refresh: " + (e.message || e) + " (retrying)" : "";
}

async function poll() {
  try {
    await Promise.all([refreshList(), refreshReports(), refreshClock()]);
    showPollError(null);
  } catch (e) {
    showPollError(e);
  }
  setTimeout(poll, POLL_MS);
}

function wire() {
  const rows = document.getElementById("mail-rows");
  const pick = (ev) => {
    const row = ev.target.closest(".mail-row");
    if (row) openMessage(row.dataset.id).catch(fail);
  };
  rows.addEventListener("click", pick);
  rows.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" || ev.key === " ") {
      ev.preventDefault();
      pick(ev);
    }
  });
  const advance = document.getElementById("advance");
  advance.addEventListener("click", async () => {
    advance.disabled = true;
    document.body.dataset.ready = "0";
    try {
      const r = await getJSON("api/clock:advance", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ seconds: SKIP_SECONDS }),
      });
      if (r && r.now) showClock(r.now);
      await Promise.all([refreshList(), refreshReports()]);
      done();
    } catch (e) {
      fail(e);
    } finally {
      advance.disabled = false;
    }
  });
}

async function main() {
  wire();
  config = await start({ alloy: false });
  showClock(config.now);
  document.getElementById("advance").hidden = config.clock !== "virtual";
  await Promise.all([refreshList(), refreshReports()]);
  setTimeout(poll, POLL_MS);
}

// imported without a page (node web/test/mime.test.mjs), only the reader is used
if (typeof document !== "undefined") {
  main().then(done, fail);
}
