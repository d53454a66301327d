/* Feed formats by name, and the entry that hands a feed to its parser. */
#include "catalog/internal.h"

#include <string.h>
#include <strings.h>

#include "util/banned.h"

static const struct {
    td_feed_format_t fmt;
    const char *name;
} formats[] = {
    { TD_FEED_TARGET_CSV, "target-csv" },
    { TD_FEED_GOOGLE_XML, "google-xml" },
    { TD_FEED_GOOGLE_TSV, "google-tsv" },
    { TD_FEED_JSON, "json" },
};

td_feed_format_t td_feed_format_parse(const char *name)
{
    for (size_t i = 0; name && i < TD_ARRAY_LEN(formats); i++) {
        if (strcmp(name, formats[i].name) == 0) {
            return formats[i].fmt;
        }
    }
    return 0;
}

const char *td_feed_format_name(td_feed_format_t f)
{
    for (size_t i = 0; i < TD_ARRAY_LEN(formats); i++) {
        if (formats[i].fmt == f) {
            return formats[i].name;
        }
    }
    return "?";
}

td_feed_format_t td_feed_format_guess(const char *path)
{
    static const struct {
        const char *ext;
        td_feed_format_t fmt;
    } exts[] = {
        { ".csv", TD_FEED_TARGET_CSV }, { ".xml", TD_FEED_GOOGLE_XML },
        { ".rss", TD_FEED_GOOGLE_XML }, { ".atom", TD_FEED_GOOGLE_XML },
        { ".tsv", TD_FEED_GOOGLE_TSV }, { ".txt", TD_FEED_GOOGLE_TSV },
        { ".json", TD_FEED_JSON },
    };
    const char *dot = path ? strrchr(path, '.') : NULL;

    for (size_t i = 0; dot && i < TD_ARRAY_LEN(exts); i++) {
        if (strcasecmp(dot, exts[i].ext) == 0) {
            return exts[i].fmt;
        }
    }
    return 0;
}

int td_feed_parse(td_feed_format_t fmt, td_feed_read_fn read, void *read_ctx,
                  const td_feed_sink_t *sink, void *sink_ctx, td_err_t *err)
{
    switch (fmt) {
    case TD_FEED_TARGET_CSV:
        return td_catalog__parse_target_csv(read, read_ctx, sink, sink_ctx, err);
    case TD_FEED_GOOGLE_TSV:
        return td_catalog__parse_google_tsv(read, read_ctx, sink, sink_ctx, err);
    case TD_FEED_GOOGLE_XML:
        return td_catalog__parse_google_xml(read, read_ctx, sink, sink_ctx, err);
    case TD_FEED_JSON:
        return td_catalog__parse_json(read, read_ctx, sink, sink_ctx, err);
    }
    return td_err_set(err, TD_EINVAL, "format",
                      "unknown feed format (use target-csv, google-xml, google-tsv or json)");
}

long td_feed_read_mem(void *ctx, char *buf, size_t cap)
{
    td_feed_mem_t *m = ctx;
    size_t n = m->len - m->pos;

    if (n > cap) {
        n = cap;
    }
    if (m->chunk && n > m->chunk) {
        n = m->chunk;
    }
    memcpy(buf, m->data + m->pos, n);
    m->pos += n;
    return (long)n;
}

int td_feed_parse_mem(td_feed_format_t fmt, const char *data, size_t len, size_t chunk,
                      const td_feed_sink_t *sink, void *sink_ctx, td_err_t *err)
{
    td_feed_mem_t m = { data, len, 0, chunk };

    return td_feed_parse(fmt, td_feed_read_mem, &m, sink, sink_ctx, err);
}
