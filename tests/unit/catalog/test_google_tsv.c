/* Google Merchant product feeds as TSV: the header line, the attribute
 * mapping, prices with currencies (and "12,99 EUR" refused), availability,
 * product_type hierarchies, repeated and comma-listed values, quoting. */
#include "test.h"

#include <stdio.h>

#include "feed_util.h"

#define TSV TD_FEED_GOOGLE_TSV

static void test_mapping(void **state)
{
    const char *text =
        "id\ttitle\tdescription\tlink\tprice\tavailability\timage_link\tproduct_type\tbrand\t"
        "sale_price\tadditional_image_link\tgtin\tshipping\n"
        "na3454\tRipCurl Watch\tTitanium, round case\thttps://shop.example/na3454\t425.00 USD\t"
        "in stock\thttps://img.example/na3454.jpg\tShop > Watches > Sport\tRipCurl\t375 USD\t"
        "https://img.example/a.jpg,https://img.example/b.jpg\t075380 01050 5\tUS:::0.00 USD\n";
    collected_t c;
    td_err_t err;

    (void)state;
    assert_int_equal(parse_str(TSV, text, &c, &err), TD_OK);
    assert_int_equal(c.n_errs, 0);
    assert_int_equal(c.n, 1);
    td_entity_t *e = &c.ents[0];
    assert_string_equal(e->id, "na3454");
    assert_string_equal(e->name, "RipCurl Watch");
    assert_string_equal(e->message, "Titanium, round case");
    assert_string_equal(e->page_url, "https://shop.example/na3454");
    assert_string_equal(e->thumbnail_url, "https://img.example/na3454.jpg");
    assert_string_equal(e->brand, "RipCurl");
    assert_true(e->value == 425.0);
    assert_string_equal(td_entity_attr(e, "currency")->str, "USD");
    assert_true(td_entity_attr(e, "sale_price")->num == 375.0);
    assert_string_equal(td_entity_attr(e, "availability")->str, "in_stock");
    assert_true(e->clear & TD_ENTITY_INVENTORY);
    assert_int_equal(e->n_categories, 1);
    assert_string_equal(e->categories[0], "Shop:Watches:Sport");
    const td_attr_t *imgs = td_entity_attr(e, "additional_image_link");
    assert_int_equal(imgs->type, TD_ATTR_LIST);
    assert_int_equal(imgs->n_list, 2);
    assert_string_equal(td_entity_attr(e, "gtin")->str, "075380 01050 5");
    assert_string_equal(td_entity_attr(e, "shipping")->str, "US:::0.00 USD");
    collected_release(&c);
}

static void test_prefixes_bom_crlf_quotes(void **state)
{
    const char *text = "\xef\xbb\xbfg:id\tg:title\tg:price\tImage Link\tg:availability\r\n"
                       "A\t\"Tab\there\"\t12.99USD\thttps://img.example/a.jpg\tout_of_stock\r\n"
                       "B\t12\" pizza\t3\t\tpreorder\r\n";
    collected_t c;
    td_err_t err;

    (void)state;
    assert_int_equal(parse_str(TSV, text, &c, &err), TD_OK);
    assert_int_equal(c.n, 2);
    assert_string_equal(c.ents[0].name, "Tab\there");
    assert_true(c.ents[0].value == 12.99);
    assert_string_equal(c.ents[0].thumbnail_url, "https://img.example/a.jpg");
    assert_true((c.ents[0].has & TD_ENTITY_INVENTORY) && c.ents[0].inventory == 0);
    assert_string_equal(c.ents[1].name, "12\" pizza");
    assert_int_equal(c.lines[1], 3);
    collected_release(&c);
}

static void test_bad_rows(void **state)
{
    const char *text = "id\ttitle\tprice\tavailability\n"
                       "A\tok\t12,99 EUR\tin stock\n"
                       "\tno id\t1\tin stock\n"
                       "C\tok\t1\tsometimes\n"
                       "D\tok\t1\n"
                       "E\tok\t1\tin stock\textra\n"
                       "F\tok\t-1\tin stock\n"
                       "G\tfine\t5.5 EUR\tbackorder\n";
    collected_t c;
    td_err_t err;

    (void)state;
    assert_int_equal(parse_str(TSV, text, &c, &err), TD_OK);
    assert_int_equal(c.n, 1);
    assert_string_equal(c.ents[0].id, "G");
    assert_int_equal(c.n_errs, 6);
    assert_int_equal(c.errs[0].line, 2);
    assert_int_equal(c.errs[0].column, 3);
    assert_string_equal(c.errs[0].path, "price");
    assert_non_null(strstr(c.errs[0].message, "dot"));
    assert_int_equal(c.errs[1].line, 3);
    assert_non_null(strstr(c.errs[1].message, "id"));
    assert_string_equal(c.errs[2].path, "availability");
    assert_int_equal(c.errs[3].line, 5);
    assert_int_equal(c.errs[4].line, 6);
    assert_int_equal(c.errs[5].line, 7);
    collected_release(&c);
}

static void test_header_problems(void **state)
{
    collected_t c;
    td_err_t err;

    (void)state;
    assert_int_equal(parse_str(TSV, "title\tprice\nx\t1\n", &c, &err), TD_EINVAL);
    assert_int_equal(err.line, 1);
    collected_release(&c);
    assert_int_equal(parse_str(TSV, "", &c, &err), TD_EINVAL);
    collected_release(&c);
    assert_int_equal(parse_str(TSV, "id\ttitle\n", &c, &err), TD_OK);
    assert_int_equal(c.n, 0);
    collected_release(&c);
}

static void test_category_fallback(void **state)
{
    const char *text = "id\tgoogle_product_category\n"
                       "A\tApparel & Accessories > Clothing\n"
                       "B\t5322\n";
    collected_t c;
    td_err_t err;

    (void)state;
    assert_int_equal(parse_str(TSV, text, &c, &err), TD_OK);
    assert_int_equal(c.n, 2);
    assert_string_equal(c.ents[0].categories[0], "Apparel & Accessories:Clothing");
    assert_int_equal(c.ents[1].n_categories, 0);
    assert_string_equal(td_entity_attr(&c.ents[1], "google_product_category")->str, "5322");
    collected_release(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mapping),           cmocka_unit_test(test_prefixes_bom_crlf_quotes),
        cmocka_unit_test(test_bad_rows),          cmocka_unit_test(test_header_problems),
        cmocka_unit_test(test_category_fallback),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
