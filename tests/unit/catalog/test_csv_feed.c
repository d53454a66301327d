/* The Target Recommendations CSV feed parser, with the nastiness real feeds
 * carry: the "## RECS" preamble, spreadsheet artefacts (BOM, CRLF, stray
 * spaces, trailing commas), quotes, multi-line values, wrong field counts,
 * bad numbers, invalid UTF-8, 100 custom columns and a 1 MB cell. Every
 * input is also parsed in 1- to 7-byte chunks (feed_util.h). */
#include "test.h"

#include <stdio.h>

#include "feed_util.h"

#define CSV TD_FEED_TARGET_CSV

static const char doc_sample[] =
    "## RECSRecommendations Upload File,,,,,,,,,,\n"
    "## RECS''## RECS'' indicates a Recommendations pre-process header. Please do not remove "
    "these lines.,,,,,,,,,,\n"
    "## RECS,,,,,,,,,,\n"
    "## RECSentity.id ,entity.name,entity. categoryId ,entity. message ,entity.thumbnailUrl "
    ",entity.value ,entity.pageUrl ,entity.inventory ,entity.margin ,entity.color,entity.tags,\n"
    "w1,Steel Watch,\"Watches,Watches:Steel\",Save 10%,https://img.example/w1.jpg,325,"
    "https://shop.example/w1,1000,48,Silver,\"[ \"\"v1\"\", \"\"v2\"\" ]\",\n"
    "w2,Gold Watch,Watches,, , , , , ,Gold, ,\n";

static void test_target_doc_layout(void **state)
{
    collected_t c;
    td_err_t err;

    (void)state;
    assert_int_equal(parse_str(CSV, doc_sample, &c, &err), TD_OK);
    assert_int_equal(c.n, 2);
    assert_int_equal(c.n_errs, 0);
    td_entity_t *w1 = &c.ents[0], *w2 = &c.ents[1];
    assert_string_equal(w1->id, "w1");
    assert_int_equal(c.lines[0], 5);
    assert_string_equal(w1->name, "Steel Watch");
    assert_int_equal(w1->n_categories, 2);
    assert_string_equal(w1->categories[1], "Watches:Steel");
    assert_string_equal(w1->message, "Save 10%");
    assert_true(w1->has & TD_ENTITY_VALUE);
    assert_true(w1->value == 325.0);
    assert_true(w1->inventory == 1000.0);
    const td_attr_t *tags = td_entity_attr(w1, "tags");
    assert_non_null(tags);
    assert_int_equal(tags->type, TD_ATTR_LIST);
    assert_int_equal(tags->n_list, 2);
    assert_string_equal(tags->list[1], "v2");
    /* blank cells (" ") leave attributes unset: unchanged on update */
    assert_false(w2->has & TD_ENTITY_VALUE);
    assert_false(w2->has & TD_ENTITY_MESSAGE);
    assert_null(td_entity_attr(w2, "tags"));
    assert_string_equal(td_entity_attr(w2, "color")->str, "Gold");
    collected_release(&c);
}

static void test_bom_crlf_and_plain_header(void **state)
{
    const char *text = "\xef\xbb\xbf"
                       "entity.id,entity.name,entity.value\r\n"
                       "A,Coat,10\r\n"
                       "\r\n"
                       "B,\"Two\r\nlines\",11.5\r\n";
    collected_t c;
    td_err_t err;

    (void)state;
    assert_int_equal(parse_str(CSV, text, &c, &err), TD_OK);
    assert_int_equal(c.n, 2);
    assert_string_equal(c.ents[0].id, "A");
    assert_string_equal(c.ents[0].name, "Coat");
    assert_string_equal(c.ents[1].name, "Two\nlines");
    assert_int_equal(c.lines[1], 4);
    collected_release(&c);
}

static void test_quotes_commas_newlines(void **state)
{
    const char *text = "## RECSentity.id,entity.name,entity.message\n"
                       "A,\"Coat, \"\"winter\"\" edition\",\"line 1\n"
                       "## RECS is data here\n"
                       "line 3\"\n"
                       "B,Plain,x\n";
    collected_t c;
    td_err_t err;

    (void)state;
    assert_int_equal(parse_str(CSV, text, &c, &err), TD_OK);
    assert_int_equal(c.n, 2);
    assert_string_equal(c.ents[0].name, "Coat, \"winter\" edition");
    assert_string_equal(c.ents[0].message, "line 1\n## RECS is data here\nline 3");
    assert_int_equal(c.lines[0], 2);
    assert_int_equal(c.lines[1], 5);
    collected_release(&c);
}

static void test_missing_header_is_refused(void **state)
{
    collected_t c;
    td_err_t err;

    (void)state;
    assert_int_equal(parse_str(CSV, "## RECS a comment\nA,Coat,10\n", &c, &err), TD_EINVAL);
    assert_int_equal(err.line, 2);
    assert_non_null(strstr(err.message, "header"));
    collected_release(&c);
    assert_int_equal(parse_str(CSV, "", &c, &err), TD_EINVAL);
    collected_release(&c);
    assert_int_equal(parse_str(CSV, "## RECSentity.name,entity.value\nx,1\n", &c, &err), TD_EINVAL);
    assert_non_null(strstr(err.message, "entity.id"));
    collected_release(&c);
}

static void test_duplicate_column_is_refused(void **state)
{
    collected_t c;
    td_err_t err;

    (void)state;
    assert_int_equal(parse_str(CSV, "entity.id,entity.color,entity.color\nA,1,2\n", &c, &err),
                     TD_EINVAL);
    assert_int_equal(err.column, 3);
    collected_release(&c);
}

static void test_wrong_field_counts(void **state)
{
    const char *text = "entity.id,entity.name,entity.value,\n"
                       "A,Coat,10\n"       /* the trailing empty column may be missing */
                       "B,Coat\n"          /* a field short */
                       "C,Coat, blue,10\n" /* an unquoted comma */
                       "D,Coat,10,,, , \n" /* blank extras are spreadsheet noise */
                       "E,Fine,12\n";
    collected_t c;
    td_err_t err;

    (void)state;
    assert_int_equal(parse_str(CSV, text, &c, &err), TD_OK);
    assert_int_equal(c.n, 3);
    assert_string_equal(c.ents[0].id, "A");
    assert_string_equal(c.ents[1].id, "D");
    assert_string_equal(c.ents[2].id, "E");
    assert_int_equal(c.n_errs, 2);
    assert_int_equal(c.errs[0].line, 3);
    assert_int_equal(c.errs[0].column, 3);
    assert_string_equal(c.errs[0].path, "entity.value");
    assert_int_equal(c.errs[1].line, 4);
    collected_release(&c);
}

static void test_invalid_numbers(void **state)
{
    const char *text = "entity.id,entity.value,entity.inventory,entity.margin\n"
                       "A,\"12,99 EUR\",1,1\n"
                       "B,12.99,lots,1\n"
                       "C,$5,1,1\n"
                       "D,\"1,299.00\",1,1\n"
                       "E,-0.5,7,1e-2\n";
    collected_t c;
    td_err_t err;

    (void)state;
    assert_int_equal(parse_str(CSV, text, &c, &err), TD_OK);
    assert_int_equal(c.n, 1);
    assert_true(c.ents[0].value == -0.5 && c.ents[0].margin == 0.01);
    assert_int_equal(c.n_errs, 4);
    assert_int_equal(c.errs[0].line, 2);
    assert_int_equal(c.errs[0].column, 2);
    assert_string_equal(c.errs[0].path, "entity.value");
    assert_non_null(strstr(c.errs[0].message, "dot"));
    assert_string_equal(c.errs[1].path, "entity.inventory");
    assert_non_null(strstr(c.errs[3].message, "thousands"));
    collected_release(&c);
}

static void test_invalid_utf8(void **state)
{
    const char *text = "entity.id,entity.name,entity.brand\n"
                       "A,Caf\xc3\xa9,ok\n"
                       "B,Caf\xe9,ok\n"
                       "C,ok,\xed\xa0\x80\n"
                       "\xff,ok,ok\n";
    collected_t c;
    td_err_t err;

    (void)state;
    assert_int_equal(parse_str(CSV, text, &c, &err), TD_OK);
    assert_int_equal(c.n, 1);
    assert_string_equal(c.ents[0].name, "Caf\xc3\xa9");
    assert_int_equal(c.n_errs, 3);
    assert_int_equal(c.errs[0].column, 2);
    assert_non_null(strstr(c.errs[0].message, "UTF-8"));
    assert_int_equal(c.errs[1].column, 3);
    assert_int_equal(c.errs[2].column, 1);
    collected_release(&c);
}

static void test_hundred_custom_columns(void **state)
{
    td_buf_t b = TD_BUF_INIT;
    collected_t c;
    td_err_t err;

    (void)state;
    td_buf_adds(&b, "## RECSentity.id,entity.name");
    for (int i = 1; i <= 100; i++) {
        td_buf_addf(&b, ",entity.custom%d", i);
    }
    td_buf_adds(&b, "\nA,Coat");
    for (int i = 1; i <= 100; i++) {
        td_buf_addf(&b, ",v%d", i);
    }
    td_buf_adds(&b, "\n");
    assert_int_equal(parse_text(CSV, b.data, b.len, &c, &err), TD_OK);
    assert_int_equal(c.n, 1);
    assert_int_equal(c.ents[0].n_attrs, 100);
    assert_string_equal(td_entity_attr(&c.ents[0], "custom100")->str, "v100");
    collected_release(&c);

    /* a 101st custom column is over Target's limit: the feed is refused */
    td_buf_reset(&b);
    td_buf_adds(&b, "entity.id");
    for (int i = 1; i <= 101; i++) {
        td_buf_addf(&b, ",c%d", i);
    }
    td_buf_adds(&b, "\nA\n");
    assert_int_equal(parse_text(CSV, b.data, b.len, &c, &err), TD_ETOOBIG);
    assert_int_equal(err.column, 102);
    collected_release(&c);
    td_buf_release(&b);
}

static void test_megabyte_cell(void **state)
{
    td_buf_t b = TD_BUF_INIT;
    collected_t c;
    td_err_t err;

    (void)state;
    td_buf_adds(&b, "entity.id,entity.message\nA,\"");
    for (int i = 0; i < (1 << 20); i++) {
        td_buf_addc(&b, (char)('a' + i % 26));
    }
    td_buf_adds(&b, "\"\nB,short\n");
    assert_int_equal(td_feed_parse_mem(CSV, b.data, b.len, 4096, &collect_sink, &c, &err), TD_OK);
    assert_int_equal(c.n, 1);
    assert_string_equal(c.ents[0].id, "B");
    assert_int_equal(c.n_errs, 1);
    assert_int_equal(c.errs[0].code, TD_ETOOBIG);
    assert_int_equal(c.errs[0].line, 2);
    assert_int_equal(c.errs[0].column, 2);
    collected_release(&c);
    td_buf_release(&b);
}

static void test_unclosed_quote(void **state)
{
    collected_t c;
    td_err_t err;

    (void)state;
    assert_int_equal(parse_str(CSV, "entity.id,entity.name\nA,ok\nB,\"never closed\n", &c, &err),
                     TD_EINVAL);
    assert_int_equal(err.line, 3);
    assert_non_null(strstr(err.message, "not closed"));
    collected_release(&c);
}

static void test_categories_and_missing_id(void **state)
{
    const char *text = "entity.id,entity.categoryId,entity.size\n"
                       "A,\"[\"\"Men\"\", \"\"Men:Coats\"\"]\",\"[S,M]\"\n"
                       ",Men,\n"
                       "B,\" Men , Men:Coats ,,Men \",007\n";
    collected_t c;
    td_err_t err;

    (void)state;
    assert_int_equal(parse_str(CSV, text, &c, &err), TD_OK);
    assert_int_equal(c.n, 2);
    assert_int_equal(c.ents[0].n_categories, 2);
    assert_string_equal(c.ents[0].categories[1], "Men:Coats");
    /* "[S,M]" is no JSON array: kept as text */
    assert_string_equal(td_entity_attr(&c.ents[0], "size")->str, "[S,M]");
    assert_int_equal(c.ents[1].n_categories, 2);
    assert_string_equal(c.ents[1].categories[0], "Men");
    /* "007" stays a string, not the number 7 */
    assert_int_equal(td_entity_attr(&c.ents[1], "size")->type, TD_ATTR_STRING);
    assert_int_equal(c.n_errs, 1);
    assert_int_equal(c.errs[0].line, 3);
    assert_int_equal(c.errs[0].column, 1);
    collected_release(&c);
}

static int stop_at_second(void *ctx, td_entity_t *e, int line)
{
    int *calls = ctx;

    (void)e;
    (void)line;
    return ++*calls == 2 ? TD_EBUSY : TD_OK;
}

static void test_sink_can_stop(void **state)
{
    td_feed_sink_t s = { stop_at_second, NULL };
    const char *text = "entity.id\nA\nB\nC\n";
    td_err_t err = { 0 };
    int calls = 0;

    (void)state;
    assert_int_equal(td_feed_parse_mem(CSV, text, strlen(text), 0, &s, &calls, &err), TD_EBUSY);
    assert_int_equal(calls, 2);
    assert_int_equal(err.line, 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_target_doc_layout),
        cmocka_unit_test(test_bom_crlf_and_plain_header),
        cmocka_unit_test(test_quotes_commas_newlines),
        cmocka_unit_test(test_missing_header_is_refused),
        cmocka_unit_test(test_duplicate_column_is_refused),
        cmocka_unit_test(test_wrong_field_counts),
        cmocka_unit_test(test_invalid_numbers),
        cmocka_unit_test(test_invalid_utf8),
        cmocka_unit_test(test_hundred_custom_columns),
        cmocka_unit_test(test_megabyte_cell),
        cmocka_unit_test(test_unclosed_quote),
        cmocka_unit_test(test_categories_and_missing_id),
        cmocka_unit_test(test_sink_can_stop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
