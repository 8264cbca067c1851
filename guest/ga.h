/*
 * ga.h - the guest agent's internal interfaces (hostagent-guest, guest/).
 *
 * One process, one thread, one epoll loop: as PID 1 of a sandbox it must
 * never block, and a single thread makes the reaper trivially correct (no
 * one else calls wait). Each accepted connection is one ga_session that
 * runs one command.
 */
#ifndef GA_GA_H
#define GA_GA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/types.h>

#include "exec/frame.h"

/* The vsock port the agent listens on (== EXEC_GUEST_PORT, exec/exec.h). */
#define GA_PORT 10000u
/* Commands at once. Each costs 4 fds and up to ~1.3 MiB of buffers, so this
 * keeps a misbehaving host within the guest's fd and memory limits. */
#define GA_MAX_SESSIONS 512
/* Default PATH when the request's env has none. */
#define GA_DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

struct ga_session;

/* What an epoll registration points at. */
enum ga_handle_kind { GA_H_LISTEN, GA_H_SIGNAL, GA_H_SOCK, GA_H_STDOUT, GA_H_STDERR, GA_H_STDIN };

struct ga_handle {
        enum ga_handle_kind kind;
        struct ga_session *s;   /* NULL for the agent's own fds */
        uint32_t events;        /* currently registered mask; 0 = not registered */
};

struct ga_agent {
        int epfd;
        int listen_fd;
        int sig_fd;
        struct ga_handle h_listen, h_sig;
        bool pid1;
        struct ga_session *sessions;    /* live sessions, doubly linked */
        struct ga_session *graveyard;   /* freed after the current epoll batch */
        unsigned n_sessions;
        unsigned next_session_id;       /* for logs */
        bool accept_paused;             /* out of fds: listen fd unwatched until a session ends */
        struct rlimit nofile_orig;      /* RLIMIT_NOFILE before the agent raised it: for commands */
        bool stopping;
};

/* --- init.c: PID 1 duties --------------------------------------------- */

/* Mounts /proc, /sys, /dev (devtmpfs, else tmpfs + device nodes), /dev/pts,
 * /dev/shm, /tmp, /run; brings up lo; sets the hostname from |boot_args|
 * ("hostname=NAME", may be NULL) or "sandbox". Each step logs and goes on
 * when it fails: a half-initialized guest that can run commands beats one
 * that panics. */
void ga_init_system(const char *boot_args);
/* Makes sure fds 0, 1 and 2 are open (0 on /dev/null, 1 and 2 on
 * /dev/console if it opens, else /dev/null), so pipes never land there. */
void ga_init_stdio(void);
/* Finds "key=value" in a kernel-style command line; copies value into
 * |out|. Returns 0, -ENOENT, -ENAMETOOLONG. */
int ga_boot_arg(const char *cmdline, const char *key, char *out, size_t cap);

/* --- passwd.c: users without NSS (the binary is static) ---------------- */

#define GA_GROUPS_MAX 32
#define GA_HOME_MAX 256

struct ga_user {
        uid_t uid;
        gid_t gid;
        gid_t groups[GA_GROUPS_MAX];    /* supplementary, from /etc/group */
        size_t n_groups;
        char home[GA_HOME_MAX];
};

/* Resolves |name| (a login name or a decimal uid) using |passwd_path| and
 * |group_path|. A decimal uid missing from passwd is accepted with gid =
 * uid and home "/". Returns 0, -ENOENT (no such user), -EINVAL (malformed
 * name), -errno reading the files. */
int ga_user_lookup(const char *name, const char *passwd_path, const char *group_path,
                   struct ga_user *ret);

/* --- spawn.c: fork/exec with errors reported through a CLOEXEC pipe ---- */

enum ga_spawn_stage { GA_STAGE_SETUP = 1, GA_STAGE_USER, GA_STAGE_CWD, GA_STAGE_EXEC };

struct ga_spawn_req {
        char *const *argv;              /* NULL-terminated */
        char *const *envp;              /* NULL-terminated, includes PATH */
        const char *cwd;                /* chdir target */
        bool cwd_fallback_root;         /* on chdir failure use "/" (defaulted cwd) */
        const struct ga_user *user;     /* NULL: keep the agent's credentials */
        const struct rlimit *nofile;    /* NULL: inherit; else RLIMIT_NOFILE for the command */
};

struct ga_spawn_result {
        pid_t pid;
        int in_fd, out_fd, err_fd;      /* parent ends: non-blocking, CLOEXEC */
        uint64_t start_ns;
};

/* Starts the command in its own session and process group (pgid == pid)
 * with pipes on 0/1/2. Returns 0, or on a failure inside the child
 * -errno with *ret_stage saying where (the child has exited and is left for
 * the reaper), or -errno of pipe/fork with stage GA_STAGE_SETUP. */
int ga_spawn(const struct ga_spawn_req *req, struct ga_spawn_result *ret,
             enum ga_spawn_stage *ret_stage);

/* --- session.c: one connection, one command ---------------------------- */

/* Takes ownership of the connected socket |fd|. Returns 0 or -ENOMEM (fd
 * closed). */
int ga_session_new(struct ga_agent *a, int fd);
/* Handles readiness |events| on handle |h| of a session. */
void ga_session_event(struct ga_handle *h, uint32_t events);
/* The reaper found the session's command (pid) ended with |status|. */
void ga_session_reaped(struct ga_session *s, int status);
/* Finds the live session whose command is |pid|, else NULL. */
struct ga_session *ga_session_find_pid(struct ga_agent *a, pid_t pid);
/* Kills timed-out commands; returns ms until the next deadline, or -1. */
int ga_session_timeouts(struct ga_agent *a);
/* SIGKILLs every command's group and drops every connection (shutdown). */
void ga_session_kill_all(struct ga_agent *a);
/* Frees sessions ended during the last epoll batch. */
void ga_session_bury(struct ga_agent *a);

/* epoll helpers (main.c): set |h|'s registration for |fd| to |events|
 * (0 removes it). Returns 0 or -errno. */
int ga_watch(struct ga_agent *a, struct ga_handle *h, int fd, uint32_t events);

#endif
