/* Template helpers: the functions a template can call, as {{name a b k=v}}
 * or as {%= name(a, b) %}. Formatting for commerce email (currency, numbers,
 * dates with locale rules), string helpers, comparisons and arithmetic.
 *
 * Helpers never fail a render: a value they cannot use is reported (with the
 * helper's name and the call's position) and renders as nothing. Absent and
 * null inputs render as nothing without a report, since the path that led
 * nowhere has been reported already. Locale data is a small built-in table
 * (no ICU, no files): the locales listed in docs/templates.md. */
#include "message/template_internal.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/banned.h"

#define NBSP   "\xC2\xA0"     /* U+00A0 */
#define NNBSP  "\xE2\x80\xAF" /* U+202F, French digit grouping */
#define RSQUO  "\xE2\x80\x99" /* U+2019, Swiss digit grouping */
#define ELLIPS "\xE2\x80\xA6" /* U+2026 */

/* ---- locales ---- */

typedef struct lang_names {
    const char *lang;
    const char *months[12], *months_short[12];
    const char *days[7], *days_short[7]; /* Sunday first */
} lang_names_t;

static const lang_names_t lang_names[] = {
    { "en",
      { "January", "February", "March", "April", "May", "June", "July", "August", "September",
        "October", "November", "December" },
      { "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" },
      { "Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday" },
      { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" } },
    { "de",
      { "Januar", "Februar", "M\xC3\xA4rz", "April", "Mai", "Juni", "Juli", "August", "September",
        "Oktober", "November", "Dezember" },
      { "Jan.", "Feb.", "M\xC3\xA4rz", "Apr.", "Mai", "Juni", "Juli", "Aug.", "Sept.", "Okt.",
        "Nov.", "Dez." },
      { "Sonntag", "Montag", "Dienstag", "Mittwoch", "Donnerstag", "Freitag", "Samstag" },
      { "So.", "Mo.", "Di.", "Mi.", "Do.", "Fr.", "Sa." } },
    { "fr",
      { "janvier", "f\xC3\xA9vrier", "mars", "avril", "mai", "juin", "juillet", "ao\xC3\xBBt",
        "septembre", "octobre", "novembre",
        "d\xC3\xA9"
        "cembre" },
      { "janv.", "f\xC3\xA9vr.", "mars", "avr.", "mai", "juin", "juil.", "ao\xC3\xBBt", "sept.",
        "oct.", "nov.",
        "d\xC3\xA9"
        "c." },
      { "dimanche", "lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi" },
      { "dim.", "lun.", "mar.", "mer.", "jeu.", "ven.", "sam." } },
    { "es",
      { "enero", "febrero", "marzo", "abril", "mayo", "junio", "julio", "agosto", "septiembre",
        "octubre", "noviembre", "diciembre" },
      { "ene", "feb", "mar", "abr", "may", "jun", "jul", "ago", "sept", "oct", "nov", "dic" },
      { "domingo", "lunes", "martes", "mi\xC3\xA9rcoles", "jueves", "viernes",
        "s\xC3\xA1"
        "bado" },
      { "dom", "lun", "mar", "mi\xC3\xA9", "jue", "vie",
        "s\xC3\xA1"
        "b" } },
    { "it",
      { "gennaio", "febbraio", "marzo", "aprile", "maggio", "giugno", "luglio", "agosto",
        "settembre", "ottobre", "novembre", "dicembre" },
      { "gen", "feb", "mar", "apr", "mag", "giu", "lug", "ago", "set", "ott", "nov", "dic" },
      { "domenica", "luned\xC3\xAC", "marted\xC3\xAC", "mercoled\xC3\xAC", "gioved\xC3\xAC",
        "venerd\xC3\xAC", "sabato" },
      { "dom", "lun", "mar", "mer", "gio", "ven", "sab" } },
    { "nl",
      { "januari", "februari", "maart", "april", "mei", "juni", "juli", "augustus", "september",
        "oktober", "november", "december" },
      { "jan", "feb", "mrt", "apr", "mei", "jun", "jul", "aug", "sep", "okt", "nov", "dec" },
      { "zondag", "maandag", "dinsdag", "woensdag", "donderdag", "vrijdag", "zaterdag" },
      { "zo", "ma", "di", "wo", "do", "vr", "za" } },
};

/* Number and currency conventions (CLDR). Currency patterns: S symbol,
 * N number, _ no-break space, - minus. min_group: CLDR's minimum grouping
 * digits (Spanish writes 1234 but 12.345). */
typedef struct locale_rule {
    const char *tag;
    const char *decimal, *group;
    int min_group;
    const char *currency; /* default ISO 4217 code */
    const char *pos, *neg;
    int names; /* index in lang_names */
} locale_rule_t;

static const locale_rule_t locales[] = {
    { "en-US", ".", ",", 1, "USD", "SN", "-SN", 0 },
    { "en-GB", ".", ",", 1, "GBP", "SN", "-SN", 0 },
    { "en-IE", ".", ",", 1, "EUR", "SN", "-SN", 0 },
    { "de-DE", ",", ".", 1, "EUR", "N_S", "-N_S", 1 },
    { "de-CH", ".", RSQUO, 1, "CHF", "S_N", "S-N", 1 },
    { "fr-FR", ",", NNBSP, 1, "EUR", "N_S", "-N_S", 2 },
    { "es-ES", ",", ".", 2, "EUR", "N_S", "-N_S", 3 },
    { "it-IT", ",", ".", 1, "EUR", "N_S", "-N_S", 4 },
    { "nl-NL", ",", ".", 1, "EUR", "S_N", "S_-N", 5 },
};

static bool tag_eq(const char *a, size_t alen, const char *b, size_t blen)
{
    if (alen != blen) {
        return false;
    }
    for (size_t i = 0; i < alen; i++) {
        char x = a[i] == '_' ? '-' : a[i], y = b[i] == '_' ? '-' : b[i];
        if (x >= 'A' && x <= 'Z') {
            x = (char)(x - 'A' + 'a');
        }
        if (y >= 'A' && y <= 'Z') {
            y = (char)(y - 'A' + 'a');
        }
        if (x != y) {
            return false;
        }
    }
    return true;
}

/* "de-DE", "de_DE", "de" (the language's first region above); absent: en-US.
 * An unknown locale is reported and en-US used. */
static const locale_rule_t *find_locale(tpl_hctx_t *h, const tpl_val_t *v)
{
    if (v == NULL || v->kind == TV_UNDEF || v->kind == TV_NULL) {
        return &locales[0];
    }
    if (v->kind == TV_STR) {
        for (size_t i = 0; i < TD_ARRAY_LEN(locales); i++) {
            if (tag_eq(v->s, v->len, locales[i].tag, strlen(locales[i].tag))) {
                return &locales[i];
            }
        }
        size_t lang = strcspn(v->s, "-_");
        if (lang > v->len) {
            lang = v->len;
        }
        for (size_t i = 0; i < TD_ARRAY_LEN(locales); i++) {
            if (tag_eq(v->s, lang, locales[i].tag, 2)) {
                return &locales[i];
            }
        }
        td_template__helper_error(h, "unknown locale \"%.*s\", used en-US", (int)v->len, v->s);
    } else {
        td_template__helper_error(h, "the locale must be a string like \"de-DE\"");
    }
    return &locales[0];
}

static bool is_currency_code(const tpl_val_t *v)
{
    return v->kind == TV_STR && v->len == 3 && v->s[0] >= 'A' && v->s[0] <= 'Z' && v->s[1] >= 'A' &&
           v->s[1] <= 'Z' && v->s[2] >= 'A' && v->s[2] <= 'Z';
}

/* The narrow symbol CLDR uses for a currency in a locale; the code itself
 * when the locale has no symbol for it. */
static const char *currency_symbol(const char *code, const locale_rule_t *loc)
{
    if (strcmp(code, "EUR") == 0) {
        return "\xE2\x82\xAC";
    }
    if (strcmp(code, "GBP") == 0) {
        return "\xC2\xA3";
    }
    if (strcmp(code, "JPY") == 0) {
        return "\xC2\xA5";
    }
    if (strcmp(code, "USD") == 0) {
        if (strcmp(loc->tag, "en-US") == 0 || strcmp(loc->tag, "de-DE") == 0) {
            return "$";
        }
        return strcmp(loc->tag, "fr-FR") == 0 ? "$US" : "US$";
    }
    if (strcmp(code, "CAD") == 0) {
        return "CA$";
    }
    if (strcmp(code, "AUD") == 0) {
        return "A$";
    }
    return code;
}

static int currency_decimals(const char *code)
{
    static const char *const zero[] = { "JPY", "KRW", "ISK", "CLP", "VND", "HUF", "TWD" };

    for (size_t i = 0; i < TD_ARRAY_LEN(zero); i++) {
        if (strcmp(code, zero[i]) == 0) {
            return 0;
        }
    }
    return 2;
}

/* ---- numbers ---- */

/* The decimal digits of |v| rounded half away from zero at `decimals`
 * places, taken from the shortest representation that reads back as v, so
 * that 1.005 rounds to 1.01 as written and not as stored (1.00499...).
 * int_digits gets at least "0"; frac_digits exactly `decimals` digits.
 * Returns true when the rounded value is not zero. */
static bool round_decimal(double v, int decimals, char *int_digits, size_t int_cap,
                          char *frac_digits)
{
    char tmp[40], digits[64];
    int nd = 0, exp10, point, keep;
    double a = fabs(v);
    char *e;

    for (int prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof(tmp), "%.*e", prec - 1, a);
        if (strtod(tmp, NULL) == a) {
            break;
        }
    }
    for (const char *c = tmp; *c && *c != 'e'; c++) {
        if (*c >= '0' && *c <= '9' && nd < 40) {
            digits[nd++] = *c;
        }
    }
    e = strchr(tmp, 'e');
    exp10 = e ? (int)strtol(e + 1, NULL, 10) : 0;
    point = exp10 + 1; /* digits before the decimal point */
    keep = point + decimals;
    if (a == 0 || keep < 0) {
        nd = 0;
        point = 1;
    } else {
        bool up = keep < nd && digits[keep] >= '5';
        if (keep < nd) {
            nd = keep;
        }
        while (nd < keep) {
            digits[nd++] = '0';
        }
        if (up) {
            int i = nd - 1;
            while (i >= 0 && digits[i] == '9') {
                digits[i--] = '0';
            }
            if (i >= 0) {
                digits[i]++;
            } else {
                memmove(digits + 1, digits, (size_t)nd);
                digits[0] = '1';
                nd++;
                point++;
            }
        }
    }
    /* now digits[0..nd) hold the value times 10^decimals, point digits before the point */
    bool nonzero = false;
    size_t ni = 0;
    if (point <= 0) {
        int_digits[ni++] = '0';
    }
    for (int i = 0; i < point && ni + 1 < int_cap; i++) {
        char d = i < nd ? digits[i] : '0';
        if (ni == 0 && d == '0' && i + 1 < point) {
            continue; /* leading zeros */
        }
        int_digits[ni++] = d;
    }
    if (ni == 0) {
        int_digits[ni++] = '0';
    }
    int_digits[ni] = '\0';
    for (int i = 0; i < decimals; i++) {
        int pos = point + i;
        frac_digits[i] = pos >= 0 && pos < nd ? digits[pos] : '0';
    }
    frac_digits[decimals] = '\0';
    for (int i = 0; i < nd; i++) {
        nonzero |= digits[i] != '0';
    }
    return nonzero;
}

/* The number part: grouped integer digits, decimal separator, fraction.
 * decimals < 0: up to 3 fraction digits, trailing zeros dropped. */
static void format_plain(td_buf_t *out, double v, int decimals, const locale_rule_t *loc)
{
    char int_digits[40], frac[16];
    int d = decimals < 0 ? 3 : decimals;
    size_t n;

    round_decimal(v, d, int_digits, sizeof(int_digits), frac);
    if (decimals < 0) {
        while (d > 0 && frac[d - 1] == '0') {
            frac[--d] = '\0';
        }
    }
    n = strlen(int_digits);
    bool group = n >= (size_t)(3 + loc->min_group);
    for (size_t i = 0; i < n; i++) {
        if (group && i > 0 && (n - i) % 3 == 0) {
            td_buf_adds(out, loc->group);
        }
        td_buf_addc(out, int_digits[i]);
    }
    if (d > 0) {
        td_buf_adds(out, loc->decimal);
        td_buf_adds(out, frac);
    }
}

static bool is_negative_after_rounding(double v, int decimals)
{
    char i[40], f[16];

    return v < 0 && round_decimal(v, decimals < 0 ? 3 : decimals, i, sizeof(i), f);
}

static bool get_number(tpl_hctx_t *h, const tpl_val_t *v, double *out)
{
    if (!td_template__val_to_num(v, out)) {
        if (v->kind != TV_UNDEF && v->kind != TV_NULL) {
            td_template__helper_error(h, "not a number");
        }
        return false;
    }
    if (!isfinite(*out) || fabs(*out) >= 1e15) {
        td_template__helper_error(h, "number out of range");
        return false;
    }
    return true;
}

static bool get_decimals(tpl_hctx_t *h, const tpl_val_t *v, int *out)
{
    double d;

    if (v->kind == TV_UNDEF || v->kind == TV_NULL) {
        return true;
    }
    if (!td_template__val_to_num(v, &d) || d < 0 || d > 6 || d != floor(d)) {
        td_template__helper_error(h, "decimals must be a whole number from 0 to 6");
        return false;
    }
    *out = (int)d;
    return true;
}

static tpl_val_t take_buf(td_buf_t *b)
{
    size_t len = b->len;

    return td_template__val_str_take(td_buf_detach(b), len);
}

/* formatCurrency value [currency] [locale] currency= locale= decimals=
 * AJO writes formatCurrency(value, "de_DE"): a second argument that is not
 * a three-letter code is the locale, and the currency is the locale's. */
static void h_format_currency(tpl_hctx_t *h, tpl_val_t *args, int n, tpl_val_t *opts,
                              tpl_val_t *out)
{
    const tpl_val_t *cur = &opts[0], *loc_v = &opts[1];
    const locale_rule_t *loc;
    char code[4];
    int decimals;
    double v;
    td_buf_t b = TD_BUF_INIT, num = TD_BUF_INIT;

    if (n >= 2) {
        if (is_currency_code(&args[1])) {
            cur = &args[1];
        } else {
            loc_v = &args[1];
        }
    }
    if (n >= 3) {
        loc_v = &args[2];
    }
    if (!get_number(h, &args[0], &v)) {
        return;
    }
    loc = find_locale(h, loc_v);
    if (cur->kind == TV_UNDEF || cur->kind == TV_NULL) {
        memcpy(code, loc->currency, 4);
    } else if (is_currency_code(cur)) {
        memcpy(code, cur->s, 3);
        code[3] = '\0';
    } else {
        td_template__helper_error(h, "currency must be a code like \"EUR\"");
        return;
    }
    decimals = currency_decimals(code);
    if (!get_decimals(h, &opts[2], &decimals)) {
        return;
    }
    const char *sym = currency_symbol(code, loc);
    bool neg = is_negative_after_rounding(v, decimals);
    format_plain(&num, v, decimals, loc);
    for (const char *p = neg ? loc->neg : loc->pos; *p; p++) {
        switch (*p) {
        case 'S':
            td_buf_adds(&b, sym);
            /* CLDR currency spacing: a letter symbol never touches the digits */
            if (p[1] == 'N' && sym[strlen(sym) - 1] >= 'A' && sym[strlen(sym) - 1] <= 'Z') {
                td_buf_adds(&b, NBSP);
            }
            break;
        case 'N':
            td_buf_add(&b, num.data, num.len);
            break;
        case '_':
            td_buf_adds(&b, NBSP);
            break;
        case '-':
            td_buf_addc(&b, '-');
            break;
        }
    }
    td_buf_release(&num);
    *out = take_buf(&b);
}

/* formatNumber value [decimals] [locale] decimals= locale= */
static void h_format_number(tpl_hctx_t *h, tpl_val_t *args, int n, tpl_val_t *opts, tpl_val_t *out)
{
    const tpl_val_t *dec_v = n >= 2 ? &args[1] : &opts[0];
    const tpl_val_t *loc_v = n >= 3 ? &args[2] : &opts[1];
    int decimals = -1;
    double v;
    td_buf_t b = TD_BUF_INIT;

    if (!get_number(h, &args[0], &v) || !get_decimals(h, dec_v, &decimals)) {
        return;
    }
    if (is_negative_after_rounding(v, decimals)) {
        td_buf_addc(&b, '-');
    }
    format_plain(&b, v, decimals, find_locale(h, loc_v));
    *out = take_buf(&b);
}

/* ---- dates ---- */

/* Days since 1970-01-01 of a proleptic Gregorian date (the well-known
 * era-based computation: 400-year eras of 146097 days). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

static bool read_digits(const char **p, const char *end, int n, int *out)
{
    int v = 0;

    for (int i = 0; i < n; i++) {
        if (*p >= end || **p < '0' || **p > '9') {
            return false;
        }
        v = v * 10 + (*(*p)++ - '0');
    }
    *out = v;
    return true;
}

/* "+01:00", "-0530", "+01", "+1", "Z"; returns false when s is not an offset. */
static bool parse_offset(const char **p, const char *end, int *minutes)
{
    int sign, hh, mm = 0;

    if (*p < end && (**p == 'Z' || **p == 'z')) {
        (*p)++;
        *minutes = 0;
        return true;
    }
    if (*p >= end || (**p != '+' && **p != '-')) {
        return false;
    }
    sign = *(*p)++ == '-' ? -1 : 1;
    if (!read_digits(p, end, 1, &hh)) {
        return false;
    }
    if (*p < end && **p >= '0' && **p <= '9' &&
        (end - *p == 1 || (*p)[1] == ':' || end - *p >= 3)) {
        hh = hh * 10 + (*(*p)++ - '0'); /* "+1", "+01", "+0130", "+01:30" */
    }
    if (*p < end && **p == ':') {
        (*p)++;
    }
    if (*p < end && **p >= '0' && **p <= '9' && !read_digits(p, end, 2, &mm)) {
        return false;
    }
    if (hh > 18 || mm > 59) {
        return false;
    }
    *minutes = sign * (hh * 60 + mm);
    return true;
}

/* ISO 8601: YYYY-MM-DD, optionally THH:MM[:SS[.fff]] and Z or an offset. */
static bool parse_iso(const char *s, size_t len, int64_t *ms, int *off, bool *has_off)
{
    static const int mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
    const char *p = s, *end = s + len;
    int y, mo, d, hh = 0, mi = 0, ss = 0, frac = 0;

    *has_off = false;
    *off = 0;
    if (!read_digits(&p, end, 4, &y) || p >= end || *p++ != '-' || !read_digits(&p, end, 2, &mo) ||
        p >= end || *p++ != '-' || !read_digits(&p, end, 2, &d)) {
        return false;
    }
    if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1]) {
        return false;
    }
    if (p < end && (*p == 'T' || *p == 't' || *p == ' ')) {
        p++;
        if (!read_digits(&p, end, 2, &hh) || p >= end || *p++ != ':' ||
            !read_digits(&p, end, 2, &mi)) {
            return false;
        }
        if (p < end && *p == ':') {
            p++;
            if (!read_digits(&p, end, 2, &ss)) {
                return false;
            }
            if (p < end && (*p == '.' || *p == ',')) {
                int scale = 100;
                p++;
                if (p >= end || *p < '0' || *p > '9') {
                    return false;
                }
                while (p < end && *p >= '0' && *p <= '9') {
                    frac += (*p++ - '0') * scale;
                    scale /= 10;
                }
            }
        }
        if (hh > 23 || mi > 59 || ss > 60) {
            return false;
        }
        if (p < end) {
            if (!parse_offset(&p, end, off)) {
                return false;
            }
            *has_off = true;
        }
    }
    if (p != end) {
        return false;
    }
    *ms = (days_from_civil(y, mo, d) * 86400 + hh * 3600 + mi * 60 + ss - *off * 60) * 1000 + frac;
    return true;
}

static bool get_tz(tpl_hctx_t *h, const tpl_val_t *v, int *minutes)
{
    double d;

    if (v->kind == TV_STR) {
        const char *p = v->s, *end = v->s + v->len;
        if ((v->len == 3 && (memcmp(v->s, "UTC", 3) == 0 || memcmp(v->s, "GMT", 3) == 0))) {
            *minutes = 0;
            return true;
        }
        if (v->len > 3 && (memcmp(v->s, "UTC", 3) == 0 || memcmp(v->s, "GMT", 3) == 0)) {
            p += 3;
        }
        if (parse_offset(&p, end, minutes) && p == end) {
            return true;
        }
    } else if (td_template__val_to_num(v, &d) && d >= -18 * 60 && d <= 18 * 60 && d == floor(d)) {
        *minutes = (int)d;
        return true;
    }
    td_template__helper_error(h, "time zone must be an offset like \"+01:00\" (zone names such as "
                                 "Europe/Paris are not supported)");
    return false;
}

static void pad_num(td_buf_t *b, int64_t v, int width)
{
    if (width > 9) {
        width = 9;
    }
    td_buf_addf(b, "%0*" PRId64, width, v);
}

static void add_offset(td_buf_t *b, int off, bool colon, bool minutes_always)
{
    int a = off < 0 ? -off : off;

    td_buf_addf(b, "%c%02d", off < 0 ? '-' : '+', a / 60);
    if (minutes_always || a % 60) {
        td_buf_addf(b, colon ? ":%02d" : "%02d", a % 60);
    }
}

/* Java DateTimeFormatter pattern letters (the common ones, as AJO's
 * formatDate uses them); 'quoted' text is literal; other ASCII letters are
 * reported. Returns false on an unsupported letter. */
static bool format_pattern(tpl_hctx_t *h, td_buf_t *b, const char *pat, size_t plen, int64_t ms,
                           int off, const lang_names_t *names)
{
    int64_t local = ms + (int64_t)off * 60000;
    int64_t days = local >= 0 ? local / 86400000 : -((-local + 86399999) / 86400000);
    int64_t msod = local - days * 86400000;
    int64_t year;
    int month, mday;
    int hour = (int)(msod / 3600000), minute = (int)(msod / 60000 % 60);
    int sec = (int)(msod / 1000 % 60), milli = (int)(msod % 1000);
    int wday = (int)(((days % 7) + 11) % 7); /* 1970-01-01 was a Thursday */

    civil_from_days(days, &year, &month, &mday);
    for (size_t i = 0; i < plen;) {
        char c = pat[i];
        size_t run = 1;
        if (c == '\'') {
            if (i + 1 < plen && pat[i + 1] == '\'') {
                td_buf_addc(b, '\'');
                i += 2;
                continue;
            }
            size_t j = i + 1;
            while (j < plen) {
                if (pat[j] == '\'' && j + 1 < plen && pat[j + 1] == '\'') {
                    td_buf_addc(b, '\'');
                    j += 2;
                    continue;
                }
                if (pat[j] == '\'') {
                    break;
                }
                td_buf_addc(b, pat[j++]);
            }
            i = j + 1;
            continue;
        }
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))) {
            td_buf_addc(b, c);
            i++;
            continue;
        }
        while (i + run < plen && pat[i + run] == c) {
            run++;
        }
        int w = (int)run;
        switch (c) {
        case 'y':
        case 'u':
        case 'Y':
            if (run == 2) {
                pad_num(b, ((year % 100) + 100) % 100, 2);
            } else {
                pad_num(b, year, w);
            }
            break;
        case 'M':
        case 'L':
            if (run >= 4) {
                td_buf_adds(b, names->months[month - 1]);
            } else if (run == 3) {
                td_buf_adds(b, names->months_short[month - 1]);
            } else {
                pad_num(b, month, w);
            }
            break;
        case 'd':
            pad_num(b, mday, w);
            break;
        case 'D':
            pad_num(b, days - days_from_civil(year, 1, 1) + 1, w);
            break;
        case 'E':
            td_buf_adds(b, run >= 4 ? names->days[wday] : names->days_short[wday]);
            break;
        case 'H':
            pad_num(b, hour, w);
            break;
        case 'k':
            pad_num(b, hour == 0 ? 24 : hour, w);
            break;
        case 'h':
            pad_num(b, hour % 12 == 0 ? 12 : hour % 12, w);
            break;
        case 'K':
            pad_num(b, hour % 12, w);
            break;
        case 'm':
            pad_num(b, minute, w);
            break;
        case 's':
            pad_num(b, sec, w);
            break;
        case 'S': {
            char frac[8];
            snprintf(frac, sizeof(frac), "%03d", milli);
            for (size_t k = 0; k < run; k++) {
                td_buf_addc(b, k < 3 ? frac[k] : '0');
            }
            break;
        }
        case 'a':
            td_buf_adds(b, hour < 12 ? "AM" : "PM");
            break;
        case 'X':
        case 'x':
            if (c == 'X' && off == 0) {
                td_buf_addc(b, 'Z');
            } else {
                add_offset(b, off, run >= 3, run >= 2);
            }
            break;
        case 'Z':
            if (run >= 4) {
                td_buf_adds(b, "GMT");
                if (off != 0) {
                    add_offset(b, off, true, true);
                }
            } else {
                add_offset(b, off, false, true);
            }
            break;
        case 'z':
            td_buf_adds(b, "UTC");
            if (off != 0) {
                add_offset(b, off, true, false);
            }
            break;
        default:
            td_template__helper_error(h, "unsupported pattern letter '%c'", c);
            return false;
        }
        i += run;
    }
    return true;
}

/* formatDate value pattern [locale] [tz]   tz= locale=
 * value: an ISO 8601 string or epoch milliseconds. The time zone is, in
 * order: the tz argument, the offset written in the value, UTC. */
static void h_format_date(tpl_hctx_t *h, tpl_val_t *args, int n, tpl_val_t *opts, tpl_val_t *out)
{
    const tpl_val_t *loc_v = n >= 3 ? &args[2] : &opts[0];
    const tpl_val_t *tz_v = n >= 4 ? &args[3] : &opts[1];
    const locale_rule_t *loc;
    int64_t ms;
    int off = 0;
    bool has_off = false;
    double d;
    td_buf_t b = TD_BUF_INIT;

    if (args[0].kind == TV_UNDEF || args[0].kind == TV_NULL) {
        return;
    }
    if (args[0].kind == TV_STR) {
        if (!parse_iso(args[0].s, args[0].len, &ms, &off, &has_off)) {
            td_template__helper_error(h,
                                      "not a date (expected ISO 8601 like 2026-11-28T10:00:00Z)");
            return;
        }
    } else if (td_template__val_to_num(&args[0], &d) && fabs(d) < 1e15) {
        ms = (int64_t)d;
    } else {
        td_template__helper_error(h, "not a date");
        return;
    }
    if (args[1].kind != TV_STR) {
        td_template__helper_error(h, "the pattern must be a string like \"dd/MM/yyyy\"");
        return;
    }
    if (tz_v->kind != TV_UNDEF && tz_v->kind != TV_NULL && !get_tz(h, tz_v, &off)) {
        return;
    }
    loc = find_locale(h, loc_v);
    if (!format_pattern(h, &b, args[1].s, args[1].len, ms, off, &lang_names[loc->names])) {
        td_buf_release(&b);
        return;
    }
    *out = take_buf(&b);
}

/* ---- strings ---- */

/* The printed form of a scalar argument; false (and nothing) for absent,
 * null and containers. */
static bool get_text(tpl_hctx_t *h, const tpl_val_t *v, td_buf_t *b)
{
    if (v->kind == TV_UNDEF || v->kind == TV_NULL) {
        return false;
    }
    if (v->kind == TV_ARRAY || v->kind == TV_OBJECT || !td_template__val_print(v, b)) {
        td_template__helper_error(h, "expected text, got %s",
                                  v->kind == TV_ARRAY ? "a list" : "an object");
        return false;
    }
    return true;
}

/* ASCII and Latin-1 letters (U+00C0..U+00FE), the ones Western European
 * names and products use; other characters pass through. */
static void change_case(tpl_hctx_t *h, tpl_val_t *args, tpl_val_t *out, bool upper)
{
    td_buf_t b = TD_BUF_INIT;

    if (!get_text(h, &args[0], &b)) {
        td_buf_release(&b);
        return;
    }
    for (size_t i = 0; i < b.len; i++) {
        unsigned char c = (unsigned char)b.data[i];
        if (upper && c >= 'a' && c <= 'z') {
            b.data[i] = (char)(c - 32);
        } else if (!upper && c >= 'A' && c <= 'Z') {
            b.data[i] = (char)(c + 32);
        } else if (c == 0xC3 && i + 1 < b.len) {
            unsigned char d = (unsigned char)b.data[i + 1];
            if (upper && d >= 0xA0 && d <= 0xBE && d != 0xB7) {
                b.data[i + 1] = (char)(d - 0x20);
            } else if (!upper && d >= 0x80 && d <= 0x9E && d != 0x97) {
                b.data[i + 1] = (char)(d + 0x20);
            }
            i++;
        }
    }
    *out = take_buf(&b);
}

static void h_upper(tpl_hctx_t *h, tpl_val_t *args, int n, tpl_val_t *opts, tpl_val_t *out)
{
    (void)n;
    (void)opts;
    change_case(h, args, out, true);
}

static void h_lower(tpl_hctx_t *h, tpl_val_t *args, int n, tpl_val_t *opts, tpl_val_t *out)
{
    (void)n;
    (void)opts;
    change_case(h, args, out, false);
}

static size_t utf8_chars(const char *s, size_t len)
{
    size_t n = 0;

    for (size_t i = 0; i < len; i++) {
        n += ((unsigned char)s[i] & 0xC0) != 0x80;
    }
    return n;
}

/* Byte length of the first `chars` characters of s. */
static size_t utf8_prefix(const char *s, size_t len, size_t chars)
{
    size_t i = 0;

    while (i < len && chars > 0) {
        i++;
        while (i < len && ((unsigned char)s[i] & 0xC0) == 0x80) {
            i++;
        }
        chars--;
    }
    return i;
}

/* truncate text length [suffix]: at most `length` characters including the
 * suffix ("…" unless given). */
static void h_truncate(tpl_hctx_t *h, tpl_val_t *args, int n, tpl_val_t *opts, tpl_val_t *out)
{
    td_buf_t b = TD_BUF_INIT, r = TD_BUF_INIT;
    const char *suffix = ELLIPS;
    size_t suffix_len = strlen(ELLIPS);
    double lim;

    (void)opts;
    if (!get_text(h, &args[0], &b)) {
        td_buf_release(&b);
        return;
    }
    if (!td_template__val_to_num(&args[1], &lim) || lim < 0 || lim > 1e6) {
        td_template__helper_error(h, "the length must be a number from 0 to 1000000");
        td_buf_release(&b);
        return;
    }
    if (n >= 3 && args[2].kind == TV_STR) {
        suffix = args[2].s;
        suffix_len = args[2].len;
    }
    size_t max = (size_t)lim;
    if (utf8_chars(b.data, b.len) <= max) {
        *out = take_buf(&b);
        return;
    }
    size_t sc = utf8_chars(suffix, suffix_len);
    size_t keep = utf8_prefix(b.data, b.len, max > sc ? max - sc : 0);
    while (keep > 0 && (b.data[keep - 1] == ' ' || b.data[keep - 1] == '\t')) {
        keep--;
    }
    td_buf_add(&r, b.data, keep);
    if (max >= sc) {
        td_buf_add(&r, suffix, suffix_len);
    }
    td_buf_release(&b);
    *out = take_buf(&r);
}

static void h_trim(tpl_hctx_t *h, tpl_val_t *args, int n, tpl_val_t *opts, tpl_val_t *out)
{
    td_buf_t b = TD_BUF_INIT;
    size_t s = 0, e;

    (void)n;
    (void)opts;
    if (!get_text(h, &args[0], &b)) {
        td_buf_release(&b);
        return;
    }
    e = b.len;
    while (s < e && strchr(" \t\r\n", b.data[s])) {
        s++;
    }
    while (e > s && strchr(" \t\r\n", b.data[e - 1])) {
        e--;
    }
    *out = td_template__val_str_copy(b.data + s, e - s);
    td_buf_release(&b);
}

/* default value fallback...: the first argument that is not empty
 * (undefined, null, "" or []), else the last one. */
static void h_default(tpl_hctx_t *h, tpl_val_t *args, int n, tpl_val_t *opts, tpl_val_t *out)
{
    (void)h;
    (void)opts;
    for (int i = 0; i < n - 1; i++) {
        if (!td_template__val_empty(&args[i])) {
            td_template__val_move(out, &args[i]);
            return;
        }
    }
    td_template__val_move(out, &args[n - 1]);
}

static void h_json(tpl_hctx_t *h, tpl_val_t *args, int n, tpl_val_t *opts, tpl_val_t *out)
{
    json_t *j;
    char *s;

    (void)h;
    (void)n;
    (void)opts;
    if (args[0].kind == TV_UNDEF) {
        return;
    }
    j = td_template__val_to_json(&args[0]);
    s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(j);
    if (s) {
        *out = td_template__val_str_take(s, strlen(s));
    }
}

/* Percent-encodes everything but RFC 3986's unreserved characters, for a
 * value placed inside a URL (a query parameter, a path segment). */
static void h_url_encode(tpl_hctx_t *h, tpl_val_t *args, int n, tpl_val_t *opts, tpl_val_t *out)
{
    static const char hex[] = "0123456789ABCDEF";
    td_buf_t b = TD_BUF_INIT, r = TD_BUF_INIT;

    (void)n;
    (void)opts;
    if (!get_text(h, &args[0], &b)) {
        td_buf_release(&b);
        return;
    }
    for (size_t i = 0; i < b.len; i++) {
        unsigned char c = (unsigned char)b.data[i];
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_' || c == '~') {
            td_buf_addc(&r, (char)c);
        } else {
            char esc[3] = { '%', hex[c >> 4], hex[c & 15] };
            td_buf_add(&r, esc, 3);
        }
    }
    td_buf_release(&b);
    *out = take_buf(&r);
}

static void h_concat(tpl_hctx_t *h, tpl_val_t *args, int n, tpl_val_t *opts, tpl_val_t *out)
{
    td_buf_t b = TD_BUF_INIT;

    (void)opts;
    for (int i = 0; i < n; i++) {
        get_text(h, &args[i], &b);
    }
    *out = take_buf(&b);
}

static void h_length(tpl_hctx_t *h, tpl_val_t *args, int n, tpl_val_t *opts, tpl_val_t *out)
{
    td_buf_t b = TD_BUF_INIT;

    (void)n;
    (void)opts;
    switch (args[0].kind) {
    case TV_UNDEF:
    case TV_NULL:
        *out = td_template__val_int(0);
        return;
    case TV_ARRAY:
        *out = td_template__val_int((int64_t)json_array_size(args[0].j));
        return;
    case TV_OBJECT:
        *out = td_template__val_int((int64_t)json_object_size(args[0].j));
        return;
    default:
        get_text(h, &args[0], &b);
        *out = td_template__val_int((int64_t)utf8_chars(b.data ? b.data : "", b.len));
        td_buf_release(&b);
        return;
    }
}

static bool ascii_ieq(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char x = a[i], y = b[i];
        if (x >= 'A' && x <= 'Z') {
            x = (char)(x + 32);
        }
        if (y >= 'A' && y <= 'Z') {
            y = (char)(y + 32);
        }
        if (x != y) {
            return false;
        }
    }
    return true;
}

/* contains(text, part [, caseSensitive]) or contains(list, value). */
static void h_contains(tpl_hctx_t *h, tpl_val_t *args, int n, tpl_val_t *opts, tpl_val_t *out)
{
    td_buf_t a = TD_BUF_INIT, b = TD_BUF_INIT;
    bool found = false, cs = n < 3 || td_template__val_truthy(&args[2]);

    (void)opts;
    if (args[0].kind == TV_ARRAY) {
        for (size_t i = 0; i < json_array_size(args[0].j) && !found; i++) {
            tpl_val_t el = td_template__val_from_json(json_array_get(args[0].j, i));
            found = td_template__val_equal(&el, &args[1]);
        }
    } else if (get_text(h, &args[0], &a) && get_text(h, &args[1], &b) && b.len <= a.len) {
        for (size_t i = 0; i + b.len <= a.len && !found; i++) {
            found =
                cs ? memcmp(a.data + i, b.data, b.len) == 0 : ascii_ieq(a.data + i, b.data, b.len);
        }
    }
    td_buf_release(&a);
    td_buf_release(&b);
    *out = td_template__val_bool(found);
}

static void affix(tpl_hctx_t *h, tpl_val_t *args, tpl_val_t *out, bool at_start)
{
    td_buf_t a = TD_BUF_INIT, b = TD_BUF_INIT;
    bool r = false;

    if (get_text(h, &args[0], &a) && get_text(h, &args[1], &b) && b.len <= a.len) {
        r = memcmp(a.data + (at_start ? 0 : a.len - b.len), b.data, b.len) == 0;
    }
    td_buf_release(&a);
    td_buf_release(&b);
    *out = td_template__val_bool(r);
}

static void h_starts_with(tpl_hctx_t *h, tpl_val_t *args, int n, tpl_val_t *opts, tpl_val_t *out)
{
    (void)n;
    (void)opts;
    affix(h, args, out, true);
}

static void h_ends_with(tpl_hctx_t *h, tpl_val_t *args, int n, tpl_val_t *opts, tpl_val_t *out)
{
    (void)n;
    (void)opts;
    affix(h, args, out, false);
}

static void h_is_empty(tpl_hctx_t *h, tpl_val_t *args, int n, tpl_val_t *opts, tpl_val_t *out)
{
    (void)h;
    (void)n;
    (void)opts;
    *out = td_template__val_bool(td_template__val_empty(&args[0]));
}

static void h_is_not_empty(tpl_hctx_t *h, tpl_val_t *args, int n, tpl_val_t *opts, tpl_val_t *out)
{
    (void)h;
    (void)n;
    (void)opts;
    *out = td_template__val_bool(!td_template__val_empty(&args[0]));
}

/* ---- comparisons and logic ---- */

static void compare(tpl_val_t *args, tpl_val_t *out, int want_lo, int want_hi)
{
    int cmp;

    *out = td_template__val_bool(td_template__val_compare(&args[0], &args[1], &cmp) &&
                                 cmp >= want_lo && cmp <= want_hi);
}

#define COMPARE_HELPER(fname, lo, hi)                                                         \
    static void fname(tpl_hctx_t *h, tpl_val_t *args, int n, tpl_val_t *opts, tpl_val_t *out) \
    {                                                                                         \
        (void)h;                                                                              \
        (void)n;                                                                              \
        (void)opts;                                                                           \
        compare(args, out, lo, hi);                                                           \
    }

COMPARE_HELPER(h_gt, 1, 1)
COMPARE_HELPER(h_gte, 0, 1)
COMPARE_HELPER(h_lt, -1, -1)
COMPARE_HELPER(h_lte, -1, 0)

static void h_eq(tpl_hctx_t *h, tpl_val_t *args, int n, tpl_val_t *opts, tpl_val_t *out)
{
    (void)h;
    (void)n;
    (void)opts;
    *out = td_template__val_bool(td_template__val_equal(&args[0], &args[1]));
}

static void h_ne(tpl_hctx_t *h, tpl_val_t *args, int n, tpl_val_t *opts, tpl_val_t *out)
{
    (void)h;
    (void)n;
    (void)opts;
    *out = td_template__val_bool(!td_template__val_equal(&args[0], &args[1]));
}

static void h_and(tpl_hctx_t *h, tpl_val_t *args, int n, tpl_val_t *opts, tpl_val_t *out)
{
    bool r = true;

    (void)h;
    (void)opts;
    for (int i = 0; i < n; i++) {
        r = r && td_template__val_truthy(&args[i]);
    }
    *out = td_template__val_bool(r);
}

static void h_or(tpl_hctx_t *h, tpl_val_t *args, int n, tpl_val_t *opts, tpl_val_t *out)
{
    bool r = false;

    (void)h;
    (void)opts;
    for (int i = 0; i < n; i++) {
        r = r || td_template__val_truthy(&args[i]);
    }
    *out = td_template__val_bool(r);
}

static void h_not(tpl_hctx_t *h, tpl_val_t *args, int n, tpl_val_t *opts, tpl_val_t *out)
{
    (void)h;
    (void)n;
    (void)opts;
    *out = td_template__val_bool(!td_template__val_truthy(&args[0]));
}

/* ---- arithmetic ---- */

static void arith(tpl_hctx_t *h, tpl_val_t *args, tpl_val_t *out, char op)
{
    double x, y, r;

    if (!get_number(h, &args[0], &x) || !get_number(h, &args[1], &y)) {
        return;
    }
    if (op == '/' && y == 0) {
        td_template__helper_error(h, "division by zero");
        return;
    }
    r = op == '+' ? x + y : op == '-' ? x - y : op == '*' ? x * y : x / y;
    if (r == floor(r) && fabs(r) < 9e15) {
        *out = td_template__val_int((int64_t)r);
    } else {
        *out = td_template__val_num(r);
    }
}

#define ARITH_HELPER(fname, op)                                                               \
    static void fname(tpl_hctx_t *h, tpl_val_t *args, int n, tpl_val_t *opts, tpl_val_t *out) \
    {                                                                                         \
        (void)n;                                                                              \
        (void)opts;                                                                           \
        arith(h, args, out, op);                                                              \
    }

ARITH_HELPER(h_add, '+')
ARITH_HELPER(h_subtract, '-')
ARITH_HELPER(h_multiply, '*')
ARITH_HELPER(h_divide, '/')

/* round value [decimals]: half away from zero, on the decimal value. */
static void h_round(tpl_hctx_t *h, tpl_val_t *args, int n, tpl_val_t *opts, tpl_val_t *out)
{
    int decimals = 0;
    double v;
    char i[40], f[16];
    td_buf_t b = TD_BUF_INIT;

    (void)opts;
    if (!get_number(h, &args[0], &v) || (n >= 2 && !get_decimals(h, &args[1], &decimals))) {
        return;
    }
    bool nz = round_decimal(v, decimals, i, sizeof(i), f);
    if (v < 0 && nz) {
        td_buf_addc(&b, '-');
    }
    td_buf_adds(&b, i);
    if (decimals > 0) {
        td_buf_addc(&b, '.');
        td_buf_adds(&b, f);
    }
    v = strtod(b.data, NULL);
    td_buf_release(&b);
    *out = decimals == 0 ? td_template__val_int((int64_t)v) : td_template__val_num(v);
}

/* ---- the table ---- */

#define NO_OPTS \
    {           \
        NULL    \
    }

static const tpl_helper_t helpers[] = {
    { "formatCurrency",
      1,
      3,
      { "currency", "locale", "decimals", NULL },
      false,
      h_format_currency },
    { "formatNumber", 1, 3, { "decimals", "locale", NULL }, false, h_format_number },
    { "formatDate", 2, 4, { "locale", "tz", NULL }, false, h_format_date },
    { "upper", 1, 1, NO_OPTS, false, h_upper },
    { "upperCase", 1, 1, NO_OPTS, false, h_upper },
    { "lower", 1, 1, NO_OPTS, false, h_lower },
    { "lowerCase", 1, 1, NO_OPTS, false, h_lower },
    { "truncate", 2, 3, NO_OPTS, false, h_truncate },
    { "trim", 1, 1, NO_OPTS, false, h_trim },
    { "default", 2, TPL_MAX_ARGS, NO_OPTS, true, h_default },
    { "json", 1, 1, NO_OPTS, false, h_json },
    { "urlEncode", 1, 1, NO_OPTS, false, h_url_encode },
    { "concat", 1, TPL_MAX_ARGS, NO_OPTS, false, h_concat },
    { "length", 1, 1, NO_OPTS, true, h_length },
    { "count", 1, 1, NO_OPTS, true, h_length },
    { "contains", 2, 3, NO_OPTS, true, h_contains },
    { "startsWith", 2, 2, NO_OPTS, true, h_starts_with },
    { "endsWith", 2, 2, NO_OPTS, true, h_ends_with },
    { "isEmpty", 1, 1, NO_OPTS, true, h_is_empty },
    { "isNotEmpty", 1, 1, NO_OPTS, true, h_is_not_empty },
    { "eq", 2, 2, NO_OPTS, true, h_eq },
    { "equals", 2, 2, NO_OPTS, true, h_eq },
    { "ne", 2, 2, NO_OPTS, true, h_ne },
    { "notEquals", 2, 2, NO_OPTS, true, h_ne },
    { "gt", 2, 2, NO_OPTS, true, h_gt },
    { "gte", 2, 2, NO_OPTS, true, h_gte },
    { "lt", 2, 2, NO_OPTS, true, h_lt },
    { "lte", 2, 2, NO_OPTS, true, h_lte },
    { "and", 2, TPL_MAX_ARGS, NO_OPTS, true, h_and },
    { "or", 2, TPL_MAX_ARGS, NO_OPTS, true, h_or },
    { "not", 1, 1, NO_OPTS, true, h_not },
    { "add", 2, 2, NO_OPTS, false, h_add },
    { "subtract", 2, 2, NO_OPTS, false, h_subtract },
    { "multiply", 2, 2, NO_OPTS, false, h_multiply },
    { "divide", 2, 2, NO_OPTS, false, h_divide },
    { "round", 1, 2, NO_OPTS, false, h_round },
};

const tpl_helper_t *td_template__helper_find(const char *name, size_t len)
{
    for (size_t i = 0; i < TD_ARRAY_LEN(helpers); i++) {
        if (strlen(helpers[i].name) == len && memcmp(helpers[i].name, name, len) == 0) {
            return &helpers[i];
        }
    }
    return NULL;
}
