/* Process metrics in the Prometheus text format: counters and latency
 * histograms keyed by name and a label string ("route=\"/v1/events\""...).
 * Thread-safe; cheap enough for every request. */
#ifndef TD_UTIL_METRICS_H
#define TD_UTIL_METRICS_H

#include <stdint.h>

#include "util/buf.h"

/* Declares a metric's help text and type ("counter" or "histogram") for the
 * exposition; metrics used without a declaration are untyped. */
void td_metrics_describe(const char *name, const char *type, const char *help);
/* Adds by to the counter name{labels}; labels may be "" (no labels). */
void td_metrics_add(const char *name, const char *labels, int64_t by);
/* Records one observation, in seconds, in histogram name{labels}. */
void td_metrics_observe(const char *name, const char *labels, double seconds);
/* Current value of a counter (0 when never touched). */
int64_t td_metrics_get(const char *name, const char *labels);
/* Appends the exposition of every metric to out. */
void td_metrics_render(td_buf_t *out);

#endif
