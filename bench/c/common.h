/*
 * common.h — the little the benchmark's C programs share: option parsing, the file descriptor
 * limit, the monotonic clock, termination signals, and the listening socket of the echo servers.
 *
 * Every program defines _GNU_SOURCE before including this header (accept4, signalfd and
 * program_invocation_short_name are GNU/Linux extensions).
 *
 * Signal policy, common to all three programs: SIGINT and SIGTERM are blocked and read from a
 * signalfd, so termination arrives as one more event in the event loop and no system call is
 * ever interrupted by a handler (no EINTR to handle, no flag to race with). SIGPIPE is ignored,
 * so writing to a connection the peer has reset fails with EPIPE instead of killing the process.
 */
#ifndef EVLOOP_BENCH_COMMON_H
#define EVLOOP_BENCH_COMMON_H

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* What listen(2) asks for. The kernel silently caps it at net.core.somaxconn (4096 since 5.4). */
#define LISTEN_BACKLOG 4096

/* Prints "<program>: <what>: <strerror(errno)>" and exits 1. For failures that leave no way on. */
static inline _Noreturn void die(const char *what)
{
    fprintf(stderr, "%s: %s: %s\n", program_invocation_short_name, what, strerror(errno));
    exit(1);
}

/* CLOCK_MONOTONIC in nanoseconds. Served by the vDSO: about 20 ns, no system call. */
static inline uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/*
 * Milliseconds from `now` until `deadline`, rounded up: epoll_wait counts whole milliseconds,
 * and rounding down would wake the loop just before the deadline, only to wait again for 0 ms.
 * Capped at one second so that a loop re-examines its state at least that often.
 */
static inline int ms_until(uint64_t deadline, uint64_t now)
{
    if (deadline <= now) return 0;
    uint64_t ms = (deadline - now + 999999) / 1000000;
    return ms > 1000 ? 1000 : (int)ms;
}

/* Raises the soft RLIMIT_NOFILE to the hard limit and returns the soft limit now in force. */
static inline long raise_nofile_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) die("getrlimit(RLIMIT_NOFILE)");
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        /* Failure leaves the old limit, which is still usable: report it, do not give up. */
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0) getrlimit(RLIMIT_NOFILE, &rl);
    }
    return rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > 1 << 30 ? 1 << 30 : (long)rl.rlim_cur;
}

/* A decimal integer in [min, max], the whole string and nothing else. */
static inline bool parse_long(const char *s, long min, long max, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min || v > max) return false;
    *out = v;
    return true;
}

/* A finite decimal number in [min, max], the whole string and nothing else. */
static inline bool parse_double(const char *s, double min, double max, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !isfinite(v) || v < min || v > max) return false;
    *out = v;
    return true;
}

/* An IPv4 address in dotted-quad form. Names are not resolved: the benchmark uses 127.0.0.1. */
static inline bool parse_ipv4(const char *s, struct in_addr *out)
{
    return inet_pton(AF_INET, s, out) == 1;
}

/*
 * Blocks SIGINT and SIGTERM and returns a signalfd that becomes readable when one arrives (see
 * the signal policy above); `flags` are signalfd's (SFD_NONBLOCK, SFD_CLOEXEC). Ignores SIGPIPE.
 */
static inline int termination_signalfd(int flags)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    if (sigprocmask(SIG_BLOCK, &set, NULL) != 0) die("sigprocmask");
    signal(SIGPIPE, SIG_IGN);
    int fd = signalfd(-1, &set, flags);
    if (fd < 0) die("signalfd");
    return fd;
}

/* Sets TCP_NODELAY: small echoes go out at once instead of waiting for Nagle's algorithm. */
static inline void set_nodelay(int fd)
{
    int one = 1;
    /* Cannot fail on a TCP socket; a failure would cost latency, not correctness. */
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static inline void server_usage(FILE *to)
{
    fprintf(to,
            "usage: %s [--port P] [--host 127.0.0.1]\n"
            "Echoes every byte back on every TCP connection until SIGINT or SIGTERM.\n"
            "Prints \"PORT <n>\" on stdout once listening (--port 0, the default, lets the kernel choose).\n",
            program_invocation_short_name);
}

/*
 * The echo servers' command line: `[--port P] [--host A]`, port 0 (the kernel chooses) and
 * 127.0.0.1 by default. Exits 2 with a usage line on a mistake, 0 after --help.
 */
static inline void parse_server_args(int argc, char **argv, struct in_addr *host, int *port)
{
    long p = 0;
    parse_ipv4("127.0.0.1", host);
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *value = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            server_usage(stdout);
            exit(0);
        } else if (strcmp(arg, "--port") == 0 && value != NULL && parse_long(value, 0, 65535, &p)) {
            i++;
        } else if (strcmp(arg, "--host") == 0 && value != NULL && parse_ipv4(value, host)) {
            i++;
        } else {
            fprintf(stderr, "%s: bad argument %s%s%s\n", program_invocation_short_name, arg,
                    value != NULL ? " " : "", value != NULL ? value : "");
            server_usage(stderr);
            exit(2);
        }
    }
    *port = (int)p;
}

/*
 * Creates a TCP socket listening on host:port (SO_REUSEADDR, so a restarted server can bind while
 * old connections linger in TIME_WAIT) and stores the port actually bound in *bound_port.
 * `sock_flags` go to socket(2): SOCK_NONBLOCK for a readiness loop, 0 for io_uring.
 */
static inline int listen_tcp(struct in_addr host, int port, int sock_flags, int *bound_port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | sock_flags, 0);
    if (fd < 0) die("socket");
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0) die("setsockopt(SO_REUSEADDR)");
    struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr = host };
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0) die("bind");
    if (listen(fd, LISTEN_BACKLOG) != 0) die("listen");
    socklen_t len = sizeof addr;
    if (getsockname(fd, (struct sockaddr *)&addr, &len) != 0) die("getsockname");
    *bound_port = ntohs(addr.sin_port);
    return fd;
}

/* Tells the parent process where to connect: one line, flushed at once (stdout may be a pipe). */
static inline void announce_port(int port)
{
    printf("PORT %d\n", port);
    fflush(stdout);
}

#endif
