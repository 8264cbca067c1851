/*
 * Tests of vm/watcher.c with plain child processes: fire once per exit,
 * del before exit cancels, del waits for a fire in progress.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <sys/pidfd.h>

#include "fctest.h"
#include "vm/proc.h"
#include "vm/watcher.h"

struct hit {
        atomic_int count;
        int pidfd;
        pid_t pid;
        struct vm_exit ex;
        unsigned sleep_ms;
        atomic_bool done;
};

static void on_fire(void *arg)
{
        struct hit *h = arg;
        vm_proc_reap(h->pidfd, h->pid, &h->ex);
        if (h->sleep_ms)
                usleep(h->sleep_ms * 1000);
        atomic_fetch_add(&h->count, 1);
        atomic_store(&h->done, true);
}

static pid_t spawn_sleeper(int *ret_pidfd)
{
        pid_t pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0) {
                pause();
                _exit(0);
        }
        *ret_pidfd = pidfd_open(pid, 0);
        cr_assert_geq(*ret_pidfd, 0);
        return pid;
}

static bool wait_for(atomic_int *v, int want, int ms)
{
        for (int i = 0; i < ms; i++) {
                if (atomic_load(v) >= want)
                        return true;
                usleep(1000);
        }
        return atomic_load(v) >= want;
}

Test(vm_watcher, fires_once_with_the_exit_status)
{
        vm_watcher *w;
        cr_assert_eq(vm_watcher_new(&w), 0);
        struct hit h = { 0 };
        h.pid = spawn_sleeper(&h.pidfd);
        uint64_t key;
        cr_assert_eq(vm_watcher_add(w, h.pidfd, on_fire, &h, &key), 0);
        cr_assert_gt(key, 0);
        usleep(20000);
        cr_assert_eq(atomic_load(&h.count), 0, "no fire while it runs");
        kill(h.pid, SIGTERM);
        cr_assert(wait_for(&h.count, 1, 3000));
        cr_assert(h.ex.known);
        cr_assert_eq(h.ex.signal, SIGTERM);
        usleep(50000);
        cr_assert_eq(atomic_load(&h.count), 1, "exactly once");
        vm_watcher_del(w, key); /* already fired: no-op */
        close(h.pidfd);
        vm_watcher_free(w);
}

Test(vm_watcher, del_before_exit_cancels)
{
        vm_watcher *w;
        cr_assert_eq(vm_watcher_new(&w), 0);
        struct hit h = { 0 };
        h.pid = spawn_sleeper(&h.pidfd);
        uint64_t key;
        cr_assert_eq(vm_watcher_add(w, h.pidfd, on_fire, &h, &key), 0);
        vm_watcher_del(w, key);
        kill(h.pid, SIGKILL);
        waitpid(h.pid, NULL, 0);
        usleep(100000);
        cr_assert_eq(atomic_load(&h.count), 0);
        close(h.pidfd);
        vm_watcher_free(w);
}

Test(vm_watcher, del_waits_for_a_fire_in_progress)
{
        vm_watcher *w;
        cr_assert_eq(vm_watcher_new(&w), 0);
        struct hit h = { 0 };
        h.sleep_ms = 300;
        h.pid = spawn_sleeper(&h.pidfd);
        uint64_t key;
        cr_assert_eq(vm_watcher_add(w, h.pidfd, on_fire, &h, &key), 0);
        kill(h.pid, SIGKILL);
        usleep(100000); /* the fire is now sleeping */
        vm_watcher_del(w, key);
        cr_assert(atomic_load(&h.done), "del returned while the fire still ran");
        close(h.pidfd);
        vm_watcher_free(w);
}

Test(vm_watcher, many_processes_each_fire)
{
        vm_watcher *w;
        cr_assert_eq(vm_watcher_new(&w), 0);
        enum { N = 40 };
        static struct hit h[N];
        atomic_int total = 0;
        for (int i = 0; i < N; i++) {
                h[i].pid = spawn_sleeper(&h[i].pidfd);
                uint64_t key;
                cr_assert_eq(vm_watcher_add(w, h[i].pidfd, on_fire, &h[i], &key), 0);
        }
        for (int i = 0; i < N; i++)
                kill(h[i].pid, SIGKILL);
        for (int ms = 0; ms < 5000; ms++) {
                int n = 0;
                for (int i = 0; i < N; i++)
                        n += atomic_load(&h[i].count);
                atomic_store(&total, n);
                if (n == N)
                        break;
                usleep(1000);
        }
        cr_assert_eq(atomic_load(&total), N);
        for (int i = 0; i < N; i++)
                close(h[i].pidfd);
        vm_watcher_free(w);
}

Test(vm_watcher, free_with_pending_registrations_does_not_fire)
{
        vm_watcher *w;
        cr_assert_eq(vm_watcher_new(&w), 0);
        struct hit h = { 0 };
        h.pid = spawn_sleeper(&h.pidfd);
        uint64_t key;
        cr_assert_eq(vm_watcher_add(w, h.pidfd, on_fire, &h, &key), 0);
        vm_watcher_free(w);
        kill(h.pid, SIGKILL);
        waitpid(h.pid, NULL, 0);
        cr_assert_eq(atomic_load(&h.count), 0);
        close(h.pidfd);
}
