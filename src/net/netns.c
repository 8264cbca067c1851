/*
 * netns.c - create, enter and remove named network namespaces (see netns.h).
 *
 * Namespaces are per thread on Linux, and the agent is multithreaded, so
 * every operation that needs to be "inside" a namespace runs on a short-lived
 * helper thread: unshare(CLONE_NEWNET) there creates a namespace without
 * moving any other thread, and the thread's /proc/thread-self/ns/net is what
 * gets bind-mounted (/proc/self/ns/net would be the main thread's).
 */
#include "net/netns.h"
#include "net/slot_addr.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

/* Makes NET_NETNS_DIR a shared mount point, as iproute2 does, so namespace
 * mounts made later propagate to mount namespaces cloned from ours (the
 * VMM launcher's) and unmounts propagate too. Idempotent and cheap. */
static int netns_dir_prepare(struct ha_err *err)
{
        if (mkdir(NET_NETNS_DIR, 0755) < 0 && errno != EEXIST)
                return ha_err_set(err, -errno, "mkdir %s: %s", NET_NETNS_DIR, strerror(errno));
        if (mount("", NET_NETNS_DIR, "none", MS_SHARED | MS_REC, NULL) == 0)
                return 0;
        if (errno != EINVAL)
                return ha_err_set(err, -errno, "make-shared %s: %s", NET_NETNS_DIR,
                                  strerror(errno));
        /* Not a mount point yet: bind it onto itself first. */
        if (mount(NET_NETNS_DIR, NET_NETNS_DIR, "none", MS_BIND | MS_REC, NULL) < 0)
                return ha_err_set(err, -errno, "bind %s: %s", NET_NETNS_DIR, strerror(errno));
        if (mount("", NET_NETNS_DIR, "none", MS_SHARED | MS_REC, NULL) < 0)
                return ha_err_set(err, -errno, "make-shared %s: %s", NET_NETNS_DIR,
                                  strerror(errno));
        return 0;
}

struct create_job {
        const char *path;
        int         r;
        const char *what;
};

static void *create_thread(void *p)
{
        struct create_job *j = p;

        if (unshare(CLONE_NEWNET) < 0) {
                j->r = -errno;
                j->what = "unshare(CLONE_NEWNET)";
                return NULL;
        }
        if (mount("/proc/thread-self/ns/net", j->path, "none", MS_BIND, NULL) < 0) {
                j->r = -errno;
                j->what = "bind mount of the namespace";
                return NULL;
        }
        j->r = 0;
        return NULL;
}

int net_netns_create(const char *path, struct ha_err *err)
{
        struct create_job j = { .path = path, .r = -EIO, .what = "thread" };
        pthread_t t;
        int fd, r;

        r = netns_dir_prepare(err);
        if (r < 0)
                return r;
        fd = open(path, O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0);
        if (fd < 0)
                return ha_err_set(err, -errno, "create %s: %s", path, strerror(errno));
        close(fd);
        r = pthread_create(&t, NULL, create_thread, &j);
        if (r != 0) {
                r = ha_err_set(err, -r, "netns thread: %s", strerror(r));
                goto out_unlink;
        }
        pthread_join(t, NULL);
        if (j.r < 0) {
                r = ha_err_set(err, j.r, "%s for %s: %s", j.what, path, strerror(-j.r));
                goto out_unlink;
        }
        return 0;

out_unlink:
        unlink(path);
        return r;
}

int net_netns_remove(const char *path)
{
        int r = 0;

        if (umount2(path, MNT_DETACH) < 0 && errno != EINVAL && errno != ENOENT)
                r = -errno;
        if (unlink(path) < 0 && errno != ENOENT && r == 0)
                r = -errno;
        return r;
}

struct run_job {
        int   fd;
        int (*fn)(void *);
        void *arg;
        int   r;
};

static void *run_thread(void *p)
{
        struct run_job *j = p;

        if (setns(j->fd, CLONE_NEWNET) < 0) {
                j->r = -errno;
                return NULL;
        }
        j->r = j->fn(j->arg);
        return NULL;
}

int net_netns_run(const char *path, int (*fn)(void *arg), void *arg)
{
        struct run_job j = { .fn = fn, .arg = arg, .r = -EIO };
        pthread_t t;
        int r;

        j.fd = open(path, O_RDONLY | O_CLOEXEC);
        if (j.fd < 0)
                return -errno;
        r = pthread_create(&t, NULL, run_thread, &j);
        if (r != 0) {
                close(j.fd);
                return -r;
        }
        pthread_join(t, NULL);
        close(j.fd);
        return j.r;
}
