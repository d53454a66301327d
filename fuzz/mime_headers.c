/* libFuzzer target: MIME header encoding (RFC 2047 words, folding,
 * refusal of control characters and bad UTF-8) and quoted-printable, from
 * arbitrary subject, display name and body text. */
#include <stdint.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "message/message.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* the input is split at its first two NUL bytes: subject, name, text */
    char *copy = malloc(size + 3);
    td_buf_t msg = TD_BUF_INIT;
    td_err_t err = { 0 };

    memcpy(copy, data, size);
    copy[size] = copy[size + 1] = copy[size + 2] = '\0';
    char *subject = copy, *name = subject + strlen(subject) + 1;
    if (name > copy + size) {
        name = copy + size + 1;
    }
    char *text = name + strlen(name) + 1;
    if (text > copy + size) {
        text = copy + size + 2;
    }
    td_mime_message_t m = { .from_name = name,
                            .from_addr = "news@shop.example",
                            .to_addr = "jane@example.com",
                            .subject = subject,
                            .text = text,
                            .text_len = strlen(text),
                            .message_id = "tandem.1.email@shop.example",
                            .list_id = "l.shop.example",
                            .list_name = name };
    if (td_mime_build(&m, &msg, &err) == TD_OK) {
        /* every line ends in CRLF and stays within the hard limit */
        size_t col = 0;
        for (size_t i = 0; i < msg.len; i++) {
            if (msg.data[i] == '\n') {
                if (i == 0 || msg.data[i - 1] != '\r' || col > 999) {
                    __builtin_trap();
                }
                col = 0;
            } else {
                col++;
            }
        }
    }
    td_buf_release(&msg);
    free(copy);
    return 0;
}
