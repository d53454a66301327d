/* A growable byte buffer, always NUL-terminated (in the spirit of git's
 * strbuf). Initialise with TD_BUF_INIT or td_buf_init(); release the storage
 * with td_buf_release(), or take it with td_buf_detach(). */
#ifndef TD_UTIL_BUF_H
#define TD_UTIL_BUF_H

#include <stdarg.h>
#include <stddef.h>

#include "util/err.h"

typedef struct td_buf {
    char *data; /* NUL-terminated; never NULL after the first append */
    size_t len;
    size_t cap;
} td_buf_t;

#define TD_BUF_INIT \
    {               \
        NULL, 0, 0  \
    }

void td_buf_init(td_buf_t *b);
void td_buf_release(td_buf_t *b);
/* Returns the string and resets b; you now own it (free(3)). Never NULL. */
char *td_buf_detach(td_buf_t *b);
void td_buf_reset(td_buf_t *b);
void td_buf_grow(td_buf_t *b, size_t extra);
void td_buf_add(td_buf_t *b, const void *data, size_t len);
void td_buf_adds(td_buf_t *b, const char *s);
void td_buf_addc(td_buf_t *b, char c);
void td_buf_addf(td_buf_t *b, const char *fmt, ...) TD_PRINTF(2, 3);
void td_buf_vaddf(td_buf_t *b, const char *fmt, va_list ap) TD_PRINTF(2, 0);
/* Appends a finite double in the shortest form that reads back exactly
 * (59.9, not 59.899999999999999). */
void td_buf_add_double(td_buf_t *b, double v);
/* Appends s as a JSON string literal, quotes included. */
void td_buf_add_json_str(td_buf_t *b, const char *s, size_t len);

#endif
