/*
 * echo-uring — a TCP echo server on io_uring, driven by raw system calls (no liburing), the
 * benchmark's yardstick for completion-based I/O.
 *
 *   echo-uring [--port P] [--host 127.0.0.1]
 *
 * Prints "PORT <n>" once listening, echoes every byte on every connection, exits 0 on SIGINT or
 * SIGTERM. Exits 3, with the reason on stderr, when io_uring is unavailable (kernel without it,
 * kernel.io_uring_disabled, a seccomp filter): the benchmark then reports c-io_uring as skipped.
 *
 * Requirements: Linux 5.6 (IORING_OP_ACCEPT, RECV, SEND, READ). Used when offered: multishot
 * accept (5.19), IORING_SETUP_SINGLE_ISSUER | DEFER_TASKRUN (6.1), IORING_FEAT_SINGLE_MMAP (5.4),
 * IORING_FEAT_NODROP (5.5).
 *
 * The rings. io_uring_setup(2) returns an fd whose memory holds three arrays shared with the
 * kernel: the submission queue ring (indices into the SQE array), the SQE array itself, and the
 * completion queue ring of CQEs. We fill SQEs and publish them by advancing the SQ tail; the
 * kernel consumes them and advances the SQ head. The kernel writes CQEs and advances the CQ
 * tail; we read them and advance the CQ head. Each side publishes with a release store and
 * reads the other side's index with an acquire load, so the entries are complete before their
 * index is seen. The SQ ring's index array is filled once with 0..n-1, so SQE slot i is always
 * ring entry i and a slot is free again once the head has passed it.
 *
 * The loop. One io_uring_enter(2) per iteration submits everything queued since the last one
 * and, in the same call, waits for at least one completion (IORING_ENTER_GETEVENTS,
 * min_complete 1). Then every available CQE is handled, which queues the next operations.
 *
 * Per connection exactly one operation is in flight: RECV into the connection's 64 KiB buffer,
 * then SEND of what arrived (again for the rest after a short send), then RECV again. That gives
 * backpressure for free (no RECV while a SEND is pending) and makes closing simple: when a RECV
 * or SEND completes with an error or end of stream nothing else refers to the connection, so
 * it is closed at once and its fd may be reused by the next accept.
 *
 * Memory. Unlike a readiness loop, a RECV holds its buffer from submission until data arrives,
 * so every connection owns one. The buffers are slices of a single MAP_NORESERVE mapping indexed
 * by fd: pages are only backed once data lands in them, so an idle connection costs no
 * user-space memory. (Provided buffer rings with multishot RECV would share buffers between
 * connections; they are not needed to hold this benchmark's connections.)
 *
 * Termination. SIGINT/SIGTERM are read from a signalfd (see common.h) by an IORING_OP_READ
 * like any other operation, so the loop never has to be interrupted.
 */
#define _GNU_SOURCE
#include "common.h"

#include <linux/io_uring.h>
#include <sys/mman.h>
#include <sys/syscall.h>

#define SQ_ENTRIES 4096
/* Cap on the fd-indexed tables: 32768 × 64 KiB = 2 GiB of address space, none of it backed until used. */
#define MAX_FDS 32768
/*
 * The CQ cannot overflow by construction: at most one completion per connection (≤ MAX_FDS),
 * one per connection waiting in the accept queue (≤ LISTEN_BACKLOG) and the signal read can be
 * pending at once. (Overflow is still handled: see ring_enter.) 65536 is the kernel's maximum.
 */
#define CQ_ENTRIES 65536
/* As large as echo-epoll's read chunk: with 16 KiB, 16 KiB messages took twice the operations
 * and the bandwidth configuration ran a third slower. */
#define BUF_SIZE (64 * 1024)

/* user_data of the two singleton operations. Every other user_data is a struct conn pointer. */
#define UD_ACCEPT 1
#define UD_SIGNAL 2

struct ring {
    int fd;
    /* Submission queue: kernel-shared indices, and our own count of SQEs filled. */
    unsigned *sq_head, *sq_tail, *sq_flags;
    unsigned sq_mask, sq_entries;
    struct io_uring_sqe *sqes;
    unsigned sqe_tail; /* SQEs filled so far; published to *sq_tail by ring_enter */
    /* Completion queue. */
    unsigned *cq_head, *cq_tail, *cq_overflow;
    unsigned cq_mask;
    struct io_uring_cqe *cqes;
};

enum conn_op { OP_NONE, OP_RECV, OP_SEND };

struct conn {
    int fd;
    enum conn_op op; /* the operation in flight */
    uint32_t len;    /* bytes received, being sent back */
    uint32_t off;    /* how many of them are sent */
    char *buf;
};

static struct ring ring;
static struct conn *conns;   /* indexed by fd */
static char *buffers;        /* BUF_SIZE per fd, MAP_NORESERVE */
static long max_fds;
static int listen_fd;
static bool multishot_accept = true; /* until the kernel says otherwise */
static bool accept_paused;           /* after EMFILE: re-armed by the next close */
static struct signalfd_siginfo siginfo;

static int sys_io_uring_setup(unsigned entries, struct io_uring_params *p)
{
    return (int)syscall(SYS_io_uring_setup, entries, p);
}

static int sys_io_uring_enter(int fd, unsigned to_submit, unsigned min_complete, unsigned flags)
{
    return (int)syscall(SYS_io_uring_enter, fd, to_submit, min_complete, flags, NULL, (size_t)0);
}

/* Explains why io_uring cannot be used and exits 3 (see the header). */
static _Noreturn void unavailable(const char *reason)
{
    fprintf(stderr, "echo-uring: io_uring unavailable: %s\n", reason);
    exit(3);
}

/* kernel.io_uring_disabled (6.6+): 0 allowed, 1 only for CAP_SYS_ADMIN or kernel.io_uring_group, 2 off. -1 if absent. */
static int io_uring_disabled_sysctl(void)
{
    FILE *f = fopen("/proc/sys/kernel/io_uring_disabled", "r");
    if (f == NULL) return -1;
    int value = -1;
    if (fscanf(f, "%d", &value) != 1) value = -1;
    fclose(f);
    return value;
}

static void *map_ring(size_t size, off_t offset)
{
    /* MAP_POPULATE: fault the shared pages in now rather than on the first few submissions. */
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring.fd, offset);
    if (p == MAP_FAILED) die("mmap(io_uring)");
    return p;
}

static void ring_init(void)
{
    int disabled = io_uring_disabled_sysctl();
    if (disabled == 2) unavailable("kernel.io_uring_disabled is 2 (io_uring is switched off for all processes)");

    /*
     * Setup flags, best first; each older kernel rejects what it does not know with EINVAL.
     * SINGLE_ISSUER | DEFER_TASKRUN: only this thread submits, and completion work runs when
     * we ask for events instead of interrupting us (the fastest mode for a one-thread loop).
     * COOP_TASKRUN: completion work does not need an inter-processor interrupt to run.
     */
    static const unsigned flag_sets[] = {
        IORING_SETUP_CQSIZE | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
        IORING_SETUP_CQSIZE | IORING_SETUP_COOP_TASKRUN,
        IORING_SETUP_CQSIZE,
        0,
    };
    struct io_uring_params p;
    ring.fd = -1;
    for (size_t i = 0; i < sizeof flag_sets / sizeof flag_sets[0] && ring.fd < 0; i++) {
        memset(&p, 0, sizeof p);
        p.flags = flag_sets[i];
        p.cq_entries = CQ_ENTRIES;
        ring.fd = sys_io_uring_setup(SQ_ENTRIES, &p);
        if (ring.fd < 0 && errno != EINVAL) break;
    }
    if (ring.fd < 0) {
        static char reason[256];
        if (errno == ENOSYS) unavailable("io_uring_setup: ENOSYS (kernel built without CONFIG_IO_URING, or older than 5.1)");
        if (errno == EPERM && disabled == 1)
            unavailable("io_uring_setup: EPERM (kernel.io_uring_disabled is 1: only CAP_SYS_ADMIN and members of "
                        "kernel.io_uring_group may use io_uring)");
        if (errno == EPERM) unavailable("io_uring_setup: EPERM (io_uring is forbidden by a seccomp filter or a security module)");
        snprintf(reason, sizeof reason, "io_uring_setup: %s", strerror(errno));
        unavailable(reason);
    }
    if (!(p.features & IORING_FEAT_NODROP))
        fprintf(stderr, "echo-uring: kernel lacks IORING_FEAT_NODROP: completions may be lost if the CQ overflows\n");

    /* With IORING_FEAT_SINGLE_MMAP the SQ and CQ rings share one mapping, sized for the larger. */
    size_t sq_size = p.sq_off.array + p.sq_entries * sizeof(unsigned);
    size_t cq_size = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
    char *sq, *cq;
    if (p.features & IORING_FEAT_SINGLE_MMAP) {
        sq = cq = map_ring(sq_size > cq_size ? sq_size : cq_size, IORING_OFF_SQ_RING);
    } else {
        sq = map_ring(sq_size, IORING_OFF_SQ_RING);
        cq = map_ring(cq_size, IORING_OFF_CQ_RING);
    }
    ring.sqes = map_ring(p.sq_entries * sizeof(struct io_uring_sqe), IORING_OFF_SQES);

    ring.sq_head = (unsigned *)(sq + p.sq_off.head);
    ring.sq_tail = (unsigned *)(sq + p.sq_off.tail);
    ring.sq_flags = (unsigned *)(sq + p.sq_off.flags);
    ring.sq_mask = *(unsigned *)(sq + p.sq_off.ring_mask);
    ring.sq_entries = *(unsigned *)(sq + p.sq_off.ring_entries);
    unsigned *sq_array = (unsigned *)(sq + p.sq_off.array);
    for (unsigned i = 0; i < ring.sq_entries; i++) sq_array[i] = i;
    ring.sqe_tail = *ring.sq_tail;

    ring.cq_head = (unsigned *)(cq + p.cq_off.head);
    ring.cq_tail = (unsigned *)(cq + p.cq_off.tail);
    ring.cq_overflow = (unsigned *)(cq + p.cq_off.overflow);
    ring.cq_mask = *(unsigned *)(cq + p.cq_off.ring_mask);
    ring.cqes = (struct io_uring_cqe *)(cq + p.cq_off.cqes);
}

/*
 * Publishes the SQEs filled since the last call and enters the kernel, which submits them and,
 * when wait_nr > 0, waits for that many completions in the same call. Returns io_uring_enter's
 * result: SQEs consumed, or -1 with errno set.
 */
static int ring_enter(unsigned wait_nr)
{
    /* Release: the SQEs' contents are visible to the kernel before the tail that covers them. */
    __atomic_store_n(ring.sq_tail, ring.sqe_tail, __ATOMIC_RELEASE);
    unsigned to_submit = ring.sqe_tail - __atomic_load_n(ring.sq_head, __ATOMIC_ACQUIRE);
    unsigned flags = 0;
    /*
     * GETEVENTS both waits and runs deferred completion work. It is also how completions that
     * did not fit in a full CQ (kept aside by the kernel, flagged by IORING_SQ_CQ_OVERFLOW) are
     * moved back into the ring, so pass it whenever that flag is up.
     */
    if (wait_nr > 0 || (__atomic_load_n(ring.sq_flags, __ATOMIC_RELAXED) & IORING_SQ_CQ_OVERFLOW))
        flags |= IORING_ENTER_GETEVENTS;
    return sys_io_uring_enter(ring.fd, to_submit, wait_nr, flags);
}

/* A zeroed SQE to fill. When the SQ is full, the queued ones are submitted first to make room. */
static struct io_uring_sqe *ring_get_sqe(void)
{
    /* Acquire: the kernel has finished reading the SQEs behind the head it published. */
    unsigned head = __atomic_load_n(ring.sq_head, __ATOMIC_ACQUIRE);
    if (ring.sqe_tail - head == ring.sq_entries) {
        /*
         * Without SQPOLL the kernel consumes every submitted SQE before io_uring_enter returns,
         * even when the CQ is full (the completions then overflow, see ring_enter). Only a
         * failure of the call itself can leave the queue full.
         */
        if (ring_enter(0) < 0 && errno != EINTR && errno != EAGAIN && errno != EBUSY) die("io_uring_enter");
        head = __atomic_load_n(ring.sq_head, __ATOMIC_ACQUIRE);
        if (ring.sqe_tail - head == ring.sq_entries) die("io_uring_enter left the submission queue full");
    }
    struct io_uring_sqe *sqe = &ring.sqes[ring.sqe_tail & ring.sq_mask];
    memset(sqe, 0, sizeof *sqe);
    ring.sqe_tail++;
    return sqe;
}

static void arm_accept(void)
{
    struct io_uring_sqe *sqe = ring_get_sqe();
    sqe->opcode = IORING_OP_ACCEPT;
    sqe->fd = listen_fd;
    /* Accepted sockets stay blocking: io_uring tries each operation without blocking and, if it
     * would, waits for readiness itself. O_NONBLOCK would only make it return -EAGAIN to us. */
    sqe->accept_flags = SOCK_CLOEXEC;
    /* Multishot: one SQE, one CQE per accepted connection (IORING_CQE_F_MORE while it lasts). */
    if (multishot_accept) sqe->ioprio = IORING_ACCEPT_MULTISHOT;
    sqe->user_data = UD_ACCEPT;
}

static void arm_signal_read(int sig_fd)
{
    struct io_uring_sqe *sqe = ring_get_sqe();
    sqe->opcode = IORING_OP_READ;
    sqe->fd = sig_fd;
    sqe->addr = (uint64_t)(uintptr_t)&siginfo;
    sqe->len = sizeof siginfo;
    sqe->user_data = UD_SIGNAL;
}

static void arm_recv(struct conn *c)
{
    struct io_uring_sqe *sqe = ring_get_sqe();
    sqe->opcode = IORING_OP_RECV;
    sqe->fd = c->fd;
    sqe->addr = (uint64_t)(uintptr_t)c->buf;
    sqe->len = BUF_SIZE;
    sqe->user_data = (uint64_t)(uintptr_t)c;
    c->op = OP_RECV;
}

static void arm_send(struct conn *c)
{
    struct io_uring_sqe *sqe = ring_get_sqe();
    sqe->opcode = IORING_OP_SEND;
    sqe->fd = c->fd;
    sqe->addr = (uint64_t)(uintptr_t)(c->buf + c->off);
    sqe->len = c->len - c->off;
    sqe->msg_flags = MSG_NOSIGNAL;
    sqe->user_data = (uint64_t)(uintptr_t)c;
    c->op = OP_SEND;
}

static void close_conn(struct conn *c)
{
    /* Nothing is in flight on c (one operation at a time, and it just completed): close now. */
    close(c->fd);
    c->op = OP_NONE;
    if (accept_paused) {
        accept_paused = false;
        arm_accept();
    }
}

static void on_accept(int res, unsigned cqe_flags)
{
    if (res >= 0) {
        if (res >= max_fds) {
            close(res); /* only above MAX_FDS: fds stay below the soft RLIMIT_NOFILE */
        } else {
            struct conn *c = &conns[res];
            *c = (struct conn){ .fd = res, .buf = buffers + (size_t)res * BUF_SIZE };
            set_nodelay(res);
            arm_recv(c);
        }
    } else if (res == -EINVAL && multishot_accept) {
        /* Before 5.19 the kernel rejects IORING_ACCEPT_MULTISHOT: one SQE per accept, then. */
        multishot_accept = false;
    } else if (res == -EMFILE || res == -ENFILE || res == -ENOBUFS || res == -ENOMEM) {
        static bool reported;
        if (!reported) fprintf(stderr, "echo-uring: accept: %s; pausing accepts until a close (reported once)\n", strerror(-res));
        reported = true;
        /* The error ended the accept. Re-arming now would fail again at once, for as long as
         * connections wait: a spin. A close gives a descriptor back; re-arm then. */
        if (!(cqe_flags & IORING_CQE_F_MORE)) {
            accept_paused = true;
            return;
        }
    } else if (res != -ECONNABORTED && res != -EINTR) {
        fprintf(stderr, "echo-uring: accept: %s\n", strerror(-res));
    }
    /* Single-shot accept, or a multishot one the kernel ended (after an error): arm a new one. */
    if (!(cqe_flags & IORING_CQE_F_MORE)) arm_accept();
}

static void on_conn(struct conn *c, int res)
{
    if (res <= 0) {
        /* End of stream (0), or ECONNRESET/EPIPE: the client is gone. -EINTR would mean a
         * signal during a blocking wait, which cannot happen with the signals blocked. */
        close_conn(c);
        return;
    }
    if (c->op == OP_RECV) {
        c->len = (uint32_t)res;
        c->off = 0;
        arm_send(c);
    } else {
        c->off += (uint32_t)res;
        if (c->off < c->len) {
            arm_send(c); /* short send: the rest */
        } else {
            arm_recv(c);
        }
    }
}

int main(int argc, char **argv)
{
    struct in_addr host;
    int port;
    parse_server_args(argc, argv, &host, &port);

    ring_init();
    max_fds = raise_nofile_limit();
    if (max_fds > MAX_FDS) max_fds = MAX_FDS;
    conns = calloc((size_t)max_fds, sizeof *conns);
    if (conns == NULL) die("calloc");
    buffers = mmap(NULL, (size_t)max_fds * BUF_SIZE, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (buffers == MAP_FAILED) die("mmap(buffers)");

    int sig_fd = termination_signalfd(SFD_CLOEXEC);
    listen_fd = listen_tcp(host, port, 0, &port);
    arm_accept();
    arm_signal_read(sig_fd);
    announce_port(port);

    unsigned lost_reported = 0;
    for (;;) {
        if (ring_enter(1) < 0) {
            /*
             * EINTR: a stop/continue ended the wait. EAGAIN/EBUSY: the kernel could not take
             * more work until completions are reaped (old kernels with overflowed CQEs). In
             * each case reaping what is there and entering again is the remedy.
             */
            if (errno != EINTR && errno != EAGAIN && errno != EBUSY) die("io_uring_enter");
        }

        /* Acquire: the CQEs up to the tail are completely written. The head is ours alone. */
        unsigned head = *ring.cq_head;
        unsigned tail = __atomic_load_n(ring.cq_tail, __ATOMIC_ACQUIRE);
        for (; head != tail; head++) {
            const struct io_uring_cqe *cqe = &ring.cqes[head & ring.cq_mask];
            uint64_t user_data = cqe->user_data;
            int res = cqe->res;
            unsigned flags = cqe->flags;
            if (user_data == UD_SIGNAL) return 0;
            if (user_data == UD_ACCEPT) {
                on_accept(res, flags);
            } else {
                on_conn((struct conn *)(uintptr_t)user_data, res);
            }
        }
        /* Release: we are done reading these CQEs; the kernel may reuse their slots. */
        __atomic_store_n(ring.cq_head, head, __ATOMIC_RELEASE);

        /* Only kernels without IORING_FEAT_NODROP drop completions; say so if they do. */
        unsigned lost = __atomic_load_n(ring.cq_overflow, __ATOMIC_RELAXED);
        if (lost != lost_reported) {
            fprintf(stderr, "echo-uring: %u completions lost to CQ overflow\n", lost - lost_reported);
            lost_reported = lost;
        }
    }
}
