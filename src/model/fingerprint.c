/*
 * fingerprint.c - what identifies a model file, for the score store.
 *
 * The store keys every score by the model's fingerprint (docs/design.md section
 * 8), so two files may share one only if every weight is the same. It used
 * to cover the GGUF header and tensor index alone, which fine-tunes and
 * checkpoints of one model share: their scores got mixed up silently. It is
 * now xxh3-128 of every byte of the file.
 *
 * Hashing reads the whole file: about 0.6 s per GB from the page cache and
 * 2.5 s per GB from this machine's disk (docs/reliability.md). A small
 * cache makes the second load of an unchanged file free: one line per file
 * in $XDG_CACHE_HOME/tmap/fingerprints (default ~/.cache/...), keyed by
 * device, inode, size and modification time to the nanosecond; rewriting a
 * file changes its modification time, so a stale line is never used.
 * TMAP_FINGERPRINT_CACHE names another file, or "off". The cache is a
 * convenience: when it cannot be read or written, the hash is computed.
 *
 * Lines are only ever appended, and every rewritten model (each checkpoint
 * of a fine-tune) adds one, so past CACHE_MAX_BYTES the file is compacted:
 * the newest CACHE_KEEP distinct keys are kept, in their order, and the
 * file replaced by rename, so a reader sees the old or the new file whole.
 * A line appended by another process during the rewrite may be lost, which
 * costs one hash later.
 */
#include "model/model.h"
#include "util/error.h"

#include <gguf.h>
#include <xxhash.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The cache file's path in buf, or false when caching is off or no home. */
static bool cache_path(char *buf, size_t size)
{
    const char *env = getenv("TMAP_FINGERPRINT_CACHE");
    if (env && *env)
        return strcmp(env, "off") != 0 && (size_t)snprintf(buf, size, "%s", env) < size;
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    int n;
    if (xdg && *xdg)
        n = snprintf(buf, size, "%s/tmap/fingerprints", xdg);
    else if (home && *home)
        n = snprintf(buf, size, "%s/.cache/tmap/fingerprints", home);
    else
        return false;
    return n > 0 && (size_t)n < size;
}

/* The file's identity as the cache keys it. */
static void cache_key(const struct stat *sb, char *buf, size_t size)
{
    snprintf(buf, size, "%ju %ju %jd %jd.%09ld", (uintmax_t)sb->st_dev, (uintmax_t)sb->st_ino,
             (intmax_t)sb->st_size, (intmax_t)sb->st_mtim.tv_sec, (long)sb->st_mtim.tv_nsec);
}

/* The last line whose key matches: later lines win. */
static bool cache_lookup(const char *path, const char *key, char out[33])
{
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    char line[256];
    bool found = false;
    size_t kn = strlen(key);
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, key, kn) != 0 || line[kn] != ' ')
            continue;
        const char *hex = line + kn + 1;
        size_t h = strspn(hex, "0123456789abcdef");
        if (h == 32 && (hex[32] == '\n' || hex[32] == '\0')) {
            memcpy(out, hex, 32);
            out[32] = '\0';
            found = true;
        }
    }
    fclose(f);
    return found;
}

enum { CACHE_MAX_BYTES = 64 << 10, CACHE_KEEP = 256, CACHE_LINE = 256 };

/* The key of a cache line: everything before its last space. */
static size_t line_key_length(const char *line)
{
    const char *space = strrchr(line, ' ');
    return space ? (size_t)(space - line) : strlen(line);
}

static void cache_compact(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    size_t n = 0, cap = 0;
    char (*lines)[CACHE_LINE] = NULL, buf[CACHE_LINE];
    while (fgets(buf, sizeof buf, f)) {
        if (!strchr(buf, '\n'))
            continue; /* a short write, or longer than any line written */
        if (n == cap) {
            size_t grown = cap ? 2 * cap : 1024;
            void *moved = realloc(lines, grown * sizeof *lines);
            if (!moved)
                break;
            lines = moved;
            cap = grown;
        }
        memcpy(lines[n++], buf, sizeof buf);
    }
    fclose(f);
    /* From the newest line back: keep a key's last line, up to CACHE_KEEP. */
    bool *keep = calloc(n ? n : 1, sizeof *keep);
    size_t kept = 0;
    for (size_t i = n; keep && i-- > 0 && kept < CACHE_KEEP;) {
        size_t kn = line_key_length(lines[i]);
        bool newer = false;
        for (size_t j = i + 1; j < n && !newer; j++)
            newer = keep[j] && line_key_length(lines[j]) == kn && memcmp(lines[i], lines[j], kn) == 0;
        if (!newer) {
            keep[i] = true;
            kept++;
        }
    }
    char tmp[PATH_MAX];
    FILE *out = NULL;
    if (keep && (size_t)snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid()) < sizeof tmp)
        out = fopen(tmp, "w");
    if (out) {
        for (size_t i = 0; i < n; i++)
            if (keep[i])
                fputs(lines[i], out);
        if (fclose(out) != 0 || rename(tmp, path) != 0)
            unlink(tmp);
    }
    free(keep);
    free(lines);
}

/* One line, appended in one write (O_APPEND): concurrent loads cannot
 * interleave inside it. Errors are ignored: the cache only saves time. */
static void cache_store(const char *path, const char *key, const char *hex)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir) {
        *slash = '\0';
        char *parent = strrchr(dir, '/');
        if (parent && parent != dir) {
            *parent = '\0';
            mkdir(dir, 0777); /* ~/.cache */
            *parent = '/';
        }
        mkdir(dir, 0777); /* ~/.cache/tmap */
    }
    char line[CACHE_LINE];
    int n = snprintf(line, sizeof line, "%s %s\n", key, hex);
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0)
        return;
    if (n > 0 && (size_t)n < sizeof line && write(fd, line, (size_t)n) != n)
        (void)0; /* a short write leaves a line that never matches */
    struct stat sb;
    bool big = fstat(fd, &sb) == 0 && sb.st_size > CACHE_MAX_BYTES;
    close(fd);
    if (big)
        cache_compact(path);
}

static enum tmap_status hash_file(const char *path, char out[33], struct tmap_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return tmap_fail(err, TMAP_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
#ifdef POSIX_FADV_SEQUENTIAL
    posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
#endif
    enum { CHUNK = 4 << 20 };
    char *buf = malloc(CHUNK);
    XXH3_state_t *st = XXH3_createState();
    if (!buf || !st) {
        free(buf);
        XXH3_freeState(st);
        close(fd);
        return tmap_fail(err, TMAP_ERR_NOMEM, "out of memory fingerprinting %s", path);
    }
    XXH3_128bits_reset(st);
    enum tmap_status rc = TMAP_OK;
    for (;;) {
        ssize_t got = read(fd, buf, CHUNK);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            rc = tmap_fail(err, TMAP_ERR_IO, "%s: read error while fingerprinting: %s", path, strerror(errno));
            break;
        }
        if (got == 0)
            break;
        XXH3_128bits_update(st, buf, (size_t)got);
    }
    XXH128_hash_t h = XXH3_128bits_digest(st);
    XXH3_freeState(st);
    free(buf);
    close(fd);
    if (!rc)
        snprintf(out, 33, "%016llx%016llx", (unsigned long long)h.high64, (unsigned long long)h.low64);
    return rc;
}

enum tmap_status tmap_gguf_unreadable(const char *path, struct tmap_error *err)
{
    /* The magic tells a damaged GGUF (cut short by a download, a full
     * disk) from a file of another kind; for a damaged one, gguf's first
     * complaint says where it broke off. */
    char magic[4] = { 0 };
    FILE *f = fopen(path, "rb");
    bool is_gguf = f && fread(magic, 1, 4, f) == 4 && memcmp(magic, "GGUF", 4) == 0;
    if (f)
        fclose(f);
    const char *why = tmap_llama_last_error();
    if (is_gguf)
        return tmap_fail(err, TMAP_ERR_MODEL, "%s: a truncated or damaged GGUF file (its header or tensor "
                         "index cannot be read%s%s)", path, *why ? ": " : "", why);
    return tmap_fail(err, TMAP_ERR_MODEL, "%s: not a GGUF file", path);
}

enum tmap_status tmap_model_fingerprint(const char *path, char out[33], bool *cached, struct tmap_error *err)
{
    if (cached)
        *cached = false;
    struct gguf_init_params gp = { .no_alloc = true, .ctx = NULL };
    tmap_llama_log_hold(true);
    struct gguf_context *g = gguf_init_from_file(path, gp);
    tmap_llama_log_hold(false);
    if (!g)
        return tmap_gguf_unreadable(path, err);
    gguf_free(g);

    struct stat sb;
    if (stat(path, &sb) != 0)
        return tmap_fail(err, TMAP_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    char cache[PATH_MAX], key[128];
    bool use_cache = cache_path(cache, sizeof cache);
    cache_key(&sb, key, sizeof key);
    if (use_cache && cache_lookup(cache, key, out)) {
        if (cached)
            *cached = true;
        return TMAP_OK;
    }
    enum tmap_status rc = hash_file(path, out, err);
    if (rc)
        return rc;
    /* A file changed while it was read must not be cached under its old
     * identity: store the line only if nothing moved. */
    struct stat after;
    if (use_cache && stat(path, &after) == 0 && after.st_size == sb.st_size &&
        after.st_mtim.tv_sec == sb.st_mtim.tv_sec && after.st_mtim.tv_nsec == sb.st_mtim.tv_nsec)
        cache_store(cache, key, out);
    return TMAP_OK;
}
