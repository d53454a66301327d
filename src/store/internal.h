/* Shared by the store's files: the pool structs, and how a domain file
 * (catalog.c, journeys.c, ...) reaches its backend's operations. */
#ifndef TD_STORE_INTERNAL_H
#define TD_STORE_INTERNAL_H

#include <pthread.h>

#include "store/store.h"

struct td_store_conn {
    td_store_t *st;
    void *impl;     /* the backend's connection; NULL when it could not be opened */
    int savepoints; /* nesting depth, for savepoint names */
    td_store_conn_t *next_free;
};

struct td_store {
    const td_store_ops_t *ops;
    void *backend;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    td_store_conn_t *free_list;
    int n_open, max_open;
};

/* The operations table of domain d for c's backend (see td_store_ops_t's
 * domains[]), or NULL when the backend lacks that domain. */
static inline const void *td_store__domain(const td_store_conn_t *c, int d)
{
    return c->st->ops->domains[d];
}

#endif
