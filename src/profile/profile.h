/* Profiles: the identity graph (ECID <-> email <-> customer id) and the
 * state derived from events: cart, recently viewed, purchases, consent.
 *
 * td_profile_apply() is called by the ingest writer inside its transaction,
 * so an event and everything it changes commit together. */
#ifndef TD_PROFILE_H
#define TD_PROFILE_H

#include <stdint.h>

#include "collect/collect.h"
#include "store/store.h"
#include "util/err.h"

/* Identity namespaces as used in URLs and the store. */
#define TD_NS_ECID     "ecid"
#define TD_NS_EMAIL    "email"
#define TD_NS_CUSTOMER "customer"

/* Stores ev and applies it to its profile: resolves (and if needed creates
 * or merges) the profile from the event's identities, appends the event
 * with doc (its JSON document, from td_event_to_json()), and updates cart,
 * viewed, purchases and consent. Must run inside a store transaction.
 * Returns TD_ECONFLICT with *seq set when ev->event_id was stored before
 * (nothing changes then). */
int td_profile_apply(td_store_conn_t *c, const td_event_t *ev, const char *doc, int64_t received_ms,
                     int viewed_max, int64_t *profile_id, int64_t *seq) TD_MUST_CHECK;

/* True for a known identity namespace ("ecid", "email", "customer"). */
bool td_profile_ns_valid(const char *ns);

/* Loads the merged profile that identity ns/id belongs to; TD_ENOTFOUND when
 * the identity is unknown. Release out with td_store_profile_release(). */
int td_profile_lookup(td_store_conn_t *c, const char *ns, const char *id,
                      td_store_profile_t *out) TD_MUST_CHECK;

#endif
