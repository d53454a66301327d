// The mailbox page's MIME reader on messages written the ways senders write
// them. Run: node web/test/mime.test.mjs (no browser, no server).
import assert from "node:assert/strict";
import { decodeWords, decodeQP, parseMessage, bodyDocument, parseParams } from "../demo/mailbox.js";
const enc = new TextEncoder();
// RFC 2047
assert.equal(decodeWords("=?UTF-8?Q?Votre_panier_vous_attend=2C_Ren=C3=A9e?="), "Votre panier vous attend, Renée");
assert.equal(decodeWords("=?utf-8?B?w6k=?= =?utf-8?B?w6k=?="), "éé");
// a character split over two words
assert.equal(decodeWords("=?UTF-8?B?8J+Y?= =?UTF-8?B?gA==?= ok"), "😀 ok");
assert.equal(decodeWords("Hi =?ISO-8859-1?Q?J=F6rg?= and (=?us-ascii*en?q?x?=)"), "Hi Jörg and (x)");
assert.equal(decodeWords("plain text"), "plain text");
assert.equal(decodeWords("=?UTF-8?Q?a?= b =?UTF-8?Q?c?="), "a b c");
// QP
assert.equal(new TextDecoder().decode(decodeQP("caf=C3=A9 =\r\nlong line  \r\nnext=3D")), "café long line\r\nnext=");
assert.deepEqual(parseParams('multipart/alternative; boundary="a b;c"; charset=utf-8'),
  { value: "multipart/alternative", params: { boundary: "a b;c", charset: "utf-8" } });
const html = "<html><head><title>x</title></head><body><p>Bonjour Renée</p><a href=\"https://localhost:8443/t/c/1\">Go</a><img src=\"cid:logo@x\"></body></html>";
const b64 = Buffer.from(html, "utf8").toString("base64").replace(/.{76}/g, "$&\r\n");
const msg = [
  "From: =?UTF-8?Q?Tandem_Shop?= <shop@example.com>",
  "To: =?UTF-8?B?UmVuw6ll?= <renee@example.com>",
  "Subject: =?UTF-8?Q?Votre_panier_vous_attend=2C?=",
  " =?UTF-8?Q?_Ren=C3=A9e?=",
  "MIME-Version: 1.0",
  'Content-Type: multipart/related; boundary="rel"',
  "",
  "preamble",
  "--rel",
  'Content-Type: multipart/alternative; boundary="==alt=="',
  "",
  "--==alt==",
  "Content-Type: text/plain; charset=utf-8",
  "Content-Transfer-Encoding: quoted-printable",
  "",
  "Bonjour Ren=C3=A9e, see https://localhost:8443/t/c/1.",
  "--==alt==",
  "Content-Type: text/html; charset=utf-8",
  "Content-Transfer-Encoding: base64",
  "",
  b64,
  "--==alt==--",
  "",
  "--rel",
  "Content-Type: image/png",
  "Content-ID: <logo@x>",
  "Content-Transfer-Encoding: base64",
  "",
  "iVBORw0KGgo=",
  "--rel--",
  "epilogue",
].join("\r\n");
const m = parseMessage(enc.encode(msg));
const subj = m.headers.find((h) => h.name === "Subject").value;
assert.equal(subj, "Votre panier vous attend, Renée");
assert.equal(m.headers.find((h) => h.name === "To").value, "Renée <renee@example.com>");
assert.equal(m.parts.length, 2);
assert.equal(m.parts[0].parts.length, 2);
assert.equal(m.parts[0].parts[0].text, "Bonjour Renée, see https://localhost:8443/t/c/1.");
assert.equal(m.parts[0].parts[1].text, html);
const doc = bodyDocument(m);
assert.ok(doc.includes('<head><base target="_blank"><title>'), doc);
assert.ok(doc.includes('src="data:image/png;base64,iVBORw0KGgo="'), doc);
// text only, latin-1 8bit
const plain = Buffer.concat([Buffer.from("Subject: hi\r\nContent-Type: text/plain; charset=iso-8859-1\r\n\r\n<b>J"), Buffer.from([0xf6]), Buffer.from("rg</b> http://x.test/a?b=1&c=2.\r\n")]);
const d2 = bodyDocument(parseMessage(new Uint8Array(plain)));
assert.ok(d2.includes("&lt;b&gt;Jörg&lt;/b&gt; <a href=\"http://x.test/a?b=1&amp;c=2\">http://x.test/a?b=1&amp;c=2</a>."), d2);
// no content-type at all, LF line ends
const d3 = bodyDocument(parseMessage(enc.encode("Subject: x\n\nhello\n")));
assert.ok(d3.includes("<pre>hello\n</pre>"), d3);
console.log("mime: all ok");
