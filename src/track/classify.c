/* Who fetched a tracking link: a person, a mail privacy or image proxy, or
 * a bot (link scanners of mail security gateways, link-preview fetchers,
 * scripts). Opens and clicks from proxies and bots are still recorded, but
 * flagged, so that reports and journeys can leave them out. Pure. */
#include "track/track.h"

#include <string.h>
#include <strings.h>

#include "util/banned.h"

/* Substrings (lower case) of User-Agents that are not a person's mail
 * client or browser. */
static const char *const bot_words[] = {
    "bot",
    "crawl",
    "spider",
    "slurp",
    "scan",
    "preview",
    "python",
    "curl/",
    "wget",
    "go-http-client",
    "java/",
    "okhttp",
    "libwww",
    "httpclient",
    "axios",
    "node-fetch",
    "headless",
    "phantomjs",
    "barracuda",
    "mimecast",
    "proofpoint",
    "symantec",
    "messagelabs",
    "trendmicro",
    "forcepoint",
    "sophos",
    "fortinet",
    "fortiguard",
    "ironport",
    "zscaler",
    "cloudmark",
    "safelinks",
    "facebookexternalhit",
    "whatsapp",
    "validator",
    "pingdom",
    "lighthouse",
};

const char *td_track_agent_name(td_track_agent_t a)
{
    switch (a) {
    case TD_TRACK_HUMAN:
        return "human";
    case TD_TRACK_PROXY:
        return "proxy";
    case TD_TRACK_BOT:
        return "bot";
    }
    return "unknown";
}

static td_track_agent_t said(td_track_agent_t a, const char *why, const char **reason)
{
    if (reason) {
        *reason = why;
    }
    return a;
}

td_track_agent_t td_track_classify(td_track_kind_t kind, const char *user_agent, int64_t issued_ms,
                                   int64_t now_ms, const char **reason)
{
    char ua[512];
    size_t n;

    if (kind == TD_TRACK_UNSUB) {
        /* RFC 8058 POSTs come from mail providers' servers by design */
        return said(TD_TRACK_HUMAN, "", reason);
    }
    if (user_agent == NULL || *user_agent == '\0') {
        return said(TD_TRACK_BOT, "no user agent", reason);
    }
    n = strnlen(user_agent, sizeof(ua) - 1);
    for (size_t i = 0; i < n; i++) {
        char c = user_agent[i];
        ua[i] = c >= 'A' && c <= 'Z' ? (char)(c + 32) : c;
    }
    ua[n] = '\0';
    if (strstr(ua, "googleimageproxy")) {
        return said(TD_TRACK_PROXY, "gmail image proxy", reason);
    }
    if (strstr(ua, "yahoomailproxy")) {
        return said(TD_TRACK_PROXY, "yahoo mail proxy", reason);
    }
    /* Apple Mail Privacy Protection prefetches images through Apple's
     * proxies with this bare User-Agent, whether or not the mail is read */
    if (strcmp(ua, "mozilla/5.0") == 0) {
        return said(TD_TRACK_PROXY, "apple mail privacy protection", reason);
    }
    for (size_t i = 0; i < TD_ARRAY_LEN(bot_words); i++) {
        if (strstr(ua, bot_words[i])) {
            return said(TD_TRACK_BOT, "scanner or bot user agent", reason);
        }
    }
    if (now_ms >= issued_ms && now_ms - issued_ms < TD_TRACK_SCANNER_MS) {
        return said(TD_TRACK_BOT, "within seconds of sending", reason);
    }
    return said(TD_TRACK_HUMAN, "", reason);
}
