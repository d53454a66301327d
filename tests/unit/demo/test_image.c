/* Demo product pictures: a well-formed PNG (signature, IHDR, chunk CRCs,
 * IDAT that inflates to the right rows), the same bytes for the same
 * arguments, different pictures for different items, sizes refused. */
#include "test.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "demo/demo.h"

static uint32_t get_u32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

typedef struct png {
    uint32_t w, h;
    unsigned char depth, colour, compression, filter, interlace;
    unsigned char *idat; /* all IDAT data, concatenated */
    size_t idat_len;
    int n_chunks;
    char types[8][5];
} png_t;

/* Walks the chunks, checking each CRC; fails the test on anything wrong. */
static void parse_png(const td_buf_t *b, png_t *p)
{
    static const unsigned char sig[8] = { 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n' };
    const unsigned char *d = (const unsigned char *)b->data;
    size_t off = 8;

    memset(p, 0, sizeof(*p));
    assert_true(b->len > 8);
    assert_memory_equal(d, sig, 8);
    while (off < b->len) {
        assert_true(off + 12 <= b->len);
        uint32_t len = get_u32(d + off);
        assert_true(off + 12 + len <= b->len);
        const unsigned char *type = d + off + 4, *data = d + off + 8;
        uLong crc = crc32(crc32(0L, Z_NULL, 0), type, 4 + len);
        assert_int_equal(crc, get_u32(data + len));
        assert_true(p->n_chunks < 8);
        memcpy(p->types[p->n_chunks], type, 4);
        p->n_chunks++;
        if (memcmp(type, "IHDR", 4) == 0) {
            assert_int_equal(len, 13);
            p->w = get_u32(data);
            p->h = get_u32(data + 4);
            p->depth = data[8];
            p->colour = data[9];
            p->compression = data[10];
            p->filter = data[11];
            p->interlace = data[12];
        } else if (memcmp(type, "IDAT", 4) == 0) {
            p->idat = realloc(p->idat, p->idat_len + len);
            memcpy(p->idat + p->idat_len, data, len);
            p->idat_len += len;
        }
        off += 12 + len;
    }
    assert_int_equal(off, b->len);
}

/* The raw scanlines, checked to be h rows of a filter byte and 3w bytes. */
static unsigned char *inflate_rows(const png_t *p)
{
    uLongf want = (uLongf)p->h * (1 + 3 * (uLongf)p->w);
    uLongf got = want + 16; /* room to notice extra bytes */
    unsigned char *raw = malloc(got);

    assert_int_equal(uncompress(raw, &got, p->idat, p->idat_len), Z_OK);
    assert_int_equal(got, want);
    for (uint32_t y = 0; y < p->h; y++) {
        assert_int_equal(raw[(size_t)y * (1 + 3 * p->w)], 0);
    }
    return raw;
}

static void test_well_formed(void **state)
{
    td_buf_t b = TD_BUF_INIT;
    td_err_t err = { 0 };
    png_t p;

    (void)state;
    assert_int_equal(td_demo_png("214536502", "Coats", 480, 480, &b, &err), TD_OK);
    parse_png(&b, &p);
    assert_int_equal(p.n_chunks, 3);
    assert_string_equal(p.types[0], "IHDR");
    assert_string_equal(p.types[1], "IDAT");
    assert_string_equal(p.types[2], "IEND");
    assert_int_equal(p.w, 480);
    assert_int_equal(p.h, 480);
    assert_int_equal(p.depth, 8);
    assert_int_equal(p.colour, 2);
    assert_int_equal(p.compression, 0);
    assert_int_equal(p.filter, 0);
    assert_int_equal(p.interlace, 0);
    unsigned char *raw = inflate_rows(&p);
    /* a picture, not a flat fill: the corner (background) and the centre
     * (panel or shape) differ */
    const unsigned char *corner = raw + 1, *centre = raw + 240 * (1 + 3 * 480) + 1 + 240 * 3;
    assert_true(memcmp(corner, centre, 3) != 0);
    /* flat areas compress well: far below the 691 kB of raw rows */
    assert_true(b.len < 60000);
    free(raw);
    free(p.idat);
    td_buf_release(&b);
}

static void test_not_square_and_extremes(void **state)
{
    static const int sizes[][2] = {
        { 16, 16 }, { 1024, 16 }, { 16, 1024 }, { 300, 200 }, { 1024, 1024 }
    };

    (void)state;
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        td_buf_t b = TD_BUF_INIT;
        png_t p;
        assert_int_equal(td_demo_png("item-7", "Bags", sizes[i][0], sizes[i][1], &b, NULL), TD_OK);
        parse_png(&b, &p);
        assert_int_equal(p.w, sizes[i][0]);
        assert_int_equal(p.h, sizes[i][1]);
        free(inflate_rows(&p));
        free(p.idat);
        td_buf_release(&b);
    }
}

static void test_deterministic(void **state)
{
    td_buf_t a = TD_BUF_INIT, b = TD_BUF_INIT;

    (void)state;
    assert_int_equal(td_demo_png("214536502", "Coats", 120, 90, &a, NULL), TD_OK);
    assert_int_equal(td_demo_png("214536502", "Coats", 120, 90, &b, NULL), TD_OK);
    assert_int_equal(a.len, b.len);
    assert_memory_equal(a.data, b.data, a.len);
    td_buf_release(&a);
    td_buf_release(&b);
}

/* The background pixel at (0,0) of a picture. */
static void corner_colour(const char *id, const char *cat, unsigned char rgb[3])
{
    td_buf_t b = TD_BUF_INIT;
    png_t p;

    assert_int_equal(td_demo_png(id, cat, 64, 64, &b, NULL), TD_OK);
    parse_png(&b, &p);
    unsigned char *raw = inflate_rows(&p);
    memcpy(rgb, raw + 1, 3);
    free(raw);
    free(p.idat);
    td_buf_release(&b);
}

static void test_items_differ_categories_alike(void **state)
{
    td_buf_t a = TD_BUF_INIT, b = TD_BUF_INIT;
    unsigned char c1[3], c2[3];
    int n_colours = 0;
    unsigned char seen[16][3];

    (void)state;
    assert_int_equal(td_demo_png("214536502", "Coats", 200, 200, &a, NULL), TD_OK);
    assert_int_equal(td_demo_png("214536503", "Coats", 200, 200, &b, NULL), TD_OK);
    assert_true(a.len != b.len || memcmp(a.data, b.data, a.len) != 0);
    td_buf_release(&a);
    td_buf_release(&b);
    /* one category, one background */
    corner_colour("1", "Shoes", c1);
    corner_colour("999", "Shoes", c2);
    assert_memory_equal(c1, c2, 3);
    /* and the categories do not all share it */
    static const char *cats[] = { "Coats", "Jackets", "Sweatshirts", "Knitwear", "Shirts",
                                  "Jeans", "Dresses", "Shoes",       "Bags",     "Accessories" };
    for (size_t i = 0; i < sizeof(cats) / sizeof(cats[0]); i++) {
        unsigned char c[3];
        int known = 0;
        corner_colour("x", cats[i], c);
        for (int j = 0; j < n_colours; j++) {
            known |= memcmp(seen[j], c, 3) == 0;
        }
        if (!known) {
            memcpy(seen[n_colours++], c, 3);
        }
    }
    assert_true(n_colours >= 4);
}

static void test_bad_sizes(void **state)
{
    static const int bad[][2] = { { 15, 100 }, { 100, 15 }, { 1025, 100 },  { 100, 1025 },
                                  { 0, 0 },    { -5, 100 }, { 100, 100000 } };

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        td_buf_t b = TD_BUF_INIT;
        td_err_t err = { 0 };
        assert_int_equal(td_demo_png("1", "Coats", bad[i][0], bad[i][1], &b, &err), TD_EINVAL);
        assert_int_equal(err.code, TD_EINVAL);
        assert_true(err.message[0] != '\0');
        assert_int_equal(b.len, 0); /* nothing appended */
        td_buf_release(&b);
    }
}

static void test_null_and_appends(void **state)
{
    td_buf_t b = TD_BUF_INIT;
    png_t p;

    (void)state;
    td_buf_adds(&b, "prefix");
    assert_int_equal(td_demo_png(NULL, NULL, 32, 32, &b, NULL), TD_OK);
    assert_memory_equal(b.data, "prefix", 6);
    td_buf_t rest = { b.data + 6, b.len - 6, 0 };
    parse_png(&rest, &p);
    assert_int_equal(p.w, 32);
    free(inflate_rows(&p));
    free(p.idat);
    td_buf_release(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_well_formed),   cmocka_unit_test(test_not_square_and_extremes),
        cmocka_unit_test(test_deterministic), cmocka_unit_test(test_items_differ_categories_alike),
        cmocka_unit_test(test_bad_sizes),     cmocka_unit_test(test_null_and_appends),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
