/* gnuplot.c - drawing a PNG with gnuplot, shared by `chargan plot` and
 * `chargan eval --sweep --plot`.
 *
 * The flow: find gnuplot on PATH -> make a temporary directory -> the caller
 * writes its data files there and its commands into a script -> gnuplot runs
 * the script (its output goes to a log in the directory) and writes
 * OUTPUT.tmp-XXXXXX next to the output -> that file is renamed over the
 * output, so a failure leaves any previous image as it was. */
#ifndef _DEFAULT_SOURCE
#define _DEFAULT_SOURCE 1
#endif
#include "cli.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define SCRIPT_FILE "plot.gp"
#define GNUPLOT_LOG "gnuplot.log"

void cli_gnuplot_quote(FILE *f, const char *s)
{
    fputc('\'', f);
    for (; *s; s++) {
        if (*s == '\'')
            fputc('\'', f);
        fputc(*s, f);
    }
    fputc('\'', f);
}

/* The full path of gnuplot on PATH into buf, or -1. */
static int find_gnuplot(char *buf, size_t cap)
{
    const char *path = getenv("PATH");
    if (!path)
        path = "/usr/local/bin:/usr/bin:/bin";
    const char *p = path;
    for (;;) {
        const char *colon = strchr(p, ':');
        size_t n = colon ? (size_t)(colon - p) : strlen(p);
        int w;
        if (n == 0)
            w = snprintf(buf, cap, "./gnuplot");
        else
            w = snprintf(buf, cap, "%.*s/gnuplot", (int)n, p);
        struct stat sb;
        if (w > 0 && (size_t)w < cap && stat(buf, &sb) == 0 && S_ISREG(sb.st_mode) &&
            access(buf, X_OK) == 0)
            return 0;
        if (!colon)
            return -1;
        p = colon + 1;
    }
}

/* The last non-blank line of a file, for gnuplot's error message. */
static void last_line(const char *path, char *buf, size_t cap)
{
    buf[0] = '\0';
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        size_t n = strlen(line);
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r' || line[n - 1] == ' '))
            line[--n] = '\0';
        if (n > 0)
            snprintf(buf, cap, "%s", line);
    }
    fclose(f);
}

/* dir/name into out (size bytes); false if it does not fit. */
static bool path_in(char *out, size_t size, const char *dir, const char *name)
{
    return (size_t)snprintf(out, size, "%s/%s", dir, name) < size;
}

int cli_gnuplot_path(char path[CLI_PATH_MAX], const char *who, const char *dir, const char *name)
{
    if (path_in(path, CLI_PATH_MAX, dir, name))
        return 0;
    cli_error("%s: the temporary directory's name is too long (TMPDIR)", who);
    return -1;
}

/* Runs gnuplot on the script in dir; its output goes to the log in dir. */
static int run_gnuplot(const char *who, const char *gnuplot, const char *dir)
{
    char script[CLI_PATH_MAX], logpath[CLI_PATH_MAX];
    if (cli_gnuplot_path(script, who, dir, SCRIPT_FILE) != 0 ||
        cli_gnuplot_path(logpath, who, dir, GNUPLOT_LOG) != 0)
        return -1;
    posix_spawn_file_actions_t fa;
    if (posix_spawn_file_actions_init(&fa) != 0) {
        cli_error("%s: cannot run gnuplot: out of memory", who);
        return -1;
    }
    int rc = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    if (rc == 0)
        rc = posix_spawn_file_actions_addopen(&fa, 1, logpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (rc == 0)
        rc = posix_spawn_file_actions_adddup2(&fa, 1, 2);
    pid_t pid = 0;
    char *argv[] = {(char *)gnuplot, script, NULL};
    if (rc == 0)
        rc = posix_spawn(&pid, gnuplot, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) {
        cli_error("%s: cannot run '%s': %s", who, gnuplot, strerror(rc));
        return -1;
    }
    int ws = 0;
    while (waitpid(pid, &ws, 0) < 0) {
        if (errno != EINTR) {
            cli_error("%s: waiting for gnuplot: %s", who, strerror(errno));
            return -1;
        }
    }
    if (WIFEXITED(ws) && WEXITSTATUS(ws) == 0)
        return 0;
    char msg[512];
    last_line(logpath, msg, sizeof msg);
    if (WIFSIGNALED(ws))
        cli_error("%s: gnuplot was killed by signal %d%s%s", who, WTERMSIG(ws), msg[0] ? ": " : "",
                  msg);
    else
        cli_error("%s: gnuplot failed (exit status %d)%s%s", who, WEXITSTATUS(ws),
                  msg[0] ? ": " : "", msg);
    return -1;
}

/* Removes the files in dir (only files are ever made there), then dir. */
static void remove_temp_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        char path[CLI_PATH_MAX];
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            if (path_in(path, sizeof path, dir, e->d_name))
                unlink(path);
        }
        closedir(d);
    }
    rmdir(dir);
}

int cli_gnuplot_draw(const char *who, const char *output, cli_gnuplot_writer write_script,
                     void *user)
{
    char gnuplot[CLI_PATH_MAX];
    if (cli_check_output(output, "image", CLI_OUTPUT_RENAMED) != 0)
        return -1;
    if (find_gnuplot(gnuplot, sizeof gnuplot) != 0) {
        cli_error("%s: gnuplot not found on PATH (Debian: apt-get install gnuplot-nox)", who);
        return -1;
    }
    int rc = -1;
    char dir[CLI_PATH_MAX] = "", tmp_out[CLI_PATH_MAX] = "";
    const char *tmpdir = getenv("TMPDIR");
    if (!tmpdir || !*tmpdir)
        tmpdir = "/tmp";
    snprintf(dir, sizeof dir, "%s/chargan-plot.XXXXXX", tmpdir);
    if (!mkdtemp(dir)) {
        cli_error("%s: cannot create a temporary directory in '%s': %s", who, tmpdir,
                  strerror(errno));
        dir[0] = '\0';
        goto done;
    }
    if (strchr(dir, '\n')) {
        cli_error("%s: the temporary directory's name contains a newline (TMPDIR)", who);
        goto done;
    }
    /* gnuplot writes next to the output, which is renamed into place only
     * once the image is complete. */
    int fd = cli_temp_beside(output, tmp_out);
    if (fd < 0) {
        cli_error("%s: cannot write '%s': %s", who, output, strerror(errno));
        goto done;
    }
    close(fd);

    char path[CLI_PATH_MAX];
    if (cli_gnuplot_path(path, who, dir, SCRIPT_FILE) != 0)
        goto done;
    FILE *f = fopen(path, "w");
    if (!f) {
        cli_error("%s: cannot write '%s': %s", who, path, strerror(errno));
        goto done;
    }
    int wrc = write_script(f, dir, tmp_out, user);
    int werr = ferror(f);
    if ((fclose(f) != 0 || werr) && wrc == 0) {
        cli_error("%s: cannot write '%s': %s", who, path, strerror(errno));
        wrc = -1;
    }
    if (wrc != 0 || run_gnuplot(who, gnuplot, dir) != 0)
        goto done;
    struct stat sb;
    if (stat(tmp_out, &sb) != 0 || sb.st_size == 0) {
        cli_error("%s: gnuplot wrote no image to '%s'", who, tmp_out);
        goto done;
    }
    if (cli_sync_path(tmp_out) != 0) { /* a crash after the rename keeps the image */
        cli_error("%s: cannot write '%s': %s", who, output, strerror(errno));
        goto done;
    }
    if (rename(tmp_out, output) != 0) {
        cli_error("%s: cannot write '%s': %s", who, output, strerror(errno));
        goto done;
    }
    tmp_out[0] = '\0';
    if (cli_sync_directory_of(output) != 0) {
        cli_error("%s: cannot sync the directory of '%s': %s", who, output, strerror(errno));
        goto done;
    }
    rc = 0;
done:
    if (tmp_out[0])
        unlink(tmp_out);
    if (dir[0])
        remove_temp_dir(dir);
    return rc;
}
