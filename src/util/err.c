/* Error detail and aborting allocators. */
#include "util/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void set_path(td_err_t *err, const char *path)
{
    size_t n = path ? strlen(path) : 0;

    if (n >= sizeof(err->path)) {
        n = sizeof(err->path) - 1;
    }
    memcpy(err->path, path ? path : "", n);
    err->path[n] = '\0';
}

int td_err_set(td_err_t *err, int code, const char *path, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL) {
        return code;
    }
    err->code = code;
    err->line = err->column = 0;
    set_path(err, path);
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
    return code;
}

int td_err_set_at(td_err_t *err, int code, const char *path, int line, int column, const char *fmt,
                  ...)
{
    va_list ap;

    if (err == NULL) {
        return code;
    }
    err->code = code;
    err->line = line;
    err->column = column;
    set_path(err, path);
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
    return code;
}

const char *td_strerror(int code)
{
    switch (code) {
    case TD_OK:
        return "ok";
    case TD_EINVAL:
        return "invalid";
    case TD_ENOTFOUND:
        return "not_found";
    case TD_ECONFLICT:
        return "conflict";
    case TD_ETOOBIG:
        return "too_big";
    case TD_EAUTH:
        return "unauthorized";
    case TD_EBUSY:
        return "busy";
    case TD_EIO:
        return "io_error";
    case TD_ENOMEM:
        return "out_of_memory";
    case TD_EFORBIDDEN:
        return "forbidden";
    default:
        return "unknown_error";
    }
}

static _Noreturn void oom(size_t n)
{
    fprintf(stderr, "fatal: out of memory allocating %zu bytes\n", n);
    abort();
}

void *td_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);

    if (p == NULL) {
        oom(n);
    }
    return p;
}

void *td_xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);

    if (p == NULL) {
        oom(n * size);
    }
    return p;
}

void *td_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);

    if (q == NULL) {
        oom(n);
    }
    return q;
}

char *td_xstrndup(const char *s, size_t n)
{
    char *p = td_xmalloc(n + 1);

    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *td_xstrdup(const char *s)
{
    return td_xstrndup(s, strlen(s));
}

void td_bug(const char *file, int line, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "BUG: %s:%d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    abort();
}
