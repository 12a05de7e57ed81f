/*
 * atomic.c - whole-file replacement by temporary file and rename (atomic.h).
 */
#include "util/atomic.h"
#include "util/error.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Something that exists and is not a regular file: written in place. */
static bool is_special(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && !S_ISREG(sb.st_mode) && !S_ISDIR(sb.st_mode);
}

bool tmap_fsync_parent(const char *path)
{
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == path)
        snprintf(dir, sizeof dir, "/");
    else
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return false;
    bool ok = fsync(fd) == 0 || errno == EINVAL; /* some file systems cannot sync folders */
    close(fd);
    return ok;
}

enum tmap_status tmap_atomic_open(struct tmap_atomic_file *a, const char *path, const char *mode,
                                  struct tmap_error *err)
{
    a->path = path;
    a->f = NULL;
    a->tmp[0] = '\0';
    if (is_special(path))
        a->f = fopen(path, mode);
    else if ((size_t)snprintf(a->tmp, sizeof a->tmp, "%s.tmp.%ld", path, (long)getpid()) >= sizeof a->tmp)
        return tmap_fail(err, TMAP_ERR_IO, "%s: path too long", path);
    else
        a->f = fopen(a->tmp, mode);
    if (!a->f)
        return tmap_fail(err, TMAP_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
    return TMAP_OK;
}

enum tmap_status tmap_atomic_commit(struct tmap_atomic_file *a, struct tmap_error *err)
{
    int e = 0;
    if (ferror(a->f))
        e = errno ? errno : EIO;
    if (!e && fflush(a->f) != 0)
        e = errno;
    if (!e && fsync(fileno(a->f)) != 0 && errno != EINVAL)
        e = errno;
    if (fclose(a->f) != 0 && !e)
        e = errno;
    a->f = NULL;
    bool in_place = a->tmp[0] == '\0';
    if (!e && !in_place && rename(a->tmp, a->path) != 0)
        e = errno;
    if (e) {
        if (!in_place)
            unlink(a->tmp);
        return tmap_fail(err, TMAP_ERR_IO, "%s: cannot write: %s", a->path, strerror(e));
    }
    if (!in_place)
        tmap_fsync_parent(a->path); /* the new name is in place; durability of it is best effort */
    return TMAP_OK;
}

void tmap_atomic_abort(struct tmap_atomic_file *a)
{
    if (a->f)
        fclose(a->f);
    a->f = NULL;
    if (a->tmp[0])
        unlink(a->tmp);
}

/* tmp's bytes into path, which is not a regular file. */
static int copy_into(const char *tmp, const char *path)
{
    int e = 0, in = open(tmp, O_RDONLY | O_CLOEXEC), out = in < 0 ? -1 : open(path, O_WRONLY | O_CLOEXEC);
    if (in < 0 || out < 0)
        e = errno;
    char buf[65536];
    for (ssize_t n; !e && (n = read(in, buf, sizeof buf)) != 0;) {
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            e = errno;
            break;
        }
        for (ssize_t done = 0; !e && done < n;) {
            ssize_t w = write(out, buf + done, (size_t)(n - done));
            if (w < 0 && errno != EINTR)
                e = errno;
            else if (w == 0)
                e = EIO; /* a device that takes nothing would loop forever */
            else if (w > 0)
                done += w;
        }
    }
    if (in >= 0)
        close(in);
    if (out >= 0 && close(out) != 0 && !e)
        e = errno;
    return e;
}

enum tmap_status tmap_atomic_publish(const char *tmp, const char *path, struct tmap_error *err)
{
    int e = 0, fd = open(tmp, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        e = errno;
    else if (fsync(fd) != 0 && errno != EINVAL)
        e = errno;
    if (fd >= 0)
        close(fd);
    bool in_place = is_special(path);
    if (!e && in_place)
        e = copy_into(tmp, path);
    else if (!e && rename(tmp, path) != 0)
        e = errno;
    if (e || in_place)
        unlink(tmp);
    if (e)
        return tmap_fail(err, TMAP_ERR_IO, "%s: cannot write: %s", path, strerror(e));
    if (!in_place)
        tmap_fsync_parent(path);
    return TMAP_OK;
}
