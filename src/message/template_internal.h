/* Shared between the template compiler (template.c), the renderer
 * (template_render.c) and the helpers (template_helpers.c): the compiled tree,
 * the render-time value, and the helper table. Not part of the module's
 * public interface. */
#ifndef TD_MESSAGE_TEMPLATE_INTERNAL_H
#define TD_MESSAGE_TEMPLATE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "message/message.h"
#include "util/buf.h"

#define TPL_MAX_ARGS 16  /* positional arguments of one helper call */
#define TPL_MAX_VARS 256 /* distinct {% let %} names in one template */

/* ---- values seen while rendering ---- */

typedef enum {
    TV_UNDEF, /* absent: a path that led nowhere */
    TV_NULL,
    TV_BOOL,
    TV_INT,
    TV_NUM,
    TV_STR,
    TV_ARRAY, /* j is the array */
    TV_OBJECT /* j is the object */
} tpl_vkind_t;

typedef struct tpl_val {
    tpl_vkind_t kind;
    bool b;
    int64_t i;
    double n;
    const char *s; /* TV_STR: borrowed from j or from a literal, or == owned */
    size_t len;
    char *owned;     /* heap storage this value owns (released by td_template__val_release) */
    const json_t *j; /* the JSON node the value came from, if any (borrowed) */
    int var;         /* the {% let %} slot the value was borrowed from, or -1 */
} tpl_val_t;

#define TPL_VAL_UNDEF                                    \
    (tpl_val_t)                                          \
    {                                                    \
        .kind = TV_UNDEF, .var = -1, .s = NULL, .len = 0 \
    }

/* ---- the compiled tree (every node lives in the template's arena) ---- */

typedef struct tpl_expr tpl_expr_t;
typedef struct tpl_node tpl_node_t;

typedef enum { TE_LIT, TE_PATH, TE_CALL, TE_BIN, TE_NOT, TE_NEG, TE_ELVIS } tpl_ekind_t;

typedef enum {
    TB_ADD,
    TB_SUB,
    TB_MUL,
    TB_DIV,
    TB_MOD,
    TB_EQ,
    TB_NE,
    TB_LT,
    TB_LE,
    TB_GT,
    TB_GE,
    TB_AND,
    TB_OR
} tpl_binop_t;

typedef enum {
    TP_SCOPE, /* first segment looked up in the current context, then outward, then aliases */
    TP_THIS,  /* this / ./ / ../ : a fixed context frame (up = how many ../) */
    TP_ROOT,  /* @root */
    TP_PARAM, /* a block parameter: as |item index| */
    TP_VAR,   /* a {% let %} variable */
    TP_DATA   /* @index @key @first @last of the innermost #each */
} tpl_pbase_t;

typedef enum { TD_INDEX, TD_KEY, TD_FIRST, TD_LAST } tpl_data_t;

typedef struct tpl_seg {
    const char *name;
    size_t len;
    bool is_index; /* all digits: also an array index */
    size_t index;
} tpl_seg_t;

typedef struct tpl_helper tpl_helper_t;

struct tpl_expr {
    tpl_ekind_t kind;
    int line, column;
    tpl_expr_t *next; /* next argument in a call */
    union {
        tpl_val_t lit;
        struct {
            tpl_pbase_t base;
            int up;          /* TP_THIS: number of ../ */
            int level, slot; /* TP_PARAM: block level and parameter 0/1; TP_VAR: slot */
            tpl_data_t data;
            int alias; /* TP_SCOPE: index in the alias table, or -1 */
            tpl_seg_t *segs;
            int n_segs;
            const char *text; /* the path as written, for the report */
        } path;
        struct {
            const tpl_helper_t *helper;
            tpl_expr_t *args; /* linked by next */
            int n_args;
            tpl_expr_t *opts[4]; /* hash options, by index in helper->options; NULL if absent */
        } call;
        struct {
            tpl_binop_t op;
            tpl_expr_t *l, *r;
        } bin;
        tpl_expr_t *operand; /* TE_NOT, TE_NEG */
    } u;
};

typedef enum { TN_TEXT, TN_OUT, TN_IF, TN_EACH, TN_WITH, TN_LET } tpl_nkind_t;

struct tpl_node {
    tpl_nkind_t kind;
    int line, column;
    tpl_node_t *next;
    /* TN_TEXT */
    size_t off, len;
    /* TN_OUT, TN_IF (condition), TN_EACH / TN_WITH (subject), TN_LET (value) */
    tpl_expr_t *expr;
    bool raw;          /* TN_OUT: no HTML escaping */
    bool negate;       /* TN_IF: unless */
    bool include_zero; /* TN_IF: includeZero=true */
    bool chained;      /* TN_IF: an {{else if}}; rendered in a loop, not by recursion */
    tpl_node_t *body, *inverse;
    int param_level; /* TN_EACH / TN_WITH: block-parameter level, or -1 */
    int var;         /* TN_LET: slot */
};

struct td_template {
    char *src; /* a copy of the text; TN_TEXT nodes point into it */
    size_t len;
    tpl_node_t *root;
    int n_vars;
    struct tpl_chunk *arena;
};

/* ---- data aliases: short names for common AJO paths ---- */

typedef struct tpl_alias {
    const char *name;
    const char *targets[2]; /* dotted paths tried in order; "*" = the first member */
} tpl_alias_t;

extern const tpl_alias_t td_template__aliases[];
int td_template__alias_find(const char *name, size_t len);

/* ---- helpers ---- */

/* What a helper sees: the render state (opaque here), where it was called. */
typedef struct tpl_hctx {
    struct tpl_render *rs;
    int line, column;
    const char *name;
} tpl_hctx_t;

/* args[0..n_args) and opts[] (UNDEF when not given) belong to the caller; a
 * helper that returns one of them moves it with td_template__val_move(). */
typedef void (*tpl_helper_fn)(tpl_hctx_t *h, tpl_val_t *args, int n_args, tpl_val_t *opts,
                              tpl_val_t *out);

struct tpl_helper {
    const char *name;
    int min_args, max_args;
    const char *options[4]; /* names of hash options (key=value), NULL-terminated */
    bool quiet;             /* arguments are tests: absent values are not reported */
    tpl_helper_fn fn;
};

const tpl_helper_t *td_template__helper_find(const char *name, size_t len);

/* Adds "name: message" to the render report's errors at the call site. */
void td_template__helper_error(tpl_hctx_t *h, const char *fmt, ...) TD_PRINTF(2, 3);

/* ---- value utilities (template_render.c) ---- */

void td_template__val_release(tpl_val_t *v);
/* Moves src into dst (dst is overwritten, src becomes UNDEF). */
void td_template__val_move(tpl_val_t *dst, tpl_val_t *src);
tpl_val_t td_template__val_from_json(const json_t *j);
tpl_val_t td_template__val_bool(bool b);
tpl_val_t td_template__val_int(int64_t i);
tpl_val_t td_template__val_num(double n);
/* Takes ownership of s (heap, NUL-terminated at len). */
tpl_val_t td_template__val_str_take(char *s, size_t len);
tpl_val_t td_template__val_str_copy(const char *s, size_t len);
bool td_template__val_truthy(const tpl_val_t *v);
/* Undefined, null, "" or []. */
bool td_template__val_empty(const tpl_val_t *v);
/* Numbers, and strings that are a whole decimal number. */
bool td_template__val_to_num(const tpl_val_t *v, double *out);
/* Appends the printed form of a scalar (strings as is, numbers shortest,
 * booleans true/false, undefined and null nothing); false for containers. */
bool td_template__val_print(const tpl_val_t *v, td_buf_t *out);
bool td_template__val_equal(const tpl_val_t *a, const tpl_val_t *b);
/* -1, 0, 1; false when the two cannot be ordered. */
bool td_template__val_compare(const tpl_val_t *a, const tpl_val_t *b, int *cmp);
/* A JSON value with the same content (new reference). */
json_t *td_template__val_to_json(const tpl_val_t *v);

/* Appends s HTML-escaped the way Handlebars does: & < > " ' ` = */
void td_template__escape_html(td_buf_t *out, const char *s, size_t len);

#endif
