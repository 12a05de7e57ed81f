/*
 * atomic.c - whole-file replacement by temporary file and rename (atomic.h).
 */
#include "util/atomic.h"
#include "util/error.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <unistd.h>

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
    if ((size_t)snprintf(a->tmp, sizeof a->tmp, "%s.tmp.%ld", path, (long)getpid()) >= sizeof a->tmp)
        return tmap_fail(err, TMAP_ERR_IO, "%s: path too long", path);
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
    if (!e && rename(a->tmp, a->path) != 0)
        e = errno;
    if (e) {
        unlink(a->tmp);
        return tmap_fail(err, TMAP_ERR_IO, "%s: cannot write: %s", a->path, strerror(e));
    }
    tmap_fsync_parent(a->path); /* the new name is in place; durability of it is best effort */
    return TMAP_OK;
}

void tmap_atomic_abort(struct tmap_atomic_file *a)
{
    if (a->f)
        fclose(a->f);
    a->f = NULL;
    unlink(a->tmp);
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
    if (!e && rename(tmp, path) != 0)
        e = errno;
    if (e) {
        unlink(tmp);
        return tmap_fail(err, TMAP_ERR_IO, "%s: cannot write: %s", path, strerror(e));
    }
    tmap_fsync_parent(path);
    return TMAP_OK;
}
