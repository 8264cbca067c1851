/*
 * conn.c - one command in the guest, seen from the host (see exec.h).
 *
 * The socket is non-blocking; every wait is a poll(2) bounded by the
 * caller's deadline, so a worker thread can check its cancel flag often.
 * Nothing is read from the socket unless the caller asks for an event:
 * that is the whole backpressure mechanism. Receive memory is one frame
 * reader (grows to the largest frame seen, at most EXEC_FRAME_MAX).
 *
 * Reads happen on the thread calling exec_next_event(); writes take
 * send_lock (one frame at a time, waits bounded by the caller's deadline),
 * so stdin / signals can come from another thread. A connection backed up
 * with stdin cannot carry a signal, so exec_signal() then opens a second
 * connection that names the command by pid (exec_signal_pid()), and
 * exec_conn_free() kills the same way when a relay might not pass the
 * close on. Stdin fed in the background lives in feed.c.
 */
#include "exec/exec.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/time.h"
#include "exec/conn_int.h"
#include "exec/frame.h"
#include "exec/vsock.h"

/* Pause between connection attempts while the guest is not ready. A
 * refused attempt costs the VMM's vsock relay microseconds, and a create
 * waits for the guest agent here: every ms of pause is create latency. */
#define OPEN_RETRY_MS 2

int exec_error_to_errno(enum exec_error_code code)
{
        switch (code) {
        case EXEC_ERR_NOT_FOUND:
                return -ENOENT;
        case EXEC_ERR_INVALID_CWD:
        case EXEC_ERR_UNKNOWN_USER:
        case EXEC_ERR_BAD_REQUEST:
                return -EINVAL;
        case EXEC_ERR_TOO_LARGE:
                return -EMSGSIZE;
        case EXEC_ERR_PERMISSION_DENIED:
                return -EACCES;
        case EXEC_ERR_RESOURCE_EXHAUSTED:
                return -EAGAIN;
        case EXEC_ERR_UNSPECIFIED:
        case EXEC_ERR_INTERNAL:
        default:
                return -EIO;
        }
}

const char *exec_error_name(enum exec_error_code code)
{
        static const char *const names[] = {
                "unspecified", "not_found", "invalid_cwd", "unknown_user", "too_large",
                "bad_request", "permission_denied", "resource_exhausted", "internal",
        };

        if ((unsigned)code < sizeof names / sizeof names[0])
                return names[code];
        return "unknown";
}

static int poll_timeout(uint64_t deadline_ms)
{
        uint64_t now;

        if (deadline_ms == EXEC_NO_DEADLINE)
                return 1000;
        now = ha_now_ms();
        if (now >= deadline_ms)
                return 0;
        return deadline_ms - now > 1000 ? 1000 : (int)(deadline_ms - now);
}

int exec_conn_open(const char *uds_path, uint32_t port, uint64_t deadline_ms, exec_conn **ret,
                   struct ha_err *err)
{
        exec_conn *c;
        int fd = -1, r;

        for (;;) {
                r = exec_vsock_connect(uds_path, port, deadline_ms, &fd, err);
                if (r == 0)
                        break;
                if (!exec_vsock_is_transient(r) && r != -ETIMEDOUT)
                        return r;
                if (r == -ETIMEDOUT || ha_now_ms() + OPEN_RETRY_MS >= deadline_ms)
                        return ha_err_set(err, -ETIMEDOUT,
                                          "guest port %" PRIu32 " not reachable via %s before the deadline (last: %s)",
                                          port, uds_path, strerror(-r));
                usleep(OPEN_RETRY_MS * 1000);
        }

        c = calloc(1, sizeof *c);
        if (!c) {
                r = ha_err_set(err, -ENOMEM, "out of memory");
                goto out_close;
        }
        pthread_mutex_init(&c->send_lock, NULL);        /* cannot fail: default attributes */
        c->fd = fd;
        memcpy(c->path, uds_path, strlen(uds_path) + 1);       /* fits: checked by the connect */
        exec_frame_reader_init(&c->rd, EXEC_FRAME_MAX);
        *ret = c;
        return 0;

out_close:
        close(fd);
        return r;
}

/* How long exec_conn_free may spend making sure a backed-up command dies. */
#define FREE_KILL_MS 1000

void exec_conn_free(exec_conn *c)
{
        bool backed_up;
        int32_t pid;

        if (!c)
                return;
        /* Closing is the kill signal, but a relay blocked writing our
         * backlog of stdin into the guest may not notice the close (the
         * simulator's does not; Firecracker resets the guest side). Then
         * kill out of band, naming the pid. */
        pid = atomic_load(&c->pid);
        backed_up = atomic_load(&c->tx_blocked) || (c->feeding && !atomic_load(&c->feed_done));
        if (c->feeding) {
                /* Wake a feeder blocked in poll/send and wait for it. */
                atomic_store(&c->stopping, true);
                shutdown(c->fd, SHUT_RDWR);
                pthread_join(c->feeder, NULL);
                free(c->feed_data);
        }
        close(c->fd);
        if (backed_up && pid > 0 && !c->terminal)
                exec_signal_pid(c->path, pid, SIGKILL, ha_now_ms() + FREE_KILL_MS, NULL);
        if (c->last)
                hostagent__guest__v1__guest_event__free_unpacked(c->last, NULL);
        exec_frame_reader_done(&c->rd);
        pthread_mutex_destroy(&c->send_lock);
        free(c);
}

int exec_conn_lock(exec_conn *c, uint64_t deadline_ms)
{
        struct timespec ts;
        uint64_t now = ha_now_ms(), left_ns;
        int r;

        if (deadline_ms == EXEC_NO_DEADLINE) {
                pthread_mutex_lock(&c->send_lock);
                return 0;
        }
        r = pthread_mutex_trylock(&c->send_lock);
        if (r != EBUSY)
                return -r;
        /* pthread_mutex_timedlock() takes CLOCK_REALTIME: turn the
         * monotonic deadline into a wall-clock one (a clock step only
         * shifts this one wait). */
        left_ns = deadline_ms > now ? (deadline_ms - now) * 1000000u : 0;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += (time_t)(left_ns / 1000000000u);
        ts.tv_nsec += (long)(left_ns % 1000000000u);
        if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
        }
        r = pthread_mutex_timedlock(&c->send_lock, &ts);
        return -r;
}

int exec_conn_fd(const exec_conn *c)
{
        return c->fd;
}

/* Writes all of |p| under send_lock. Gives up with -ECANCELED when the
 * connection is being freed. */
static int send_all(exec_conn *c, const uint8_t *p, size_t n, uint64_t deadline_ms)
{
        while (n) {
                if (atomic_load(&c->stopping))
                        return -ECANCELED;
                ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);

                if (w > 0) {
                        p += w;
                        n -= (size_t)w;
                        continue;
                }
                if (w < 0 && errno == EINTR)
                        continue;
                if (w < 0 && errno != EAGAIN)
                        return errno == ECONNRESET ? -EPIPE : -errno;

                struct pollfd pf = { .fd = c->fd, .events = POLLOUT };
                int tmo = poll_timeout(deadline_ms);

                if (tmo == 0) {
                        atomic_store(&c->tx_blocked, true);
                        return -ETIMEDOUT;
                }
                if (poll(&pf, 1, tmo < 100 ? tmo : 100) < 0 && errno != EINTR)
                        return -errno;
        }
        return 0;
}

int exec_conn_send_request(exec_conn *c, const Hostagent__Guest__V1__GuestRequest *req,
                        uint64_t deadline_ms)
{
        uint8_t *frame;
        size_t len;
        int r = exec_frame_pack(&req->base, EXEC_FRAME_MAX, &frame, &len);

        if (r < 0)
                return r;
        r = send_all(c, frame, len, deadline_ms);
        free(frame);
        return r;
}

int exec_start(exec_conn *c, const struct exec_spec *spec, uint64_t deadline_ms, struct ha_err *err)
{
        Hostagent__Guest__V1__GuestRequest req = HOSTAGENT__GUEST__V1__GUEST_REQUEST__INIT;
        Hostagent__Guest__V1__Start st = HOSTAGENT__GUEST__V1__START__INIT;
        Hostagent__Guest__V1__Start__EnvEntry *entries = NULL, **envp = NULL;
        int r;

        if (!spec->argv || spec->argc == 0)
                return ha_err_set(err, -EINVAL, "exec: empty command");
        for (size_t i = 0; i < spec->argc; i++)
                if (!spec->argv[i])
                        return ha_err_set(err, -EINVAL, "exec: argv[%zu] is NULL", i);
        if (spec->envc) {
                entries = calloc(spec->envc, sizeof *entries);
                envp = calloc(spec->envc, sizeof *envp);
                if (!entries || !envp) {
                        r = ha_err_set(err, -ENOMEM, "out of memory");
                        goto out_free;
                }
        }
        for (size_t i = 0; i < spec->envc; i++) {
                if (!spec->env[i].key || !spec->env[i].value || !spec->env[i].key[0] ||
                    strchr(spec->env[i].key, '=')) {
                        r = ha_err_set(err, -EINVAL, "exec: bad environment variable name at %zu", i);
                        goto out_free;
                }
                hostagent__guest__v1__start__env_entry__init(&entries[i]);
                entries[i].key = (char *)spec->env[i].key;
                entries[i].value = (char *)spec->env[i].value;
                envp[i] = &entries[i];
        }
        st.n_argv = spec->argc;
        st.argv = (char **)spec->argv;
        st.n_env = spec->envc;
        st.env = envp;
        st.cwd = (char *)(spec->cwd ? spec->cwd : "");
        st.user = (char *)(spec->user ? spec->user : "");
        st.timeout_ms = spec->timeout_ms;
        req.kind_case = HOSTAGENT__GUEST__V1__GUEST_REQUEST__KIND_START;
        req.start = &st;

        r = exec_conn_lock(c, deadline_ms);
        if (r < 0) {
                ha_err_set(err, r, "exec: another sender holds the connection");
                goto out_free;
        }
        if (c->started) {
                r = ha_err_set(err, -EINVAL, "exec: already started on this connection");
        } else {
                r = exec_conn_send_request(c, &req, deadline_ms);
                if (r == 0)
                        c->started = true;
                else if (r == -EMSGSIZE)
                        ha_err_set(err, r, "exec: request over %u bytes (argv/env too large)", EXEC_FRAME_MAX);
                else
                        ha_err_set(err, r, "exec: sending start: %s", strerror(-r));
        }
        pthread_mutex_unlock(&c->send_lock);

out_free:
        free(envp);
        free(entries);
        return r;
}

int exec_send_stdin(exec_conn *c, const void *data, size_t len, uint64_t deadline_ms)
{
        Hostagent__Guest__V1__GuestRequest req = HOSTAGENT__GUEST__V1__GUEST_REQUEST__INIT;
        Hostagent__Guest__V1__StdinData sd = HOSTAGENT__GUEST__V1__STDIN_DATA__INIT;
        const uint8_t *p = data;
        int r = 0;

        req.kind_case = HOSTAGENT__GUEST__V1__GUEST_REQUEST__KIND_STDIN;
        req.stdin = &sd;
        while (len && r == 0) {
                size_t n = len > EXEC_STDIN_CHUNK_MAX ? EXEC_STDIN_CHUNK_MAX : len;

                /* One frame per lock: a signal from another thread can
                 * overtake a long stdin stream between chunks. */
                sd.data.data = (uint8_t *)p;
                sd.data.len = n;
                r = exec_conn_lock(c, deadline_ms);
                if (r < 0)
                        break;
                r = exec_conn_send_request(c, &req, deadline_ms);
                pthread_mutex_unlock(&c->send_lock);
                p += n;
                len -= n;
        }
        return r;
}

static int send_locked(exec_conn *c, const Hostagent__Guest__V1__GuestRequest *req, uint64_t deadline_ms)
{
        int r = exec_conn_lock(c, deadline_ms);

        if (r < 0)
                return r;
        r = exec_conn_send_request(c, req, deadline_ms);
        pthread_mutex_unlock(&c->send_lock);
        return r;
}

int exec_close_stdin(exec_conn *c, uint64_t deadline_ms)
{
        Hostagent__Guest__V1__GuestRequest req = HOSTAGENT__GUEST__V1__GUEST_REQUEST__INIT;
        Hostagent__Guest__V1__CloseStdin cs = HOSTAGENT__GUEST__V1__CLOSE_STDIN__INIT;

        req.kind_case = HOSTAGENT__GUEST__V1__GUEST_REQUEST__KIND_CLOSE_STDIN;
        req.close_stdin = &cs;
        return send_locked(c, &req, deadline_ms);
}

/* How long exec_signal tries its own connection before going out of band. */
#define SIGNAL_INBAND_MS 200

int exec_signal(exec_conn *c, int signo, uint64_t deadline_ms)
{
        Hostagent__Guest__V1__GuestRequest req = HOSTAGENT__GUEST__V1__GUEST_REQUEST__INIT;
        Hostagent__Guest__V1__Signal sg = HOSTAGENT__GUEST__V1__SIGNAL__INIT;
        uint64_t inband = ha_now_ms() + SIGNAL_INBAND_MS;
        int32_t pid;
        int r;

        if (signo < 1 || signo > 64)
                return -EINVAL;
        sg.number = signo;
        req.kind_case = HOSTAGENT__GUEST__V1__GUEST_REQUEST__KIND_SIGNAL;
        req.signal = &sg;
        r = send_locked(c, &req, inband < deadline_ms ? inband : deadline_ms);
        pid = atomic_load(&c->pid);
        if (r != -ETIMEDOUT || pid <= 0 || ha_now_ms() >= deadline_ms)
                return r;
        /* The connection is backed up (stdin the command does not read):
         * a signal must still get through, on a connection of its own.
         * A 9-byte frame is never sent in part, so the stream is intact. */
        r = exec_signal_pid(c->path, pid, signo, deadline_ms, NULL);
        return r == -ENOENT ? 0 : r;    /* gone meanwhile: nothing to signal */
}

int exec_signal_pid(const char *uds_path, int32_t pid, int signo, uint64_t deadline_ms, struct ha_err *err)
{
        Hostagent__Guest__V1__GuestRequest req = HOSTAGENT__GUEST__V1__GUEST_REQUEST__INIT;
        Hostagent__Guest__V1__Signal sg = HOSTAGENT__GUEST__V1__SIGNAL__INIT;
        struct exec_event ev = { 0 };
        exec_conn *c = NULL;
        int r;

        if (signo < 1 || signo > 64 || pid <= 0)
                return ha_err_set(err, -EINVAL, "bad signal %d or pid %d", signo, (int)pid);
        r = exec_conn_open(uds_path, EXEC_GUEST_PORT, deadline_ms, &c, err);
        if (r != 0)
                return r;
        sg.number = signo;
        sg.pid = pid;
        req.kind_case = HOSTAGENT__GUEST__V1__GUEST_REQUEST__KIND_SIGNAL;
        req.signal = &sg;
        r = send_locked(c, &req, deadline_ms);
        if (r == 0)
                r = exec_next_event(c, deadline_ms, &ev);
        if (r == 0 && ev.kind == EXEC_EV_ERROR)
                r = ha_err_set(err, exec_error_to_errno(ev.error), "%s", ev.message);
        else if (r == 0 && ev.kind != EXEC_EV_PONG)
                r = ha_err_set(err, -EPROTO, "unexpected answer to a signal");
        else if (r < 0)
                ha_err_set(err, r, "signal %d to pid %d: %s", signo, (int)pid, strerror(-r));
        exec_conn_free(c);
        return r;
}

int exec_ping(exec_conn *c, uint64_t deadline_ms)
{
        Hostagent__Guest__V1__GuestRequest req = HOSTAGENT__GUEST__V1__GUEST_REQUEST__INIT;
        Hostagent__Guest__V1__Ping pg = HOSTAGENT__GUEST__V1__PING__INIT;

        req.kind_case = HOSTAGENT__GUEST__V1__GUEST_REQUEST__KIND_PING;
        req.ping = &pg;
        return send_locked(c, &req, deadline_ms);
}

/* Turns one frame body into an event. Output takes the no-copy path; other
 * events are decoded by protobuf-c and kept in c->last until the next call
 * (an Output decoded that way points into it). */
static int decode_event(exec_conn *c, const uint8_t *body, size_t len, struct exec_event *ev)
{
        Hostagent__Guest__V1__GuestEvent *m;
        enum exec_stream s;

        memset(ev, 0, sizeof *ev);
        if (exec_frame_output_parse(body, len, &s, &ev->data, &ev->len)) {
                ev->kind = s == EXEC_STREAM_STDERR ? EXEC_EV_STDERR : EXEC_EV_STDOUT;
                return 0;
        }
        m = hostagent__guest__v1__guest_event__unpack(NULL, len, body);
        if (!m)
                return -EPROTO;
        c->last = m;
        switch (m->kind_case) {
        case HOSTAGENT__GUEST__V1__GUEST_EVENT__KIND_STARTED:
                ev->kind = EXEC_EV_STARTED;
                ev->pid = m->started->pid;
                atomic_store(&c->pid, ev->pid);
                return 0;
        case HOSTAGENT__GUEST__V1__GUEST_EVENT__KIND_STDOUT:
        case HOSTAGENT__GUEST__V1__GUEST_EVENT__KIND_STDERR:
                ev->kind = m->kind_case == HOSTAGENT__GUEST__V1__GUEST_EVENT__KIND_STDOUT ? EXEC_EV_STDOUT
                                                                                         : EXEC_EV_STDERR;
                ev->data = m->stdout->data.data;        /* same member of the union */
                ev->len = m->stdout->data.len;
                return 0;
        case HOSTAGENT__GUEST__V1__GUEST_EVENT__KIND_EXITED:
                c->terminal = true;
                ev->kind = EXEC_EV_EXITED;
                ev->exit_code = m->exited->exit_code;
                ev->signal = m->exited->signal;
                ev->duration_ns = m->exited->duration_ns;
                ev->timed_out = m->exited->timed_out;
                return 0;
        case HOSTAGENT__GUEST__V1__GUEST_EVENT__KIND_ERROR:
                c->terminal = true;
                ev->kind = EXEC_EV_ERROR;
                ev->error = (enum exec_error_code)m->error->code;
                snprintf(ev->message, sizeof ev->message, "%s", m->error->message ? m->error->message : "");
                return 0;
        case HOSTAGENT__GUEST__V1__GUEST_EVENT__KIND_PONG:
                ev->kind = EXEC_EV_PONG;
                return 0;
        case HOSTAGENT__GUEST__V1__GUEST_EVENT__KIND__NOT_SET:
        default:
                return -EPROTO;
        }
}

int exec_next_event(exec_conn *c, uint64_t deadline_ms, struct exec_event *ret)
{
        if (c->last) {
                hostagent__guest__v1__guest_event__free_unpacked(c->last, NULL);
                c->last = NULL;
        }
        for (;;) {
                const uint8_t *body;
                uint32_t blen;
                uint8_t *p;
                size_t room;
                ssize_t n;
                int r;

                if (c->final)
                        return c->final;
                r = exec_frame_reader_next(&c->rd, &body, &blen);
                if (r > 0) {
                        r = decode_event(c, body, blen, ret);
                        if (r < 0)
                                c->final = r;
                        return r;
                }
                if (r < 0) {
                        c->final = r;
                        continue;
                }
                if (c->eof) {
                        /* A partial frame at EOF is a guest that died mid-write;
                         * either way the conversation is over. */
                        c->final = -EPIPE;
                        continue;
                }
                r = exec_frame_reader_space(&c->rd, &p, &room);
                if (r < 0) {
                        c->final = r;
                        continue;
                }
                n = recv(c->fd, p, room, 0);
                if (n > 0) {
                        exec_frame_reader_commit(&c->rd, (size_t)n);
                        continue;
                }
                if (n == 0) {
                        c->eof = true;
                        continue;
                }
                if (errno == EINTR)
                        continue;
                if (errno != EAGAIN) {
                        c->final = errno == ECONNRESET ? -EPIPE : -errno;
                        continue;
                }

                struct pollfd pf = { .fd = c->fd, .events = POLLIN };
                int tmo = poll_timeout(deadline_ms);

                if (tmo == 0)
                        return -ETIMEDOUT;
                if (poll(&pf, 1, tmo) < 0 && errno != EINTR)
                        return -errno;
        }
}

int exec_wait_ready(const char *uds_path, uint64_t deadline_ms, struct ha_err *err)
{
        for (;;) {
                exec_conn *c = NULL;
                struct exec_event ev = { 0 };
                int r = exec_conn_open(uds_path, EXEC_GUEST_PORT, deadline_ms, &c, err);

                if (r != 0)
                        return r;
                r = exec_ping(c, deadline_ms);
                while (r == 0) {
                        r = exec_next_event(c, deadline_ms, &ev);
                        if (r == 0 && ev.kind == EXEC_EV_PONG)
                                break;
                        if (r == 0)
                                r = -EPROTO;
                }
                exec_conn_free(c);
                if (r == 0)
                        return 0;
                if (r == -ETIMEDOUT)
                        return ha_err_set(err, r, "guest agent did not answer a ping via %s before the deadline",
                                          uds_path);
                /* The agent accepted then went away (still booting or
                 * restarting): try again while time remains. */
                if (ha_now_ms() + OPEN_RETRY_MS >= deadline_ms)
                        return ha_err_set(err, -ETIMEDOUT, "guest agent not ready via %s: %s", uds_path,
                                          strerror(-r));
                usleep(OPEN_RETRY_MS * 1000);
        }
}
