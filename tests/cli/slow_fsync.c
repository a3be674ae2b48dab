/* slow_fsync.c - an LD_PRELOAD shim for the CLI tests: fsync() first sleeps
 * CHARGAN_TEST_FSYNC_DELAY seconds (whole ones), so that a test can signal a
 * process while it is inside a save (the library syncs the temporary file
 * before renaming it into place), then fails with EIO if
 * CHARGAN_TEST_FSYNC_FAIL is set ("directory": only a directory's).  With
 * CHARGAN_TEST_FSYNC_LOG set, each call first appends "file" or
 * "directory" to the file it names, a line each. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

int fsync(int fd)
{
    int (*real_fsync)(int);
    void *symbol = dlsym(RTLD_NEXT, "fsync");
    memcpy(&real_fsync, &symbol, sizeof symbol); /* as POSIX allows, not ISO C */
    const char *delay = getenv("CHARGAN_TEST_FSYNC_DELAY");
    struct timespec left = {delay ? atoi(delay) : 0, 0};
    while (nanosleep(&left, &left) != 0 && errno == EINTR)
        ; /* a signal handler ran: sleep out the rest */
    struct stat sb;
    bool is_directory = fstat(fd, &sb) == 0 && S_ISDIR(sb.st_mode);
    const char *log = getenv("CHARGAN_TEST_FSYNC_LOG");
    FILE *f = log ? fopen(log, "a") : NULL;
    if (f) {
        fputs(is_directory ? "directory\n" : "file\n", f);
        fclose(f);
    }
    const char *fail = getenv("CHARGAN_TEST_FSYNC_FAIL");
    if (fail && (strcmp(fail, "directory") != 0 || is_directory)) {
        errno = EIO;
        return -1;
    }
    return real_fsync ? real_fsync(fd) : (errno = ENOSYS, -1);
}
