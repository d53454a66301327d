/* The demo mail catcher over a real TCP socket: a whole SMTP session with
 * two recipients and a dot-stuffed line, the files it leaves (<n>.eml,
 * <n>.json), numbering across messages and restarts, RSET, bad sequences,
 * over-long lines, SIZE, the connection cap, and a prompt stop with a client
 * still connected. */
#include "test.h"

#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "demo/demo.h"
#include "util/log.h"

typedef struct client {
    int fd;
    char buf[65536];
    size_t len;
} client_t;

static char tmp_dir[256];

static int setup(void **state)
{
    const char *base = getenv("TMPDIR");

    (void)state;
    snprintf(tmp_dir, sizeof(tmp_dir), "%s/td-catcher-XXXXXX", base && *base ? base : "/tmp");
    assert_non_null(mkdtemp(tmp_dir));
    td_log_level = TD_LOG_WARN; /* keep the test output readable */
    return 0;
}

static int teardown(void **state)
{
    DIR *d = opendir(tmp_dir);
    struct dirent *de;
    char path[512];

    (void)state;
    while (d && (de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
            snprintf(path, sizeof(path), "%s/%s", tmp_dir, de->d_name);
            unlink(path);
        }
    }
    if (d) {
        closedir(d);
    }
    rmdir(tmp_dir);
    return 0;
}

static td_demo_catcher_t *start(void)
{
    td_demo_catcher_t *c = NULL;
    td_err_t err = { 0 };

    assert_int_equal(td_demo_catcher_start("127.0.0.1:0", tmp_dir, &c, &err), TD_OK);
    assert_non_null(c);
    assert_true(td_demo_catcher_port(c) > 0);
    return c;
}

static void client_connect(client_t *cl, td_demo_catcher_t *c)
{
    struct sockaddr_in sa = { .sin_family = AF_INET };
    struct timeval tv = { .tv_sec = 10 };

    cl->len = 0;
    sa.sin_port = htons((uint16_t)td_demo_catcher_port(c));
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cl->fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(cl->fd >= 0);
    setsockopt(cl->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    assert_int_equal(connect(cl->fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
}

static void client_send(client_t *cl, const char *s)
{
    size_t len = strlen(s);

    while (len > 0) {
        ssize_t n = send(cl->fd, s, len, MSG_NOSIGNAL);
        assert_true(n > 0);
        s += n;
        len -= (size_t)n;
    }
}

/* One whole reply (all its lines); returns the code, or -1 on EOF. The
 * reply's text, lines joined by CRLF, goes to text if given. */
static int client_reply(client_t *cl, char *text, size_t text_len)
{
    size_t used = 0;

    if (text) {
        text[0] = '\0';
    }
    for (;;) {
        char *nl;
        while ((nl = memchr(cl->buf, '\n', cl->len)) != NULL) {
            size_t n = (size_t)(nl - cl->buf) + 1;
            char line[1024];
            snprintf(line, sizeof(line), "%.*s", (int)n, cl->buf);
            memmove(cl->buf, cl->buf + n, cl->len - n);
            cl->len -= n;
            assert_true(n >= 5);
            assert_memory_equal(line + n - 2, "\r\n", 2);
            if (text && used < text_len) {
                used += (size_t)snprintf(text + used, text_len - used, "%s%.*s", used ? "\r\n" : "",
                                         (int)(n - 2), line);
            }
            if (line[3] == ' ') {
                return (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
            }
            assert_int_equal(line[3], '-');
        }
        ssize_t r = recv(cl->fd, cl->buf + cl->len, sizeof(cl->buf) - cl->len, 0);
        if (r <= 0) {
            return -1;
        }
        cl->len += (size_t)r;
    }
}

static int cmd(client_t *cl, const char *line)
{
    client_send(cl, line);
    return client_reply(cl, NULL, 0);
}

static char *read_file(const char *name)
{
    char path[512];
    FILE *f;
    long n;

    snprintf(path, sizeof(path), "%s/%s", tmp_dir, name);
    if ((f = fopen(path, "rb")) == NULL) {
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    assert_int_equal(fread(s, 1, (size_t)n, f), (size_t)n);
    s[n] = '\0';
    fclose(f);
    return s;
}

static bool file_exists(const char *name)
{
    char path[512];
    struct stat st;

    snprintf(path, sizeof(path), "%s/%s", tmp_dir, name);
    return stat(path, &st) == 0;
}

static int count_files(void)
{
    DIR *d = opendir(tmp_dir);
    struct dirent *de;
    int n = 0;

    while ((de = readdir(d)) != NULL) {
        n += de->d_name[0] != '.';
    }
    closedir(d);
    return n;
}

static const char message[] = "From: Shop <shop@example.com>\r\n"
                              "To: a@example.org, b@example.org\r\n"
                              "Subject: Your cart\r\n"
                              "\r\n"
                              "Hello,\r\n"
                              "..hidden\r\n"
                              ".\r\n";

static void send_one(client_t *cl, const char *from, const char *queued_as)
{
    char text[256];

    assert_int_equal(cmd(cl, from), 250);
    assert_int_equal(cmd(cl, "RCPT TO:<a@example.org>\r\n"), 250);
    assert_int_equal(cmd(cl, "DATA\r\n"), 354);
    client_send(cl, message);
    assert_int_equal(client_reply(cl, text, sizeof(text)), 250);
    assert_string_equal(text, queued_as);
}

static void test_full_session(void **state)
{
    td_demo_catcher_t *c = start();
    client_t cl;
    char text[256];

    (void)state;
    client_connect(&cl, c);
    assert_int_equal(client_reply(&cl, text, sizeof(text)), 220);
    client_send(&cl, "EHLO client.example\r\n");
    /* every extension we promise, and none we do not keep */
    char ehlo[2048];
    assert_int_equal(client_reply(&cl, ehlo, sizeof(ehlo)), 250);
    snprintf(ehlo + strlen(ehlo), sizeof(ehlo) - strlen(ehlo), "\r\n");
    assert_non_null(strstr(ehlo, "250-8BITMIME\r\n"));
    assert_non_null(strstr(ehlo, "SIZE 20971520\r\n"));
    assert_non_null(strstr(ehlo, "PIPELINING\r\n"));
    assert_non_null(strstr(ehlo, "SMTPUTF8\r\n"));
    assert_null(strstr(ehlo, "STARTTLS"));
    assert_null(strstr(ehlo, "AUTH"));

    assert_int_equal(cmd(&cl, "MAIL FROM:<shop@example.com> SIZE=200 BODY=8BITMIME\r\n"), 250);
    assert_int_equal(cmd(&cl, "RCPT TO:<a@example.org>\r\n"), 250);
    assert_int_equal(cmd(&cl, "rcpt to:<b@example.org>\r\n"), 250);
    assert_int_equal(cmd(&cl, "DATA\r\n"), 354);
    client_send(&cl, message);
    assert_int_equal(client_reply(&cl, text, sizeof(text)), 250);
    assert_string_equal(text, "250 2.0.0 Ok: queued as 1");

    /* on disk before the reply: the trace, then the message, unstuffed */
    char *eml = read_file("1.eml");
    assert_non_null(eml);
    static const char trace[] = "Return-Path: <shop@example.com>\r\nReceived: from client.example ";
    assert_memory_equal(eml, trace, sizeof(trace) - 1);
    const char *body = strstr(eml, "From: Shop <shop@example.com>\r\n");
    assert_non_null(body);
    assert_string_equal(body, "From: Shop <shop@example.com>\r\n"
                              "To: a@example.org, b@example.org\r\n"
                              "Subject: Your cart\r\n"
                              "\r\n"
                              "Hello,\r\n"
                              ".hidden\r\n");
    free(eml);
    char *json = read_file("1.json");
    assert_non_null(json);
    static const char envelope[] = "{\"from\": \"shop@example.com\", \"to\": [\"a@example.org\", "
                                   "\"b@example.org\"], \"received_ms\": ";
    assert_memory_equal(json, envelope, sizeof(envelope) - 1);
    char *end;
    long long ms = strtoll(json + sizeof(envelope) - 1, &end, 10);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    assert_true(ms > (long long)now.tv_sec * 1000 - 60000 &&
                ms <= (long long)now.tv_sec * 1000 + 1000);
    assert_string_equal(end, "}\n");
    free(json);

    /* a second message on the same connection is number 2, with one recipient */
    send_one(&cl, "MAIL FROM:<>\r\n", "250 2.0.0 Ok: queued as 2");
    json = read_file("2.json");
    assert_non_null(json);
    assert_non_null(strstr(json, "\"from\": \"\", \"to\": [\"a@example.org\"]"));
    free(json);
    assert_false(file_exists("3.eml"));
    assert_int_equal(count_files(), 4); /* no temporary files left behind */

    assert_int_equal(cmd(&cl, "NOOP\r\n"), 250);
    assert_int_equal(cmd(&cl, "VRFY someone\r\n"), 252);
    assert_int_equal(cmd(&cl, "QUIT\r\n"), 221);
    assert_int_equal(client_reply(&cl, NULL, 0), -1); /* and the server hangs up */
    close(cl.fd);
    td_demo_catcher_stop(c);
}

static void test_rset_and_sequence(void **state)
{
    td_demo_catcher_t *c = start();
    client_t cl;

    (void)state;
    client_connect(&cl, c);
    assert_int_equal(client_reply(&cl, NULL, 0), 220);
    assert_int_equal(cmd(&cl, "MAIL FROM:<x@example.com>\r\n"), 503); /* no EHLO yet */
    assert_int_equal(cmd(&cl, "HELO client\r\n"), 250);
    assert_int_equal(cmd(&cl, "DATA\r\n"), 503);                    /* no MAIL */
    assert_int_equal(cmd(&cl, "RCPT TO:<a@example.org>\r\n"), 503); /* no MAIL */
    assert_int_equal(cmd(&cl, "MAIL FROM:<x@example.com>\r\n"), 250);
    assert_int_equal(cmd(&cl, "MAIL FROM:<x@example.com>\r\n"), 503); /* nested */
    assert_int_equal(cmd(&cl, "DATA\r\n"), 503);                      /* no RCPT */
    assert_int_equal(cmd(&cl, "RCPT TO:<a@example.org>\r\n"), 250);
    assert_int_equal(cmd(&cl, "RSET\r\n"), 250);
    assert_int_equal(cmd(&cl, "DATA\r\n"), 503); /* RSET dropped the transaction */
    assert_int_equal(cmd(&cl, "RCPT TO:<a@example.org>\r\n"), 503);
    /* syntax and unknown commands */
    assert_int_equal(cmd(&cl, "MAIL FROM:x@example.com\r\n"), 501);
    assert_int_equal(cmd(&cl, "MAIL FROM:<x@example.com> FROBNICATE=1\r\n"), 555);
    assert_int_equal(cmd(&cl, "MAIL FROM:<x@example.com> SIZE=20971521\r\n"), 552);
    assert_int_equal(cmd(&cl, "STARTTLS\r\n"), 502);
    assert_int_equal(cmd(&cl, "AUTH PLAIN AGZvbwBiYXI=\r\n"), 502);
    assert_int_equal(cmd(&cl, "WHATEVER\r\n"), 500);
    assert_int_equal(cmd(&cl, "EHLO\r\n"), 501);
    /* after all that, a message still goes through, and is number 1 */
    send_one(&cl, "MAIL FROM:<x@example.com>\r\n", "250 2.0.0 Ok: queued as 1");
    close(cl.fd);
    td_demo_catcher_stop(c);
}

static void test_long_lines(void **state)
{
    td_demo_catcher_t *c = start();
    client_t cl;
    char line[3000];

    (void)state;
    client_connect(&cl, c);
    assert_int_equal(client_reply(&cl, NULL, 0), 220);
    assert_int_equal(cmd(&cl, "EHLO client\r\n"), 250);
    /* 998 characters and CRLF are allowed (RFC 5321 4.5.3.1.6)... */
    memcpy(line, "NOOP ", 5);
    memset(line + 5, 'a', 993);
    memcpy(line + 998, "\r\n", 3);
    assert_int_equal(cmd(&cl, line), 250);
    /* ... one more is not, and the session goes on after it */
    memset(line, 'A', 2500);
    memcpy(line + 2500, "\r\n", 3);
    assert_int_equal(cmd(&cl, line), 500);
    assert_int_equal(cmd(&cl, "NOOP\r\n"), 250);
    /* inside DATA: the message is refused, nothing is stored */
    assert_int_equal(cmd(&cl, "MAIL FROM:<x@example.com>\r\n"), 250);
    assert_int_equal(cmd(&cl, "RCPT TO:<a@example.org>\r\n"), 250);
    assert_int_equal(cmd(&cl, "DATA\r\n"), 354);
    client_send(&cl, "Subject: long\r\n\r\n");
    client_send(&cl, line);
    client_send(&cl, ".\r\n");
    assert_int_equal(client_reply(&cl, NULL, 0), 500);
    assert_int_equal(count_files(), 0);
    /* and the next one is fine */
    send_one(&cl, "MAIL FROM:<x@example.com>\r\n", "250 2.0.0 Ok: queued as 1");
    close(cl.fd);
    td_demo_catcher_stop(c);
}

/* Over the advertised SIZE in DATA itself (a client that sent no SIZE=):
 * 552 at the end, nothing kept, the session goes on. */
static void test_too_big(void **state)
{
    td_demo_catcher_t *c = start();
    client_t cl;
    char line[1001];

    (void)state;
    client_connect(&cl, c);
    assert_int_equal(client_reply(&cl, NULL, 0), 220);
    assert_int_equal(cmd(&cl, "EHLO c\r\n"), 250);
    assert_int_equal(cmd(&cl, "MAIL FROM:<x@example.com>\r\n"), 250);
    assert_int_equal(cmd(&cl, "RCPT TO:<a@example.org>\r\n"), 250);
    assert_int_equal(cmd(&cl, "DATA\r\n"), 354);
    memset(line, 'z', 998);
    memcpy(line + 998, "\r\n", 3);
    for (int i = 0; i < 21000; i++) { /* 21 MB, over 20971520 */
        client_send(&cl, line);
    }
    client_send(&cl, ".\r\n");
    assert_int_equal(client_reply(&cl, NULL, 0), 552);
    assert_int_equal(count_files(), 0);
    send_one(&cl, "MAIL FROM:<x@example.com>\r\n", "250 2.0.0 Ok: queued as 1");
    close(cl.fd);
    td_demo_catcher_stop(c);
}

static void test_pipelining(void **state)
{
    td_demo_catcher_t *c = start();
    client_t cl;
    char text[256];

    (void)state;
    client_connect(&cl, c);
    assert_int_equal(client_reply(&cl, NULL, 0), 220);
    /* everything in one write, as a PIPELINING client may (RFC 2920) */
    client_send(&cl, "EHLO c\r\nMAIL FROM:<p@example.com>\r\nRCPT TO:<a@example.org>\r\n"
                     "RCPT TO:<b@example.org>\r\nDATA\r\n");
    assert_int_equal(client_reply(&cl, NULL, 0), 250);
    assert_int_equal(client_reply(&cl, NULL, 0), 250);
    assert_int_equal(client_reply(&cl, NULL, 0), 250);
    assert_int_equal(client_reply(&cl, NULL, 0), 250);
    assert_int_equal(client_reply(&cl, NULL, 0), 354);
    client_send(&cl, "Subject: p\r\n\r\nbody\r\n.\r\nQUIT\r\n");
    assert_int_equal(client_reply(&cl, text, sizeof(text)), 250);
    assert_string_equal(text, "250 2.0.0 Ok: queued as 1");
    assert_int_equal(client_reply(&cl, NULL, 0), 221);
    close(cl.fd);
    td_demo_catcher_stop(c);
}

static void test_too_many_recipients(void **state)
{
    td_demo_catcher_t *c = start();
    client_t cl;
    char rcpt[64];

    (void)state;
    client_connect(&cl, c);
    assert_int_equal(client_reply(&cl, NULL, 0), 220);
    assert_int_equal(cmd(&cl, "EHLO c\r\n"), 250);
    assert_int_equal(cmd(&cl, "MAIL FROM:<x@example.com>\r\n"), 250);
    for (int i = 0; i < 100; i++) {
        snprintf(rcpt, sizeof(rcpt), "RCPT TO:<r%d@example.org>\r\n", i);
        assert_int_equal(cmd(&cl, rcpt), 250);
    }
    assert_int_equal(cmd(&cl, "RCPT TO:<one-too-many@example.org>\r\n"), 452);
    close(cl.fd);
    td_demo_catcher_stop(c);
}

static void test_restart_continues_numbering(void **state)
{
    td_demo_catcher_t *c = start();
    client_t cl;

    (void)state;
    client_connect(&cl, c);
    assert_int_equal(client_reply(&cl, NULL, 0), 220);
    assert_int_equal(cmd(&cl, "EHLO c\r\n"), 250);
    send_one(&cl, "MAIL FROM:<x@example.com>\r\n", "250 2.0.0 Ok: queued as 1");
    send_one(&cl, "MAIL FROM:<x@example.com>\r\n", "250 2.0.0 Ok: queued as 2");
    close(cl.fd);
    td_demo_catcher_stop(c);

    /* a gap and a stray file the catcher did not write */
    char path[512];
    snprintf(path, sizeof(path), "%s/7.json", tmp_dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("{}", f);
    fclose(f);
    snprintf(path, sizeof(path), "%s/notes.txt", tmp_dir);
    f = fopen(path, "w");
    fclose(f);

    c = start();
    client_connect(&cl, c);
    assert_int_equal(client_reply(&cl, NULL, 0), 220);
    assert_int_equal(cmd(&cl, "EHLO c\r\n"), 250);
    send_one(&cl, "MAIL FROM:<x@example.com>\r\n", "250 2.0.0 Ok: queued as 8");
    /* a file that appears while running (another writer) is skipped, never
     * replaced */
    snprintf(path, sizeof(path), "%s/9.eml", tmp_dir);
    f = fopen(path, "w");
    fputs("theirs", f);
    fclose(f);
    send_one(&cl, "MAIL FROM:<x@example.com>\r\n", "250 2.0.0 Ok: queued as 10");
    char *theirs = read_file("9.eml");
    assert_string_equal(theirs, "theirs");
    free(theirs);
    assert_false(file_exists("9.json"));
    assert_true(file_exists("10.json"));
    close(cl.fd);
    td_demo_catcher_stop(c);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void test_stop_with_client_connected(void **state)
{
    td_demo_catcher_t *c = start();
    client_t idle, mid_data;

    (void)state;
    client_connect(&idle, c);
    assert_int_equal(client_reply(&idle, NULL, 0), 220);
    client_connect(&mid_data, c);
    assert_int_equal(client_reply(&mid_data, NULL, 0), 220);
    assert_int_equal(cmd(&mid_data, "EHLO c\r\n"), 250);
    assert_int_equal(cmd(&mid_data, "MAIL FROM:<x@example.com>\r\n"), 250);
    assert_int_equal(cmd(&mid_data, "RCPT TO:<a@example.org>\r\n"), 250);
    assert_int_equal(cmd(&mid_data, "DATA\r\n"), 354);
    client_send(&mid_data, "Subject: cut short\r\n\r\nhalf a mess");

    int64_t t0 = now_ms();
    td_demo_catcher_stop(c);
    assert_true(now_ms() - t0 < 2000); /* not the 60 s idle timeout */
    /* both clients see the connection end; the cut message is not kept */
    assert_int_equal(client_reply(&idle, NULL, 0), -1);
    assert_int_equal(client_reply(&mid_data, NULL, 0), -1);
    assert_int_equal(count_files(), 0);
    close(idle.fd);
    close(mid_data.fd);
}

static void test_connection_cap(void **state)
{
    td_demo_catcher_t *c = start();
    client_t *cl = calloc(17, sizeof(client_t));
    char text[256];

    (void)state;
    for (int i = 0; i < 16; i++) {
        client_connect(&cl[i], c);
        assert_int_equal(client_reply(&cl[i], NULL, 0), 220);
    }
    client_connect(&cl[16], c);
    assert_int_equal(client_reply(&cl[16], text, sizeof(text)), 421);
    assert_int_equal(client_reply(&cl[16], NULL, 0), -1);
    close(cl[16].fd);
    /* once one leaves, there is room again */
    assert_int_equal(cmd(&cl[0], "QUIT\r\n"), 221);
    assert_int_equal(client_reply(&cl[0], NULL, 0), -1);
    close(cl[0].fd);
    client_connect(&cl[16], c);
    assert_int_equal(client_reply(&cl[16], NULL, 0), 220);
    for (int i = 1; i < 17; i++) {
        close(cl[i].fd);
    }
    free(cl);
    td_demo_catcher_stop(c);
}

static void test_bad_listen(void **state)
{
    td_demo_catcher_t *c = (td_demo_catcher_t *)1;
    td_err_t err = { 0 };

    (void)state;
    assert_int_equal(td_demo_catcher_start("no-port", tmp_dir, &c, &err), TD_EINVAL);
    assert_null(c);
    assert_int_equal(td_demo_catcher_start("127.0.0.1:notaport", tmp_dir, &c, &err), TD_EINVAL);
    /* a port already taken */
    td_demo_catcher_t *first = start();
    char taken[64];
    snprintf(taken, sizeof(taken), "127.0.0.1:%d", td_demo_catcher_port(first));
    assert_int_equal(td_demo_catcher_start(taken, tmp_dir, &c, &err), TD_EIO);
    assert_null(c);
    td_demo_catcher_stop(first);
    td_demo_catcher_stop(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_full_session, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rset_and_sequence, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_lines, setup, teardown),
        cmocka_unit_test_setup_teardown(test_too_big, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pipelining, setup, teardown),
        cmocka_unit_test_setup_teardown(test_too_many_recipients, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart_continues_numbering, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_with_client_connected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connection_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_listen, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
