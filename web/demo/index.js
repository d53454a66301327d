/* The shop's front page: categories, a page of products (one category with
 * ?category=), and the visitor's "Recommended for you" shelf. */
import { start, getJSON, esc, cardHTML, pageView, drawShelf, done, fail } from "./shop.js";

const PAGE = 24;
const params = new URLSearchParams(location.search);
const category = params.get("category") || "";
let cursor = null;

async function categories() {
  const { categories } = await getJSON("api/categories");
  const box = document.getElementById("categories");
  box.innerHTML = categories
    .map((c) => {
      const current = c.id === category ? ' aria-current="page"' : "";
      const href = "?category=" + encodeURIComponent(c.id);
      return `<a data-test="category" href="${esc(href)}"${current}>${esc(c.id)}` +
        ` <span class="count">${esc(c.count)}</span></a>`;
    })
    .join("");
  if (!category) document.querySelector(".category-all").setAttribute("aria-current", "page");
}

async function products() {
  const q = new URLSearchParams({ limit: String(PAGE) });
  if (category) q.set("category", category);
  if (cursor) q.set("cursor", cursor);
  const page = await getJSON("api/products?" + q);
  const grid = document.getElementById("products");
  grid.insertAdjacentHTML("beforeend", page.items.map(cardHTML).join(""));
  if (!grid.children.length) {
    grid.innerHTML = `<p class="empty">No products here.</p>`;
  }
  cursor = page.next;
  document.getElementById("more").hidden = !cursor;
}

async function main() {
  document.getElementById("list-title").textContent = category || "All products";
  if (category) document.title = category + " — Tandem demo shop";
  const more = document.getElementById("more");
  more.addEventListener("click", async () => {
    more.disabled = true;
    try {
      await products();
    } catch (e) {
      fail(e);
    } finally {
      more.disabled = false;
    }
  });
  await start();
  const [, , seen] = await Promise.all([
    categories(),
    products(),
    pageView(category ? "category:" + category : "home", ["recommended-for-you"]),
  ]);
  drawShelf(seen, "recommended-for-you");
}

main().then(done, fail);
