/* Replies shared by the endpoint files. */
#include "api/api.h"

#include <stdlib.h>

#include "util/banned.h"

void td_api__reply_doc(td_http_req_t *req, int status, json_t *doc)
{
    td_buf_t out = TD_BUF_INIT;
    char *text = json_dumps(doc, JSON_COMPACT | JSON_REAL_PRECISION(15));

    td_buf_adds(&out, text ? text : "{}");
    free(text);
    json_decref(doc);
    td_http_reply_json(req, status, &out);
    td_buf_release(&out);
}
