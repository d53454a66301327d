/* The tracking secret: read from the configured file, or generated once
 * into the data directory (like the admin key), then turned into keys.
 * The only file I/O of the track module. */
#include "track/track.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "util/banned.h"

#define MIN_SECRET 16
#define MAX_SECRET 4096

static int read_secret(const char *path, td_track_key_t *out, td_err_t *err)
{
    unsigned char buf[MAX_SECRET + 1];
    FILE *f = fopen(path, "rb");
    size_t n;

    if (f == NULL) {
        return td_err_set(err, errno == ENOENT ? TD_ENOTFOUND : TD_EIO, "track_secret_file",
                          "cannot open tracking secret \"%s\": %s", path, strerror(errno));
    }
    n = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    /* a trailing newline is not part of the secret */
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r')) {
        n--;
    }
    if (n < MIN_SECRET || n > MAX_SECRET) {
        OPENSSL_cleanse(buf, sizeof(buf));
        return td_err_set(err, TD_EINVAL, "track_secret_file",
                          "tracking secret \"%s\" must hold %d to %d bytes", path, MIN_SECRET,
                          MAX_SECRET);
    }
    td_track_key_derive(buf, n, out);
    OPENSSL_cleanse(buf, sizeof(buf));
    return TD_OK;
}

/* Creates path with a new random secret; O_EXCL, so that two processes
 * starting at once end up reading the same one. */
static int create_secret(const char *path, td_err_t *err)
{
    unsigned char raw[32];
    char hex[65];
    int fd;

    if (RAND_bytes(raw, sizeof(raw)) != 1) {
        return td_err_set(err, TD_EIO, "track_secret_file", "RAND_bytes() failed");
    }
    for (size_t i = 0; i < sizeof(raw); i++) {
        snprintf(hex + 2 * i, 3, "%02x", raw[i]);
    }
    OPENSSL_cleanse(raw, sizeof(raw));
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0) {
        OPENSSL_cleanse(hex, sizeof(hex));
        return errno == EEXIST ? TD_OK
                               : td_err_set(err, TD_EIO, "track_secret_file",
                                            "cannot create \"%s\": %s", path, strerror(errno));
    }
    hex[64] = '\n';
    ssize_t w = write(fd, hex, 65);
    int saved = errno;
    OPENSSL_cleanse(hex, sizeof(hex));
    if (w != 65 || fsync(fd) != 0) {
        close(fd);
        unlink(path);
        return td_err_set(err, TD_EIO, "track_secret_file", "cannot write \"%s\": %s", path,
                          strerror(w != 65 ? saved : errno));
    }
    close(fd);
    return TD_OK;
}

int td_track_secret_load(const char *secret_file, const char *data_dir, td_track_key_t *out,
                         td_err_t *err)
{
    char path[4096];
    int rc;

    if (secret_file && *secret_file) {
        return read_secret(secret_file, out, err);
    }
    if (data_dir == NULL || *data_dir == '\0') {
        return td_err_set(err, TD_EINVAL, "track_secret_file",
                          "no tracking secret: set track_secret_file or data");
    }
    snprintf(path, sizeof(path), "%s/track.key", data_dir);
    rc = read_secret(path, out, err);
    if (rc != TD_ENOTFOUND) {
        return rc;
    }
    if (mkdir(data_dir, 0700) != 0 && errno != EEXIST) {
        return td_err_set(err, TD_EIO, "data", "cannot create data directory \"%s\": %s", data_dir,
                          strerror(errno));
    }
    if ((rc = create_secret(path, err)) != TD_OK) {
        return rc;
    }
    return read_secret(path, out, err);
}
