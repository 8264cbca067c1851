/*
 * proc.h - who a VMM process is, whether it still runs, how it ended, and
 * the last lines it wrote.
 *
 * A pid alone is not an identity: after an agent restart the pid in a record
 * may belong to some other process. (pid, starttime) is: starttime is field
 * 22 of /proc/<pid>/stat, in clock ticks since boot, so the pair could only
 * repeat if the pid space wrapped around within one tick (10 ms). While the
 * agent runs it holds a pidfd instead, which can never name another process.
 */
#ifndef HA_VM_PROC_H
#define HA_VM_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* How a VMM process ended. */
struct vm_exit {
        pid_t pid;
        bool known;     /* false: not our child (adopted), status unavailable */
        int code;       /* exit code when it exited normally, else -1 */
        int signal;     /* killing signal, else 0 */
};

/* Descriptors a VM keeps for its lifetime (pidfds) are moved to numbers
 * >= VM_FD_FLOOR, so that a thousand VMs leave the numbers below
 * FD_SETSIZE to code that select()s (libnftables, some libraries). */
#define VM_FD_FLOOR 1024

/* Moves |fd| to the lowest free number >= VM_FD_FLOOR (close-on-exec) and
 * returns it; returns |fd| unchanged when that fails (RLIMIT_NOFILE too
 * low) or |fd| < 0. */
int vm_fd_high(int fd);

/* Reads field 22 of /proc/<pid>/stat. Returns 0, -ESRCH (no such process),
 * -EIO (unparsable). */
int vm_proc_starttime(pid_t pid, uint64_t *ret_starttime);

/* True when <pid> exists, is not a zombie, and started at |starttime|. */
bool vm_process_alive(pid_t pid, uint64_t starttime);

/* Opens a pidfd for (pid, starttime), checking the start time after the
 * open so the pidfd surely names that process. Returns the fd (O_CLOEXEC),
 * -ESRCH (gone or reused) or -errno. */
int vm_proc_open(pid_t pid, uint64_t starttime);

/* Collects the exit of our child |pidfd| without blocking. Returns 0 (|ret|
 * filled, known = true), -EAGAIN (still running), -ECHILD (not our child or
 * already reaped: |ret| has known = false; vm_proc_wait(pidfd, 0) tells
 * whether it has ended). */
int vm_proc_reap(int pidfd, pid_t pid, struct vm_exit *ret);

/* Waits up to |timeout_ms| for |pidfd| to become readable (process ended).
 * Returns true when it ended. */
bool vm_proc_wait(int pidfd, unsigned timeout_ms);

/* "exited with code 1", "killed by signal 9 (Killed)", "exited (status
 * unknown: not our child)". */
void vm_exit_describe(const struct vm_exit *ex, char *buf, size_t size);

/* Last |lines| lines (at most the last 4 KiB) of the text file |path| into
 * |out|, lines joined by '\n', non-printable bytes shown as '.', trailing
 * blank lines dropped. Empty string when the file is missing or empty.
 * Returns the length written. */
size_t vm_log_tail(const char *path, unsigned lines, char *out, size_t size);

#endif
