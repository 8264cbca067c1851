/*
 * session.c - one connection = one command: the guest side of the
 * protocol in proto/guest/v1/guest.proto.
 *
 * States: WAIT_START (only ping/start accepted) -> RUNNING (command
 * started; stdin/close_stdin/signal/ping accepted) -> FLUSHING (exited or
 * error queued; the connection closes once it is written).
 *
 * Memory per session is bounded and fixed up front:
 *   obuf: one output chunk (read straight from a pipe behind room for its
 *         frame prefix) plus CTRL_ROOM for small control frames. A pipe is
 *         read only when obuf is empty, so while the host does not read,
 *         the socket stays full, obuf stays full, the pipe fills and the
 *         command blocks in write(2). Nothing else buffers output.
 *   ibuf: stdin not yet accepted by the command's pipe; requests stop
 *         being read from the socket above STDIN_HIGH, which pushes back on
 *         the host in the same way.
 *   rd:   the request frame reader, at most EXEC_FRAME_MAX + header.
 *
 * End of a command: the leader is reaped (main.c dispatches SIGCHLD by
 * pid), then each pipe is read until EOF or until it is empty (a
 * background child may hold it open forever; what the leader wrote is
 * already in it), then exited is sent. Connection loss or a timeout
 * SIGKILLs the process group, but only while the leader is unreaped: a
 * reaped pid may already belong to someone else.
 */
#include "ga.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "guest/v1/guest.pb-c.h"

/* Room after an output chunk for control frames (started, exited, pong,
 * error: each < 400 bytes). */
#define CTRL_ROOM 4096
/* A request is only processed when its answer is sure to fit. */
#define CTRL_MIN_FREE 1024
#define OBUF_CAP (EXEC_OUTPUT_PREFIX_MAX + EXEC_OUTPUT_CHUNK_MAX + CTRL_ROOM)
/* Pending stdin above which requests are no longer read from the socket. */
#define STDIN_HIGH ((size_t)256 * 1024)
/* Longest error message sent; keeps error frames within CTRL_MIN_FREE. */
#define ERR_MSG_MAX 300
/* Work done for one session per wake-up before others get their turn. */
#define PUMP_ROUNDS 16

enum sess_state { SS_WAIT_START, SS_RUNNING, SS_FLUSHING };

struct ga_session {
        struct ga_session *prev, *next;
        struct ga_agent *a;
        enum sess_state state;
        bool dead;              /* on the graveyard; ignore its events */
        unsigned id;            /* for logs */

        int sock;
        bool sock_readable;     /* EPOLLIN seen, EAGAIN not yet */
        struct ga_handle h_sock, h_out, h_err, h_in;
        struct exec_frame_reader rd;

        uint8_t *obuf;          /* OBUF_CAP bytes; [ooff, olen) to send */
        size_t ooff, olen;
        uint8_t *ibuf;          /* [ioff, ilen) stdin to write */
        size_t ioff, ilen, icap;
        bool close_stdin_pending;
        bool err_first;         /* alternate stdout/stderr reads */

        pid_t pid;              /* 0 before start */
        int in_fd, out_fd, err_fd;
        uint64_t start_ns, end_ns;
        uint64_t deadline_ms;   /* monotonic; 0 = none */
        bool reaped, timed_out;
        int status;
};

static uint64_t mono_ns(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static size_t obuf_pending(const struct ga_session *s)
{
        return s->olen - s->ooff;
}

static size_t obuf_free(struct ga_session *s)
{
        if (s->ooff == s->olen)
                s->ooff = s->olen = 0;
        return OBUF_CAP - s->olen;
}

static void close_fd(struct ga_session *s, struct ga_handle *h, int *fd)
{
        if (*fd < 0)
                return;
        ga_watch(s->a, h, *fd, 0);
        close(*fd);
        *fd = -1;
}

/* Ends the session: closes everything, kills the command if it still runs,
 * and moves the session to the graveyard (freed after this epoll batch). */
static void session_end(struct ga_session *s, const char *why)
{
        struct ga_agent *a = s->a;

        if (s->pid > 0 && !s->reaped) {
                kill(-s->pid, SIGKILL);
                ha_log_info("guest.exec_killed", "session=%u pid=%d reason=%s", s->id, (int)s->pid, why);
        }
        close_fd(s, &s->h_sock, &s->sock);
        close_fd(s, &s->h_in, &s->in_fd);
        close_fd(s, &s->h_out, &s->out_fd);
        close_fd(s, &s->h_err, &s->err_fd);
        if (s->prev)
                s->prev->next = s->next;
        else
                a->sessions = s->next;
        if (s->next)
                s->next->prev = s->prev;
        s->prev = NULL;
        s->next = a->graveyard;
        a->graveyard = s;
        a->n_sessions--;
        s->dead = true;
}

static int append_msg(struct ga_session *s, const ProtobufCMessage *m)
{
        size_t len = protobuf_c_message_get_packed_size(m);

        if (EXEC_FRAME_HDR_LEN + len > obuf_free(s))
                return -ENOBUFS;
        exec_frame_hdr_put(s->obuf + s->olen, (uint32_t)len);
        protobuf_c_message_pack(m, s->obuf + s->olen + EXEC_FRAME_HDR_LEN);
        s->olen += EXEC_FRAME_HDR_LEN + len;
        return 0;
}

static void append_event(struct ga_session *s, Hostagent__Guest__V1__GuestEvent *ev)
{
        if (append_msg(s, &ev->base) < 0) {
                /* Cannot happen while CTRL_MIN_FREE is respected. */
                ha_log_error("guest.obuf_full", "session=%u", s->id);
                session_end(s, "obuf_full");
        }
}

/* Queues an error event; the session closes once it is sent. */
static __attribute__((format(printf, 3, 4))) void send_error(struct ga_session *s,
                                                             Hostagent__Guest__V1__ErrorCode code,
                                                             const char *fmt, ...)
{
        Hostagent__Guest__V1__GuestEvent ev = HOSTAGENT__GUEST__V1__GUEST_EVENT__INIT;
        Hostagent__Guest__V1__Error er = HOSTAGENT__GUEST__V1__ERROR__INIT;
        char msg[ERR_MSG_MAX];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        ha_log_info("guest.exec_error", "session=%u code=%d msg=\"%s\"", s->id, (int)code, msg);
        er.code = code;
        er.message = msg;
        ev.kind_case = HOSTAGENT__GUEST__V1__GUEST_EVENT__KIND_ERROR;
        ev.error = &er;
        /* Whatever output is queued stays ahead of the error. */
        append_event(s, &ev);
        if (s->dead)
                return;
        if (s->pid > 0 && !s->reaped)
                kill(-s->pid, SIGKILL);
        s->state = SS_FLUSHING;
}

static void send_pong(struct ga_session *s)
{
        Hostagent__Guest__V1__GuestEvent ev = HOSTAGENT__GUEST__V1__GUEST_EVENT__INIT;
        Hostagent__Guest__V1__Pong pg = HOSTAGENT__GUEST__V1__PONG__INIT;

        ev.kind_case = HOSTAGENT__GUEST__V1__GUEST_EVENT__KIND_PONG;
        ev.pong = &pg;
        append_event(s, &ev);
}

static void send_exited(struct ga_session *s)
{
        Hostagent__Guest__V1__GuestEvent ev = HOSTAGENT__GUEST__V1__GUEST_EVENT__INIT;
        Hostagent__Guest__V1__Exited ex = HOSTAGENT__GUEST__V1__EXITED__INIT;

        if (WIFSIGNALED(s->status)) {
                ex.signal = WTERMSIG(s->status);
                ex.exit_code = -1;
        } else {
                ex.exit_code = WEXITSTATUS(s->status);
        }
        ex.duration_ns = s->end_ns - s->start_ns;
        ex.timed_out = s->timed_out;
        ev.kind_case = HOSTAGENT__GUEST__V1__GUEST_EVENT__KIND_EXITED;
        ev.exited = &ex;
        ha_log_info("guest.exec_exited", "session=%u pid=%d exit_code=%d signal=%d timed_out=%d duration_ms=%llu",
                    s->id, (int)s->pid, ex.exit_code, ex.signal, (int)ex.timed_out,
                    (unsigned long long)(ex.duration_ns / 1000000));
        append_event(s, &ev);
        s->state = SS_FLUSHING;
}

/* --- starting the command --------------------------------------------- */

static void free_strv(char **v)
{
        if (!v)
                return;
        for (char **p = v; *p; p++)
                free(*p);
        free(v);
}

static bool env_has(char **envp, size_t n, const char *key)
{
        size_t kl = strlen(key);

        for (size_t i = 0; i < n; i++)
                if (strncmp(envp[i], key, kl) == 0 && envp[i][kl] == '=')
                        return true;
        return false;
}

/* Builds the NULL-terminated "k=v" array: the request's env plus PATH and
 * HOME when missing. Returns 0, -EINVAL (bad key), -ENOMEM. */
static int build_env(const Hostagent__Guest__V1__Start *st, const char *home, char ***ret)
{
        char **envp = calloc(st->n_env + 3, sizeof *envp);
        size_t n = 0;

        if (!envp)
                return -ENOMEM;
        for (size_t i = 0; i < st->n_env; i++) {
                const char *k = st->env[i]->key, *v = st->env[i]->value;

                if (!k || !*k || strchr(k, '=') || !v)
                        goto out_inval;
                if (asprintf(&envp[n], "%s=%s", k, v) < 0) {
                        envp[n] = NULL;
                        free_strv(envp);
                        return -ENOMEM;
                }
                n++;
        }
        if (!env_has(envp, n, "PATH") && !(envp[n++] = strdup("PATH=" GA_DEFAULT_PATH)))
                goto out_nomem;
        if (!env_has(envp, n, "HOME") && asprintf(&envp[n++], "HOME=%s", home) < 0) {
                envp[n - 1] = NULL;
                goto out_nomem;
        }
        *ret = envp;
        return 0;

out_inval:
        free_strv(envp);
        return -EINVAL;
out_nomem:
        free_strv(envp);
        return -ENOMEM;
}

static void start_failed(struct ga_session *s, const Hostagent__Guest__V1__Start *st, int r,
                         enum ga_spawn_stage stage)
{
        const char *arg0 = st->argv[0];

        switch (stage) {
        case GA_STAGE_EXEC:
                if (r == -ENOENT)
                        send_error(s, HOSTAGENT__GUEST__V1__ERROR_CODE__ERROR_CODE_NOT_FOUND,
                                   "executable not found: %s%s", arg0,
                                   strchr(arg0, '/') ? "" : " (searched PATH)");
                else if (r == -EACCES || r == -EPERM)
                        send_error(s, HOSTAGENT__GUEST__V1__ERROR_CODE__ERROR_CODE_PERMISSION_DENIED,
                                   "cannot execute %s: %s", arg0, strerror(-r));
                else
                        send_error(s, HOSTAGENT__GUEST__V1__ERROR_CODE__ERROR_CODE_BAD_REQUEST,
                                   "cannot execute %s: %s", arg0, strerror(-r));
                break;
        case GA_STAGE_CWD:
                send_error(s, HOSTAGENT__GUEST__V1__ERROR_CODE__ERROR_CODE_INVALID_CWD,
                           "cannot change directory to %s: %s", st->cwd, strerror(-r));
                break;
        case GA_STAGE_USER:
                send_error(s, HOSTAGENT__GUEST__V1__ERROR_CODE__ERROR_CODE_PERMISSION_DENIED,
                           "cannot switch to user %s: %s", st->user, strerror(-r));
                break;
        case GA_STAGE_SETUP:
        default:
                send_error(s, r == -EMFILE || r == -ENFILE || r == -EAGAIN || r == -ENOMEM
                                      ? HOSTAGENT__GUEST__V1__ERROR_CODE__ERROR_CODE_RESOURCE_EXHAUSTED
                                      : HOSTAGENT__GUEST__V1__ERROR_CODE__ERROR_CODE_INTERNAL,
                           "cannot start command: %s", strerror(-r));
                break;
        }
}

static void start_command(struct ga_session *s, const Hostagent__Guest__V1__Start *st)
{
        Hostagent__Guest__V1__GuestEvent ev = HOSTAGENT__GUEST__V1__GUEST_EVENT__INIT;
        Hostagent__Guest__V1__Started sd = HOSTAGENT__GUEST__V1__STARTED__INIT;
        struct ga_spawn_req req = { 0 };
        struct ga_spawn_result res;
        enum ga_spawn_stage stage;
        struct ga_user user;
        bool have_user = false;
        char **argv = NULL, **envp = NULL;
        const char *home = "/";
        int r;

        if (st->n_argv == 0 || !st->argv[0][0]) {
                send_error(s, HOSTAGENT__GUEST__V1__ERROR_CODE__ERROR_CODE_BAD_REQUEST, "empty command");
                return;
        }
        if (st->user && st->user[0]) {
                r = ga_user_lookup(st->user, "/etc/passwd", "/etc/group", &user);
                if (r == -ENOENT || r == -EINVAL) {
                        send_error(s, HOSTAGENT__GUEST__V1__ERROR_CODE__ERROR_CODE_UNKNOWN_USER,
                                   "unknown user \"%.64s\" (not in /etc/passwd)", st->user);
                        return;
                }
                if (r < 0) {
                        send_error(s, HOSTAGENT__GUEST__V1__ERROR_CODE__ERROR_CODE_INTERNAL,
                                   "reading /etc/passwd: %s", strerror(-r));
                        return;
                }
                have_user = true;
                home = user.home;
        } else {
                char self[16];

                /* No user: run as the agent; HOME and the default cwd come
                 * from its own passwd entry when there is one. */
                snprintf(self, sizeof self, "%u", (unsigned)geteuid());
                if (ga_user_lookup(self, "/etc/passwd", "/etc/group", &user) == 0)
                        home = user.home;
        }

        argv = calloc(st->n_argv + 1, sizeof *argv);
        if (!argv)
                goto out_nomem;
        for (size_t i = 0; i < st->n_argv; i++)
                argv[i] = st->argv[i];          /* borrowed from the request */
        r = build_env(st, home, &envp);
        if (r == -EINVAL) {
                send_error(s, HOSTAGENT__GUEST__V1__ERROR_CODE__ERROR_CODE_BAD_REQUEST,
                           "invalid environment variable name");
                goto out_free;
        }
        if (r < 0)
                goto out_nomem;

        req.argv = argv;
        req.envp = envp;
        req.cwd = st->cwd && st->cwd[0] ? st->cwd : home;
        req.cwd_fallback_root = !(st->cwd && st->cwd[0]);
        req.user = have_user ? &user : NULL;
        req.nofile = &s->a->nofile_orig;
        r = ga_spawn(&req, &res, &stage);
        if (r < 0) {
                start_failed(s, st, r, stage);
                goto out_free;
        }
        s->pid = res.pid;
        s->in_fd = res.in_fd;
        s->out_fd = res.out_fd;
        s->err_fd = res.err_fd;
        s->start_ns = res.start_ns;
        s->state = SS_RUNNING;
        /* A timeout too large to add is no timeout. */
        if (st->timeout_ms && st->timeout_ms < UINT64_MAX - s->start_ns / 1000000)
                s->deadline_ms = s->start_ns / 1000000 + st->timeout_ms;
        ha_log_info("guest.exec_started", "session=%u pid=%d argv0=\"%.64s\" user=\"%.32s\" timeout_ms=%llu", s->id,
                    (int)s->pid, st->argv[0], st->user ? st->user : "",
                    (unsigned long long)st->timeout_ms);
        sd.pid = s->pid;
        ev.kind_case = HOSTAGENT__GUEST__V1__GUEST_EVENT__KIND_STARTED;
        ev.started = &sd;
        append_event(s, &ev);
        goto out_free;

out_nomem:
        send_error(s, HOSTAGENT__GUEST__V1__ERROR_CODE__ERROR_CODE_RESOURCE_EXHAUSTED, "out of memory");
out_free:
        free(argv);
        free_strv(envp);
}

/* --- requests ----------------------------------------------------------- */

static void queue_stdin(struct ga_session *s, const ProtobufCBinaryData *d)
{
        if (s->in_fd < 0 || s->close_stdin_pending || d->len == 0)
                return;         /* the command closed stdin: like a pipe, data is dropped */
        if (s->ioff == s->ilen)
                s->ioff = s->ilen = 0;
        if (s->icap - s->ilen < d->len) {
                size_t pending = s->ilen - s->ioff, need = pending + d->len;
                uint8_t *nb;

                if (s->ioff) {
                        memmove(s->ibuf, s->ibuf + s->ioff, pending);
                        s->ioff = 0;
                        s->ilen = pending;
                }
                if (need > s->icap) {
                        nb = realloc(s->ibuf, need);
                        if (!nb) {
                                send_error(s, HOSTAGENT__GUEST__V1__ERROR_CODE__ERROR_CODE_RESOURCE_EXHAUSTED,
                                           "out of memory for stdin");
                                return;
                        }
                        s->ibuf = nb;
                        s->icap = need;
                }
        }
        memcpy(s->ibuf + s->ilen, d->data, d->len);
        s->ilen += d->len;
}

/* Out-of-band signal: a connection without a command names another
 * session's command by pid. Only a live, unreaped leader is signalled, so
 * the pid cannot have been reused. */
static void signal_other(struct ga_session *s, int32_t pid, int32_t signo)
{
        struct ga_session *t = ga_session_find_pid(s->a, (pid_t)pid);

        if (signo < 1 || signo >= NSIG) {
                send_error(s, HOSTAGENT__GUEST__V1__ERROR_CODE__ERROR_CODE_BAD_REQUEST, "bad signal number %d",
                           (int)signo);
                return;
        }
        if (!t || t->dead) {
                send_error(s, HOSTAGENT__GUEST__V1__ERROR_CODE__ERROR_CODE_NOT_FOUND,
                           "no running command with pid %d", (int)pid);
                return;
        }
        kill(-t->pid, signo);
        send_pong(s);
}

static void handle_request(struct ga_session *s, const uint8_t *body, size_t len)
{
        Hostagent__Guest__V1__GuestRequest *req = hostagent__guest__v1__guest_request__unpack(NULL, len, body);

        if (!req) {
                send_error(s, HOSTAGENT__GUEST__V1__ERROR_CODE__ERROR_CODE_BAD_REQUEST, "malformed request frame");
                return;
        }
        switch (req->kind_case) {
        case HOSTAGENT__GUEST__V1__GUEST_REQUEST__KIND_PING:
                send_pong(s);
                break;
        case HOSTAGENT__GUEST__V1__GUEST_REQUEST__KIND_START:
                if (s->state == SS_WAIT_START)
                        start_command(s, req->start);
                else
                        send_error(s, HOSTAGENT__GUEST__V1__ERROR_CODE__ERROR_CODE_BAD_REQUEST,
                                   "start sent twice on one connection");
                break;
        case HOSTAGENT__GUEST__V1__GUEST_REQUEST__KIND_SIGNAL:
                if (s->state == SS_WAIT_START && req->signal->pid > 0) {
                        signal_other(s, req->signal->pid, req->signal->number);
                        break;
                }
                /* fall through */
        case HOSTAGENT__GUEST__V1__GUEST_REQUEST__KIND_STDIN:
        case HOSTAGENT__GUEST__V1__GUEST_REQUEST__KIND_CLOSE_STDIN:
                if (s->state != SS_RUNNING) {
                        send_error(s, HOSTAGENT__GUEST__V1__ERROR_CODE__ERROR_CODE_BAD_REQUEST,
                                   "request before start");
                        break;
                }
                if (req->kind_case == HOSTAGENT__GUEST__V1__GUEST_REQUEST__KIND_STDIN) {
                        queue_stdin(s, &req->stdin->data);
                } else if (req->kind_case == HOSTAGENT__GUEST__V1__GUEST_REQUEST__KIND_CLOSE_STDIN) {
                        s->close_stdin_pending = true;
                } else if (req->signal->number < 1 || req->signal->number >= NSIG) {
                        ha_log_warn("guest.bad_signal", "session=%u number=%d", s->id, req->signal->number);
                } else if (!s->reaped) {
                        kill(-s->pid, req->signal->number);
                }
                break;
        case HOSTAGENT__GUEST__V1__GUEST_REQUEST__KIND__NOT_SET:
        default:
                send_error(s, HOSTAGENT__GUEST__V1__ERROR_CODE__ERROR_CODE_BAD_REQUEST, "unknown request");
                break;
        }
        hostagent__guest__v1__guest_request__free_unpacked(req, NULL);
}

static bool can_take_input(struct ga_session *s)
{
        return s->state != SS_FLUSHING && obuf_free(s) >= CTRL_MIN_FREE && s->ilen - s->ioff < STDIN_HIGH;
}

static void frame_error(struct ga_session *s, int r)
{
        if (r == -EMSGSIZE)
                send_error(s, HOSTAGENT__GUEST__V1__ERROR_CODE__ERROR_CODE_TOO_LARGE,
                           "request frame over the %u-byte limit", EXEC_FRAME_MAX);
        else
                send_error(s, HOSTAGENT__GUEST__V1__ERROR_CODE__ERROR_CODE_BAD_REQUEST,
                           "bad frame header (%s)", strerror(-r));
}

/* Reads and handles requests while their answers and stdin fit. Returns
 * true when it did anything. */
static bool process_input(struct ga_session *s)
{
        bool progress = false;

        while (!s->dead && can_take_input(s)) {
                const uint8_t *body;
                uint32_t blen;
                uint8_t *p;
                size_t room;
                ssize_t n;
                int r = exec_frame_reader_next(&s->rd, &body, &blen);

                if (r > 0) {
                        handle_request(s, body, blen);
                        progress = true;
                        continue;
                }
                if (r == 0)
                        r = s->sock_readable ? exec_frame_reader_space(&s->rd, &p, &room) : 1;
                if (r < 0) {
                        frame_error(s, r);
                        return true;
                }
                if (r > 0)
                        break;
                n = recv(s->sock, p, room, MSG_DONTWAIT);
                if (n > 0) {
                        exec_frame_reader_commit(&s->rd, (size_t)n);
                        progress = true;
                } else if (n == 0) {
                        session_end(s, "connection_closed");
                } else if (errno == EAGAIN) {
                        s->sock_readable = false;
                } else if (errno != EINTR) {
                        session_end(s, "connection_error");
                }
        }
        return progress;
}

static bool feed_stdin(struct ga_session *s)
{
        bool progress = false;

        while (s->in_fd >= 0 && s->ilen > s->ioff) {
                ssize_t n = write(s->in_fd, s->ibuf + s->ioff, s->ilen - s->ioff);

                if (n > 0) {
                        s->ioff += (size_t)n;
                        progress = true;
                } else if (n < 0 && errno == EAGAIN) {
                        return progress;
                } else if (n < 0 && errno == EINTR) {
                        continue;
                } else {
                        /* EPIPE: the command closed its stdin. */
                        close_fd(s, &s->h_in, &s->in_fd);
                }
        }
        if (s->ioff == s->ilen || s->in_fd < 0)
                s->ioff = s->ilen = 0;
        if (s->close_stdin_pending && s->in_fd >= 0) {
                close_fd(s, &s->h_in, &s->in_fd);
                progress = true;
        }
        return progress;
}

/* --- output ------------------------------------------------------------ */

static int flush(struct ga_session *s)
{
        while (s->ooff < s->olen) {
                ssize_t n = send(s->sock, s->obuf + s->ooff, s->olen - s->ooff, MSG_DONTWAIT | MSG_NOSIGNAL);

                if (n > 0)
                        s->ooff += (size_t)n;
                else if (n < 0 && errno == EAGAIN)
                        return 0;
                else if (n < 0 && errno != EINTR)
                        return -errno;
        }
        s->ooff = s->olen = 0;
        return 0;
}

/* Reads one chunk of |stream| into the (empty) obuf. Returns 1 with a
 * frame queued, 0 when nothing was read (pipe empty, or closed now). */
static int read_chunk(struct ga_session *s, enum exec_stream stream)
{
        int *fd = stream == EXEC_STREAM_STDOUT ? &s->out_fd : &s->err_fd;
        struct ga_handle *h = stream == EXEC_STREAM_STDOUT ? &s->h_out : &s->h_err;
        uint8_t *data = s->obuf + EXEC_OUTPUT_PREFIX_MAX;
        ssize_t n;

        if (*fd < 0)
                return 0;
        do
                n = read(*fd, data, EXEC_OUTPUT_CHUNK_MAX);
        while (n < 0 && errno == EINTR);
        if (n > 0) {
                size_t pre = exec_frame_output_prefix(data, stream, (size_t)n);

                s->ooff = EXEC_OUTPUT_PREFIX_MAX - pre;
                s->olen = EXEC_OUTPUT_PREFIX_MAX + (size_t)n;
                return 1;
        }
        /* EOF, an error, or empty after the leader exited (whatever still
         * holds the pipe is not the command we report on). */
        if (n == 0 || errno != EAGAIN || s->reaped)
                close_fd(s, h, fd);
        return 0;
}

static bool read_output(struct ga_session *s)
{
        enum exec_stream first = s->err_first ? EXEC_STREAM_STDERR : EXEC_STREAM_STDOUT;
        enum exec_stream second = s->err_first ? EXEC_STREAM_STDOUT : EXEC_STREAM_STDERR;
        int had = (s->out_fd >= 0) + (s->err_fd >= 0);

        obuf_free(s);   /* resets offsets: obuf is empty here */
        if (read_chunk(s, first) || read_chunk(s, second)) {
                s->err_first = !s->err_first;
                return true;
        }
        return (s->out_fd >= 0) + (s->err_fd >= 0) != had;
}

static void update_events(struct ga_session *s)
{
        bool out_ok = s->state == SS_RUNNING && obuf_pending(s) == 0;
        uint32_t sock_ev = EPOLLRDHUP;

        if (obuf_pending(s))
                sock_ev |= EPOLLOUT;
        if (can_take_input(s))
                sock_ev |= EPOLLIN;
        ga_watch(s->a, &s->h_sock, s->sock, sock_ev);
        if (s->out_fd >= 0)
                ga_watch(s->a, &s->h_out, s->out_fd, out_ok ? EPOLLIN : 0);
        if (s->err_fd >= 0)
                ga_watch(s->a, &s->h_err, s->err_fd, out_ok ? EPOLLIN : 0);
        if (s->in_fd >= 0)
                ga_watch(s->a, &s->h_in, s->in_fd, s->ilen > s->ioff ? EPOLLOUT : 0);
}

/* Before a normal close: discards requests the host sent that will never
 * be read (stdin of a command that has exited). Closing an AF_UNIX socket
 * with unread data resets the peer, and a relay that then aborts might
 * drop the exited event still on its way to the host. Bounded: what
 * arrives after this is the host's problem. */
static void drain_input(struct ga_session *s)
{
        uint8_t scratch[16384];

        for (int i = 0; i < 64; i++)
                if (recv(s->sock, scratch, sizeof scratch, MSG_DONTWAIT) <= 0)
                        break;
        shutdown(s->sock, SHUT_WR);
}

/* Moves everything as far as it can go without blocking. */
static void pump(struct ga_session *s)
{
        for (int round = 0; round < PUMP_ROUNDS && !s->dead; round++) {
                bool progress = process_input(s);

                if (s->dead)
                        return;
                progress |= feed_stdin(s);
                if (flush(s) < 0) {
                        session_end(s, "connection_error");
                        return;
                }
                if (obuf_pending(s))
                        break;          /* socket full: wait for EPOLLOUT */
                if (s->state == SS_FLUSHING) {
                        drain_input(s);
                        session_end(s, "done");
                        return;
                }
                if (s->state == SS_RUNNING) {
                        if (s->reaped && s->out_fd < 0 && s->err_fd < 0) {
                                send_exited(s);
                                continue;
                        }
                        progress |= read_output(s);
                }
                if (!progress)
                        break;
        }
        if (!s->dead)
                update_events(s);
}

/* --- the rest of ga.h ---------------------------------------------------- */

int ga_session_new(struct ga_agent *a, int fd)
{
        struct ga_session *s = calloc(1, sizeof *s);

        if (!s)
                goto out_close;
        s->obuf = malloc(OBUF_CAP);
        if (!s->obuf)
                goto out_free;
        s->a = a;
        s->id = ++a->next_session_id;
        s->sock = fd;
        s->in_fd = s->out_fd = s->err_fd = -1;
        s->h_sock = (struct ga_handle){ .kind = GA_H_SOCK, .s = s };
        s->h_out = (struct ga_handle){ .kind = GA_H_STDOUT, .s = s };
        s->h_err = (struct ga_handle){ .kind = GA_H_STDERR, .s = s };
        s->h_in = (struct ga_handle){ .kind = GA_H_STDIN, .s = s };
        exec_frame_reader_init(&s->rd, EXEC_FRAME_MAX);
        if (ga_watch(a, &s->h_sock, fd, EPOLLIN | EPOLLRDHUP) < 0)
                goto out_free;
        s->next = a->sessions;
        if (a->sessions)
                a->sessions->prev = s;
        a->sessions = s;
        a->n_sessions++;
        return 0;

out_free:
        free(s->obuf);
        free(s);
out_close:
        close(fd);
        return -ENOMEM;
}

void ga_session_event(struct ga_handle *h, uint32_t events)
{
        struct ga_session *s = h->s;

        if (s->dead)
                return;
        if (h->kind == GA_H_SOCK) {
                if (events & (EPOLLERR | EPOLLHUP | EPOLLRDHUP)) {
                        /* The host closed (or half-closed) the connection:
                         * by contract, the command dies. */
                        session_end(s, "connection_closed");
                        return;
                }
                if (events & EPOLLIN)
                        s->sock_readable = true;
        }
        pump(s);
}

void ga_session_reaped(struct ga_session *s, int status)
{
        s->reaped = true;
        s->status = status;
        s->end_ns = mono_ns();
        pump(s);
}

struct ga_session *ga_session_find_pid(struct ga_agent *a, pid_t pid)
{
        for (struct ga_session *s = a->sessions; s; s = s->next)
                if (s->pid == pid && !s->reaped)
                        return s;
        return NULL;
}

int ga_session_timeouts(struct ga_agent *a)
{
        uint64_t now = mono_ns() / 1000000;
        int next = -1;

        for (struct ga_session *s = a->sessions; s; s = s->next) {
                if (!s->deadline_ms || s->reaped || s->timed_out)
                        continue;
                if (now >= s->deadline_ms) {
                        kill(-s->pid, SIGKILL);
                        s->timed_out = true;
                        ha_log_info("guest.exec_timeout", "session=%u pid=%d", s->id, (int)s->pid);
                        continue;
                }
                if (next < 0 || s->deadline_ms - now < (uint64_t)next)
                        next = (int)(s->deadline_ms - now > 60000 ? 60000 : s->deadline_ms - now);
        }
        return next;
}

void ga_session_kill_all(struct ga_agent *a)
{
        while (a->sessions)
                session_end(a->sessions, "shutdown");
}

void ga_session_bury(struct ga_agent *a)
{
        while (a->graveyard) {
                struct ga_session *s = a->graveyard;

                a->graveyard = s->next;
                exec_frame_reader_done(&s->rd);
                free(s->ibuf);
                free(s->obuf);
                free(s);
        }
}
