/*
 * loadgen — the echo benchmark's load generator, in C so that the client is never the
 * JavaScript under test.
 *
 *   loadgen --port P [--host 127.0.0.1] [--connections C] [--depth D] [--size S]
 *           [--seconds T] [--warmup W]
 *   loadgen --port P [--host 127.0.0.1] [--connections C] --idle [--hold T]
 *
 * Load mode (defaults: C 1, D 1, S 64, T 5, W 0.5). Opens C TCP connections, then keeps D
 * messages of S bytes in flight on each: whenever S bytes have come back, the oldest message
 * is complete, its round trip (queued for sending → last byte back) is recorded, and another is
 * sent. The first W seconds warm up and are not counted; the next T are. Prints exactly one JSON
 * line on stdout:
 *
 *   {"messages":N,"bytes":N,"seconds":T,"p50_us":X,"p99_us":Y,"errors":E,"connected":C}
 *
 * `seconds` is the time actually measured, `bytes` = messages × S, p50/p99 are null when no
 * message completed, `errors` counts connections that failed to connect, were reset or closed,
 * or echoed bytes that were not sent (the run goes on with the others), `connected` the
 * connections established. The line is printed the moment the measured period ends (a parent
 * sampling the server can line its samples up with it); then the echoes still in flight are
 * awaited, up to DRAIN_TIMEOUT_NS, and the connections closed. SIGINT/SIGTERM end the run
 * early and still print the line.
 *
 * Idle mode opens C connections, sends nothing, prints {"connected":N} once every connection
 * is established or has failed, then holds them open for T seconds (default 60), or until
 * SIGINT/SIGTERM, or until stdin reaches end of file when it is a pipe or socket (so a parent
 * can end the hold by closing it; a stdin of /dev/null or a terminal is ignored). It measures a
 * server's memory per idle connection. Note that "connected" means the handshake completed: the
 * server may not have accept()ed every connection yet (they wait in its accept queue), so a
 * measurement should wait until the server holds them.
 *
 * Exit status: 0; 1 when no connection could be made (the JSON line is still printed);
 * 2 for a bad command line. Diagnostics go to stderr only.
 *
 * Design. One thread, one epoll instance, level-triggered (see echo-epoll.c for why). Connects
 * are non-blocking and at most MAX_CONNECTING handshakes are in progress at a time, so 10,000
 * connections do not arrive as one burst of SYNs. A server that accepts more slowly than
 * handshakes complete can still fill its accept queue (its listen backlog); the kernel then
 * drops SYNs, which the client retries after 1 s, 3 s, ... — a slower connect phase, never a
 * failure within CONNECT_TIMEOUT_NS. Load starts once every connection is up, so the connect
 * phase is never measured.
 *
 * Every message carries the same bytes, so a connection's output queue is a count of bytes:
 * they are sent from a pattern buffer at the connection's stream offset. The same offset
 * arithmetic checks every echoed byte against what was sent (a lost, duplicated or reordered
 * chunk is an error, not a fast result), and the byte count alone says how many messages are
 * complete, however the server splits or merges them: an echo preserves order, so messages
 * complete first in, first out, and a ring of D send times per connection is all the state a
 * latency needs.
 *
 * Latency histogram. Fixed memory, log-linear: below 128 ns one bucket per nanosecond, above
 * 128 sub-buckets per power of two (relative width ≤ 1/128, under 1%), up to 2^34 ns ≈ 17 s;
 * longer round trips land in the last bucket. A percentile reports its bucket's midpoint.
 */
#define _GNU_SOURCE
#include "common.h"

#include <sys/epoll.h>
#include <sys/stat.h>

#define MAX_CONNECTING 512
#define CONNECT_TIMEOUT_NS (30 * 1000000000ull)
/* After the measured period, in-flight echoes are awaited this long so that connections end
 * with a clean FIN; a close with unread data would send the server an RST instead. */
#define DRAIN_TIMEOUT_NS (2 * 1000000000ull)
#define MAX_EVENTS 1024
/* Largest send() and recv(); the pattern buffer holds one message plus one chunk. */
#define CHUNK (256 * 1024)

#define HIST_SUB_BITS 7
#define HIST_SUB (1u << HIST_SUB_BITS)
#define HIST_MAX_EXP 34
#define HIST_BUCKETS ((HIST_MAX_EXP - HIST_SUB_BITS + 1) * HIST_SUB)

/* epoll user data other than a connection's index. */
#define TAG_SIGNAL UINT64_MAX
#define TAG_STDIN (UINT64_MAX - 1)

enum conn_state { CONN_NEW, CONN_CONNECTING, CONN_OPEN, CONN_CLOSED };

struct conn {
    int fd;
    enum conn_state state;
    bool want_out;        /* EPOLLOUT is in the interest set: output is blocked */
    uint32_t ring_head;   /* index in sent_at of the oldest message in flight */
    uint32_t in_flight;   /* messages queued whose echo is not complete */
    uint64_t *sent_at;    /* `depth` CLOCK_MONOTONIC send times, a ring in sending order */
    uint64_t out_pending; /* bytes queued, not yet taken by send() */
    uint64_t tx_bytes;    /* bytes sent: the stream offset of the next byte to send */
    uint64_t rx_bytes;    /* bytes echoed back */
};

static struct {
    struct in_addr host;
    long port, connections, depth, size;
    double seconds, warmup, hold;
    bool idle;
} opt = { .connections = 1, .depth = 1, .size = 64, .seconds = 5, .warmup = 0.5, .hold = 60 };

static int ep;
static int sig_fd;
static bool stop_requested;
static struct conn *conns;
static long n_open;          /* connections in state CONN_OPEN */
static long n_connecting;    /* connections in state CONN_CONNECTING */
static long n_errors;
static unsigned char *pattern; /* pattern[i] = byte i % size of every message; size + CHUNK long */
static unsigned char rxbuf[CHUNK];

/* The measured period. */
static bool measuring, draining;
static uint64_t messages;
static uint64_t hist[HIST_BUCKETS];

static void usage(FILE *to)
{
    fprintf(to,
            "usage: loadgen --port P [--host 127.0.0.1] [--connections C] [--depth D] [--size S]\n"
            "               [--seconds T] [--warmup W]\n"
            "       loadgen --port P [--host 127.0.0.1] [--connections C] --idle [--hold T]\n"
            "Load mode keeps D messages of S bytes in flight on each of C connections to an echo server,\n"
            "counts T seconds after W of warm-up, and prints one JSON line:\n"
            "  {\"messages\":N,\"bytes\":N,\"seconds\":T,\"p50_us\":X,\"p99_us\":Y,\"errors\":E,\"connected\":C}\n"
            "Idle mode opens C connections, prints {\"connected\":N}, and holds them T seconds (or until\n"
            "SIGTERM, or end of file on a piped stdin).\n"
            "Defaults: C 1, D 1, S 64, T 5, W 0.5, hold 60.\n");
}

static _Noreturn void bad_usage(const char *problem)
{
    fprintf(stderr, "loadgen: %s\n", problem);
    usage(stderr);
    exit(2);
}

static void parse_args(int argc, char **argv)
{
    bool have_port = false;
    parse_ipv4("127.0.0.1", &opt.host);
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *value = i + 1 < argc ? argv[i + 1] : "";
        bool ok = true;
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            usage(stdout);
            exit(0);
        } else if (strcmp(arg, "--idle") == 0) {
            opt.idle = true;
            continue;
        } else if (strcmp(arg, "--port") == 0) {
            ok = have_port = parse_long(value, 1, 65535, &opt.port);
        } else if (strcmp(arg, "--host") == 0) {
            ok = parse_ipv4(value, &opt.host);
        } else if (strcmp(arg, "--connections") == 0) {
            ok = parse_long(value, 1, 1000000, &opt.connections);
        } else if (strcmp(arg, "--depth") == 0) {
            ok = parse_long(value, 1, 4096, &opt.depth);
        } else if (strcmp(arg, "--size") == 0) {
            ok = parse_long(value, 1, 16 << 20, &opt.size);
        } else if (strcmp(arg, "--seconds") == 0) {
            ok = parse_double(value, 0.001, 3600, &opt.seconds);
        } else if (strcmp(arg, "--warmup") == 0) {
            ok = parse_double(value, 0, 3600, &opt.warmup);
        } else if (strcmp(arg, "--hold") == 0) {
            ok = parse_double(value, 0, 86400, &opt.hold);
        } else {
            char problem[512];
            snprintf(problem, sizeof problem, "unknown argument: %s", arg);
            bad_usage(problem);
        }
        if (!ok) {
            char problem[512];
            snprintf(problem, sizeof problem, "bad argument: %s %s", arg, value);
            bad_usage(problem);
        }
        i++;
    }
    if (!have_port) bad_usage("--port is required");
}

/* ---- latency histogram ---- */

static unsigned hist_bucket(uint64_t ns)
{
    if (ns < HIST_SUB) return (unsigned)ns;
    if (ns >= 1ull << HIST_MAX_EXP) return HIST_BUCKETS - 1;
    unsigned exp = 63 - (unsigned)__builtin_clzll(ns); /* 2^exp <= ns < 2^(exp+1), exp >= 7 */
    unsigned sub = (unsigned)(ns >> (exp - HIST_SUB_BITS)) & (HIST_SUB - 1);
    return (exp - HIST_SUB_BITS + 1) * HIST_SUB + sub;
}

static double hist_bucket_mid_ns(unsigned b)
{
    if (b < HIST_SUB) return b;
    unsigned exp = b / HIST_SUB + HIST_SUB_BITS - 1, sub = b % HIST_SUB;
    uint64_t low = (uint64_t)(HIST_SUB + sub) << (exp - HIST_SUB_BITS);
    uint64_t width = 1ull << (exp - HIST_SUB_BITS);
    return (double)low + (double)(width - 1) / 2;
}

/* The q-quantile (0 < q ≤ 1) in microseconds: the value at rank ⌈q·n⌉. NaN when empty. */
static double hist_quantile_us(double q)
{
    uint64_t total = 0;
    for (unsigned b = 0; b < HIST_BUCKETS; b++) total += hist[b];
    if (total == 0) return NAN;
    /* ⌈q·n⌉ without libm (the benchmark links nothing but libc). */
    uint64_t rank = (uint64_t)(q * (double)total), seen = 0;
    if ((double)rank < q * (double)total || rank == 0) rank++;
    for (unsigned b = 0; b < HIST_BUCKETS; b++) {
        seen += hist[b];
        if (seen >= rank) return hist_bucket_mid_ns(b) / 1000;
    }
    return hist_bucket_mid_ns(HIST_BUCKETS - 1) / 1000;
}

/* ---- connections ---- */

static void set_interest(struct conn *c, uint32_t events, int op)
{
    struct epoll_event ev = { .events = events, .data.u64 = (uint64_t)(c - conns) };
    if (epoll_ctl(ep, op, c->fd, &ev) != 0) die("epoll_ctl");
}

static void conn_close(struct conn *c)
{
    if (c->state == CONN_OPEN) n_open--;
    if (c->state == CONN_CONNECTING) n_connecting--;
    close(c->fd); /* also leaves the epoll set */
    c->fd = -1;
    c->state = CONN_CLOSED;
}

/* A connection lost: counted, explained on stderr (the first few times), closed. */
static void conn_fail(struct conn *c, const char *what, int err)
{
    if (n_errors++ < 10) {
        fprintf(stderr, "loadgen: connection %ld: %s%s%s\n", (long)(c - conns), what, err ? ": " : "",
                err ? strerror(err) : "");
    } else if (n_errors == 11) {
        fprintf(stderr, "loadgen: more connection errors follow; only their count is reported\n");
    }
    conn_close(c);
}

static void conn_set_want_out(struct conn *c, bool want)
{
    if (c->want_out == want) return;
    c->want_out = want;
    set_interest(c, want ? EPOLLIN | EPOLLOUT : EPOLLIN, EPOLL_CTL_MOD);
}

/* Sends queued bytes until none are left or the socket is full. False if the connection failed. */
static bool conn_flush(struct conn *c)
{
    while (c->out_pending > 0) {
        size_t len = c->out_pending < CHUNK ? (size_t)c->out_pending : CHUNK;
        ssize_t n = send(c->fd, pattern + c->tx_bytes % (uint64_t)opt.size, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                conn_set_want_out(c, true);
                return true;
            }
            conn_fail(c, "send", errno);
            return false;
        }
        c->tx_bytes += (uint64_t)n;
        c->out_pending -= (uint64_t)n;
    }
    conn_set_want_out(c, false);
    return true;
}

/* Queues `count` messages stamped `now` and sends what the socket takes. */
static void conn_send_messages(struct conn *c, uint64_t count, uint64_t now)
{
    for (uint64_t i = 0; i < count; i++) {
        c->sent_at[(c->ring_head + c->in_flight) % (uint32_t)opt.depth] = now;
        c->in_flight++;
    }
    c->out_pending += count * (uint64_t)opt.size;
    conn_flush(c);
}

static void conn_receive(struct conn *c)
{
    ssize_t n = recv(c->fd, rxbuf, sizeof rxbuf, 0);
    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK) conn_fail(c, "recv", errno);
        return;
    }
    if (n == 0) {
        conn_fail(c, "the server closed the connection", 0);
        return;
    }
    if (c->rx_bytes + (uint64_t)n > c->tx_bytes) {
        conn_fail(c, "the server sent more bytes than it was sent", 0);
        return;
    }
    if (memcmp(rxbuf, pattern + c->rx_bytes % (uint64_t)opt.size, (size_t)n) != 0) {
        conn_fail(c, "the echoed bytes differ from the bytes sent", 0);
        return;
    }
    uint64_t size = (uint64_t)opt.size;
    uint64_t done = (c->rx_bytes + (uint64_t)n) / size - c->rx_bytes / size;
    c->rx_bytes += (uint64_t)n;
    if (done == 0) return;

    /* One clock read serves every message this read completed, and stamps their successors. */
    uint64_t now = now_ns();
    for (uint64_t i = 0; i < done; i++) {
        uint64_t sent = c->sent_at[c->ring_head];
        c->ring_head = (c->ring_head + 1) % (uint32_t)opt.depth;
        c->in_flight--;
        if (measuring) {
            hist[hist_bucket(now - sent)]++;
            messages++;
        }
    }
    if (!draining) {
        conn_send_messages(c, done, now);
    } else if (c->in_flight == 0) {
        conn_close(c);
    }
}

/* Starts a non-blocking connect. The outcome arrives as EPOLLOUT (see connect_all). */
static void conn_connect(struct conn *c)
{
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        int err = errno;
        c->state = CONN_CLOSED;
        n_errors++;
        if (n_errors <= 10) fprintf(stderr, "loadgen: socket: %s\n", strerror(err));
        return;
    }
    set_nodelay(c->fd);
    struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons((uint16_t)opt.port), .sin_addr = opt.host };
    if (connect(c->fd, (struct sockaddr *)&addr, sizeof addr) == 0) {
        /* Immediate success is allowed by POSIX, though TCP on Linux answers EINPROGRESS. */
        c->state = CONN_OPEN;
        n_open++;
        set_interest(c, EPOLLIN, EPOLL_CTL_ADD);
    } else if (errno == EINPROGRESS) {
        c->state = CONN_CONNECTING;
        n_connecting++;
        set_interest(c, EPOLLOUT, EPOLL_CTL_ADD);
    } else {
        conn_fail(c, "connect", errno); /* ECONNREFUSED, or EADDRNOTAVAIL: out of ephemeral ports */
    }
}

/* The outcome of a connect in progress: EPOLLOUT (or ERR/HUP) reported, SO_ERROR tells which. */
static void conn_connected(struct conn *c)
{
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
    if (err != 0) {
        conn_fail(c, "connect", err);
        return;
    }
    c->state = CONN_OPEN;
    n_connecting--;
    n_open++;
    set_interest(c, EPOLLIN, EPOLL_CTL_MOD);
}

/* ---- the event loop ---- */

static void on_signal(void)
{
    struct signalfd_siginfo si;
    if (read(sig_fd, &si, sizeof si) == (ssize_t)sizeof si)
        fprintf(stderr, "loadgen: %s, stopping\n", strsignal((int)si.ssi_signo));
    stop_requested = true;
}

/* Waits up to timeout_ms and handles what is ready. Returns true if stdin reached end of file. */
static bool poll_once(int timeout_ms)
{
    static struct epoll_event events[MAX_EVENTS];
    int n = epoll_wait(ep, events, MAX_EVENTS, timeout_ms);
    if (n < 0) {
        /* No handler runs (see common.h), but a stop/continue (SIGSTOP, ptrace) still ends the wait. */
        if (errno == EINTR) return false;
        die("epoll_wait");
    }
    bool stdin_closed = false;
    for (int i = 0; i < n; i++) {
        uint64_t tag = events[i].data.u64;
        uint32_t ev = events[i].events;
        if (tag == TAG_SIGNAL) {
            on_signal();
            continue;
        }
        if (tag == TAG_STDIN) {
            char discard[256];
            ssize_t r = read(STDIN_FILENO, discard, sizeof discard);
            if (r <= 0) stdin_closed = true;
            continue;
        }
        struct conn *c = &conns[tag];
        if (c->state == CONN_CONNECTING) {
            conn_connected(c);
            continue;
        }
        if (c->state != CONN_OPEN) continue;
        if ((ev & EPOLLOUT) && !conn_flush(c)) continue;
        if (ev & (EPOLLIN | EPOLLERR | EPOLLHUP)) conn_receive(c);
    }
    return stdin_closed;
}

/* Opens every connection, at most MAX_CONNECTING at a time, within CONNECT_TIMEOUT_NS. */
static void connect_all(void)
{
    uint64_t deadline = now_ns() + CONNECT_TIMEOUT_NS;
    long next = 0;
    for (;;) {
        while (next < opt.connections && n_connecting < MAX_CONNECTING) conn_connect(&conns[next++]);
        uint64_t now = now_ns();
        if ((next == opt.connections && n_connecting == 0) || now >= deadline || stop_requested) break;
        poll_once(ms_until(deadline, now));
    }
    for (long i = 0; i < opt.connections; i++) {
        if (conns[i].state == CONN_CONNECTING) conn_fail(&conns[i], "connect timed out", 0);
        if (conns[i].state == CONN_NEW) conns[i].state = CONN_CLOSED; /* stopped by a signal */
    }
}

static uint64_t seconds_to_ns(double s)
{
    return (uint64_t)(s * 1e9);
}

static int run_load(long connected)
{
    uint64_t start = now_ns();
    for (long i = 0; i < opt.connections; i++) {
        if (conns[i].state == CONN_OPEN) conn_send_messages(&conns[i], (uint64_t)opt.depth, start);
    }

    uint64_t measure_from = start + seconds_to_ns(opt.warmup), measure_until = 0, measured_from = 0;
    for (;;) {
        uint64_t now = now_ns();
        if (!measuring && now >= measure_from) {
            /* Round trips that straddle the boundary count in the period where they end. */
            measuring = true;
            measured_from = now;
            measure_until = now + seconds_to_ns(opt.seconds);
        }
        if ((measuring && now >= measure_until) || stop_requested || n_open == 0) break;
        poll_once(ms_until(measuring ? measure_until : measure_from, now));
    }
    double seconds = measuring ? (double)(now_ns() - measured_from) / 1e9 : 0;
    measuring = false;

    /* The result goes out the moment the measured period ends, so that a parent sampling the
     * server (CPU time, memory) can tell which period the line describes. */
    double p50 = hist_quantile_us(0.50), p99 = hist_quantile_us(0.99);
    char p50s[32] = "null", p99s[32] = "null";
    if (!isnan(p50)) snprintf(p50s, sizeof p50s, "%.2f", p50);
    if (!isnan(p99)) snprintf(p99s, sizeof p99s, "%.2f", p99);
    printf("{\"messages\":%llu,\"bytes\":%llu,\"seconds\":%.6f,\"p50_us\":%s,\"p99_us\":%s,\"errors\":%ld,\"connected\":%ld}\n",
           (unsigned long long)messages, (unsigned long long)(messages * (uint64_t)opt.size), seconds, p50s, p99s,
           n_errors, connected);
    fflush(stdout);

    /* Stop sending, wait for the echoes in flight, close each connection when it has them. */
    draining = true;
    for (long i = 0; i < opt.connections; i++) {
        if (conns[i].state == CONN_OPEN && conns[i].in_flight == 0) conn_close(&conns[i]);
    }
    uint64_t drain_until = now_ns() + DRAIN_TIMEOUT_NS;
    for (uint64_t now = now_ns(); n_open > 0 && now < drain_until && !stop_requested; now = now_ns()) {
        poll_once(ms_until(drain_until, now));
    }
    for (long i = 0; i < opt.connections; i++) {
        if (conns[i].state == CONN_OPEN) conn_close(&conns[i]);
    }
    return connected > 0 ? 0 : 1;
}

static int run_idle(long connected)
{
    printf("{\"connected\":%ld}\n", connected);
    fflush(stdout);
    if (connected < opt.connections)
        fprintf(stderr, "loadgen: %ld of %ld connections failed\n", opt.connections - connected, opt.connections);

    /* Only a pipe or a socket on stdin can signal the end of the hold: /dev/null is at end of
     * file from the start (and cannot be polled), and a terminal's input is the user's. */
    struct stat st;
    if (fstat(STDIN_FILENO, &st) == 0 && (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode))) {
        struct epoll_event ev = { .events = EPOLLIN, .data.u64 = TAG_STDIN };
        if (epoll_ctl(ep, EPOLL_CTL_ADD, STDIN_FILENO, &ev) != 0) die("epoll_ctl(stdin)");
    }
    uint64_t until = now_ns() + seconds_to_ns(opt.hold);
    for (uint64_t now = now_ns(); now < until && !stop_requested; now = now_ns()) {
        if (poll_once(ms_until(until, now))) break;
    }
    for (long i = 0; i < opt.connections; i++) {
        if (conns[i].state == CONN_OPEN) conn_close(&conns[i]);
    }
    return connected > 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    parse_args(argc, argv);

    /* Each connection is one fd; leave a few for stdio, epoll and the signalfd. */
    long fd_limit = raise_nofile_limit();
    if (opt.connections > fd_limit - 16) {
        fprintf(stderr, "loadgen: --connections %ld needs more file descriptors than RLIMIT_NOFILE allows (%ld)\n",
                opt.connections, fd_limit);
        exit(2);
    }

    conns = calloc((size_t)opt.connections, sizeof *conns);
    uint64_t *times = calloc((size_t)opt.connections * (size_t)opt.depth, sizeof *times);
    pattern = malloc((size_t)opt.size + CHUNK);
    if (conns == NULL || times == NULL || pattern == NULL) die("out of memory");
    for (long i = 0; i < opt.connections; i++) {
        conns[i].fd = -1;
        conns[i].sent_at = times + (size_t)i * (size_t)opt.depth;
    }
    for (size_t i = 0; i < (size_t)opt.size + CHUNK; i++) pattern[i] = (unsigned char)('a' + i % (size_t)opt.size % 26);

    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) die("epoll_create1");
    sig_fd = termination_signalfd(SFD_NONBLOCK | SFD_CLOEXEC);
    struct epoll_event ev = { .events = EPOLLIN, .data.u64 = TAG_SIGNAL };
    if (epoll_ctl(ep, EPOLL_CTL_ADD, sig_fd, &ev) != 0) die("epoll_ctl(signalfd)");

    connect_all();
    long connected = n_open;
    if (connected == 0) fprintf(stderr, "loadgen: no connection could be made to port %ld\n", opt.port);
    return opt.idle ? run_idle(connected) : run_load(connected);
}
