/*
 * stress_vm - a plain (non-Criterion) program that runs VM lifecycles from
 * several threads at once with one shared exit watcher, killing some VMMs
 * from outside; built and registered as ctest "vm/stress" so the thread
 * sanitizer (under which Criterion cannot start here) checks vm.c and
 * watcher.c too.
 *
 *   stress_vm <vm_fakefc path>      exit 0 when every lifecycle behaved
 */
#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vm/vm.h"

enum { THREADS = 4, ROUNDS = 5 };

static char dir[64], bin[128], kernel[128], rootfs[128], run_dir[128];
static atomic_int fired, failures;

static void on_exit_cb(void *ctx, vm *v, const struct vm_exit *ex, const char *tail)
{
        (void)ctx;
        (void)tail;
        (void)vm_get_state(v);
        if (ex->signal == SIGKILL)
                atomic_fetch_add(&fired, 1);
}

static void *worker(void *arg)
{
        vm_watcher *w = ((void **)arg)[0];
        int idx = (int)(long)((void **)arg)[1];
        char id[16];
        snprintf(id, sizeof id, "st-%d", idx);
        struct vm_config c = { .firecracker_bin = bin, .kernel_path = kernel, .run_dir = run_dir,
                               .watcher = w, .stop_timeout_ms = 200 };
        struct vm_spec s = { .id = id, .rootfs_path = rootfs, .on_exit = on_exit_cb };
        for (int round = 0; round < ROUNDS; round++) {
                vm *v;
                struct ha_err e = { { 0 } };
                if (vm_start(&c, &s, &v, &e) < 0) {
                        fprintf(stderr, "stress: start %s: %s\n", id, e.msg);
                        atomic_fetch_add(&failures, 1);
                        return NULL;
                }
                if (vm_pause(v, &e) < 0 || vm_resume(v, &e) < 0) {
                        fprintf(stderr, "stress: pause/resume %s: %s\n", id, e.msg);
                        atomic_fetch_add(&failures, 1);
                }
                if (round % 2) {
                        kill(vm_pid(v), SIGKILL);
                        for (int i = 0; i < 500 && vm_get_state(v) != VM_STATE_EXITED; i++)
                                usleep(2000);
                }
                if (vm_stop(v, &e) < 0) {
                        fprintf(stderr, "stress: stop %s: %s\n", id, e.msg);
                        atomic_fetch_add(&failures, 1);
                }
                vm_free(v);
        }
        return NULL;
}

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
        (void)sb;
        (void)flag;
        (void)ftw;
        remove(p);
        return 0;
}

static int write_file(const char *p, const char *s, mode_t mode)
{
        FILE *f = fopen(p, "w");
        if (!f)
                return -1;
        fputs(s, f);
        fclose(f);
        return chmod(p, mode);
}

int main(int argc, char **argv)
{
        if (argc != 2) {
                fprintf(stderr, "usage: stress_vm <vm_fakefc>\n");
                return 2;
        }
        if (geteuid() != 0) {
                printf("stress: skipped, needs root\n");
                return 0;
        }
        snprintf(dir, sizeof dir, "/tmp/havm-st-XXXXXX");
        if (!mkdtemp(dir))
                return 2;
        snprintf(bin, sizeof bin, "%s/fc", dir);
        snprintf(kernel, sizeof kernel, "%s/vmlinux", dir);
        snprintf(rootfs, sizeof rootfs, "%s/rootfs", dir);
        snprintf(run_dir, sizeof run_dir, "%s/run", dir);
        char script[512];
        snprintf(script, sizeof script, "#!/bin/sh\nexec %s --mode ok \"$@\"\n", argv[1]);
        if (write_file(bin, script, 0755) < 0 || write_file(kernel, "k", 0644) < 0 ||
            write_file(rootfs, "r", 0600) < 0)
                return 2;

        vm_watcher *w;
        if (vm_watcher_new(&w) < 0)
                return 2;
        pthread_t t[THREADS];
        void *args[THREADS][2];
        for (long i = 0; i < THREADS; i++) {
                args[i][0] = w;
                args[i][1] = (void *)i;
                pthread_create(&t[i], NULL, worker, args[i]);
        }
        for (int i = 0; i < THREADS; i++)
                pthread_join(t[i], NULL);
        vm_watcher_free(w);
        nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);

        int want = THREADS * (ROUNDS / 2);
        printf("stress: %d lifecycles, %d external kills reported (want %d), %d failures\n",
               THREADS * ROUNDS, atomic_load(&fired), want, atomic_load(&failures));
        return (atomic_load(&failures) == 0 && atomic_load(&fired) == want) ? 0 : 1;
}
