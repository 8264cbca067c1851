/*
 * Tests of src/sandbox/proc.c: a process is identified by pid and start
 * time; exited and zombie processes are not alive.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sandbox/backend.h"

Test(sbx_proc, start_time_identifies_a_live_process)
{
        uint64_t st;
        cr_assert_eq(sbx_proc_start_time(getpid(), &st), 0);
        cr_assert_gt(st, 0);
        cr_assert(sbx_proc_alive(getpid(), st));
        cr_assert_not(sbx_proc_alive(getpid(), st + 1), "same pid, other start time");
        cr_assert_eq(sbx_proc_start_time(0, &st), -ESRCH);
        cr_assert_eq(sbx_proc_start_time(-1, &st), -ESRCH);
}

Test(sbx_proc, exited_and_zombie_processes_are_not_alive)
{
        pid_t pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0) {
                pause();
                _exit(0);
        }
        uint64_t st;
        cr_assert_eq(sbx_proc_start_time(pid, &st), 0);
        cr_assert(sbx_proc_alive(pid, st));
        kill(pid, SIGKILL);
        /* a zombie until reaped */
        for (int i = 0; i < 1000 && sbx_proc_alive(pid, st); i++)
                usleep(1000);
        cr_assert_not(sbx_proc_alive(pid, st));
        cr_assert_eq(waitpid(pid, NULL, 0), pid);
        cr_assert_not(sbx_proc_alive(pid, st));
        cr_assert_eq(sbx_proc_start_time(pid, &st), -ESRCH);
}
