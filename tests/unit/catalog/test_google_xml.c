/* Google Merchant product feeds as XML (RSS 2.0 and Atom), streamed with
 * libxml2's reader: the mapping, namespaces, nested and repeated attributes,
 * per-item rejection, malformed documents, and entity tricks (external
 * entities, entity expansion) that must do nothing. */
#include "test.h"

#include <stdio.h>

#include "feed_util.h"

#define XML TD_FEED_GOOGLE_XML

static const char rss[] =
    "<?xml version=\"1.0\"?>\n"
    "<rss xmlns:g=\"http://base.google.com/ns/1.0\" version=\"2.0\">\n"
    "<channel><title>Store</title><link>https://shop.example</link>\n"
    "<item>\n"
    "  <g:id>TV_1</g:id>\n"
    "  <title>Television &amp; stand</title>\n"
    "  <description><![CDATA[4K <b>HDR</b>]]></description>\n"
    "  <link>https://shop.example/tv1</link>\n"
    "  <g:image_link>https://img.example/tv1.png</g:image_link>\n"
    "  <g:additional_image_link>https://img.example/tv1-b.png</g:additional_image_link>\n"
    "  <g:additional_image_link>https://img.example/tv1-c.png</g:additional_image_link>\n"
    "  <g:price>499.00 EUR</g:price>\n"
    "  <g:availability>in_stock</g:availability>\n"
    "  <g:product_type>Home &gt; Electronics &gt; TVs</g:product_type>\n"
    "  <g:brand>Acme</g:brand>\n"
    "  <g:shipping>\n"
    "    <g:country>US</g:country>\n"
    "    <g:service>Standard</g:service>\n"
    "    <g:price>4.95 USD</g:price>\n"
    "  </g:shipping>\n"
    "</item>\n"
    "<item>\n"
    "  <g:id>TV_2</g:id><g:price>12,99 EUR</g:price>\n"
    "</item>\n"
    "<item><title>no id</title></item>\n"
    "<item><g:id>TV_3</g:id><g:title>Third</g:title><g:link>https://shop.example/3</g:link>"
    "<g:availability>out of stock</g:availability></item>\n"
    "</channel></rss>\n";

static void test_rss(void **state)
{
    collected_t c;
    td_err_t err;

    (void)state;
    assert_int_equal(parse_str(XML, rss, &c, &err), TD_OK);
    assert_int_equal(c.n, 2);
    td_entity_t *e = &c.ents[0];
    assert_string_equal(e->id, "TV_1");
    assert_int_equal(c.lines[0], 4);
    assert_string_equal(e->name, "Television & stand");
    assert_string_equal(e->message, "4K <b>HDR</b>");
    assert_string_equal(e->page_url, "https://shop.example/tv1");
    assert_string_equal(e->thumbnail_url, "https://img.example/tv1.png");
    assert_true(e->value == 499.0);
    assert_string_equal(td_entity_attr(e, "currency")->str, "EUR");
    assert_string_equal(e->categories[0], "Home:Electronics:TVs");
    assert_string_equal(e->brand, "Acme");
    assert_int_equal(td_entity_attr(e, "additional_image_link")->n_list, 2);
    assert_string_equal(td_entity_attr(e, "shipping")->str, "US:Standard:4.95 USD");
    assert_string_equal(c.ents[1].id, "TV_3");
    assert_string_equal(c.ents[1].name, "Third");
    assert_true(c.ents[1].inventory == 0 && (c.ents[1].has & TD_ENTITY_INVENTORY));
    assert_int_equal(c.n_errs, 2);
    assert_int_equal(c.errs[0].line, 23);
    assert_string_equal(c.errs[0].path, "g:price");
    assert_non_null(strstr(c.errs[0].message, "dot"));
    assert_int_equal(c.errs[1].line, 25);
    assert_string_equal(c.errs[1].path, "g:id");
    collected_release(&c);
}

/* The shape of Target's own example: Atom, https namespace, ns2 prefix. */
static void test_atom(void **state)
{
    const char *text =
        "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n"
        "<feed xmlns=\"https://www.w3.org/2005/Atom\" xmlns:ns2=\"https://base.google.com/ns/1.0\" "
        "xmlns:ns3=\"https://base.google.com/cns/1.0\">\n"
        "  <title>Product Feed</title><id>https://example.com</id>\n"
        "  <entry>\n"
        "    <title>RipCurl Watch</title>\n"
        "    <summary>Cutting edge</summary>\n"
        "    <id>urn:not-the-product</id>\n"
        "    <link href=\"https://shop.example/na3452\"/>\n"
        "    <ns2:id>na3452</ns2:id>\n"
        "    <ns2:price>425</ns2:price>\n"
        "    <ns2:google_product_category>Watches &amp; Sport</ns2:google_product_category>\n"
        "    <ns2:tax><ns2:country>US</ns2:country><ns2:region>CA</ns2:region>"
        "<ns2:rate>9.25</ns2:rate><ns2:tax_ship>y</ns2:tax_ship></ns2:tax>\n"
        "    <ns3:season>winter</ns3:season>\n"
        "  </entry>\n"
        "</feed>\n";
    collected_t c;
    td_err_t err;

    (void)state;
    assert_int_equal(parse_str(XML, text, &c, &err), TD_OK);
    assert_int_equal(c.n_errs, 0);
    assert_int_equal(c.n, 1);
    td_entity_t *e = &c.ents[0];
    assert_string_equal(e->id, "na3452");
    assert_string_equal(e->name, "RipCurl Watch");
    assert_string_equal(e->message, "Cutting edge");
    assert_string_equal(e->page_url, "https://shop.example/na3452");
    assert_true(e->value == 425.0);
    assert_null(td_entity_attr(e, "currency"));
    assert_string_equal(e->categories[0], "Watches & Sport");
    assert_string_equal(td_entity_attr(e, "tax")->str, "US:CA:9.25:y");
    assert_string_equal(td_entity_attr(e, "season")->str, "winter");
    collected_release(&c);
}

static void test_malformed(void **state)
{
    collected_t c;
    td_err_t err;
    const char *truncated = "<rss xmlns:g=\"http://base.google.com/ns/1.0\"><channel>\n"
                            "<item><g:id>A</g:id></item>\n"
                            "<item><g:id>B</g:id>\n";

    (void)state;
    assert_int_equal(parse_str(XML, truncated, &c, &err), TD_EINVAL);
    assert_non_null(strstr(err.message, "malformed XML"));
    assert_true(err.line >= 3);
    collected_release(&c);
    assert_int_equal(parse_str(XML, "id,name\nA,B\n", &c, &err), TD_EINVAL);
    assert_int_equal(err.line, 1);
    collected_release(&c);
    assert_int_equal(
        parse_str(XML, "<rss><channel><item><g:id>\xff</g:id></item></channel></rss>", &c, &err),
        TD_EINVAL);
    collected_release(&c);
    assert_int_equal(parse_str(XML, "", &c, &err), TD_EINVAL);
    collected_release(&c);
}

static void test_entities_do_nothing(void **state)
{
    const char *xxe = "<?xml version=\"1.0\"?>\n"
                      "<!DOCTYPE rss [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>\n"
                      "<rss xmlns:g=\"http://base.google.com/ns/1.0\"><channel><item>"
                      "<g:id>A</g:id><title>t&x;</title></item></channel></rss>\n";
    td_buf_t b = TD_BUF_INIT;
    collected_t c;
    td_err_t err;
    int rc;

    (void)state;
    rc = parse_str(XML, xxe, &c, &err);
    for (int i = 0; i < c.n; i++) {
        assert_null(c.ents[i].name ? strstr(c.ents[i].name, "root:") : NULL);
    }
    (void)rc;
    collected_release(&c);
    /* "billion laughs": either refused or kept small, never expanded */
    td_buf_adds(&b, "<?xml version=\"1.0\"?>\n<!DOCTYPE rss [\n<!ENTITY a \"aaaaaaaaaa\">\n");
    for (int i = 1; i < 10; i++) {
        td_buf_addf(&b, "<!ENTITY %c \"&%c;&%c;&%c;&%c;&%c;&%c;&%c;&%c;&%c;&%c;\">\n", 'a' + i,
                    'a' + i - 1, 'a' + i - 1, 'a' + i - 1, 'a' + i - 1, 'a' + i - 1, 'a' + i - 1,
                    'a' + i - 1, 'a' + i - 1, 'a' + i - 1, 'a' + i - 1);
    }
    td_buf_adds(&b, "]>\n<rss xmlns:g=\"http://base.google.com/ns/1.0\"><channel><item>"
                    "<g:id>A</g:id><title>&j;</title></item></channel></rss>\n");
    memset(&c, 0, sizeof(c));
    memset(&err, 0, sizeof(err));
    rc = td_feed_parse_mem(XML, b.data, b.len, 0, &collect_sink, &c, &err);
    for (int i = 0; i < c.n; i++) {
        assert_true(c.ents[i].name == NULL || strlen(c.ents[i].name) < 1000);
    }
    (void)rc;
    collected_release(&c);
    td_buf_release(&b);
}

static void test_huge_value_rejected_alone(void **state)
{
    td_buf_t b = TD_BUF_INIT;
    collected_t c;
    td_err_t err;

    (void)state;
    td_buf_adds(&b, "<rss xmlns:g=\"http://base.google.com/ns/1.0\"><channel>\n"
                    "<item><g:id>A</g:id><description>");
    for (int i = 0; i < (1 << 20); i++) {
        td_buf_addc(&b, 'x');
    }
    td_buf_adds(&b, "</description></item>\n<item><g:id>B</g:id></item></channel></rss>\n");
    memset(&c, 0, sizeof(c));
    memset(&err, 0, sizeof(err));
    assert_int_equal(td_feed_parse_mem(XML, b.data, b.len, 0, &collect_sink, &c, &err), TD_OK);
    assert_int_equal(c.n, 1);
    assert_string_equal(c.ents[0].id, "B");
    assert_int_equal(c.n_errs, 1);
    assert_int_equal(c.errs[0].code, TD_ETOOBIG);
    assert_string_equal(c.errs[0].path, "description");
    collected_release(&c);
    td_buf_release(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rss),
        cmocka_unit_test(test_atom),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_entities_do_nothing),
        cmocka_unit_test(test_huge_value_rejected_alone),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
