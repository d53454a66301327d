/* Error codes and input-error detail shared by every module.
 *
 * Functions that can fail return TD_OK (0) or a negative TD_E* code. Bad
 * input additionally fills a caller-owned td_err_t with the JSON pointer of
 * the offending field (or a line and column for files) and a message; only
 * http/reply.c turns these into HTTP statuses. */
#ifndef TD_UTIL_ERR_H
#define TD_UTIL_ERR_H

#include <stddef.h>

#define TD_MUST_CHECK   __attribute__((warn_unused_result))
#define TD_PRINTF(f, a) __attribute__((format(printf, f, a)))

enum {
    TD_OK = 0,
    TD_EINVAL = -1,    /* bad input; td_err_t says where */
    TD_ENOTFOUND = -2, /* the thing asked for does not exist */
    TD_ECONFLICT = -3, /* exists already, or a concurrent change won */
    TD_ETOOBIG = -4,   /* over a configured size or count limit */
    TD_EAUTH = -5,     /* missing or wrong credentials */
    TD_EBUSY = -6,     /* try again later (database locked, queue full) */
    TD_EIO = -7,       /* storage or network failure; logged where it happened */
    TD_ENOMEM = -8,    /* an allocation limit, not malloc failure (that aborts) */
    TD_EFORBIDDEN = -9 /* authenticated but not allowed (unknown datastream) */
};

typedef struct td_err {
    int code;
    char path[256];   /* JSON pointer ("/events/3/type") or setting name; may be empty */
    int line, column; /* 1-based position in a file or body; 0 when unknown */
    char message[256];
} td_err_t;

/* Fills err (which may be NULL) and returns code, so that a failing function
 * can `return td_err_set(err, TD_EINVAL, "/type", "must be a string");`. */
int td_err_set(td_err_t *err, int code, const char *path, const char *fmt, ...) TD_PRINTF(4, 5);

/* Like td_err_set, also recording a line and column. */
int td_err_set_at(td_err_t *err, int code, const char *path, int line, int column, const char *fmt,
                  ...) TD_PRINTF(6, 7);

/* A short stable name for a code: "invalid", "not_found", ... */
const char *td_strerror(int code);

/* Aborting allocators: out of memory is logged and fatal (sizes from input are
 * capped before they get here). */
void *td_xmalloc(size_t n);
void *td_xcalloc(size_t n, size_t size);
void *td_xrealloc(void *p, size_t n);
char *td_xstrdup(const char *s);
char *td_xstrndup(const char *s, size_t n);

#define TD_BUG(...) td_bug(__FILE__, __LINE__, __VA_ARGS__)
_Noreturn void td_bug(const char *file, int line, const char *fmt, ...) TD_PRINTF(3, 4);

#define TD_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#endif
