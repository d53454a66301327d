/* A tiny shop that reports what a visitor does through the Adobe Web SDK,
 * the way a retailer's site would. The query string says which visit this
 * is, who shops, and where the Edge is:
 * ?visit=1|2&email=ADDRESS&edge=HOST&datastream=ID&org=ORG.
 * The outcome goes to window.shopResult for the test to read. */
const params = new URLSearchParams(location.search);
const visit = params.get("visit");

const COAT = { SKU: "COAT-1", name: "Winter coat", unit: 59.9 };
const SWEAT = { SKU: "SWEAT-2", name: "Sweatshirt", unit: 19.5 };

const line = (p, quantity) => ({
  SKU: p.SKU,
  name: p.name,
  quantity,
  priceTotal: Math.round(p.unit * quantity * 100) / 100,
  currencyCode: "EUR",
});

const log = (msg) => {
  document.getElementById("log").textContent += msg + "\n";
};

const send = (xdm, extra = {}) => alloy("sendEvent", { xdm, ...extra });

const pageView = (name) =>
  send({
    eventType: "web.webpagedetails.pageViews",
    web: { webPageDetails: { name, URL: location.href, pageViews: { value: 1 } } },
  });

const productView = (p) =>
  send({
    eventType: "commerce.productViews",
    commerce: { productViews: { value: 1 } },
    productListItems: [line(p, 1)],
  });

const cartAdd = (p, quantity) =>
  send({
    eventType: "commerce.productListAdds",
    commerce: { productListAdds: { value: 1 }, cart: { cartID: "CART-7" } },
    productListItems: [line(p, quantity)],
  });

const ecid = async () => {
  const r = await alloy("getIdentity", { namespaces: ["ECID"] });
  return r.identity.ECID;
};

async function firstVisit() {
  await pageView("home");
  await productView(COAT);
  await cartAdd(COAT, 2);
  await productView(SWEAT);
  const id = await ecid();
  /* leaving the page: alloy sends this one with sendBeacon to /collect */
  await send(
    { eventType: "web.webinteraction.linkClicks", web: { webInteraction: { name: "exit", type: "exit", linkClicks: { value: 1 } } } },
    { documentUnloading: true },
  );
  return id;
}

async function secondVisit() {
  await pageView("cart");
  await cartAdd(SWEAT, 1);
  await alloy("setConsent", {
    consent: [
      {
        standard: "Adobe",
        version: "2.0",
        value: { collect: { val: "y" }, marketing: { email: { val: "y" } } },
      },
    ],
  });
  await send({
    eventType: "commerce.purchases",
    commerce: {
      purchases: { value: 1 },
      order: { purchaseID: "ORD-1", priceTotal: 119.8, currencyCode: "EUR" },
    },
    productListItems: [line(COAT, 2)],
    identityMap: {
      Email: [{ id: params.get("email"), authenticatedState: "authenticated" }],
    },
  });
  return ecid();
}

(async () => {
  try {
    await alloy("configure", {
      datastreamId: params.get("datastream"),
      orgId: params.get("org"),
      edgeDomain: params.get("edge"),
      debugEnabled: true,
      /* nothing may leave for Adobe's third-party id domain in a test */
      thirdPartyCookiesEnabled: false,
      clickCollectionEnabled: false,
      idMigrationEnabled: false,
    });
    const id = visit === "1" ? await firstVisit() : await secondVisit();
    log("visit " + visit + " done, ECID " + id);
    window.shopResult = { ok: true, ecid: id };
  } catch (e) {
    log("failed: " + e);
    window.shopResult = { ok: false, error: String(e && e.stack ? e.stack : e) };
  }
})();
