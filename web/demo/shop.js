/* The demo shop's shared code: the Web SDK (alloy) bootstrap, the cart and
 * the visitor's email kept in localStorage, the events each action sends,
 * and product cards and recommendation shelves.
 *
 * Every page is an ES module that imports this one and calls start(): it
 * fills the header, loads /demo/api/config and configures alloy with it.
 * Pages report the end of their work with done() (body data-ready="1")
 * or fail() (a visible message, data-error, and data-ready too), which is
 * what the end-to-end tests wait for. */

const CART_KEY = "tandem-demo.cart";
const EMAIL_KEY = "tandem-demo.email";
const CONSENT_KEY = "tandem-demo.consent";
const CURRENCY = "EUR";

/* ---- small helpers ------------------------------------------------------ */

const ESCAPES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

/* Text made safe for HTML text and quoted attribute values. */
export function esc(value) {
  return String(value ?? "").replace(/[&<>"']/g, (c) => ESCAPES[c]);
}

export function money(value, currency = CURRENCY) {
  const n = Number(value);
  if (!Number.isFinite(n)) return "";
  try {
    return new Intl.NumberFormat("en-IE", { style: "currency", currency }).format(n);
  } catch {
    return n.toFixed(2) + " " + currency; // an unknown currency code
  }
}

const round2 = (n) => Math.round(n * 100) / 100;

export async function getJSON(url, options) {
  const r = await fetch(url, options);
  let body = null;
  try {
    body = await r.json();
  } catch {
    // an empty or non-JSON body: reported below by status
  }
  if (!r.ok) {
    const msg = body && body.error && body.error.message;
    const err = new Error(`${url}: ${r.status}${msg ? " " + msg : ""}`);
    err.status = r.status;
    throw err;
  }
  return body;
}

export function randomId(prefix) {
  const bytes = new Uint8Array(6);
  crypto.getRandomValues(bytes);
  return prefix + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("").toUpperCase();
}

function load(key, fallback) {
  try {
    const v = JSON.parse(localStorage.getItem(key));
    return v ?? fallback;
  } catch {
    return fallback;
  }
}

function save(key, value) {
  localStorage.setItem(key, JSON.stringify(value));
}

/* ---- products ----------------------------------------------------------- */

/* One product in a single shape, whatever it came from: the demo API's
 * flat PRODUCT, the Entities API's {categories, attributes{}} or a
 * recommendation item (attributes flattened). Pictures and links always
 * point into this shop: the catalogue's absolute URLs name the public URL,
 * which need not be where this page was opened. */
export function product(raw) {
  const a = (raw && raw.attributes) || {};
  const pick = (k) => (raw[k] !== undefined ? raw[k] : a[k]);
  let category = pick("categoryId");
  if (category === undefined) {
    const cats = raw.categories;
    category = Array.isArray(cats) ? cats[0] : cats;
  }
  const id = String(raw.id ?? "");
  const value = Number(pick("value"));
  return {
    id,
    name: pick("name") || id,
    categoryId: category ? String(category).split(",")[0].trim() : "",
    value: Number.isFinite(value) ? value : null,
    currency: pick("currency") || CURRENCY,
    message: pick("message") || "",
    inventory: pick("inventory"),
    picture: "img/" + encodeURIComponent(id) + ".png",
    link: "product.html?id=" + encodeURIComponent(id),
  };
}

export function cardHTML(raw) {
  const p = product(raw);
  return `<article class="product-card" data-id="${esc(p.id)}">
  <a data-test="product-link" href="${esc(p.link)}">
    <img src="${esc(p.picture)}" alt="" loading="lazy" width="240" height="240">
    <span class="card-name">${esc(p.name)}</span>
  </a>
  <span class="card-meta"><span class="card-category">${esc(p.categoryId)}</span>
  <span class="card-price">${esc(p.value === null ? "" : money(p.value, p.currency))}</span></span>
</article>`;
}

/* An XDM productListItems[] entry: priceTotal is the line's total. */
export function xdmLine(p, quantity) {
  const line = {
    SKU: p.id,
    name: p.name,
    quantity,
    priceTotal: round2((p.value || 0) * quantity),
    currencyCode: p.currency || CURRENCY,
  };
  if (p.categoryId) line.productCategories = [{ categoryID: p.categoryId }];
  return line;
}

/* ---- page state ------------------------------------------------------- */

export function done() {
  document.body.dataset.ready = "1";
}

export function fail(err) {
  const text = String((err && err.message) || err);
  console.error("demo shop:", err);
  let box = document.getElementById("page-error");
  if (!box) {
    box = document.createElement("div");
    box.id = "page-error";
    box.className = "page-error";
    box.setAttribute("role", "alert");
    const main = document.querySelector("main") || document.body;
    main.prepend(box);
  }
  box.textContent = "Something went wrong: " + text;
  for (const p of document.querySelectorAll(".shelf-items .empty.loading")) {
    p.textContent = "Not available.";
  }
  document.body.dataset.error = text;
  document.body.dataset.ready = "1";
}

/* Marks the page busy while an action's events are on their way, so a
 * test (or a person) does not leave before they are stored. */
export async function busy(work) {
  document.body.dataset.ready = "0";
  try {
    return await work();
  } finally {
    document.body.dataset.ready = "1";
  }
}

/* ---- the Web SDK -------------------------------------------------------- */

/* alloy's loading snippet: window.alloy queues [resolve, reject, args] in
 * .q until alloy.js arrives, finds its name in __alloyNS and drains the
 * queue. It must run before alloy.js does, so alloy.js is added here and
 * not by the page. */
function installAlloy() {
  const w = window;
  if (w.alloy) return;
  w.__alloyNS = w.__alloyNS || [];
  w.__alloyNS.push("alloy");
  w.alloy = function () {
    const args = arguments;
    return new Promise((resolve, reject) => {
      w.alloy.q.push([resolve, reject, args]);
    });
  };
  w.alloy.q = [];
  const s = document.createElement("script");
  s.src = "alloy.js";
  s.async = true;
  s.onerror = () => fail(new Error("the Web SDK (alloy.js) did not load: run 'npm ci' in web/"));
  document.head.appendChild(s);
}

/* alloy takes a bare host name as its edgeDomain (a port fails its
 * configuration check), while the demo's edge is https://localhost:8443:
 * alloy is given the host, and its calls to https://<host>/ee/ are sent on
 * to the port. Set up before alloy.js loads, since alloy keeps its own
 * references to fetch and sendBeacon. A plain host name is used as it is. */
function edgeRoute(edge) {
  const m = /^([^:/]+):([0-9]+)$/.exec(edge || "");
  if (!m) return edge;
  const from = `https://${m[1]}/ee/`;
  const to = `https://${m[1]}:${m[2]}/ee/`;
  const fix = (url) => (typeof url === "string" && url.startsWith(from) ? to + url.slice(from.length) : url);
  const fetch0 = window.fetch.bind(window);
  window.fetch = (input, init) => fetch0(fix(input), init);
  if (typeof navigator.sendBeacon === "function") {
    const beacon = navigator.sendBeacon.bind(navigator);
    navigator.sendBeacon = (url, data) => beacon(fix(url), data);
  }
  return m[1];
}

let config = null;
let configured = null; // settles once alloy is configured

export async function start({ alloy = true } = {}) {
  renderHeader();
  config = await getJSON("api/config");
  if (alloy) {
    const edgeDomain = edgeRoute(config.edgeDomain);
    installAlloy();
    configured = window.alloy("configure", {
      datastreamId: config.datastreamId,
      orgId: config.orgId,
      edgeDomain,
      edgeBasePath: "ee",
      // nothing may leave for Adobe's third-party id domain
      thirdPartyCookiesEnabled: false,
      clickCollectionEnabled: false,
      idMigrationEnabled: false,
    });
    await configured;
  }
  return config;
}

/* An alloy command, held until configure has been sent: a click before the
 * page has loaded its configuration must not reach alloy first. */
async function command(name, options) {
  if (!configured) throw new Error("the shop is still loading; try again in a moment");
  await configured;
  return window.alloy(name, options);
}

function identityMap() {
  const email = getEmail();
  if (!email) return undefined;
  return { Email: [{ id: email, authenticatedState: "authenticated", primary: false }] };
}

/* sendEvent with the visitor's email (when known) and the decision scopes
 * asked for; resolves to alloy's result (result.propositions). */
export function sendEvent(xdm, scopes) {
  const ids = identityMap();
  const full = ids ? { ...xdm, identityMap: ids } : xdm;
  const options = { xdm: full };
  if (scopes && scopes.length) {
    options.personalization = { decisionScopes: scopes };
  }
  return command("sendEvent", options);
}

export function pageView(name, scopes) {
  return sendEvent(
    {
      eventType: "web.webpagedetails.pageViews",
      web: { webPageDetails: { name, URL: location.href, pageViews: { value: 1 } } },
    },
    scopes,
  );
}

export function productView(p, scopes) {
  return sendEvent(
    {
      eventType: "commerce.productViews",
      commerce: { productViews: { value: 1 } },
      productListItems: [xdmLine(p, 1)],
    },
    scopes,
  );
}

/* ---- identity and consent ----------------------------------------------- */

export function getEmail() {
  return localStorage.getItem(EMAIL_KEY) || "";
}

const EMAIL_RE = /^[^\s@<>()",;]+@[^\s@<>()",;]+\.[^\s@<>()",;]+$/;

async function identify(email, consent) {
  localStorage.setItem(EMAIL_KEY, email);
  localStorage.setItem(CONSENT_KEY, consent ? "y" : "n");
  /* The consent goes first, carrying the address: it links this browser to
   * it and records the choice in one call, so the profile never exists
   * without the consent given with it. Then the identify event. */
  await command("setConsent", {
    identityMap: identityMap(),
    consent: [
      {
        standard: "Adobe",
        version: "2.0",
        value: { collect: { val: "y" }, marketing: { email: { val: consent ? "y" : "n" } } },
      },
    ],
  });
  await sendEvent({ eventType: "identify" });
}

/* ---- the cart ------------------------------------------------------------- */

export function getCart() {
  const c = load(CART_KEY, null);
  if (c && typeof c.id === "string" && Array.isArray(c.lines)) return c;
  const fresh = { id: randomId("CART-"), lines: [] };
  save(CART_KEY, fresh);
  return fresh;
}

export function saveCart(cart) {
  save(CART_KEY, cart);
  updateCartCount();
}

export function cartCount(cart = getCart()) {
  return cart.lines.reduce((n, l) => n + l.quantity, 0);
}

export function cartTotal(cart = getCart()) {
  return round2(cart.lines.reduce((t, l) => t + (l.value || 0) * l.quantity, 0));
}

/* A new, empty cart with a new id (after a checkout). */
export function newCart() {
  const c = { id: randomId("CART-"), lines: [] };
  saveCart(c);
  return c;
}

export async function addToCart(raw, quantity) {
  const p = product(raw);
  const cart = getCart();
  await sendEvent({
    eventType: "commerce.productListAdds",
    commerce: { productListAdds: { value: 1 }, cart: { cartID: cart.id } },
    productListItems: [xdmLine(p, quantity)],
  });
  const line = cart.lines.find((l) => l.id === p.id);
  if (line) {
    line.quantity += quantity;
  } else {
    cart.lines.push({
      id: p.id,
      name: p.name,
      value: p.value,
      currency: p.currency,
      categoryId: p.categoryId,
      quantity,
    });
  }
  saveCart(cart);
}

/* Lowers a line by quantity (the whole line when quantity covers it). */
export async function removeFromCart(id, quantity) {
  const cart = getCart();
  const line = cart.lines.find((l) => l.id === id);
  if (!line) return;
  const n = Math.min(quantity ?? line.quantity, line.quantity);
  await sendEvent({
    eventType: "commerce.productListRemovals",
    commerce: { productListRemovals: { value: 1 }, cart: { cartID: cart.id } },
    productListItems: [xdmLine(line, n)],
  });
  line.quantity -= n;
  cart.lines = cart.lines.filter((l) => l.quantity > 0);
  saveCart(cart);
}

export async function checkout() {
  const cart = getCart();
  if (!cart.lines.length) throw new Error("the cart is empty");
  const order = {
    purchaseID: randomId("ORD-"),
    priceTotal: cartTotal(cart),
    currencyCode: CURRENCY,
  };
  await sendEvent({
    eventType: "commerce.purchases",
    commerce: { purchases: { value: 1 }, order, cart: { cartID: cart.id } },
    productListItems: cart.lines.map((l) => xdmLine(l, l.quantity)),
  });
  newCart();
  return order;
}

/* ---- header ------------------------------------------------------------- */

export function updateCartCount() {
  const n = cartCount();
  for (const el of document.querySelectorAll("[data-test=cart-count]")) {
    el.textContent = String(n);
  }
  const link = document.querySelector("a[data-test=cart-link]");
  if (link) link.setAttribute("aria-label", `Cart, ${n} item${n === 1 ? "" : "s"}`);
}

function showIdentity() {
  const who = document.getElementById("who");
  const email = getEmail();
  if (who) who.textContent = email ? "Signed in as " + email : "";
}

/* The header's markup is in each page (so its selectors exist before any
 * script runs); this wires it. */
/* The header of the shop's pages (the mailbox has its own). */
const HEADER = `
  <a class="brand" href="./">Tandem <span>shop</span></a>
  <form id="identify-form" class="identify" autocomplete="on">
    <label class="sr-only" for="email">Your email</label>
    <input id="email" name="email" type="email" data-test="email" placeholder="Your email" autocomplete="email" required>
    <label class="consent"><input type="checkbox" data-test="consent" checked> Email me offers</label>
    <button type="submit" data-test="identify">Identify</button>
    <span id="who" class="who" aria-live="polite"></span>
  </form>
  <nav class="site-nav" aria-label="Shop">
    <a data-test="mailbox-link" href="mailbox">Mailbox</a>
    <a data-test="cart-link" href="cart.html" class="cart-link">Cart <span class="badge" data-test="cart-count">0</span></a>
  </nav>
`;

function renderHeader() {
  const slot = document.querySelector("header[data-shop-header]");
  if (slot) slot.innerHTML = HEADER;
  updateCartCount();
  const form = document.getElementById("identify-form");
  if (!form) return;
  const input = form.querySelector("input[data-test=email]");
  const consent = form.querySelector("input[data-test=consent]");
  const button = form.querySelector("button[data-test=identify]");
  input.value = getEmail();
  if (consent) consent.checked = localStorage.getItem(CONSENT_KEY) !== "n";
  showIdentity();
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const email = input.value.trim();
    if (!EMAIL_RE.test(email)) {
      input.setCustomValidity("Enter an email address such as jane@example.com");
      input.reportValidity();
      return;
    }
    input.setCustomValidity("");
    button.disabled = true;
    try {
      await busy(() => identify(email, consent ? consent.checked : true));
      showIdentity();
    } catch (e) {
      fail(e);
    } finally {
      button.disabled = false;
    }
  });
  input.addEventListener("input", () => input.setCustomValidity(""));
}

/* ---- recommendation shelves ----------------------------------------------- */

/* The items of the proposition for scope: its first item's content is the
 * recommendation reply, {"items": [...]}. */
export function shelfItems(result, scope) {
  const props = (result && result.propositions) || [];
  for (const prop of props) {
    if (prop.scope !== scope) continue;
    for (const item of prop.items || []) {
      let content = item.data && item.data.content;
      if (typeof content === "string") {
        try {
          content = JSON.parse(content);
        } catch {
          content = null;
        }
      }
      if (content && Array.isArray(content.items)) return content.items;
    }
  }
  return [];
}

/* Draws section[data-test=shelf][data-scope=scope] from a sendEvent result. */
export function drawShelf(result, scope, exclude = []) {
  const section = document.querySelector(`section[data-test=shelf][data-scope="${scope}"]`);
  if (!section) return;
  const items = shelfItems(result, scope).filter((i) => !exclude.includes(String(i.id)));
  const row = section.querySelector(".shelf-items");
  section.dataset.count = String(items.length);
  if (items.length) {
    row.innerHTML = items.map(cardHTML).join("");
  } else {
    row.innerHTML = `<p class="empty">Nothing to recommend yet: browse a few products.</p>`;
  }
}
