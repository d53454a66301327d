/* Time zones: fixed UTC offsets ("+02:00", "UTC"), POSIX TZ rules
 * ("CET-1CEST,M3.5.0,M10.5.0/3") and IANA names ("Europe/Paris") read from
 * the system's zoneinfo files (TZif, RFC 8536), including the POSIX rule at
 * a file's end that covers the years after its last listed transition.
 *
 * Offsets are seconds east of UTC at one instant: a named zone's offset
 * changes with daylight saving time, so always ask at the instant concerned.
 * Everything but the cache is pure. */
#ifndef TD_UTIL_TZ_H
#define TD_UTIL_TZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

/* A zone longer than this is refused without looking for a file. */
#define TD_TZ_NAME_MAX 64

/* "UTC", "Z", "GMT", "Etc/UTC", "+02:00", "-0530", "+2", "UTC+05:30": a
 * fixed offset that needs no file. False for anything else. */
bool td_tz_fixed_offset(const char *zone, int *offset_s);

/* The strict form of the message settings: "UTC", "Z", "+HH:MM" or
 * "UTC+HH:MM" (at most 14:00) -> minutes east of UTC; TD_EINVAL otherwise. */
int td_tz_offset_parse(const char *s, int *offset_min) TD_MUST_CHECK;

/* The offset of POSIX TZ rule tz at utc_s (seconds since the epoch).
 * TD_EINVAL when tz is not a rule. */
int td_tz_posix_offset(const char *tz, int64_t utc_s, int *offset_s) TD_MUST_CHECK;

/* The offset at utc_ms of the TZif data (len bytes, need not be trusted).
 * TD_EINVAL when the data is not TZif or is cut short. */
int td_tz_tzif_offset(const unsigned char *data, size_t len, int64_t utc_ms,
                      int *offset_s) TD_MUST_CHECK;

/* True for a name that may be looked up as a file under the zoneinfo
 * directory: 1 to TD_TZ_NAME_MAX of A-Z a-z 0-9 / _ - +, no leading '/',
 * no "..". */
bool td_tz_name_valid(const char *zone);

/* ---- the zone cache -------------------------------------------------------
 *
 * Reads each named zone's file once and keeps it until td_tz_cache_free.
 * Unknown names are remembered too (up to a bound, so a stream of made-up
 * names cannot grow it without end). Thread-safe. */
typedef struct td_tz_cache td_tz_cache_t;

/* zoneinfo_dir NULL: /usr/share/zoneinfo. Never fails. */
td_tz_cache_t *td_tz_cache_new(const char *zoneinfo_dir);
/* No lookup may be running. NULL is fine. */
void td_tz_cache_free(td_tz_cache_t *c);
/* The cache every module shares when it has none of its own, on
 * /usr/share/zoneinfo: made on first use, lives as long as the process. */
td_tz_cache_t *td_tz_cache_shared(void);

/* The offset of zone (a fixed offset, or an IANA name looked up in cache,
 * which is a td_tz_cache_t *; NULL answers fixed offsets only) at utc_ms.
 * TD_ENOTFOUND for an unknown or invalid zone. The signature of a journey
 * td_journey_tz_fn, so a cache can be handed to expression evaluation. */
int td_tz_cache_offset(void *cache, const char *zone, int64_t utc_ms, int *offset_s) TD_MUST_CHECK;

/* The instant (epoch ms) at which the wall clock of zone shows local_ms
 * (epoch ms of the local date and time, as if it were UTC). A local time
 * skipped by a change to summer time gives the change itself (the first
 * instant at or after it); one repeated by the change back gives the
 * first. TD_ENOTFOUND for an unknown zone. */
int td_tz_local_to_utc(void *cache, const char *zone, int64_t local_ms,
                       int64_t *utc_ms) TD_MUST_CHECK;

#endif
