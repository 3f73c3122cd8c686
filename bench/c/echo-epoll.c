/*
 * echo-epoll — a TCP echo server on epoll, the benchmark's yardstick for readiness-based I/O:
 * what this machine does with epoll when nothing stands between the loop and the kernel.
 *
 *   echo-epoll [--port P] [--host 127.0.0.1]
 *
 * Prints "PORT <n>" once listening, echoes every byte on every connection, exits 0 on SIGINT or
 * SIGTERM. Requires Linux 2.6.27 (epoll_create1, accept4, signalfd).
 *
 * Design. One thread, one epoll instance, level-triggered. An echo costs three system calls:
 * epoll_wait (shared by every connection ready at that moment), read, write. Level-triggered
 * mode keeps the loop fair and bounded — one read per connection per wake-up; a connection with
 * more data is simply reported again — where edge-triggered mode would oblige us to read until
 * EAGAIN (or keep our own list of connections left unfinished).
 *
 * Memory. Reads go into one shared 64 KiB buffer and are written straight back, so an idle or
 * a keeping-up connection costs no user-space memory beyond its 16-byte slot in the table
 * (indexed by fd: the kernel hands out the lowest free fd, so the table stays dense). Only
 * when the kernel's send buffer is full are the unwritten bytes copied aside.
 *
 * Backpressure. While a connection has unwritten bytes, its interest set is EPOLLOUT alone:
 * we stop reading it, its receive buffer fills, TCP's window closes, and the client's writes
 * block. When the bytes are out, the interest set goes back to EPOLLIN. Those two epoll_ctl
 * calls happen only on this slow path.
 */
#define _GNU_SOURCE
#include "common.h"

#include <sys/epoll.h>

#define READ_CHUNK (64 * 1024)
#define MAX_EVENTS 512
/* Accepts per wake-up of the listener: the rest of the queue is reported again (level-triggered). */
#define ACCEPTS_PER_WAKEUP 64
/* Cap on the fd-indexed table (16 MiB of address space, backed only where used). */
#define MAX_FDS (1 << 20)

struct conn {
    char *pending;     /* bytes read but not yet written back; NULL when all were written */
    uint32_t len;      /* size of `pending` */
    uint32_t off;      /* how much of `pending` is written */
};

static int ep;                  /* the epoll instance */
static int listen_fd;
static bool accept_paused;      /* listener out of the epoll set after EMFILE: see accept_connections */
static struct conn *conns;      /* indexed by fd */
static long max_fds;
static char buf[READ_CHUNK];

static void set_interest(int fd, uint32_t events, int op)
{
    struct epoll_event ev = { .events = events, .data.fd = fd };
    if (epoll_ctl(ep, op, fd, &ev) != 0) die("epoll_ctl");
}

static void close_conn(int fd)
{
    free(conns[fd].pending);
    conns[fd] = (struct conn){ 0 };
    /* close() also removes the fd from the epoll set: it was never dup()ed. */
    close(fd);
    if (accept_paused) {
        accept_paused = false;
        set_interest(listen_fd, EPOLLIN, EPOLL_CTL_ADD);
    }
}

static void accept_connections(void)
{
    for (int i = 0; i < ACCEPTS_PER_WAKEUP; i++) {
        int fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) return;
            /* The client gave up before we got to it, or a network error is pending on it. */
            if (errno == ECONNABORTED || errno == EPROTO || errno == EPERM) continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /*
                 * Out of descriptors or memory. The listener stays readable (level-triggered),
                 * so leaving it registered would spin the loop. Take it out of the set until a
                 * connection closes and gives a descriptor back.
                 */
                static bool reported;
                if (!reported) fprintf(stderr, "echo-epoll: accept4: %s; pausing accepts until a close (reported once)\n", strerror(errno));
                reported = true;
                set_interest(listen_fd, 0, EPOLL_CTL_DEL);
                accept_paused = true;
                return;
            }
            die("accept4");
        }
        if (fd >= max_fds) {
            /* Only above MAX_FDS: fds stay below the soft RLIMIT_NOFILE. */
            close(fd);
            continue;
        }
        set_nodelay(fd);
        set_interest(fd, EPOLLIN, EPOLL_CTL_ADD);
    }
}

/* Writes back `len` bytes just read. What the kernel does not take waits in conn->pending. */
static void echo(int fd, const char *data, size_t len)
{
    ssize_t n = write(fd, data, len);
    if (n == (ssize_t)len) return;
    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            close_conn(fd); /* EPIPE, ECONNRESET: the client is gone */
            return;
        }
        n = 0;
    }
    struct conn *c = &conns[fd];
    c->len = (uint32_t)(len - (size_t)n);
    c->off = 0;
    c->pending = malloc(c->len);
    if (c->pending == NULL) die("malloc");
    memcpy(c->pending, data + n, c->len);
    set_interest(fd, EPOLLOUT, EPOLL_CTL_MOD);
}

static void on_readable(int fd)
{
    ssize_t n = read(fd, buf, sizeof buf);
    if (n > 0) {
        echo(fd, buf, (size_t)n);
    } else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
        close_conn(fd); /* end of stream, or ECONNRESET */
    }
}

static void on_writable(int fd)
{
    struct conn *c = &conns[fd];
    ssize_t n = write(fd, c->pending + c->off, c->len - c->off);
    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK) close_conn(fd);
        return;
    }
    c->off += (uint32_t)n;
    if (c->off < c->len) return;
    free(c->pending);
    c->pending = NULL;
    set_interest(fd, EPOLLIN, EPOLL_CTL_MOD);
}

int main(int argc, char **argv)
{
    struct in_addr host;
    int port;
    parse_server_args(argc, argv, &host, &port);

    max_fds = raise_nofile_limit();
    if (max_fds > MAX_FDS) max_fds = MAX_FDS;
    conns = calloc((size_t)max_fds, sizeof *conns);
    if (conns == NULL) die("calloc");
    int sig_fd = termination_signalfd(SFD_NONBLOCK | SFD_CLOEXEC);

    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) die("epoll_create1");
    listen_fd = listen_tcp(host, port, SOCK_NONBLOCK, &port);
    set_interest(listen_fd, EPOLLIN, EPOLL_CTL_ADD);
    set_interest(sig_fd, EPOLLIN, EPOLL_CTL_ADD);
    announce_port(port);

    static struct epoll_event events[MAX_EVENTS];
    for (;;) {
        int n = epoll_wait(ep, events, MAX_EVENTS, -1);
        if (n < 0) {
            /* No handler runs (see common.h), but a stop/continue (SIGSTOP, ptrace) still ends the wait. */
            if (errno == EINTR) continue;
            die("epoll_wait");
        }
        for (int i = 0; i < n; i++) {
            int fd = events[i].data.fd;
            uint32_t ev = events[i].events;
            if (fd == sig_fd) return 0;
            if (fd == listen_fd) {
                accept_connections();
            } else if (ev & (EPOLLERR | EPOLLHUP)) {
                /* Reset, or both directions shut: nothing left to echo to. */
                close_conn(fd);
            } else if (ev & EPOLLOUT) {
                on_writable(fd);
            } else if (ev & EPOLLIN) {
                on_readable(fd);
            }
        }
    }
}
