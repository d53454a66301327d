#!/usr/bin/env python3
"""Generates a test product catalog for Tandem from the shared datasets.

Real data: the item ids (YOOCHOOSE click sample and Ta-Feng baskets, as
they appear in the events), how often each item was viewed or bought, and
the category *structure*: neither sample carries a category column, so items
are grouped by what real shoppers viewed (YOOCHOOSE) or bought (Ta-Feng)
together (label propagation over the co-occurrence graph), and each group
becomes a category. Generated, and marked so: category names, item names,
brands, prices, stock, images and links (example.com / example.net hosts).

  python3 scripts/gen-catalog.py [--source yoochoose|tafeng|both]
        [--format target-csv|google-xml|google-tsv|json] [--limit N]
        [--rows N] [--out FILE] [--datasets DIR]

--rows N pads the catalog to N rows with synthetic items (ids GEN-...,
categories drawn from the real groups) for benchmarks; --limit N keeps only
the N most popular real items. Deterministic: the same arguments give the
same bytes.
"""
import argparse
import hashlib
import json
import os
import sys
from collections import Counter, defaultdict

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_DATASETS = os.path.join(HERE, "..", "..", "shared", "datasets")

DEPARTMENTS = ["Home", "Garden", "Toys", "Clothing", "Electronics", "Sports", "Beauty", "Grocery"]
GROCERY = ["Fresh", "Drinks", "Snacks", "Household", "Dairy", "Bakery", "Pantry", "Frozen"]
SUBS = ["Basics", "Essentials", "Classics", "Outdoor", "Kids", "Premium", "Seasonal", "Compact",
        "Pro", "Travel", "Eco", "Party"]
ADJECTIVES = ["Cozy", "Bright", "Sturdy", "Sleek", "Classic", "Handy", "Soft", "Bold", "Smart",
              "Light", "Vivid", "Quiet", "Rugged", "Fresh", "Tiny", "Grand"]
NOUNS = {"Home": ["Lamp", "Blanket", "Mug", "Shelf", "Pillow"],
         "Garden": ["Rake", "Planter", "Hose", "Shears", "Bench"],
         "Toys": ["Puzzle", "Robot", "Kite", "Blocks", "Doll"],
         "Clothing": ["Coat", "Sweatshirt", "Scarf", "Boots", "Jeans"],
         "Electronics": ["Speaker", "Charger", "Headset", "Camera", "Router"],
         "Sports": ["Ball", "Racket", "Mat", "Bottle", "Helmet"],
         "Beauty": ["Cream", "Brush", "Mirror", "Serum", "Soap"],
         "Grocery": ["Tea", "Coffee", "Honey", "Rice", "Oil"],
         "Fresh": ["Apples", "Lettuce", "Tomatoes", "Herbs", "Berries"],
         "Drinks": ["Juice", "Soda", "Water", "Lemonade", "Tea"],
         "Snacks": ["Crackers", "Chips", "Nuts", "Cookies", "Pretzels"],
         "Household": ["Sponges", "Detergent", "Towels", "Bags", "Candles"],
         "Dairy": ["Milk", "Yogurt", "Cheese", "Butter", "Cream"],
         "Bakery": ["Bread", "Buns", "Cake", "Bagels", "Muffins"],
         "Pantry": ["Pasta", "Flour", "Beans", "Noodles", "Sauce"],
         "Frozen": ["Dumplings", "Peas", "Pizza", "Fish", "Ice cream"]}
BRANDS = ["Acme (generated)", "Northwind (generated)", "Globex (generated)", "Initech (generated)",
          "Umbrella (generated)", "Hooli (generated)", "Vandelay (generated)"]
COLORS = ["black", "white", "red", "blue", "green", "grey", "yellow"]
SIZES = ["XS", "S", "M", "L", "XL"]


def h(*parts):
    """A stable pseudo-random integer from the parts."""
    d = hashlib.sha256("|".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(d[:8], "big")


def read_yoochoose(root):
    """Sessions as lists of item ids, and view counts."""
    sessions = defaultdict(list)
    counts = Counter()
    base = os.path.join(root, "yoochoose-clicks-100k")
    for name in ("yoochoose-clicks-100k_train_full.txt", "yoochoose-clicks-100k_test.txt"):
        with open(os.path.join(base, name)) as f:
            next(f)
            for line in f:
                sid, iid, _ = line.split("\t")
                sessions[sid].append(iid)
                counts[iid] += 1
    return list(sessions.values()), counts


def read_tafeng(root):
    with open(os.path.join(root, "tafeng-baskets", "TaFeng.json")) as f:
        d = json.load(f)
    groups, counts = [], Counter()
    for part in ("train", "validate", "test"):
        for baskets in d[part].values():
            for b in baskets:
                items = [str(i) for i in b]
                groups.append(items)
                counts.update(items)
    return groups, counts


def co_groups(groups, counts, cap=80, max_group=30, min_cos=0.02):
    """Groups items that shoppers viewed or bought together: in order of
    popularity, each item joins the group of its most similar (cosine of
    co-occurrence) already grouped neighbour, unless that group is full;
    otherwise it starts a group. Groups of fewer than 3 items are pooled."""
    nbrs = defaultdict(Counter)
    for g in groups:
        g = list(dict.fromkeys(g))[:max_group]
        for a in g:
            for b in g:
                if a != b:
                    nbrs[a][b] += 1
    items = sorted(counts, key=lambda i: (-counts[i], i))
    label, size = {}, Counter()
    for i in items:
        best, best_cos = None, min_cos
        for j, w in nbrs[i].items():
            if j in label and size[label[j]] < cap:
                cos = w / (counts[i] * counts[j]) ** 0.5
                if cos > best_cos or (cos == best_cos and best is not None and j < best):
                    best, best_cos = j, cos
        label[i] = label[best] if best is not None else i
        size[label[i]] += 1
    pool = None
    for i in items:
        if size[label[i]] < 3:
            pool = pool or i
            label[i] = pool
    return label


def category_names(label, counts, prefix, departments=DEPARTMENTS):
    """Names for the groups: biggest groups first, spread over departments."""
    size = Counter(label.values())
    names = {}
    for rank, (lab, _) in enumerate(sorted(size.items(), key=lambda kv: (-kv[1], kv[0]))):
        dept = departments[rank % len(departments)]
        sub = SUBS[(rank // len(departments)) % len(SUBS)]
        n = rank // (len(departments) * len(SUBS))
        names[lab] = f"{dept}:{sub}" + (f" {n + 1}" if n else "") + prefix
    return names


def make_item(iid, category, popularity, source):
    dept = category.split(":")[0]
    noun = NOUNS.get(dept, ["Item"])[h(iid, "n") % 5]
    adj = ADJECTIVES[h(iid, "a") % len(ADJECTIVES)]
    cents = 199 + h(iid, "p") % 29800
    if h(iid, "p2") % 3 == 0:
        cents = cents // 100 * 100 + 99
    return {
        "id": iid,
        "name": f"{adj} {noun} {str(iid)[-4:]} (generated)",
        "categories": [category],
        "value": cents / 100,
        "inventory": h(iid, "i") % 60,
        "margin": round(0.05 + (h(iid, "m") % 50) / 100, 2),
        "message": "generated test item",
        "pageUrl": f"https://shop.example.com/p/{iid}",
        "thumbnailUrl": f"https://img.example.net/{iid}.jpg",
        "brand": BRANDS[h(iid, "b") % len(BRANDS)],
        "custom": {
            "color": COLORS[h(iid, "c") % len(COLORS)],
            "sizes": SIZES[: 1 + h(iid, "s") % len(SIZES)],
            "popularity": popularity,
            "source": source,
            "generated": "names prices images links",
        },
    }


def build(args):
    items = []
    sources = ["yoochoose", "tafeng"] if args.source == "both" else [args.source]
    for src in sources:
        if src == "yoochoose":
            groups, counts = read_yoochoose(args.datasets)
            depts = DEPARTMENTS
        else:
            groups, counts = read_tafeng(args.datasets)
            depts = GROCERY
        label = co_groups(groups, counts)
        names = category_names(label, counts, "", depts)
        for iid in sorted(counts, key=lambda i: (-counts[i], int(i))):
            items.append(make_item(iid, names[label[iid]], counts[iid], src))
    items.sort(key=lambda it: (-it["custom"]["popularity"], it["id"]))
    if args.limit:
        items = items[: args.limit]
    cats = sorted({c for it in items for c in it["categories"]})
    for n in range(len(items), args.rows or 0):
        iid = f"GEN-{n:07d}"
        items.append(make_item(iid, cats[h(iid, "cat") % len(cats)], 0, "synthetic"))
    return items


def csv_cell(v):
    if isinstance(v, list):
        v = json.dumps(v)
    s = "" if v is None else str(v)
    if any(c in s for c in ',"\n\r') or s != s.strip():
        s = '"' + s.replace('"', '""') + '"'
    return s


def write_csv(items, out):
    out.write("## RECSRecommendations Upload File\n")
    out.write("## RECS''## RECS'' indicates a Recommendations pre-process header. "
              "Please do not remove these lines.\n")
    out.write("## RECSGenerated by scripts/gen-catalog.py: ids and category groups from real "
              "data; names, prices, images and links are generated.\n")
    cols = ["entity.id", "entity.name", "entity.categoryId", "entity.message",
            "entity.thumbnailUrl", "entity.value", "entity.pageUrl", "entity.inventory",
            "entity.margin", "entity.brand", "entity.color", "entity.sizes", "entity.popularity",
            "entity.source", "entity.generated"]
    out.write("## RECS" + ",".join(cols) + "\n")
    for it in items:
        c = it["custom"]
        row = [it["id"], it["name"], ",".join(it["categories"]), it["message"],
               it["thumbnailUrl"], f'{it["value"]:.2f}', it["pageUrl"], it["inventory"],
               it["margin"], it["brand"], c["color"], c["sizes"], c["popularity"], c["source"],
               c["generated"]]
        out.write(",".join(csv_cell(v) for v in row) + "\n")


def xml_text(s):
    return (str(s).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;"))


def write_xml(items, out):
    out.write('<?xml version="1.0" encoding="UTF-8"?>\n'
              '<rss version="2.0" xmlns:g="http://base.google.com/ns/1.0">\n<channel>\n'
              "<title>Tandem test catalog (generated names, prices, images, links)</title>\n"
              "<link>https://shop.example.com/</link>\n"
              "<description>ids and category groups from real data</description>\n")
    for it in items:
        c = it["custom"]
        out.write("<item>\n")
        out.write(f"  <g:id>{xml_text(it['id'])}</g:id>\n")
        out.write(f"  <title>{xml_text(it['name'])}</title>\n")
        out.write(f"  <description>{xml_text(it['message'])}</description>\n")
        out.write(f"  <link>{xml_text(it['pageUrl'])}</link>\n")
        out.write(f"  <g:image_link>{xml_text(it['thumbnailUrl'])}</g:image_link>\n")
        out.write(f"  <g:price>{it['value']:.2f} EUR</g:price>\n")
        avail = "in_stock" if it["inventory"] else "out_of_stock"
        out.write(f"  <g:availability>{avail}</g:availability>\n")
        cat = it["categories"][0].replace(":", " &gt; ")
        out.write(f"  <g:product_type>{cat}</g:product_type>\n")
        out.write(f"  <g:brand>{xml_text(it['brand'])}</g:brand>\n")
        out.write(f"  <g:color>{c['color']}</g:color>\n")
        for s in c["sizes"]:
            out.write(f"  <g:size>{s}</g:size>\n")
        out.write("</item>\n")
    out.write("</channel>\n</rss>\n")


def write_tsv(items, out):
    cols = ["id", "title", "description", "link", "image_link", "price", "availability",
            "product_type", "brand", "color"]
    out.write("\t".join(cols) + "\n")
    for it in items:
        avail = "in stock" if it["inventory"] else "out of stock"
        row = [it["id"], it["name"], it["message"], it["pageUrl"], it["thumbnailUrl"],
               f'{it["value"]:.2f} EUR', avail, it["categories"][0].replace(":", " > "),
               it["brand"], it["custom"]["color"]]
        out.write("\t".join(str(v) for v in row) + "\n")


def write_json(items, out):
    ents = []
    for it in items:
        attrs = {k: it[k] for k in ("value", "inventory", "margin", "message", "pageUrl",
                                    "thumbnailUrl", "brand")}
        attrs.update(it["custom"])
        ents.append({"id": it["id"], "name": it["name"], "categories": it["categories"],
                     "attributes": attrs})
    json.dump({"entities": ents}, out, indent=1, ensure_ascii=False)
    out.write("\n")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--source", choices=["yoochoose", "tafeng", "both"], default="both")
    p.add_argument("--format", choices=["target-csv", "google-xml", "google-tsv", "json"],
                   default="target-csv")
    p.add_argument("--limit", type=int, default=0)
    p.add_argument("--rows", type=int, default=0)
    p.add_argument("--out", default="-")
    p.add_argument("--datasets", default=DEFAULT_DATASETS)
    args = p.parse_args()
    items = build(args)
    out = sys.stdout if args.out == "-" else open(args.out, "w", newline="\n")
    {"target-csv": write_csv, "google-xml": write_xml, "google-tsv": write_tsv,
     "json": write_json}[args.format](items, out)
    if out is not sys.stdout:
        out.close()
        print(f"gen-catalog: {len(items)} items -> {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
