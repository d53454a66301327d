/* The application clock: real time, or a virtual time that only moves when
 * told to (tests and demos run "wait 3 hours" in milliseconds). Everything
 * time-based reads td_clock_now_ms(); nothing else calls time(2).
 *
 * A clock is shared between threads: reads and advances are atomic. Making a
 * virtual time durable is the caller's job (the store keeps it). */
#ifndef TD_UTIL_CLOCK_H
#define TD_UTIL_CLOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

typedef struct td_clock {
    bool is_virtual;
    _Atomic int64_t virtual_ms; /* only when is_virtual */
} td_clock_t;

void td_clock_init_real(td_clock_t *c);
void td_clock_init_virtual(td_clock_t *c, int64_t start_ms);
int64_t td_clock_now_ms(const td_clock_t *c);
/* Moves a virtual clock forward by delta_ms (>= 0) and returns the new time;
 * returns TD_EINVAL for a real clock or a negative delta. */
int td_clock_advance(td_clock_t *c, int64_t delta_ms, int64_t *now_ms) TD_MUST_CHECK;
/* Wall-clock milliseconds, for latency measurements and logs only. */
int64_t td_wall_ms(void);
/* Monotonic microseconds, for measuring durations. */
int64_t td_mono_us(void);

/* Parses RFC 3339 / ISO 8601 ("2026-11-28T10:00:00Z", fractional seconds and
 * "+01:00" offsets allowed) into epoch milliseconds. */
int td_time_parse_iso(const char *s, int64_t *ms) TD_MUST_CHECK;
/* Formats epoch milliseconds as "2026-11-28T10:00:00.000Z"; out needs 25 bytes. */
void td_time_format_iso(int64_t ms, char *out, size_t out_len);

#endif
