/*
 * exec.h - the host side of command execution in a sandbox: a client of the
 * guest agent (guest/) reached through Firecracker's hybrid vsock.
 *
 * One exec_conn is one command. Open it (the CONNECT handshake on the VM's
 * vsock uds_path), start the command, then pull events until EXITED or
 * ERROR. Backpressure is implicit: output is only read from the socket when
 * the caller asks for the next event, so a slow consumer fills the socket
 * buffers and the command blocks on its pipe write inside the guest. Freeing
 * the connection (at any time) makes the guest SIGKILL the command's
 * process group.
 *
 *   exec_conn *c;
 *   r = exec_conn_open(uds_path, EXEC_GUEST_PORT, deadline, &c, &err);
 *   r = exec_start(c, &spec, deadline, &err);
 *   while ((r = exec_next_event(c, now + 100, &ev)) == 0 || r == -ETIMEDOUT) {
 *           if (r == -ETIMEDOUT) { if (cancelled) break; continue; }
 *           ... ev.kind ...; if (ev.kind == EXEC_EV_EXITED || ev.kind == EXEC_EV_ERROR) break;
 *   }
 *   exec_conn_free(c);
 *
 * Threads: exec_next_event() must be called by one thread at a time; the
 * send functions (exec_start, exec_send_stdin, exec_close_stdin,
 * exec_signal, exec_ping) may be called from another thread concurrently
 * with it (they serialize per frame). exec_conn_free() only when no other
 * call is running (it stops an exec_feed_stdin thread itself).
 *
 * Deadlines are absolute CLOCK_MONOTONIC milliseconds (core/time.h
 * ha_now_ms()); EXEC_NO_DEADLINE waits forever.
 */
#ifndef EXEC_EXEC_H
#define EXEC_EXEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

/* The vsock port the guest agent listens on (guest/ GA_PORT). */
#define EXEC_GUEST_PORT 10000u
#define EXEC_NO_DEADLINE UINT64_MAX
/* Stdin larger than this is split into several frames by exec_send_stdin. */
#define EXEC_STDIN_CHUNK_MAX ((size_t)64 * 1024)
#define EXEC_ERR_MSG_MAX 256

typedef struct exec_conn exec_conn;

struct exec_env_var {
        const char *key;
        const char *value;
};

struct exec_spec {
        const char *const *argv;        /* argc >= 1; argv[0] searched in PATH without '/' */
        size_t argc;
        const struct exec_env_var *env; /* the whole environment (PATH defaults if absent) */
        size_t envc;
        const char *cwd;                /* NULL/"": the user's home dir, else "/" */
        const char *user;               /* name or decimal uid; NULL/"": the agent's (root) */
        uint64_t timeout_ms;            /* 0: none; else SIGKILL to the group, timed_out */
};

enum exec_event_kind {
        EXEC_EV_STARTED,
        EXEC_EV_STDOUT,
        EXEC_EV_STDERR,
        EXEC_EV_EXITED,         /* terminal */
        EXEC_EV_ERROR,          /* terminal: the command did not start */
        EXEC_EV_PONG,
};

/* Mirrors hostagent.guest.v1.ErrorCode. */
enum exec_error_code {
        EXEC_ERR_UNSPECIFIED = 0,
        EXEC_ERR_NOT_FOUND = 1,         /* executable not found        -> -ENOENT */
        EXEC_ERR_INVALID_CWD = 2,       /* cwd missing / not a dir     -> -EINVAL */
        EXEC_ERR_UNKNOWN_USER = 3,      /* no such user in the guest   -> -EINVAL */
        EXEC_ERR_TOO_LARGE = 4,         /* request frame over the limit -> -EMSGSIZE */
        EXEC_ERR_BAD_REQUEST = 5,       /*                             -> -EINVAL */
        EXEC_ERR_PERMISSION_DENIED = 6, /*                             -> -EACCES */
        EXEC_ERR_RESOURCE_EXHAUSTED = 7,/*                             -> -EAGAIN */
        EXEC_ERR_INTERNAL = 8,          /*                             -> -EIO */
};

struct exec_event {
        enum exec_event_kind kind;
        int32_t pid;                    /* STARTED: pid = process group id in the guest */
        const uint8_t *data;            /* STDOUT/STDERR: borrowed, valid until the next
                                         * exec_next_event() or exec_conn_free() */
        size_t len;
        int32_t exit_code;              /* EXITED: valid when signal == 0 */
        int32_t signal;                 /* EXITED: killing signal, else 0 */
        uint64_t duration_ns;           /* EXITED */
        bool timed_out;                 /* EXITED: killed by timeout_ms */
        enum exec_error_code error;     /* ERROR */
        char message[EXEC_ERR_MSG_MAX]; /* ERROR: the guest's words */
};

/* Connects to the guest agent through the hybrid vsock at |uds_path|:
 * connect(2), "CONNECT <port>\n" in one write, then "OK <n>\n". Retries
 * every 10 ms while the socket is missing or refusing, or the guest does not
 * listen yet (EOF before OK), until |deadline_ms|. Returns 0 and a new
 * connection in *ret, or -ETIMEDOUT (never became ready), -ENAMETOOLONG
 * (path over sun_path), -EPROTO (a reply that is not OK), -ENOMEM, other
 * -errno of socket(2)/connect(2). |err| (optional) gets the details. */
int exec_conn_open(const char *uds_path, uint32_t port, uint64_t deadline_ms, exec_conn **ret,
                   struct ha_err *err);

/* Readiness probe for sandbox creation: exec_conn_open() on EXEC_GUEST_PORT
 * then a ping answered by a pong, retried until |deadline_ms|. Returns 0
 * when the agent answers, -ETIMEDOUT, or the errors of exec_conn_open(). */
int exec_wait_ready(const char *uds_path, uint64_t deadline_ms, struct ha_err *err);

/* Closes the socket (the guest kills the command's group when it notices)
 * and frees. When the connection was backed up (a send timed out, or an
 * exec_feed_stdin was still running) and the command had not ended, it
 * also kills it out of band (exec_signal_pid SIGKILL, at most 1 s), since
 * a relay blocked on our stdin may not pass the close on. NULL is a no-op. */
void exec_conn_free(exec_conn *c);

/* The connection's socket, for poll(2)/epoll readiness (POLLIN: an event may
 * be ready for exec_next_event()) in a caller's own loop. Do not read,
 * write or close it. */
int exec_conn_fd(const exec_conn *c);

/* Sends the start request; the first event is then STARTED or ERROR.
 * Returns 0, -EINVAL (no argv, NULL strings, started twice), -EMSGSIZE
 * (request over EXEC_FRAME_MAX), -ETIMEDOUT (could not send by
 * |deadline_ms|), -EPIPE (connection gone), -ENOMEM. */
int exec_start(exec_conn *c, const struct exec_spec *spec, uint64_t deadline_ms,
               struct ha_err *err);

/* Waits for the next event until |deadline_ms|. Returns 0 and fills *ret;
 * -ETIMEDOUT (nothing yet: poll your cancel flag and call again, no state
 * lost); -EPIPE (the guest closed the connection: after EXITED/ERROR this is
 * the normal end, before it the VM or agent died); -EPROTO (malformed
 * frame), -EMSGSIZE (frame over limit), -ENOMEM, -ECONNRESET. Errors other
 * than -ETIMEDOUT are final. */
int exec_next_event(exec_conn *c, uint64_t deadline_ms, struct exec_event *ret);

/* Sends stdin bytes (split into EXEC_STDIN_CHUNK_MAX frames). Blocks while
 * the guest does not read (the command does not read its stdin), or
 * another thread is sending, until |deadline_ms|. Returns 0, -ETIMEDOUT
 * (part of the bytes may be sent: treat the stream as out of sync and free
 * the connection), -EPIPE, -ENOMEM. */
int exec_send_stdin(exec_conn *c, const void *data, size_t len, uint64_t deadline_ms);
/* Sends |len| bytes of stdin (copied first) from a background thread, then
 * closes stdin when |close_after|; returns at once, so the caller can read
 * events meanwhile - needed whenever the stdin may exceed the buffers on
 * the way (~0.5 MiB) and the command writes output before it has read all
 * its input. Returns 0, -EBUSY (one feed per connection), -ENOMEM, -EAGAIN.
 * Do not call exec_send_stdin/exec_close_stdin while it runs;
 * exec_signal/exec_ping are fine. A send failure ends the feed silently
 * (the events tell what happened); exec_conn_free() stops and joins it. */
int exec_feed_stdin(exec_conn *c, const void *data, size_t len, bool close_after);
/* The command sees EOF on stdin after the bytes already sent. Same returns. */
int exec_close_stdin(exec_conn *c, uint64_t deadline_ms);
/* Delivers signal |signo| (1..64) to the command's process group: on this
 * connection, or - when it stays blocked for 200 ms behind stdin the
 * command does not read, and STARTED has been received - through
 * exec_signal_pid(). Returns 0, -EINVAL (bad number), -ETIMEDOUT, -EPIPE,
 * or the errors of exec_signal_pid(). */
int exec_signal(exec_conn *c, int signo, uint64_t deadline_ms);
/* Out of band: a new connection that asks the agent to signal the process
 * group of its running command |pid| (the STARTED pid). Returns 0,
 * -ENOENT (no such command running), -EINVAL, or exec_conn_open()'s
 * errors. */
int exec_signal_pid(const char *uds_path, int32_t pid, int signo, uint64_t deadline_ms,
                    struct ha_err *err);
/* Asks for a PONG event (liveness). Same returns. */
int exec_ping(exec_conn *c, uint64_t deadline_ms);

/* The -errno a caller should map an ERROR event to (table above). */
int exec_error_to_errno(enum exec_error_code code);
/* A stable lower-case name ("not_found", ...), for logs. */
const char *exec_error_name(enum exec_error_code code);

#endif
