/* file.c - whole-file reads with a size cap, and atomic whole-file writes:
 * write PATH.tmp-XXXXXX, fsync it, rename it over PATH, fsync the directory.
 * A crash at any moment leaves either the old file or the new one. */
#define _POSIX_C_SOURCE 200809L
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#if defined(__linux__)
#include <sys/syscall.h>
#endif
#include <time.h>
#include <unistd.h>

/* Fault injection for tests, per thread like the allocation hook: the n-th
 * system call of a write from now (the temporary's open, each write, fsync,
 * the directory's access check, close, its open, rename, its fsync; 0-based)
 * and every later one, or that one alone, fail with errnum
 * (cg_io_fail_after, cg_io_fail_at). */
static _Thread_local long io_countdown = -1;
static _Thread_local long io_count;
static _Thread_local int io_errno;
static _Thread_local bool io_once;

static long io_fail_from(long n, int errnum, bool once)
{
    long count = io_count;
    io_count = 0;
    io_countdown = n;
    io_errno = errnum;
    io_once = once;
    return count;
}

long cg_io_fail_after(long n, int errnum)
{
    return io_fail_from(n, errnum, false);
}

long cg_io_fail_at(long n, int errnum)
{
    return io_fail_from(n, errnum, true);
}

/* True (with errno set) if this call is to fail. */
static bool io_inject(void)
{
    io_count++;
    if (io_countdown < 0)
        return false;
    if (io_countdown > 0) {
        io_countdown--;
        return false;
    }
    if (io_once)
        io_countdown = -1;
    errno = io_errno;
    return true;
}

static chargan_status io_fail(cg_error *err, const char *what, const char *path)
{
    int errnum = errno;
    return cg_fail_io(err, errnum, "%s '%s': %s", what, path, strerror(errnum));
}

/* The directory that holds path (cg_malloc'd), or NULL for want of memory. */
static char *parent_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        return cg_strdup(".");
    if (slash == path)
        return cg_strdup("/");
    const size_t n = (size_t)(slash - path);
    char *dir = cg_malloc(n + 1);
    if (dir) {
        memcpy(dir, path, n);
        dir[n] = '\0';
    }
    return dir;
}

/* syncfs(2), Linux's: through syscall(), which needs no _GNU_SOURCE (the
 * feature macros of a file can come too late where the build force-includes
 * a header, as with the reference BLAS's cblas-netlib.h). */
#if defined(__linux__) && defined(SYS_syncfs)
#define CG_HAVE_SYNCFS 1
#else
#define CG_HAVE_SYNCFS 0
#endif

/* The sync that makes the rename durable: the directory's, or (dir_fd -1)
 * the whole file system's through fs_fd. */
static int sync_rename(int dir_fd, int fs_fd)
{
#if CG_HAVE_SYNCFS
    if (dir_fd < 0)
        return (int)syscall(SYS_syncfs, fs_fd);
#endif
    (void)fs_fd;
    return fsync(dir_fd);
}

/* Creates tmp (ending in XXXXXX, replaced by a unique suffix) as mkstemp
 * does, but with mode 0666 less the umask, as fopen would create the file:
 * mkstemp's 0600 would leave every saved file unreadable to others. */
static int create_temporary(char *tmp)
{
    static const char digits[] = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    static _Thread_local uint64_t calls; /* distinct names within a thread and a clock tick */
    char *x = tmp + strlen(tmp) - 6;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    cg_rng rng;
    cg_rng_seed_stream(&rng, (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30) ^
                                 ((uint64_t)getpid() << 17) ^ (uint64_t)(uintptr_t)&calls,
                       ++calls);
    for (int attempt = 0; attempt < 100; attempt++) {
        uint64_t z = cg_rng_next(&rng);
        for (int i = 0; i < 6; i++, z /= 62)
            x[i] = digits[z % 62];
        int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd >= 0 || errno != EEXIST)
            return fd;
    }
    return -1; /* errno is EEXIST */
}

/* Whether the temporary fd can take over a replaced file's permissions:
 * only with the file's owner and group, since its bits without them could
 * lock out the old owner or group (0600 of another user's file, say).
 * fchown gives them back where the saver may (its own, a group it is in,
 * anything for root) and fails elsewhere: then the file stays the saver's,
 * with the umask's mode. */
static bool takes_owner(int fd, const struct stat *old)
{
    return fchown(fd, old->st_uid, old->st_gid) == 0;
}

chargan_status cg_write_file_atomic(cg_error *err, const char *path, const void *data, size_t size)
{
    /* The rename would replace whatever is at path: a device (/dev/null,
     * for a root that gave it as the output), a FIFO or a socket would be
     * gone for everyone else.  A symbolic link is replaced as a file would
     * be, but not one to such a thing. */
    struct stat sb;
    bool replacing = stat(path, &sb) == 0;
    if (replacing && !S_ISREG(sb.st_mode)) {
        if (S_ISDIR(sb.st_mode))
            return cg_fail_io(err, EISDIR, "cannot write '%s': %s", path, strerror(EISDIR));
        return cg_fail_io(err, 0, "'%s' is not a regular file (a device, FIFO or socket): not "
                          "replaced", path);
    }
    size_t n = strlen(path);
    char *tmp = cg_malloc(n + sizeof ".tmp-XXXXXX");
    if (!tmp)
        return cg_fail(err, CHARGAN_E_NOMEM, "out of memory writing '%s'", path);
    memcpy(tmp, path, n);
    memcpy(tmp + n, ".tmp-XXXXXX", sizeof ".tmp-XXXXXX");
    int fd = io_inject() ? -1 : create_temporary(tmp);
    if (fd < 0) {
        chargan_status st = io_fail(err, "cannot create a temporary file beside", path);
        cg_free(tmp);
        return st;
    }
    chargan_status st = CHARGAN_OK;
    /* A file replaced keeps its permissions (a private checkpoint stays
     * private) where it keeps its owner and group; a new one gets 0666 less
     * the umask. */
    if (replacing && takes_owner(fd, &sb) && (io_inject() || fchmod(fd, sb.st_mode & 0777) != 0))
        st = io_fail(err, "cannot set the permissions of", tmp);
    const uint8_t *p = data;
    size_t left = st == CHARGAN_OK ? size : 0;
    while (left > 0) {
        ssize_t w = io_inject() ? -1 : write(fd, p, left);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            if (w == 0)
                errno = ENOSPC;
            st = io_fail(err, "cannot write", tmp);
            break;
        }
        p += w;
        left -= (size_t)w;
    }
    if (st == CHARGAN_OK && (io_inject() || fsync(fd) != 0))
        st = io_fail(err, "cannot sync", tmp);
    /* The directory is opened for its fsync before the rename, so that a
     * failure leaves the old file, and after the temporary is closed, so
     * that a save needs one descriptor at a time.  One the saver may write
     * but not read (mode 0333) cannot be opened: there the whole file
     * system is synced after the rename (syncfs, Linux), through a second
     * descriptor of the temporary kept for it. */
    char *dir = st == CHARGAN_OK ? parent_dir(path) : NULL;
    if (st == CHARGAN_OK && !dir)
        st = cg_fail(err, CHARGAN_E_NOMEM, "out of memory writing '%s'", path);
    int dir_fd = -1, fs_fd = -1;
#if CG_HAVE_SYNCFS
    const bool readable = st != CHARGAN_OK ||
                          (!io_inject() && faccessat(AT_FDCWD, dir, R_OK, AT_EACCESS) == 0);
    if (!readable && (fs_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0)) < 0)
        st = io_fail(err, "cannot keep a descriptor to sync the file system of", path);
#endif
    /* the descriptor is released whatever an injected failure says */
    if ((close(fd) != 0 || (st == CHARGAN_OK && io_inject())) && st == CHARGAN_OK)
        st = io_fail(err, "cannot close", tmp);
    if (st == CHARGAN_OK && fs_fd < 0 &&
        (dir_fd = io_inject() ? -1 : open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
        st = io_fail(err, "cannot open the directory of", path);
    cg_free(dir);
    if (st == CHARGAN_OK && (io_inject() || rename(tmp, path) != 0))
        st = io_fail(err, "cannot rename the temporary file to", path);
    if (st != CHARGAN_OK) {
        unlink(tmp);
        cg_free(tmp);
        if (dir_fd >= 0)
            close(dir_fd);
        if (fs_fd >= 0)
            close(fs_fd);
        return st;
    }
    cg_free(tmp);
    /* Only now can a failure leave the new file in place: the message says so. */
    const bool synced = !io_inject() && sync_rename(dir_fd, fs_fd) == 0;
    const int errnum = errno;
    close(dir_fd >= 0 ? dir_fd : fs_fd);
    if (!synced)
        return cg_fail_io(err, errnum, "'%s' was replaced by the new file, but syncing its "
                          "directory failed: %s (a crash could still lose the change)", path,
                          strerror(errnum));
    return CHARGAN_OK;
}

/* Reads up to n bytes into buf, stopping early only at the end of the file;
 * *got is what was read.  -1 (errno set) on a read error. */
static int read_up_to(int fd, uint8_t *buf, size_t n, size_t *got)
{
    *got = 0;
    while (*got < n) {
        ssize_t r = read(fd, buf + *got, n - *got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        if (r == 0)
            break; /* the file shrank: take what is there */
        *got += (size_t)r;
    }
    return 0;
}

chargan_status cg_read_file(cg_error *err, const char *path, size_t max_size,
                            cg_file_head_check check_head, uint8_t **data, size_t *size)
{
    /* O_NONBLOCK: opening a FIFO without a writer would wait for one; it is
     * refused below like any file that is not regular.  (Reads from a
     * regular file do not block either way.) */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0)
        return io_fail(err, "cannot open", path);
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        chargan_status st = io_fail(err, "cannot stat", path);
        close(fd);
        return st;
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return cg_fail_io(err, 0, "'%s' is not a regular file", path);
    }
    if ((uint64_t)sb.st_size > max_size) {
        close(fd);
        return cg_fail(err, CHARGAN_E_FORMAT, "'%s' is %lld bytes, more than the %zu allowed", path,
                       (long long)sb.st_size, max_size);
    }
    size_t n = (size_t)sb.st_size;
    /* The head first, so that a file of another kind is refused before the
     * whole of it is read (a large one, or a sparse one that claims many
     * bytes it does not hold, would cost its size in memory). */
    uint8_t head[CG_FILE_HEAD];
    size_t got;
    chargan_status st = CHARGAN_OK;
    if (read_up_to(fd, head, n < sizeof head ? n : sizeof head, &got) != 0)
        st = io_fail(err, "cannot read", path);
    else if (check_head)
        st = check_head(err, path, head, got);
    if (st != CHARGAN_OK) {
        close(fd);
        return st;
    }
    /* Bytes beyond the memory the process may use would get it killed by
     * the kernel as they are read (the pages are only promised until they
     * are written).  What is loaded from them takes more, but how much
     * depends on what is loaded (a generator from a trainer's file: a third
     * of it or less), so only the bytes themselves are judged here. */
    if ((st = cg_check_memory(err, n, "'%s' is", path)) != CHARGAN_OK) {
        close(fd);
        return st;
    }
    uint8_t *buf = cg_malloc(n + 1);
    if (!buf) {
        close(fd);
        return cg_fail(err, CHARGAN_E_NOMEM, "out of memory reading '%s' (%zu bytes)", path, n);
    }
    memcpy(buf, head, got);
    size_t rest = 0;
    if (got == sizeof head && read_up_to(fd, buf + got, n - got, &rest) != 0) {
        st = io_fail(err, "cannot read", path);
        close(fd);
        cg_free(buf);
        return st;
    }
    close(fd);
    buf[got + rest] = 0;
    *data = buf;
    *size = got + rest;
    return CHARGAN_OK;
}
