/*
 * fake_backend.c - see fake_backend.h. A watcher thread polls the fake VMM
 * processes every 20 ms and reports unexpected exits to the manager, like
 * the real backend's pidfd watcher does.
 */
#include "testd/fake_backend.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/err.h"
#include "core/time.h"

#define FAKE_MAX 4096

struct fake_vmm {
        char id[SBX_ID_MAX + 1];
        int pid;
        uint64_t start;
        bool child;     /* ours to reap */
        bool stopping;
        bool in_use;
};

struct fake {
        struct sbx_backend table;
        sbx_mgr *mgr;
        char dir[512];          /* <state-dir>/fake */
        char tag[600];          /* argv[0] prefix: "fakevmm:<state-dir>:" */
        unsigned boot_ms;
        pthread_mutex_t lock;
        struct fake_vmm vmms[FAKE_MAX];   /* guarded_by: lock */
        bool slots[FAKE_MAX + 1];          /* guarded_by: lock */
        uint32_t nslots;
        pthread_t watcher;
        atomic_bool stop;
};

static int net_acquire(void *ctx, const char *id, const struct sbx_egress *eg, struct sbx_net_lease *ret,
                       struct ha_err *err)
{
        struct fake *f = ctx;
        pthread_mutex_lock(&f->lock);
        uint32_t s = 1;
        while (s <= f->nslots && f->slots[s])
                s++;
        if (s > f->nslots) {
                pthread_mutex_unlock(&f->lock);
                return ha_err_set(err, -EAGAIN, "all %u network slots are in use", f->nslots);
        }
        f->slots[s] = true;
        pthread_mutex_unlock(&f->lock);
        memset(ret, 0, sizeof *ret);
        ret->slot = s;
        snprintf(ret->host_ip, sizeof ret->host_ip, "10.99.%u.%u", s / 256, s % 256);
        snprintf(ret->tap_name, sizeof ret->tap_name, "tap0");
        return 0;
}

static int net_release(void *ctx, const char *id, const struct sbx_net_lease *l, struct ha_err *err)
{
        struct fake *f = ctx;
        pthread_mutex_lock(&f->lock);
        if (l->slot <= f->nslots)
                f->slots[l->slot] = false;
        pthread_mutex_unlock(&f->lock);
        return 0;
}

static int rootfs_clone(void *ctx, const char *id, const char *image, char *ret_path, struct ha_err *err)
{
        struct fake *f = ctx;
        if (strcmp(image, "missing") == 0)
                return ha_err_set(err, -ENOENT, "image \"missing\" not found");
        if (snprintf(ret_path, SBX_PATH_MAX, "%s/%s.img", f->dir, id) >= SBX_PATH_MAX)
                return ha_err_set(err, -ENAMETOOLONG, "state dir path too long");
        FILE *fp = fopen(ret_path, "we");
        if (!fp)
                return ha_err_set(err, -errno, "%s: %s", ret_path, strerror(errno));
        fclose(fp);
        return 0;
}

static int rootfs_remove(void *ctx, const char *id, const char *path, struct ha_err *err)
{
        if (unlink(path) < 0 && errno != ENOENT)
                return ha_err_set(err, -errno, "%s: %s", path, strerror(errno));
        return 0;
}

static struct fake_vmm *slot_for(struct fake *f, const char *id, bool create)
{
        struct fake_vmm *free_one = NULL;
        for (int i = 0; i < FAKE_MAX; i++) {
                if (f->vmms[i].in_use && strcmp(f->vmms[i].id, id) == 0)
                        return &f->vmms[i];
                if (!f->vmms[i].in_use && !free_one)
                        free_one = &f->vmms[i];
        }
        if (!create || !free_one)
                return NULL;
        memset(free_one, 0, sizeof *free_one);
        snprintf(free_one->id, sizeof free_one->id, "%s", id);
        free_one->in_use = true;
        return free_one;
}

static int spawn(struct fake *f, const char *id, struct sbx_vmm *ret, struct ha_err *err)
{
        char argv0[700];
        snprintf(argv0, sizeof argv0, "%s%s", f->tag, id);
        char *const argv[] = { argv0, (char *)"1000000", NULL };
        char *const envp[] = { NULL };
        pid_t pid = fork();
        if (pid < 0)
                return ha_err_set(err, -errno, "fork: %s", strerror(errno));
        if (pid == 0) {
                setsid();
                execve("/bin/sleep", argv, envp);
                _exit(127);
        }
        uint64_t st = 0;
        for (int i = 0; i < 100 && sbx_proc_start_time(pid, &st) < 0; i++)
                usleep(1000);
        pthread_mutex_lock(&f->lock);
        struct fake_vmm *v = slot_for(f, id, true);
        if (v) {
                v->pid = pid;
                v->start = st;
                v->child = true;
                v->stopping = false;
        }
        pthread_mutex_unlock(&f->lock);
        memset(ret, 0, sizeof *ret);
        ret->handle = f;
        ret->pid = pid;
        ret->start_time = st;
        if (snprintf(ret->vsock_uds, sizeof ret->vsock_uds, "%s/%s.vsock", f->dir, id) >= (int)sizeof ret->vsock_uds)
                ret->vsock_uds[0] = 0;
        return 0;
}

static int vmm_start(void *ctx, const char *id, const struct sbx_net_lease *net, struct sbx_vmm *ret,
                     struct ha_err *err)
{
        return spawn(ctx, id, ret, err);
}

static int vmm_configure(void *ctx, struct sbx_vmm *vmm, const struct sbx_vm_config *cfg, struct ha_err *err)
{
        return 0;
}

static int vmm_boot(void *ctx, struct sbx_vmm *vmm, struct ha_err *err)
{
        struct fake *f = ctx;
        if (f->boot_ms)
                usleep(f->boot_ms * 1000);
        return 0;
}

static int vmm_wait_ready(void *ctx, struct sbx_vmm *vmm, uint64_t deadline, const struct sbx_cancel *cancel,
                          struct ha_err *err)
{
        if (cancel && cancel->cancelled && cancel->cancelled(cancel->ctx))
                return -ECANCELED;
        return 0;
}

static int vmm_pause(void *ctx, struct sbx_vmm *vmm, struct ha_err *err)
{
        return kill(vmm->pid, SIGSTOP) < 0 ? ha_err_set(err, -errno, "SIGSTOP: %s", strerror(errno)) : 0;
}

static int vmm_resume(void *ctx, struct sbx_vmm *vmm, struct ha_err *err)
{
        return kill(vmm->pid, SIGCONT) < 0 ? ha_err_set(err, -errno, "SIGCONT: %s", strerror(errno)) : 0;
}

static void kill_and_reap(struct fake *f, const char *id, int pid, uint64_t start)
{
        bool child = false;
        pthread_mutex_lock(&f->lock);
        struct fake_vmm *v = slot_for(f, id, false);
        if (v) {
                child = v->child && v->pid == pid;
                v->stopping = true;
        }
        pthread_mutex_unlock(&f->lock);
        if (pid > 0 && sbx_proc_alive(pid, start)) {
                kill(-pid, SIGKILL);
                kill(pid, SIGKILL);
        }
        if (child && pid > 0)
                waitpid(pid, NULL, 0);
        pthread_mutex_lock(&f->lock);
        v = slot_for(f, id, false);
        if (v)
                v->in_use = false;
        pthread_mutex_unlock(&f->lock);
}

static int vmm_snapshot(void *ctx, struct sbx_vmm *vmm, struct ha_err *err)
{
        return ha_err_set(err, -ENOTSUP, "the fake VMM cannot snapshot");
}

static int vmm_restore(void *ctx, const char *id, const struct sbx_net_lease *net, const char *rootfs_path,
                       struct sbx_vmm *vmm, struct ha_err *err)
{
        return spawn(ctx, id, vmm, err);
}

static int vmm_stop(void *ctx, const char *id, struct sbx_vmm *vmm, struct ha_err *err)
{
        kill_and_reap(ctx, id, vmm->pid, vmm->start_time);
        vmm->pid = 0;
        vmm->handle = NULL;
        return 0;
}

static void vmm_forget(void *ctx, struct sbx_vmm *vmm)
{
        vmm->handle = NULL;
}

static bool vmm_alive(void *ctx, int pid, uint64_t start)
{
        return sbx_proc_alive(pid, start);
}

static int vmm_adopt(void *ctx, const struct sbx_resources *res, struct sbx_vmm *vmm, struct ha_err *err)
{
        struct fake *f = ctx;
        if (!sbx_proc_alive(res->vmm.pid, res->vmm.start_time))
                return -ESRCH;
        pthread_mutex_lock(&f->lock);
        struct fake_vmm *v = slot_for(f, res->id, true);
        if (v) {
                v->pid = res->vmm.pid;
                v->start = res->vmm.start_time;
                v->child = false;
        }
        if (res->has_net && res->net.slot <= f->nslots)
                f->slots[res->net.slot] = true;
        pthread_mutex_unlock(&f->lock);
        *vmm = res->vmm;
        vmm->handle = f;
        return 0;
}

static bool live_has(const struct sbx_resources *live, size_t n, const char *id)
{
        for (size_t i = 0; i < n; i++)
                if (strcmp(live[i].id, id) == 0)
                        return true;
        return false;
}

static int cleanup_orphans(void *ctx, const struct sbx_resources *live, size_t n, struct ha_err *err)
{
        struct fake *f = ctx;
        size_t tl = strlen(f->tag);
        DIR *d = opendir("/proc");
        for (struct dirent *e; d && (e = readdir(d));) {
                char *end;
                long pid = strtol(e->d_name, &end, 10);
                if (*end || pid <= 1)
                        continue;
                char path[64], buf[1024] = "";
                snprintf(path, sizeof path, "/proc/%ld/cmdline", pid);
                FILE *fp = fopen(path, "re");
                if (!fp)
                        continue;
                size_t len = fread(buf, 1, sizeof buf - 1, fp);
                fclose(fp);
                buf[len] = '\0';
                if (strncmp(buf, f->tag, tl) == 0 && !live_has(live, n, buf + tl)) {
                        kill((pid_t)pid, SIGKILL);
                }
        }
        if (d)
                closedir(d);
        d = opendir(f->dir);
        for (struct dirent *e; d && (e = readdir(d));) {
                size_t l = strlen(e->d_name);
                if (l < 5 || strcmp(e->d_name + l - 4, ".img") != 0)
                        continue;
                char id[SBX_ID_MAX + 1];
                snprintf(id, sizeof id, "%.*s", (int)(l - 4), e->d_name);
                if (live_has(live, n, id))
                        continue;
                char path[1024];
                snprintf(path, sizeof path, "%s/%s", f->dir, e->d_name);
                unlink(path);
        }
        if (d)
                closedir(d);
        return 0;
}

static void *watch_main(void *arg)
{
        struct fake *f = arg;
        while (!atomic_load(&f->stop)) {
                usleep(20000);
                for (int i = 0; i < FAKE_MAX; i++) {
                        pthread_mutex_lock(&f->lock);
                        struct fake_vmm v = f->vmms[i];
                        pthread_mutex_unlock(&f->lock);
                        if (!v.in_use || v.stopping || v.pid <= 0)
                                continue;
                        int status = -1;
                        bool dead;
                        if (v.child) {
                                pid_t w = waitpid(v.pid, &status, WNOHANG);
                                dead = w == v.pid;
                                if (dead)
                                        status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
                        } else {
                                dead = !sbx_proc_alive(v.pid, v.start);
                        }
                        if (!dead)
                                continue;
                        pthread_mutex_lock(&f->lock);
                        if (f->vmms[i].pid == v.pid)
                                f->vmms[i].in_use = false;
                        pthread_mutex_unlock(&f->lock);
                        if (f->mgr)
                                sbx_mgr_vmm_exited(f->mgr, v.id, v.pid, status, "fake VMM process ended");
                }
        }
        return NULL;
}

int testd_backend_new(struct ha_daemon *d, const struct sbx_backend **ret, struct ha_err *err)
{
        const char *boot = getenv("HA_FAKE_VMM");
        if (!boot)
                return 0;
        struct fake *f = calloc(1, sizeof *f);
        if (!f)
                return -ENOMEM;
        f->boot_ms = (unsigned)atoi(boot);
        f->nslots = d->cfg.slots < FAKE_MAX ? d->cfg.slots : FAKE_MAX;
        snprintf(f->dir, sizeof f->dir, "%s/fake", d->cfg.state_dir);
        snprintf(f->tag, sizeof f->tag, "fakevmm:%s:", d->cfg.state_dir);
        mkdir(d->cfg.state_dir, 0755);
        mkdir(f->dir, 0755);
        pthread_mutex_init(&f->lock, NULL);
        f->table = (struct sbx_backend){
                .ctx = f, .net_acquire = net_acquire, .net_release = net_release,
                .rootfs_clone = rootfs_clone, .rootfs_remove = rootfs_remove,
                .vmm_start = vmm_start, .vmm_configure = vmm_configure, .vmm_boot = vmm_boot,
                .vmm_wait_ready = vmm_wait_ready, .vmm_pause = vmm_pause, .vmm_resume = vmm_resume,
                .vmm_snapshot = vmm_snapshot, .vmm_restore = vmm_restore, .vmm_stop = vmm_stop,
                .vmm_forget = vmm_forget, .vmm_alive = vmm_alive, .vmm_adopt = vmm_adopt,
                .cleanup_orphans = cleanup_orphans,
        };
        if (pthread_create(&f->watcher, NULL, watch_main, f) != 0) {
                free(f);
                return ha_err_set(err, -EAGAIN, "cannot start the fake watcher");
        }
        d->test_backend = f;
        *ret = &f->table;
        return 1;
}

void testd_backend_attach(struct ha_daemon *d, sbx_mgr *m)
{
        struct fake *f = d->test_backend;
        if (f)
                f->mgr = m;
}

void testd_backend_free(struct ha_daemon *d)
{
        struct fake *f = d->test_backend;
        if (!f)
                return;
        atomic_store(&f->stop, true);
        pthread_join(f->watcher, NULL);
        pthread_mutex_destroy(&f->lock);
        free(f);
}
