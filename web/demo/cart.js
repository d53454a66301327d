/* The cart kept in localStorage: lines with quantities, removal, the total,
 * checkout (a commerce.purchases event, then a new empty cart), and the
 * "bought also bought" shelf keyed by the cart. */
import {
  start, esc, money, product, getCart, cartTotal, addToCart, removeFromCart, checkout,
  pageView, drawShelf, busy, done, fail,
} from "./shop.js";

function lineHTML(l) {
  const p = product(l);
  return `<div class="cart-line" data-id="${esc(p.id)}">
  <a href="${esc(p.link)}" class="line-picture"><img src="${esc(p.picture)}" alt="" width="80" height="80"></a>
  <div class="line-name"><a href="${esc(p.link)}">${esc(p.name)}</a>
    <span class="muted">${esc(money(p.value, p.currency))} each</span></div>
  <label class="line-qty"><span class="sr-only">Quantity of ${esc(p.name)}</span>
    <input type="number" data-test="qty" min="1" max="99" value="${esc(l.quantity)}"></label>
  <span class="line-total">${esc(money((p.value || 0) * l.quantity, p.currency))}</span>
  <button type="button" class="link-button" data-test="remove">Remove</button>
</div>`;
}

function render() {
  const cart = getCart();
  document.getElementById("cart-lines").innerHTML = cart.lines.map(lineHTML).join("");
  document.getElementById("cart-total").textContent = money(cartTotal(cart));
  document.getElementById("cart-empty").hidden = cart.lines.length > 0;
  document.getElementById("cart-footer").hidden = cart.lines.length === 0;
  document.getElementById("checkout").disabled = cart.lines.length === 0;
}

/* Runs a cart change, one at a time, and redraws. */
let working = false;
async function change(work) {
  if (working) return;
  working = true;
  try {
    await busy(work);
  } catch (e) {
    fail(e);
  } finally {
    working = false;
    render();
  }
}

function wire() {
  const lines = document.getElementById("cart-lines");
  lines.addEventListener("click", (ev) => {
    const button = ev.target.closest("button[data-test=remove]");
    if (!button) return;
    const id = button.closest(".cart-line").dataset.id;
    change(() => removeFromCart(id));
  });
  lines.addEventListener("change", (ev) => {
    const input = ev.target.closest("input[data-test=qty]");
    if (!input) return;
    const id = input.closest(".cart-line").dataset.id;
    const line = getCart().lines.find((l) => l.id === id);
    const want = Math.floor(Number(input.value));
    if (!line || !(want >= 1 && want <= 99)) {
      render(); // back to what the cart holds
      return;
    }
    const delta = want - line.quantity;
    if (delta > 0) change(() => addToCart(line, delta));
    else if (delta < 0) change(() => removeFromCart(id, -delta));
  });
  document.getElementById("checkout").addEventListener("click", () =>
    change(async () => {
      const total = cartTotal();
      const order = await checkout();
      const box = document.getElementById("confirmation");
      box.innerHTML = `<strong>Thank you!</strong> Your order <span data-test="order-id">${esc(order.purchaseID)}</span>` +
        ` of ${esc(money(total))} is confirmed.`;
      box.hidden = false;
    }));
}

async function main() {
  render();
  wire();
  await start();
  const result = await pageView("cart", ["bought-also-bought"]);
  drawShelf(result, "bought-also-bought", getCart().lines.map((l) => l.id));
}

main().then(done, fail);
