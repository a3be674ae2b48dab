/* util.c - error messages, whole-file reading, output paths and the clock. */
#define _POSIX_C_SOURCE 200809L
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

void cli_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    cli_progress_break_line();
    fputs("chargan: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

void cli_lib_error(chargan_status st, const char *fmt, ...)
{
    /* Copy the message first: nothing below may overwrite it, but the copy
     * keeps that true if this function ever grows a library call. */
    char msg[1024]; /* a library message is at most 1023 bytes (chargan.h) */
    const char *last = chargan_last_error();
    snprintf(msg, sizeof msg, "%s", (last && *last) ? last : chargan_strerror(st));
    va_list ap;
    va_start(ap, fmt);
    cli_progress_break_line();
    fputs("chargan: ", stderr);
    vfprintf(stderr, fmt, ap);
    /* the library says where; what a command-line user can do is ours */
    fprintf(stderr, ": %s%s\n", msg,
            st == CHARGAN_E_UTF8 ? "; the text must be UTF-8 (convert it with iconv, for example)"
                                 : "");
    va_end(ap);
}

char *cli_read_file(const char *path, const char *what, size_t *len)
{
    int is_stdin = strcmp(path, "-") == 0;
    FILE *f = is_stdin ? stdin : fopen(path, "rb");
    if (!f) {
        cli_error("cannot read %s '%s': %s", what, path, strerror(errno));
        return NULL;
    }
    /* A device never ends (/dev/zero) or is not text: a file, a pipe or
     * stdin only.  A pipe may be endless too, but that is asked for. */
    struct stat sb;
    if (!is_stdin && fstat(fileno(f), &sb) == 0 && (S_ISCHR(sb.st_mode) || S_ISBLK(sb.st_mode))) {
        cli_error("cannot read %s '%s': a device, not a file (give '-' to read standard input)",
                  what, path);
        fclose(f);
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    if (!buf) {
        cli_error("cannot read %s '%s': out of memory", what, path);
        if (!is_stdin)
            fclose(f);
        return NULL;
    }
    for (;;) {
        if (cap - n < 2) {
            if (cap > SIZE_MAX / 2) {
                cli_error("cannot read %s '%s': file too large", what, path);
                goto fail;
            }
            char *grown = realloc(buf, cap * 2);
            if (!grown) {
                cli_error("cannot read %s '%s': out of memory", what, path);
                goto fail;
            }
            buf = grown;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0) {
            if (ferror(f) && errno == EINTR && !cli_stop_signal()) {
                clearerr(f); /* a signal that asks for nothing: read on */
                continue;
            }
            if (ferror(f)) {
                if (errno == EINTR)
                    cli_error("interrupted while reading %s '%s'", what, path);
                else
                    cli_error("cannot read %s '%s': %s", what, path, strerror(errno));
                goto fail;
            }
            break;
        }
    }
    if (!is_stdin)
        fclose(f);
    buf[n] = '\0';
    *len = n;
    return buf;
fail:
    free(buf);
    if (!is_stdin)
        fclose(f);
    return NULL;
}

/* Splits path, a copy it cuts, into its directory ("." for none, "/" for
 * the root) and its last component. */
static void split_path(char *path, const char **dir, const char **name)
{
    char *slash = strrchr(path, '/');
    *dir = ".";
    *name = path;
    if (slash) {
        *slash = '\0';
        *name = slash + 1;
        *dir = slash == path ? "/" : path;
    }
}

static char *creation_path(const char *path);

/* Whether a text output (CLI_OUTPUT_TEXT) at path is written in place
 * rather than renamed over: what is there is a device or a FIFO (/dev/null),
 * a symbolic link (/dev/stdout, /dev/fd/3: its target gets the text), or a
 * file in a directory this user cannot write (a temporary could not go
 * beside it). */
static bool text_in_place(const char *path)
{
    struct stat sb;
    if (lstat(path, &sb) != 0)
        return false; /* none yet: made beside and renamed */
    if (!S_ISREG(sb.st_mode))
        return true; /* a dangling link too: fopen makes its target */
    char *copy = strdup(path);
    if (!copy)
        return false; /* the rename's checks then say what fails */
    const char *dir, *name;
    split_path(copy, &dir, &name);
    bool writable_dir = access(dir, W_OK | X_OK) == 0;
    free(copy);
    return !writable_dir;
}

int cli_check_output(const char *path, const char *what, enum cli_output how)
{
    if (!*path) {
        cli_error("cannot write %s '': empty file name", what);
        return -1;
    }
    struct stat sb;
    if (stat(path, &sb) == 0) {
        const char *why = NULL;
        bool in_place = how == CLI_OUTPUT_TEXT && text_in_place(path);
        if (S_ISDIR(sb.st_mode))
            why = "Is a directory"; /* would fail only at the end */
        else if (how == CLI_OUTPUT_RENAMED && !S_ISREG(sb.st_mode))
            why = "not a regular file"; /* a device or a FIFO would be replaced */
        else if (in_place && access(path, W_OK) != 0)
            why = strerror(errno);
        if (why)
            cli_error("cannot write %s '%s': %s", what, path, why);
        if (why || in_place) /* written in place: its directory does not matter */
            return why ? -1 : 0;
    }
    const char *d, *name;
    /* Text goes through a dangling link, to where its target will be made;
     * a renamed output replaces the link itself. */
    char *copy = how == CLI_OUTPUT_TEXT ? creation_path(path) : strdup(path);
    if (!copy) {
        cli_error("out of memory");
        return -1;
    }
    split_path(copy, &d, &name);
    /* The temporary beside it is the name plus ".tmp-XXXXXX". */
    long name_max = pathconf(d, _PC_NAME_MAX);
    const char *why = NULL;
    if (!*name)
        why = "no file name after the last '/'";
    else if (stat(d, &sb) == 0 && !S_ISDIR(sb.st_mode))
        why = strerror(ENOTDIR);
    else if (access(d, W_OK | X_OK) != 0)
        why = strerror(errno);
    else if (strlen(name) + strlen(".tmp-XXXXXX") > (size_t)(name_max > 0 ? name_max : 255))
        why = "file name too long (with the '.tmp-XXXXXX' of its temporary file)";
    free(copy);
    if (why) {
        cli_error("cannot write %s '%s': %s", what, path, why);
        return -1;
    }
    return 0;
}

/* Gives the temporary fd what a file replaced at its path had (owner, group,
 * permissions: a private file stays private), where it may take the owner
 * and group, else the permissions of a new file. */
static int take_permissions(int fd, const char *path)
{
    struct stat sb;
    if (stat(path, &sb) == 0 && S_ISREG(sb.st_mode) && fchown(fd, sb.st_uid, sb.st_gid) == 0)
        return fchmod(fd, sb.st_mode & 0777);
    mode_t mask = umask(0); /* mkstemp() made it 0600 */
    umask(mask);
    return fchmod(fd, 0666 & ~mask);
}

int cli_temp_beside(const char *path, char tmp[CLI_PATH_MAX])
{
    if ((size_t)snprintf(tmp, CLI_PATH_MAX, "%s.tmp-XXXXXX", path) >= CLI_PATH_MAX) {
        tmp[0] = '\0';
        errno = ENAMETOOLONG;
        return -1;
    }
    int fd = mkstemp(tmp);
    if (fd >= 0 && take_permissions(fd, path) != 0) {
        int e = errno;
        close(fd);
        unlink(tmp);
        errno = e;
        fd = -1;
    }
    if (fd < 0)
        tmp[0] = '\0';
    return fd;
}

int cli_text_output_open(cli_text_output *out, const char *path, const char *what)
{
    out->path = path;
    out->tmp[0] = '\0';
    if (text_in_place(path)) {
        out->f = fopen(path, "w");
    } else {
        int fd = cli_temp_beside(path, out->tmp);
        out->f = fd < 0 ? NULL : fdopen(fd, "w");
        if (fd >= 0 && !out->f) {
            int e = errno;
            close(fd);
            unlink(out->tmp);
            errno = e;
        }
    }
    if (!out->f) {
        cli_error("cannot write %s '%s': %s", what, path, strerror(errno));
        return -1;
    }
    return 0;
}

int cli_sync_path(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 && errno == EACCES) /* fsync takes any descriptor */
        fd = open(path, O_WRONLY | O_CLOEXEC);
    int e = fd < 0 || fsync(fd) != 0 ? errno : 0;
    if (fd >= 0)
        close(fd);
    errno = e;
    return e ? -1 : 0;
}

int cli_sync_directory_of(const char *path)
{
    char *copy = strdup(path);
    if (!copy)
        return -1;
    const char *dir, *name;
    split_path(copy, &dir, &name);
    int rc = cli_sync_path(dir);
    int e = errno;
    free(copy);
    errno = e;
    return rc;
}

int cli_text_output_commit(cli_text_output *out, const char *what)
{
    int e = 0;
    errno = 0;
    if (fflush(out->f) != 0 || ferror(out->f))
        e = errno ? errno : EIO;
    else if (out->tmp[0] && fsync(fileno(out->f)) != 0) /* a crash leaves the old or the new */
        e = errno;
    if (fclose(out->f) != 0 && !e)
        e = errno;
    out->f = NULL;
    if (!e && out->tmp[0] && rename(out->tmp, out->path) != 0)
        e = errno;
    else if (!e && out->tmp[0] && cli_sync_directory_of(out->path) != 0) {
        /* In place, but a crash could still lose the rename. */
        cli_error("cannot sync the directory of %s '%s': %s", what, out->path, strerror(errno));
        return -1;
    }
    if (e) {
        cli_error("cannot write %s '%s': %s", what, out->path, strerror(e));
        if (out->tmp[0])
            unlink(out->tmp);
        return -1;
    }
    return 0;
}

static int same_inode(const struct stat *a, const struct stat *b)
{
    return a->st_dev == b->st_dev && a->st_ino == b->st_ino;
}

/* Where a file opened for writing at path would be created: path, or what
 * a dangling symbolic link there points to (through further links, relative
 * targets taken from the link's directory).  A copy to free; NULL if out of
 * memory. */
static char *creation_path(const char *path)
{
    char *p = strdup(path);
    for (int hops = 0; p && hops < 40; hops++) {
        struct stat sb;
        char target[PATH_MAX];
        ssize_t n;
        if (lstat(p, &sb) != 0 || !S_ISLNK(sb.st_mode) ||
            (n = readlink(p, target, sizeof target - 1)) <= 0)
            break;
        const char *slash = strrchr(p, '/');
        size_t dir_len = target[0] == '/' || !slash ? 0 : (size_t)(slash - p) + 1;
        char *next = malloc(dir_len + (size_t)n + 1);
        if (next) {
            memcpy(next, p, dir_len);
            memcpy(next + dir_len, target, (size_t)n);
            next[dir_len + (size_t)n] = '\0';
        }
        free(p);
        p = next;
    }
    return p;
}

int cli_same_file(const char *a, const char *b)
{
    if (strcmp(a, b) == 0)
        return 1;
    if (strcmp(a, "-") == 0 || strcmp(b, "-") == 0) /* standard input, not a file "-" */
        return 0;
    struct stat sa, sb;
    int has_a = stat(a, &sa) == 0, has_b = stat(b, &sb) == 0;
    if (has_a || has_b)
        return has_a && has_b && same_inode(&sa, &sb);
    /* Neither exists yet (two outputs): the same name in the same
     * directory, however spelt ("y.ckpt", "./y.ckpt", "d/../y.ckpt"), or
     * reached through a link to where one will be made. */
    char *path_a = creation_path(a), *path_b = creation_path(b);
    int same = 0;
    if (path_a && path_b) {
        const char *dir_a, *name_a, *dir_b, *name_b;
        split_path(path_a, &dir_a, &name_a);
        split_path(path_b, &dir_b, &name_b);
        same = strcmp(name_a, name_b) == 0 && stat(dir_a, &sa) == 0 && stat(dir_b, &sb) == 0 &&
               same_inode(&sa, &sb);
    }
    free(path_a);
    free(path_b);
    return same;
}

int cli_flush_stdout(void)
{
    if (fflush(stdout) != 0 || ferror(stdout)) {
        cli_error("cannot write to standard output: %s", strerror(errno ? errno : EIO));
        return -1;
    }
    return 0;
}

double cli_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}
