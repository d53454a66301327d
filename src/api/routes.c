/* The route table: every endpoint, its method, and who may call it. */
#include "api/api.h"

const td_http_route_t td_api_routes[] = {
    { "POST", "/v1/events", td_api_events_post, TD_ROUTE_CORS },
    { "GET", "/v1/profiles/{ns}/{id}", td_api_profiles_get, TD_ROUTE_ADMIN },
    { "GET", "/v1/admin/clock", td_api_clock_get, TD_ROUTE_ADMIN },
    { "POST", "/v1/admin/clock:advance", td_api_clock_advance, TD_ROUTE_ADMIN },
    { "GET", "/healthz", td_api_healthz, 0 },
    { "GET", "/metrics", td_api_metrics, 0 },
    { NULL, NULL, NULL, 0 },
};
