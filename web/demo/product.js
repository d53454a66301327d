/* One product (?id=): picture, name, price, description, add to cart, and
 * two shelves answered with the product view's own request, so the
 * "viewed also viewed" one is keyed by this product. */
import {
  start, getJSON, product, money, pageView, productView, drawShelf, addToCart, busy, done, fail,
} from "./shop.js";

const SCOPES = ["viewed-also-viewed", "recommended-for-you"];

function show(p) {
  document.title = p.name + " — Tandem demo shop";
  const pic = document.getElementById("product-picture");
  pic.src = p.picture;
  pic.alt = p.name;
  document.getElementById("product-name").textContent = p.name;
  document.getElementById("product-price").textContent = p.value === null ? "" : money(p.value, p.currency);
  document.getElementById("product-message").textContent = p.message;
  const stock = Number(p.inventory);
  document.getElementById("product-stock").textContent = Number.isFinite(stock) && p.inventory !== undefined
    ? (stock > 0 ? `${stock} in stock` : "Out of stock")
    : "";
  const crumb = document.getElementById("crumb-category");
  crumb.textContent = p.categoryId;
  crumb.href = "./?category=" + encodeURIComponent(p.categoryId);
  document.getElementById("product").hidden = false;
}

function wireCart(raw, p) {
  const form = document.getElementById("add-form");
  const qty = document.getElementById("quantity");
  const button = form.querySelector("button[data-test=add-to-cart]");
  const note = document.getElementById("added");
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const n = Math.floor(Number(qty.value));
    if (!(n >= 1 && n <= 99)) {
      qty.reportValidity();
      return;
    }
    button.disabled = true;
    try {
      await busy(() => addToCart(raw, n));
      note.textContent = `Added ${n} × ${p.name} to your cart.`;
    } catch (e) {
      fail(e);
    } finally {
      button.disabled = false;
    }
  });
}

async function main() {
  const id = new URLSearchParams(location.search).get("id");
  if (!id) throw new Error("no product given (product.html?id=...)");
  const [raw] = await Promise.all([
    getJSON("api/products/" + encodeURIComponent(id)).catch((e) => {
      throw e.status === 404 ? new Error(`there is no product "${id}" in the catalogue`) : e;
    }),
    start(),
  ]);
  const p = product(raw);
  show(p);
  wireCart(raw, p);
  await pageView("product:" + p.id);
  const result = await productView(p, SCOPES);
  for (const scope of SCOPES) drawShelf(result, scope, [p.id]);
}

main().then(done, fail);
