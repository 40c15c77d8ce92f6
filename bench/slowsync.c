/*
 * Slow-flash shim: an LD_PRELOAD library that makes every sync call as
 * slow as a router's flash (SD card, eMMC, USB stick), for the benchmark
 * suite (bench/suite.sh, issue 15 item 2).
 *
 *   cc -shared -fPIC -O2 -o slowsync.so bench/slowsync.c -ldl
 *   LD_PRELOAD=$PWD/slowsync.so SLOWSYNC_MS=2 SLOWSYNC_LOG=/tmp/syncs PROGRAM
 *
 * fsync, fdatasync, syncfs, sync, sync_file_range and msync call the real
 * function (dlsym RTLD_NEXT), then sleep SLOWSYNC_MS milliseconds (a
 * decimal number; 0 or unset: no delay). The delay comes after the real
 * call so the data is durable before the caller is released, as on a
 * device whose cache flush is slow. If SLOWSYNC_LOG names a file, each
 * call appends one line "PID NAME\n" to it (O_APPEND, one write(2) per
 * line, so processes sharing it do not interleave): the suite counts the
 * lines to prove that the shim is loaded in every process that syncs.
 *
 * Both MTAs drop privileges, so the suite makes the log file writable by
 * all. Postfix's master passes its daemons only the variables named in
 * import_environment: the suite adds LD_PRELOAD, SLOWSYNC_MS and
 * SLOWSYNC_LOG there.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

/* Delay in nanoseconds, read once; -1 = not read yet. */
static long long delay_ns = -1;

static long long delay(void)
{
    if (delay_ns < 0) {
        const char *s = getenv("SLOWSYNC_MS");
        double ms = s ? strtod(s, NULL) : 0.0;
        delay_ns = ms > 0 ? (long long)(ms * 1e6) : 0;
    }
    return delay_ns;
}

/* Sleeps the configured delay, resuming after signals, and logs the call.
 * errno is preserved: callers read it after a failed real call. */
static void slow(const char *name)
{
    int saved = errno;
    long long ns = delay();
    if (ns > 0) {
        struct timespec ts = { ns / 1000000000LL, ns % 1000000000LL };
        while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
        }
    }
    const char *log = getenv("SLOWSYNC_LOG");
    if (log && *log) {
        int fd = open(log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0666);
        if (fd >= 0) {
            char line[64];
            int n = snprintf(line, sizeof line, "%d %s\n", (int)getpid(), name);
            if (n > 0 && (size_t)n < sizeof line) {
                ssize_t w = write(fd, line, (size_t)n);
                (void)w;
            }
            close(fd);
        }
    }
    errno = saved;
}

typedef int (*fsync_fn)(int);
typedef int (*fdatasync_fn)(int);
typedef int (*syncfs_fn)(int);
typedef void (*sync_fn)(void);
typedef int (*sync_file_range_fn)(int, off_t, off_t, unsigned int);
typedef int (*msync_fn)(void *, size_t, int);

/* Resolves the next definition of NAME once, or aborts: a shim that
 * silently skipped the real sync would fake durability. */
#define REAL(name)                                                   \
    static name##_fn real_##name;                                               \
    if (!real_##name) {                                                    \
        real_##name = (name##_fn)dlsym(RTLD_NEXT, #name);                       \
        if (!real_##name) {                                                \
            static const char msg[] = "slowsync: no real " #name "\n";     \
            ssize_t w = write(2, msg, sizeof msg - 1);                     \
            (void)w;                                                       \
            abort();                                                       \
        }                                                                  \
    }

int fsync(int fd)
{
    REAL(fsync);
    int r = real_fsync(fd);
    slow("fsync");
    return r;
}

int fdatasync(int fd)
{
    REAL(fdatasync);
    int r = real_fdatasync(fd);
    slow("fdatasync");
    return r;
}

int syncfs(int fd)
{
    REAL(syncfs);
    int r = real_syncfs(fd);
    slow("syncfs");
    return r;
}

void sync(void)
{
    REAL(sync);
    real_sync();
    slow("sync");
}

int sync_file_range(int fd, off_t offset, off_t nbytes, unsigned int flags)
{
    REAL(sync_file_range);
    int r = real_sync_file_range(fd, offset, nbytes, flags);
    slow("sync_file_range");
    return r;
}

int msync(void *addr, size_t length, int flags)
{
    REAL(msync);
    int r = real_msync(addr, length, flags);
    slow("msync");
    return r;
}
