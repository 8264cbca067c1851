/*
 * Tests of vm/proc.c: start time, liveness (zombies, reuse), pidfd
 * identity, reaping, exit descriptions, log tails.
 */
#include "fctest.h"
#include "vm/proc.h"

#include <sys/pidfd.h>
#include <sys/resource.h>

Test(vm_proc, starttime_identifies_a_process)
{
        uint64_t a, b;
        cr_assert_eq(vm_proc_starttime(getpid(), &a), 0);
        cr_assert_eq(vm_proc_starttime(getpid(), &b), 0);
        cr_assert_eq(a, b);
        cr_assert(vm_process_alive(getpid(), a));
        cr_assert_not(vm_process_alive(getpid(), a + 1), "same pid, other start: reused");
        cr_assert_eq(vm_proc_starttime(0, &a), -ESRCH);
        cr_assert_eq(vm_proc_starttime(0x3fffffff, &a), -ESRCH);
}

Test(vm_proc, zombie_is_not_alive_and_reap_reports_the_code)
{
        pid_t pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0)
                _exit(42);
        int pidfd = vm_proc_open(pid, 0); /* wrong start time */
        cr_assert(pidfd == -ESRCH || pidfd < 0);
        uint64_t st;
        cr_assert_eq(vm_proc_starttime(pid, &st), 0);
        cr_assert(vm_proc_wait(pidfd = pidfd_open(pid, 0), 3000));
        cr_assert_not(vm_process_alive(pid, st), "zombie");
        struct vm_exit ex;
        cr_assert_eq(vm_proc_reap(pidfd, pid, &ex), 0);
        cr_assert(ex.known);
        cr_assert_eq(ex.code, 42);
        cr_assert_eq(ex.signal, 0);
        char d[96];
        vm_exit_describe(&ex, d, sizeof d);
        cr_assert_str_eq(d, "exited with code 42");
        cr_assert_eq(vm_proc_reap(pidfd, pid, &ex), -ECHILD, "reaped once");
        close(pidfd);
}

Test(vm_proc, open_checks_identity_and_reap_of_a_stranger_is_echild)
{
        pid_t pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0) {
                pause();
                _exit(0);
        }
        uint64_t st;
        cr_assert_eq(vm_proc_starttime(pid, &st), 0);
        cr_assert_eq(vm_proc_open(pid, st + 7), -ESRCH);
        int fd = vm_proc_open(pid, st);
        cr_assert_geq(fd, 0);
        cr_assert(fcntl(fd, F_GETFD) & FD_CLOEXEC);
        struct vm_exit ex;
        cr_assert_eq(vm_proc_reap(fd, pid, &ex), -EAGAIN, "still running");
        kill(pid, SIGKILL);
        cr_assert(vm_proc_wait(fd, 3000));
        cr_assert_eq(vm_proc_reap(fd, pid, &ex), 0);
        cr_assert_eq(ex.signal, SIGKILL);
        char d[96];
        vm_exit_describe(&ex, d, sizeof d);
        cr_assert(strstr(d, "killed by signal 9"), "%s", d);
        close(fd);
        /* Not our child: pid 1. */
        fd = pidfd_open(1, 0);
        cr_assert_geq(fd, 0);
        cr_assert_eq(vm_proc_reap(fd, 1, &ex), -ECHILD);
        cr_assert_not(ex.known);
        vm_exit_describe(&ex, d, sizeof d);
        cr_assert(strstr(d, "not our child"), "%s", d);
        close(fd);
}

Test(vm_proc, log_tail_keeps_the_last_lines_printable)
{
        char dir[64], p[128], out[256];
        fct_mkdtemp(dir, sizeof dir);
        snprintf(p, sizeof p, "%s/log", dir);
        cr_assert_eq(vm_log_tail(p, 3, out, sizeof out), 0, "missing file: empty");
        cr_assert_str_eq(out, "");
        fct_write(p, "one\ntwo\nthree\x01\r\nfour\n\n\n", 0644);
        vm_log_tail(p, 2, out, sizeof out);
        cr_assert_str_eq(out, "three.\nfour");
        vm_log_tail(p, 10, out, sizeof out);
        cr_assert_str_eq(out, "one\ntwo\nthree.\nfour");
        vm_log_tail(p, 10, out, 5);
        cr_assert_str_eq(out, "one\n");
        /* Only the end of a big file is read. */
        int fd = open(p, O_WRONLY | O_TRUNC | O_CLOEXEC);
        for (int i = 0; i < 10000; i++)
                cr_assert_eq(write(fd, "xxxxxxxxxxxxxxxxxxx\n", 20), 20);
        cr_assert_eq(write(fd, "last words\n", 11), 11);
        close(fd);
        vm_log_tail(p, 1, out, sizeof out);
        cr_assert_str_eq(out, "last words");
        fct_rmrf(dir);
}

Test(vm_proc, vm_descriptors_move_above_fd_setsize)
{
        struct rlimit rl;
        cr_assert_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
        if (rl.rlim_max <= VM_FD_FLOOR)
                cr_skip_test("hard RLIMIT_NOFILE %llu leaves no room above %d", (unsigned long long)rl.rlim_max,
                             VM_FD_FLOOR);
        rl.rlim_cur = rl.rlim_max;
        cr_assert_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
        int fd = open("/dev/null", O_RDONLY);
        cr_assert_geq(fd, 0);
        int hi = vm_fd_high(fd);
        cr_assert_geq(hi, VM_FD_FLOOR);
        cr_assert_eq(fcntl(fd, F_GETFD), -1, "the low number is free again");
        cr_assert_eq(fcntl(hi, F_GETFD), FD_CLOEXEC);
        cr_assert_eq(vm_fd_high(hi), hi, "already high: unchanged");
        cr_assert_eq(vm_fd_high(-1), -1);
        /* pidfds of live processes come out high too. */
        uint64_t st;
        cr_assert_eq(vm_proc_starttime(getpid(), &st), 0);
        int pfd = vm_proc_open(getpid(), st);
        cr_assert_geq(pfd, VM_FD_FLOOR);
        close(pfd);
        close(hi);
        /* No room above the floor: the descriptor stays where it is. */
        rl.rlim_cur = VM_FD_FLOOR;
        cr_assert_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
        fd = open("/dev/null", O_RDONLY);
        cr_assert_eq(vm_fd_high(fd), fd);
        close(fd);
}
