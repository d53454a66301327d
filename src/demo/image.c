/* Product pictures for the demo catalogue, whose items have none: a PNG
 * drawn from the item id and category alone, so the same item always looks
 * the same and a category shares a colour. Written by hand (PNG, RFC 2083:
 * signature, IHDR, one IDAT, IEND); zlib does the deflate and the CRC-32.
 * Not an image library: 8-bit RGB, no interlace, filter type 0 on every row. */
#include "demo/demo.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "util/banned.h"

#define SIDE_MIN 16
#define SIDE_MAX 1024
#define SUBPIX   2 /* 2x2 samples a pixel: smooth edges at little cost */

typedef struct rgb {
    double r, g, b;
} rgb_t;

/* Muted backgrounds that all take a light panel and a darker shape well. */
static const rgb_t palette[] = {
    { 0x5b, 0x8d, 0xb8 }, /* slate blue */
    { 0xd9, 0x8b, 0x6a }, /* terracotta */
    { 0x6f, 0xa8, 0x8c }, /* sage */
    { 0xb0, 0x7c, 0xc6 }, /* lavender */
    { 0xe0, 0xb0, 0x4a }, /* mustard */
    { 0x5e, 0xa9, 0xa8 }, /* teal */
    { 0xc9, 0x6b, 0x86 }, /* rose */
    { 0x8a, 0x92, 0x6e }, /* olive */
};
#define N_COLOURS ((uint32_t)TD_ARRAY_LEN(palette))

enum { SHAPE_CIRCLE, SHAPE_DIAMOND, SHAPE_STRIPES, SHAPE_SQUARE, N_SHAPES };

typedef struct scene {
    rgb_t bg, panel, shape;
    double w, h;
    double px0, py0, px1, py1, pr; /* the panel and its corner radius */
    double cx, cy, size;           /* the shape's centre and half-size */
    int kind;
} scene_t;

/* FNV-1a: small, stable across platforms, enough to spread short ids. */
static uint32_t hash_str(const char *s)
{
    uint32_t h = 2166136261u;

    for (; s && *s; s++) {
        h ^= (unsigned char)*s;
        h *= 16777619u;
    }
    /* a final mix so ids that differ in the last character still differ in
     * every bit used below */
    h ^= h >> 15;
    h *= 0x2c1b3c6du;
    h ^= h >> 12;
    return h;
}

static rgb_t mix(rgb_t a, rgb_t b, double t)
{
    return (rgb_t){ a.r + (b.r - a.r) * t, a.g + (b.g - a.g) * t, a.b + (b.b - a.b) * t };
}

static double clampd(double v, double lo, double hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

static void plan_scene(const char *item_id, const char *category, int w, int h, scene_t *s)
{
    static const rgb_t white = { 255, 255, 255 }, black = { 0, 0, 0 };
    uint32_t hc = hash_str(category), hi = hash_str(item_id);
    double side = w < h ? w : h;
    double inset = side * 0.08;

    s->w = w;
    s->h = h;
    s->bg = palette[hc % N_COLOURS];
    s->panel = mix(s->bg, white, 0.72);
    /* the shape takes another palette colour, darkened so it stands out on
     * the panel; the item decides which, never the background's own */
    s->shape =
        mix(palette[(hc % N_COLOURS + 1 + (hi >> 8) % (N_COLOURS - 1)) % N_COLOURS], black, 0.18);
    s->px0 = inset;
    s->py0 = inset;
    s->px1 = w - inset;
    s->py1 = h - inset;
    s->pr = side * 0.10;
    s->kind = (int)(hi % N_SHAPES);
    s->size = side * (0.20 + 0.08 * (double)((hi >> 4) % 4) / 3.0);
    /* somewhere on the panel, keeping the whole shape on it (a diamond
     * reaches 1.25 half-sizes from its centre) */
    double margin = inset + s->size * 1.25 + side * 0.04;
    double fx = (double)((hi >> 12) % 1000) / 999.0, fy = (double)((hi >> 22) % 1000) / 999.0;
    s->cx = margin + fx * clampd(w - 2 * margin, 0, w);
    s->cy = margin + fy * clampd(h - 2 * margin, 0, h);
}

static int in_rounded_rect(const scene_t *s, double x, double y)
{
    if (x < s->px0 || x > s->px1 || y < s->py0 || y > s->py1) {
        return 0;
    }
    double qx = x < s->px0 + s->pr ? s->px0 + s->pr : x > s->px1 - s->pr ? s->px1 - s->pr : x;
    double qy = y < s->py0 + s->pr ? s->py0 + s->pr : y > s->py1 - s->pr ? s->py1 - s->pr : y;
    return (x - qx) * (x - qx) + (y - qy) * (y - qy) <= s->pr * s->pr;
}

static int in_shape(const scene_t *s, double x, double y)
{
    double dx = x - s->cx, dy = y - s->cy, r = s->size;

    switch (s->kind) {
    case SHAPE_CIRCLE:
        return dx * dx + dy * dy <= r * r;
    case SHAPE_DIAMOND:
        return (dx < 0 ? -dx : dx) + (dy < 0 ? -dy : dy) <= r * 1.25;
    case SHAPE_STRIPES: {
        /* three diagonal bands clipped to a square */
        if (dx < -r || dx > r || dy < -r || dy > r) {
            return 0;
        }
        double band = (dx + dy + 2 * r) / (r * 4.0 / 5.0); /* 0..5 across */
        return ((int)band) % 2 == 1;
    }
    default: /* SHAPE_SQUARE */
        return dx >= -r * 0.85 && dx <= r * 0.85 && dy >= -r * 0.85 && dy <= r * 0.85;
    }
}

static rgb_t colour_at(const scene_t *s, double x, double y)
{
    if (!in_rounded_rect(s, x, y)) {
        return s->bg;
    }
    return in_shape(s, x, y) ? s->shape : s->panel;
}

/* Rows of 1 filter byte (0, None) and w RGB triples. */
static unsigned char *draw(const scene_t *s, int w, int h, size_t *len)
{
    size_t stride = 1 + (size_t)w * 3;
    unsigned char *raw = td_xmalloc(stride * (size_t)h);

    for (int y = 0; y < h; y++) {
        unsigned char *row = raw + stride * (size_t)y;
        row[0] = 0;
        for (int x = 0; x < w; x++) {
            rgb_t sum = { 0, 0, 0 };
            for (int sy = 0; sy < SUBPIX; sy++) {
                for (int sx = 0; sx < SUBPIX; sx++) {
                    rgb_t c = colour_at(s, x + (sx + 0.5) / SUBPIX, y + (sy + 0.5) / SUBPIX);
                    sum.r += c.r;
                    sum.g += c.g;
                    sum.b += c.b;
                }
            }
            unsigned char *p = row + 1 + (size_t)x * 3;
            p[0] = (unsigned char)(sum.r / (SUBPIX * SUBPIX) + 0.5);
            p[1] = (unsigned char)(sum.g / (SUBPIX * SUBPIX) + 0.5);
            p[2] = (unsigned char)(sum.b / (SUBPIX * SUBPIX) + 0.5);
        }
    }
    *len = stride * (size_t)h;
    return raw;
}

static void put_u32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* A chunk: length, type, data, CRC-32 of type and data (PNG 5.3). */
static void add_chunk(td_buf_t *out, const char type[4], const unsigned char *data, size_t len)
{
    unsigned char be[4];
    uLong crc = crc32(0L, Z_NULL, 0);

    put_u32(be, (uint32_t)len);
    td_buf_add(out, be, 4);
    td_buf_add(out, type, 4);
    crc = crc32(crc, (const Bytef *)type, 4);
    if (len) {
        td_buf_add(out, data, len);
        crc = crc32(crc, data, (uInt)len);
    }
    put_u32(be, (uint32_t)crc);
    td_buf_add(out, be, 4);
}

int td_demo_png(const char *item_id, const char *category, int w, int h, td_buf_t *out,
                td_err_t *err)
{
    static const unsigned char signature[8] = { 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n' };
    unsigned char ihdr[13];
    scene_t s;
    size_t raw_len;

    if (w < SIDE_MIN || w > SIDE_MAX) {
        return td_err_set(err, TD_EINVAL, "w", "width %d is not in %d..%d", w, SIDE_MIN, SIDE_MAX);
    }
    if (h < SIDE_MIN || h > SIDE_MAX) {
        return td_err_set(err, TD_EINVAL, "h", "height %d is not in %d..%d", h, SIDE_MIN, SIDE_MAX);
    }
    plan_scene(item_id ? item_id : "", category ? category : "", w, h, &s);
    unsigned char *raw = draw(&s, w, h, &raw_len);
    uLongf z_len = compressBound((uLong)raw_len);
    unsigned char *z = td_xmalloc(z_len);
    int zrc = compress2(z, &z_len, raw, (uLong)raw_len, Z_DEFAULT_COMPRESSION);
    free(raw);
    if (zrc != Z_OK) {
        free(z);
        return td_err_set(err, TD_EIO, "", "compressing the picture failed (zlib %d)", zrc);
    }
    put_u32(ihdr, (uint32_t)w);
    put_u32(ihdr + 4, (uint32_t)h);
    ihdr[8] = 8;  /* bit depth */
    ihdr[9] = 2;  /* colour type: truecolour */
    ihdr[10] = 0; /* deflate */
    ihdr[11] = 0; /* filter method 0 */
    ihdr[12] = 0; /* no interlace */
    td_buf_add(out, signature, sizeof(signature));
    add_chunk(out, "IHDR", ihdr, sizeof(ihdr));
    add_chunk(out, "IDAT", z, z_len);
    add_chunk(out, "IEND", NULL, 0);
    free(z);
    return TD_OK;
}
