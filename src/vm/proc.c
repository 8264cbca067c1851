/*
 * proc.c - see proc.h.
 */
#include "vm/proc.h"

#include "core/proc.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

/* How much of a log file's end vm_log_tail() reads. */
#define TAIL_BYTES 4096

/* Process identity is core/proc.c's, shared with the sandbox manager. */
int vm_proc_starttime(pid_t pid, uint64_t *ret_starttime)
{
        return ha_proc_start_time((int)pid, ret_starttime);
}

bool vm_process_alive(pid_t pid, uint64_t starttime)
{
        return ha_proc_alive((int)pid, starttime);
}

int vm_fd_high(int fd)
{
        if (fd < 0 || fd >= VM_FD_FLOOR)
                return fd;
        int n = fcntl(fd, F_DUPFD_CLOEXEC, VM_FD_FLOOR);
        if (n < 0)
                return fd;
        close(fd);
        return n;
}

int vm_proc_open(pid_t pid, uint64_t starttime)
{
        if (pid <= 0)
                return -ESRCH;
        int fd = pidfd_open(pid, 0);
        if (fd < 0)
                return errno == ESRCH ? -ESRCH : -errno;
        /* pidfds are O_CLOEXEC by definition. Check identity only now: a
         * check before the open could pass for a process that then exits
         * and has its pid reused before pidfd_open. */
        if (!vm_process_alive(pid, starttime)) {
                close(fd);
                return -ESRCH;
        }
        return vm_fd_high(fd);
}

bool vm_proc_wait(int pidfd, unsigned timeout_ms)
{
        struct pollfd pfd = { .fd = pidfd, .events = POLLIN };
        for (;;) {
                int r = poll(&pfd, 1, (int)timeout_ms);
                if (r < 0 && errno == EINTR)
                        continue;
                return r > 0;
        }
}

int vm_proc_reap(int pidfd, pid_t pid, struct vm_exit *ret)
{
        siginfo_t si;
        memset(&si, 0, sizeof si);
        memset(ret, 0, sizeof *ret);
        ret->pid = pid;
        ret->code = -1;
        for (;;) {
                if (waitid(P_PIDFD, (id_t)pidfd, &si, WEXITED | WNOHANG) == 0)
                        break;
                if (errno == EINTR)
                        continue;
                return -errno;
        }
        if (si.si_pid == 0)
                return -EAGAIN;
        ret->known = true;
        if (si.si_code == CLD_EXITED)
                ret->code = si.si_status;
        else
                ret->signal = si.si_status;
        return 0;
}

void vm_exit_describe(const struct vm_exit *ex, char *buf, size_t size)
{
        if (!ex->known)
                snprintf(buf, size, "exited (status unknown: not our child)");
        else if (ex->signal)
                snprintf(buf, size, "killed by signal %d (%s)", ex->signal, strsignal(ex->signal));
        else
                snprintf(buf, size, "exited with code %d", ex->code);
}

size_t vm_log_tail(const char *path, unsigned lines, char *out, size_t size)
{
        if (size == 0)
                return 0;
        out[0] = '\0';
        if (!path || lines == 0)
                return 0;
        int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0)
                return 0;
        char buf[TAIL_BYTES + 1];
        struct stat st;
        ssize_t n = -1;
        if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
                off_t off = st.st_size > TAIL_BYTES ? st.st_size - TAIL_BYTES : 0;
                n = pread(fd, buf, TAIL_BYTES, off);
        }
        close(fd);
        if (n <= 0)
                return 0;
        /* Drop trailing newlines/blanks, then walk back |lines| newlines. */
        while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
                n--;
        ssize_t start = n;
        unsigned seen = 0;
        while (start > 0) {
                if (buf[start - 1] == '\n' && ++seen == lines)
                        break;
                start--;
        }
        size_t len = 0;
        for (ssize_t i = start; i < n && len + 1 < size; i++) {
                unsigned char c = (unsigned char)buf[i];
                if (c == '\r')
                        continue;
                out[len++] = (char)((c == '\n' || (c >= 0x20 && c < 0x7f) || c >= 0x80) ? c : '.');
        }
        out[len] = '\0';
        return len;
}
