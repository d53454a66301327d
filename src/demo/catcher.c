/* The demo's mail catcher: a small SMTP server (the RFC 5321 subset any
 * client needs) that keeps every message as a file in a directory instead of
 * relaying it, so no demo email leaves the machine. A listener thread and a
 * thread per connection, at most CONN_MAX of them. Not a mail server: no
 * AUTH, no STARTTLS (our client's smtp_tls "try" goes on in clear text),
 * no relaying, no queue. */
#include "demo/demo.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <dirent.h>

#include "util/clock.h"
#include "util/log.h"
#include "util/banned.h"

#define CONN_MAX     16
#define RCPT_MAX     100      /* RFC 5321 4.5.3.1.8: at least 100 must be taken */
#define SIZE_MAX_MSG 20971520 /* advertised as SIZE; over it is 552 */
#define LINE_MAX_LEN 1000     /* RFC 5321 4.5.3.1.6: text line, CRLF included */
#define IDLE_S       60       /* a silent client is dropped after this */
#define ERRORS_MAX   20       /* bad commands before we hang up */
#define HOSTNAME     "tandem-demo"

typedef enum { SLOT_FREE, SLOT_RUNNING, SLOT_DONE } slot_state_t;

typedef struct slot {
    struct td_demo_catcher *c;
    pthread_t thread;
    slot_state_t state;
    int fd; /* -1 once the connection thread closed it */
    char peer[64];
} slot_t;

struct td_demo_catcher {
    int lfd;
    int wake[2]; /* a byte on wake[1] tells the listener to stop */
    int port;
    char *dir;
    pthread_t listener;
    pthread_mutex_t mu; /* guards slots and next_num */
    slot_t slots[CONN_MAX];
    long next_num;
};

/* One connection's state: the read buffer and the transaction. */
typedef struct session {
    slot_t *slot;
    int fd;
    char in[8192];
    size_t in_len, in_off;
    bool eof;
    bool greeted;
    char *helo;
    char *from; /* NULL until MAIL */
    char **rcpt;
    int n_rcpt;
    int errors;
} session_t;

/* ---- the directory --------------------------------------------------------- */

static int make_dirs(const char *dir, td_err_t *err)
{
    char path[4096];
    size_t len = strlen(dir);

    if (len == 0 || len >= sizeof(path)) {
        return td_err_set(err, TD_EINVAL, "demo_mailbox", "mailbox directory \"%s\" is not usable",
                          dir);
    }
    memcpy(path, dir, len + 1);
    for (char *p = path + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char saved = *p;
            *p = '\0';
            if (mkdir(path, 0755) != 0 && errno != EEXIST) {
                return td_err_set(err, TD_EIO, "demo_mailbox", "mkdir \"%s\": %s", path,
                                  strerror(errno));
            }
            *p = saved;
            if (saved == '\0') {
                break;
            }
        }
    }
    return TD_OK;
}

/* The highest <n>.eml or <n>.json in dir, 0 if none. */
static long highest_number(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    long max = 0;

    if (d == NULL) {
        return 0;
    }
    while ((de = readdir(d)) != NULL) {
        char *end;
        if (de->d_name[0] < '0' || de->d_name[0] > '9') {
            continue;
        }
        errno = 0;
        long v = strtol(de->d_name, &end, 10);
        if (errno == 0 && v > max && (strcmp(end, ".eml") == 0 || strcmp(end, ".json") == 0)) {
            max = v;
        }
    }
    closedir(d);
    return max;
}

/* Writes head then body to dir/name through a temporary file, fsync and
 * link, so the mailbox page never reads half a file and an existing file is
 * never replaced (TD_ECONFLICT: another catcher on the same directory took
 * the number). The temporary name starts with a dot: not a number, never
 * listed. */
static int write_new_file(const char *dir, const char *name, const td_buf_t *head,
                          const td_buf_t *body)
{
    const td_buf_t *parts[2] = { head, body };
    char tmp[4200], path[4200];
    int fd, rc = TD_EIO;

    snprintf(tmp, sizeof(tmp), "%s/.tmp-%ld-%s", dir, (long)getpid(), name);
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) < 0) {
        td_log(TD_LOG_ERROR, "demo", "open path=%s error=\"%s\"", tmp, strerror(errno));
        return TD_EIO;
    }
    for (int i = 0; i < 2; i++) {
        for (size_t off = 0; parts[i] && off < parts[i]->len;) {
            ssize_t n = write(fd, parts[i]->data + off, parts[i]->len - off);
            if (n < 0 && errno == EINTR) {
                continue;
            }
            if (n <= 0) {
                td_log(TD_LOG_ERROR, "demo", "write path=%s error=\"%s\"", tmp, strerror(errno));
                goto out;
            }
            off += (size_t)n;
        }
    }
    if (fsync(fd) != 0) {
        td_log(TD_LOG_ERROR, "demo", "fsync path=%s error=\"%s\"", tmp, strerror(errno));
        goto out;
    }
    if (link(tmp, path) != 0) {
        struct stat st;
        if (errno == EEXIST) {
            rc = TD_ECONFLICT;
            goto out;
        }
        /* a file system without hard links: rename, checking first */
        if (stat(path, &st) == 0) {
            rc = TD_ECONFLICT;
            goto out;
        }
        if (rename(tmp, path) != 0) {
            td_log(TD_LOG_ERROR, "demo", "rename path=%s error=\"%s\"", path, strerror(errno));
            goto out;
        }
    }
    rc = TD_OK;
out:
    close(fd);
    unlink(tmp);
    return rc;
}

static void sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

    if (fd >= 0) {
        (void)fsync(fd); /* the new names survive a crash; best effort */
        close(fd);
    }
}

/* ---- the connection ---------------------------------------------------------- */

static void send_all(session_t *s, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = send(s->fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            s->eof = true; /* the client is gone or stuck: stop talking */
            return;
        }
        p += n;
        len -= (size_t)n;
    }
}

static void reply(session_t *s, const char *text)
{
    char line[600];
    int n = snprintf(line, sizeof(line), "%s\r\n", text);

    send_all(s, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
}

typedef enum { LINE_OK, LINE_LONG, LINE_EOF } line_rc_t;

/* The next line into line and len, terminator included. A line over
 * LINE_MAX_LEN is read to its end and thrown away (LINE_LONG). */
static line_rc_t read_line(session_t *s, const char **line, size_t *len)
{
    bool too_long = false;

    for (;;) {
        char *start = s->in + s->in_off;
        size_t avail = s->in_len - s->in_off;
        char *nl = memchr(start, '\n', avail);
        if (nl) {
            size_t n = (size_t)(nl - start) + 1;
            s->in_off += n;
            if (too_long || n > LINE_MAX_LEN) {
                return LINE_LONG;
            }
            *line = start;
            *len = n;
            return LINE_OK;
        }
        if (avail >= LINE_MAX_LEN) {
            too_long = true; /* keep reading to the end of the line */
            s->in_off = s->in_len = 0;
        } else if (s->in_off > 0) {
            memmove(s->in, start, avail);
            s->in_off = 0;
            s->in_len = avail;
        }
        if (s->eof) {
            return LINE_EOF;
        }
        ssize_t n = recv(s->fd, s->in + s->in_len, sizeof(s->in) - s->in_len, 0);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            reply(s, "421 4.4.2 " HOSTNAME " idle too long, closing connection");
            s->eof = true;
            return LINE_EOF;
        }
        if (n <= 0) {
            s->eof = true;
            return LINE_EOF;
        }
        s->in_len += (size_t)n;
    }
}

static void reset_transaction(session_t *s)
{
    free(s->from);
    s->from = NULL;
    for (int i = 0; i < s->n_rcpt; i++) {
        free(s->rcpt[i]);
    }
    s->n_rcpt = 0;
}

/* True for text that may go into a header line as it is. */
static bool is_clean(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c < 0x20 || c == 0x7f) {
            return false;
        }
    }
    return true;
}

/* Parses "<path>" at p (spaces before it tolerated, as many clients send
 * them) into *addr; returns a pointer after '>' or NULL. */
static const char *parse_path(const char *p, char **addr)
{
    while (*p == ' ') {
        p++;
    }
    if (*p != '<') {
        return NULL;
    }
    const char *end = strchr(p + 1, '>');
    if (end == NULL || !is_clean(p + 1, (size_t)(end - p - 1)) || end - p - 1 > 320) {
        return NULL;
    }
    *addr = td_xstrndup(p + 1, (size_t)(end - p - 1));
    return end + 1;
}

/* MAIL parameters (RFC 5321 4.1.2, esmtp-param): the ones our EHLO offers. */
static const char *check_mail_params(const char *p)
{
    while (*p) {
        while (*p == ' ') {
            p++;
        }
        if (*p == '\0') {
            break;
        }
        size_t n = strcspn(p, " ");
        if (n > 5 && strncasecmp(p, "SIZE=", 5) == 0) {
            char *end;
            errno = 0;
            unsigned long long v = strtoull(p + 5, &end, 10);
            if (end != p + n || errno != 0) {
                return "501 5.5.4 Bad SIZE parameter";
            }
            if (v > SIZE_MAX_MSG) {
                return "552 5.3.4 Message size exceeds fixed maximum message size";
            }
        } else if (n > 5 && strncasecmp(p, "BODY=", 5) == 0) {
            if (!((n == 9 && strncasecmp(p + 5, "7BIT", 4) == 0) ||
                  (n == 13 && strncasecmp(p + 5, "8BITMIME", 8) == 0))) {
                return "501 5.5.4 Bad BODY parameter";
            }
        } else if (!(n == 8 && strncasecmp(p, "SMTPUTF8", 8) == 0)) {
            return "555 5.5.4 Unsupported MAIL parameter";
        }
        p += n;
    }
    return NULL;
}

static bool command_is(const char *cmd, size_t cmd_len, const char *name)
{
    return cmd_len == strlen(name) && strncasecmp(cmd, name, cmd_len) == 0;
}

static void add_header_date(td_buf_t *b, int64_t ms)
{
    static const char *days[] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
    static const char *months[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                    "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
    time_t t = (time_t)(ms / 1000);
    struct tm tm;

    gmtime_r(&t, &tm);
    /* RFC 5322 3.3 date-time, spelled out: strftime's names follow the locale */
    td_buf_addf(b, "%s, %02d %s %04d %02d:%02d:%02d +0000", days[tm.tm_wday], tm.tm_mday,
                months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* The trace a relay adds (RFC 5321 4.4); "for" only names a single
 * recipient, as relays do. */
static void add_trace(td_buf_t *b, const session_t *s, long num, int64_t now_ms)
{
    td_buf_addf(
        b, "Return-Path: <%s>\r\nReceived: from %s ([%s])\r\n\tby " HOSTNAME " with ESMTP id %ld",
        s->from, s->helo ? s->helo : "unknown", s->slot->peer, num);
    if (s->n_rcpt == 1) {
        td_buf_addf(b, "\r\n\tfor <%s>", s->rcpt[0]);
    }
    td_buf_adds(b, "; ");
    add_header_date(b, now_ms);
    td_buf_adds(b, "\r\n");
}

/* Keeps the message as <n>.json then <n>.eml: the page lists .eml files, so
 * once one is there its envelope is too. Returns the number, or -1. */
static long store_message(session_t *s, const td_buf_t *body)
{
    td_demo_catcher_t *c = s->slot->c;
    /* the catcher has no application clock; the time a message arrived is
     * a fact about this machine, as the file's mtime is */
    int64_t now_ms = td_wall_ms();
    td_buf_t trace = TD_BUF_INIT, json = TD_BUF_INIT;
    char name[64], path[4200];
    long num = -1;
    int rc = TD_ECONFLICT;

    td_buf_adds(&json, "{\"from\": ");
    td_buf_add_json_str(&json, s->from, strlen(s->from));
    td_buf_adds(&json, ", \"to\": [");
    for (int i = 0; i < s->n_rcpt; i++) {
        if (i) {
            td_buf_adds(&json, ", ");
        }
        td_buf_add_json_str(&json, s->rcpt[i], strlen(s->rcpt[i]));
    }
    td_buf_addf(&json, "], \"received_ms\": %lld}\n", (long long)now_ms);

    /* a number someone else has used is skipped, a few times at most */
    for (int attempt = 0; attempt < 100 && rc == TD_ECONFLICT; attempt++) {
        pthread_mutex_lock(&c->mu);
        num = ++c->next_num;
        pthread_mutex_unlock(&c->mu);
        snprintf(name, sizeof(name), "%ld.json", num);
        if ((rc = write_new_file(c->dir, name, &json, NULL)) != TD_OK) {
            continue;
        }
        td_buf_reset(&trace);
        add_trace(&trace, s, num, now_ms);
        snprintf(name, sizeof(name), "%ld.eml", num);
        if ((rc = write_new_file(c->dir, name, &trace, body)) != TD_OK) {
            snprintf(path, sizeof(path), "%s/%ld.json", c->dir, num);
            unlink(path);
        }
    }
    if (rc == TD_OK) {
        sync_dir(c->dir);
    }
    td_buf_release(&trace);
    td_buf_release(&json);
    return rc == TD_OK ? num : -1;
}

/* DATA after the 354: lines up to ".", dot-unstuffed (RFC 5321 4.5.2). The
 * reply comes only after the message is on disk. */
static void receive_data(session_t *s)
{
    td_buf_t body = TD_BUF_INIT;
    bool too_big = false, too_long = false;

    reply(s, "354 End data with <CR><LF>.<CR><LF>");
    for (;;) {
        const char *line;
        size_t len;
        line_rc_t rc = read_line(s, &line, &len);
        if (rc == LINE_EOF) {
            td_buf_release(&body);
            return; /* a message cut short is not delivered */
        }
        if (rc == LINE_LONG) {
            too_long = true;
            continue;
        }
        if ((len == 3 && memcmp(line, ".\r\n", 3) == 0) ||
            (len == 2 && memcmp(line, ".\n", 2) == 0)) {
            break;
        }
        if (line[0] == '.') {
            line++;
            len--;
        }
        if (body.len + len > SIZE_MAX_MSG) {
            too_big = true; /* read on to the end, keep nothing more */
        } else if (!too_big && !too_long) {
            td_buf_add(&body, line, len);
        }
    }
    if (too_long) {
        reply(s, "500 5.5.2 Line too long");
    } else if (too_big) {
        reply(s, "552 5.3.4 Message size exceeds fixed maximum message size");
    } else {
        long num = store_message(s, &body);
        if (num < 0) {
            reply(s, "451 4.3.0 Could not store the message, try again later");
        } else {
            char masked[128], text[80];
            td_log_mask_email(s->from, masked, sizeof(masked));
            td_log(TD_LOG_INFO, "demo", "caught n=%ld from=%s rcpt=%d bytes=%zu", num, masked,
                   s->n_rcpt, body.len);
            snprintf(text, sizeof(text), "250 2.0.0 Ok: queued as %ld", num);
            reply(s, text);
        }
    }
    td_buf_release(&body);
    reset_transaction(s);
}

/* One command line (CRLF stripped); false when the session is over. */
static bool handle_command(session_t *s, char *line)
{
    size_t cmd_len = strcspn(line, " ");
    const char *arg = line + cmd_len;

    while (*arg == ' ') {
        arg++;
    }
    if (command_is(line, cmd_len, "EHLO") || command_is(line, cmd_len, "HELO")) {
        bool ehlo = toupper((unsigned char)line[0]) == 'E';
        if (*arg == '\0' || !is_clean(arg, strlen(arg)) || strlen(arg) > 255) {
            reply(s, "501 5.5.4 Syntax: EHLO hostname");
            return true;
        }
        free(s->helo);
        s->helo = td_xstrndup(arg, strcspn(arg, " "));
        s->greeted = true;
        reset_transaction(s);
        if (ehlo) {
            reply(s, "250-" HOSTNAME " Hello\r\n"
                     "250-8BITMIME\r\n"
                     "250-SIZE 20971520\r\n"
                     "250-PIPELINING\r\n"
                     "250-SMTPUTF8\r\n"
                     "250 ENHANCEDSTATUSCODES");
        } else {
            reply(s, "250 " HOSTNAME " Hello");
        }
    } else if (command_is(line, cmd_len, "MAIL")) {
        char *addr = NULL;
        const char *rest, *bad;
        if (!s->greeted) {
            reply(s, "503 5.5.1 Send EHLO or HELO first");
        } else if (s->from) {
            reply(s, "503 5.5.1 Nested MAIL command");
        } else if (strncasecmp(arg, "FROM:", 5) != 0 ||
                   (rest = parse_path(arg + 5, &addr)) == NULL) {
            reply(s, "501 5.5.4 Syntax: MAIL FROM:<address>");
        } else if ((bad = check_mail_params(rest)) != NULL) {
            free(addr);
            reply(s, bad);
        } else {
            s->from = addr;
            reply(s, "250 2.1.0 Ok");
        }
    } else if (command_is(line, cmd_len, "RCPT")) {
        char *addr = NULL;
        const char *rest;
        if (s->from == NULL) {
            reply(s, "503 5.5.1 Need MAIL before RCPT");
        } else if (strncasecmp(arg, "TO:", 3) != 0 || (rest = parse_path(arg + 3, &addr)) == NULL ||
                   *addr == '\0') {
            free(addr);
            reply(s, "501 5.5.4 Syntax: RCPT TO:<address>");
        } else if (rest[strspn(rest, " ")] != '\0') {
            free(addr);
            reply(s, "555 5.5.4 Unsupported RCPT parameter");
        } else if (s->n_rcpt >= RCPT_MAX) {
            free(addr);
            reply(s, "452 4.5.3 Too many recipients");
        } else {
            if (s->rcpt == NULL) {
                s->rcpt = td_xcalloc(RCPT_MAX, sizeof(char *));
            }
            s->rcpt[s->n_rcpt++] = addr;
            reply(s, "250 2.1.5 Ok");
        }
    } else if (command_is(line, cmd_len, "DATA")) {
        if (*arg) {
            reply(s, "501 5.5.4 Syntax: DATA");
        } else if (s->from == NULL || s->n_rcpt == 0) {
            reply(s,
                  s->from ? "503 5.5.1 Need RCPT before DATA" : "503 5.5.1 Need MAIL before DATA");
        } else {
            receive_data(s);
        }
    } else if (command_is(line, cmd_len, "RSET")) {
        reset_transaction(s);
        reply(s, "250 2.0.0 Ok");
    } else if (command_is(line, cmd_len, "NOOP")) {
        reply(s, "250 2.0.0 Ok");
    } else if (command_is(line, cmd_len, "QUIT")) {
        reply(s, "221 2.0.0 Bye");
        return false;
    } else if (command_is(line, cmd_len, "VRFY")) {
        reply(s, "252 2.5.2 Cannot VRFY user, but will accept message");
    } else if (command_is(line, cmd_len, "EXPN") || command_is(line, cmd_len, "HELP") ||
               command_is(line, cmd_len, "AUTH") || command_is(line, cmd_len, "STARTTLS") ||
               command_is(line, cmd_len, "BDAT") || command_is(line, cmd_len, "ETRN") ||
               command_is(line, cmd_len, "TURN")) {
        s->errors++;
        reply(s, "502 5.5.1 Command not implemented");
    } else {
        s->errors++;
        reply(s, "500 5.5.2 Command unrecognized");
    }
    return true;
}

static void run_session(session_t *s)
{
    reply(s, "220 " HOSTNAME " ESMTP Tandem demo mail catcher (nothing is relayed)");
    while (!s->eof) {
        const char *line;
        size_t len;
        line_rc_t rc = read_line(s, &line, &len);
        if (rc == LINE_EOF) {
            break;
        }
        if (rc == LINE_LONG) {
            s->errors++;
            reply(s, "500 5.5.2 Line too long");
        } else {
            char cmd[LINE_MAX_LEN + 1];
            while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) {
                len--;
            }
            memcpy(cmd, line, len);
            cmd[len] = '\0';
            if (!handle_command(s, cmd)) {
                break;
            }
        }
        if (s->errors >= ERRORS_MAX) {
            reply(s, "421 4.7.0 Too many errors, closing connection");
            break;
        }
    }
}

static void *connection_main(void *arg)
{
    slot_t *slot = arg;
    td_demo_catcher_t *c = slot->c;
    session_t *s = td_xcalloc(1, sizeof(*s));

    s->slot = slot;
    s->fd = slot->fd;
    run_session(s);
    reset_transaction(s);
    free(s->rcpt);
    free(s->helo);
    free(s);
    /* closed under the lock: stop() shuts down the fds it sees there, and
     * must never see a number the kernel has handed to someone else */
    pthread_mutex_lock(&c->mu);
    close(slot->fd);
    slot->fd = -1;
    slot->state = SLOT_DONE;
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

/* ---- the listener -------------------------------------------------------------- */

static void set_timeouts(int fd, int seconds)
{
    struct timeval tv = { .tv_sec = seconds, .tv_usec = 0 };

    (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

static void peer_name(const struct sockaddr_storage *ss, char *out, size_t out_len)
{
    const void *a = ss->ss_family == AF_INET6
                        ? (const void *)&((const struct sockaddr_in6 *)ss)->sin6_addr
                        : (const void *)&((const struct sockaddr_in *)ss)->sin_addr;
    if (inet_ntop(ss->ss_family, a, out, (socklen_t)out_len) == NULL) {
        snprintf(out, out_len, "unknown");
    }
}

/* Hands fd to a free slot's thread; false when all CONN_MAX are busy. */
static bool start_connection(td_demo_catcher_t *c, int fd, const char *peer)
{
    slot_t *free_slot = NULL;

    pthread_mutex_lock(&c->mu);
    for (int i = 0; i < CONN_MAX; i++) {
        slot_t *sl = &c->slots[i];
        if (sl->state == SLOT_DONE) {
            pthread_join(sl->thread, NULL);
            sl->state = SLOT_FREE;
        }
        if (sl->state == SLOT_FREE && free_slot == NULL) {
            free_slot = sl;
        }
    }
    if (free_slot) {
        free_slot->fd = fd;
        snprintf(free_slot->peer, sizeof(free_slot->peer), "%s", peer);
        if (pthread_create(&free_slot->thread, NULL, connection_main, free_slot) != 0) {
            free_slot->fd = -1;
            free_slot = NULL;
        } else {
            free_slot->state = SLOT_RUNNING;
        }
    }
    pthread_mutex_unlock(&c->mu);
    return free_slot != NULL;
}

static void *listener_main(void *arg)
{
    td_demo_catcher_t *c = arg;

    for (;;) {
        struct pollfd pf[2] = { { .fd = c->lfd, .events = POLLIN },
                                { .fd = c->wake[0], .events = POLLIN } };
        if (poll(pf, 2, -1) < 0) {
            if (errno == EINTR) {
                continue;
            }
            td_log(TD_LOG_ERROR, "demo", "poll error=\"%s\"", strerror(errno));
            break;
        }
        if (pf[1].revents) {
            break;
        }
        struct sockaddr_storage ss;
        socklen_t ss_len = sizeof(ss);
        int fd = accept(c->lfd, (struct sockaddr *)&ss, &ss_len);
        if (fd < 0) {
            if (errno != EINTR && errno != EAGAIN && errno != ECONNABORTED) {
                td_log(TD_LOG_WARN, "demo", "accept error=\"%s\"", strerror(errno));
                /* EMFILE and the like: do not spin */
                poll(pf + 1, 1, 100);
            }
            continue;
        }
        (void)fcntl(fd, F_SETFD, FD_CLOEXEC);
        (void)fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
        char peer[64];
        peer_name(&ss, peer, sizeof(peer));
        set_timeouts(fd, IDLE_S);
        if (!start_connection(c, fd, peer)) {
            static const char busy[] =
                "421 4.3.2 " HOSTNAME " too many connections, try again later\r\n";
            set_timeouts(fd, 1);
            (void)send(fd, busy, sizeof(busy) - 1, MSG_NOSIGNAL);
            close(fd);
        }
    }
    return NULL;
}

/* "HOST:PORT", "[v6]:PORT" or ":PORT" into a bound, listening socket. */
static int open_listener(const char *listen_on, int *out_fd, int *out_port, td_err_t *err)
{
    char host[256];
    const char *colon = strrchr(listen_on, ':');
    struct addrinfo hints = { .ai_family = AF_UNSPEC,
                              .ai_socktype = SOCK_STREAM,
                              .ai_flags = AI_PASSIVE };
    struct addrinfo *res = NULL;
    int fd = -1;

    if (colon == NULL || colon[1] == '\0' || (size_t)(colon - listen_on) >= sizeof(host)) {
        return td_err_set(err, TD_EINVAL, "demo_smtp_listen", "\"%s\" is not HOST:PORT", listen_on);
    }
    const char *h = listen_on;
    size_t hlen = (size_t)(colon - listen_on);
    if (hlen >= 2 && h[0] == '[' && h[hlen - 1] == ']') {
        h++;
        hlen -= 2;
    }
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    int grc = getaddrinfo(hlen ? host : NULL, colon + 1, &hints, &res);
    if (grc != 0) {
        return td_err_set(err, TD_EINVAL, "demo_smtp_listen", "\"%s\": %s", listen_on,
                          gai_strerror(grc));
    }
    int last_errno = 0;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        int one = 1;
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            last_errno = errno;
            continue;
        }
        (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 32) == 0) {
            break;
        }
        last_errno = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        return td_err_set(err, TD_EIO, "demo_smtp_listen", "cannot listen on \"%s\": %s", listen_on,
                          strerror(last_errno));
    }
    struct sockaddr_storage ss;
    socklen_t ss_len = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &ss_len) != 0) {
        int e = errno;
        close(fd);
        return td_err_set(err, TD_EIO, "demo_smtp_listen", "getsockname: %s", strerror(e));
    }
    *out_port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                               : ((struct sockaddr_in *)&ss)->sin_port);
    *out_fd = fd;
    return TD_OK;
}

int td_demo_catcher_start(const char *listen, const char *dir, td_demo_catcher_t **out,
                          td_err_t *err)
{
    td_demo_catcher_t *c;
    int rc;

    *out = NULL;
    if ((rc = make_dirs(dir, err)) != TD_OK) {
        return rc;
    }
    c = td_xcalloc(1, sizeof(*c));
    c->lfd = c->wake[0] = c->wake[1] = -1;
    for (int i = 0; i < CONN_MAX; i++) {
        c->slots[i].c = c;
        c->slots[i].fd = -1;
    }
    c->dir = td_xstrdup(dir);
    c->next_num = highest_number(dir);
    pthread_mutex_init(&c->mu, NULL);
    if ((rc = open_listener(listen, &c->lfd, &c->port, err)) != TD_OK) {
        goto fail;
    }
    if (pipe(c->wake) != 0) {
        rc = td_err_set(err, TD_EIO, "", "pipe: %s", strerror(errno));
        goto fail;
    }
    (void)fcntl(c->wake[0], F_SETFD, FD_CLOEXEC);
    (void)fcntl(c->wake[1], F_SETFD, FD_CLOEXEC);
    (void)fcntl(c->lfd, F_SETFL, fcntl(c->lfd, F_GETFL) | O_NONBLOCK);
    if (pthread_create(&c->listener, NULL, listener_main, c) != 0) {
        rc = td_err_set(err, TD_EIO, "", "cannot start the mail catcher thread");
        goto fail;
    }
    td_log(TD_LOG_INFO, "demo", "catcher listening port=%d dir=%s next=%ld", c->port, dir,
           c->next_num + 1);
    *out = c;
    return TD_OK;
fail:
    if (c->lfd >= 0) {
        close(c->lfd);
    }
    if (c->wake[0] >= 0) {
        close(c->wake[0]);
        close(c->wake[1]);
    }
    pthread_mutex_destroy(&c->mu);
    free(c->dir);
    free(c);
    return rc;
}

int td_demo_catcher_port(const td_demo_catcher_t *c)
{
    return c->port;
}

void td_demo_catcher_stop(td_demo_catcher_t *c)
{
    if (c == NULL) {
        return;
    }
    /* wake the listener, and refuse new clients at once */
    while (write(c->wake[1], "x", 1) < 0 && errno == EINTR) {
    }
    shutdown(c->lfd, SHUT_RDWR);
    pthread_join(c->listener, NULL);
    /* no new connection can start now; end the ones in progress (a blocked
     * recv or send returns at once) */
    pthread_t threads[CONN_MAX];
    int n_threads = 0;
    pthread_mutex_lock(&c->mu);
    for (int i = 0; i < CONN_MAX; i++) {
        if (c->slots[i].state == SLOT_RUNNING && c->slots[i].fd >= 0) {
            shutdown(c->slots[i].fd, SHUT_RDWR);
        }
        if (c->slots[i].state != SLOT_FREE) {
            threads[n_threads++] = c->slots[i].thread;
        }
    }
    pthread_mutex_unlock(&c->mu);
    for (int i = 0; i < n_threads; i++) {
        pthread_join(threads[i], NULL);
    }
    close(c->lfd);
    close(c->wake[0]);
    close(c->wake[1]);
    pthread_mutex_destroy(&c->mu);
    free(c->dir);
    free(c);
}
