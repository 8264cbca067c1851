/*
 * watcher.c - see watcher.h.
 *
 * Registrations live in a list guarded by |lock|; epoll carries only their
 * 64-bit key, never a pointer, so an event that races with vm_watcher_del
 * finds nothing instead of freed memory. A registration being fired is
 * marked |firing| and its fire function runs without the lock; a del from
 * another thread waits on |cond| until it is done.
 */
#include "vm/watcher.h"

#include "vm/proc.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

/* Events handled per epoll_wait; more just wait for the next turn. */
#define EVENTS_PER_WAKE 16
/* Key 0 is the stop eventfd. */
#define KEY_STOP 0

struct watch {
        struct watch *next;
        uint64_t key;
        int pidfd;                      /* our duplicate */
        void (*fire)(void *arg);
        void *arg;
        bool firing;                    /* guarded_by: lock */
};

struct vm_watcher {
        pthread_t thread;               /* immutable after vm_watcher_new() */
        int epfd;                       /* immutable after vm_watcher_new() */
        int stopfd;                     /* immutable after vm_watcher_new() */
        pthread_mutex_t lock;
        pthread_cond_t cond;            /* signalled when a fire ends */
        struct watch *list;             /* guarded_by: lock */
        uint64_t next_key;              /* guarded_by: lock */
};

static struct watch **find(vm_watcher *w, uint64_t key)
{
        for (struct watch **pp = &w->list; *pp; pp = &(*pp)->next)
                if ((*pp)->key == key)
                        return pp;
        return NULL;
}

static void unlink_free(vm_watcher *w, struct watch **pp)
{
        struct watch *e = *pp;
        *pp = e->next;
        epoll_ctl(w->epfd, EPOLL_CTL_DEL, e->pidfd, NULL);
        close(e->pidfd);
        free(e);
}

static void *run(void *arg)
{
        vm_watcher *w = arg;
        struct epoll_event evs[EVENTS_PER_WAKE];
        for (;;) {
                int n = epoll_wait(w->epfd, evs, EVENTS_PER_WAKE, -1);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return NULL;
                }
                for (int i = 0; i < n; i++) {
                        uint64_t key = evs[i].data.u64;
                        if (key == KEY_STOP)
                                return NULL;
                        pthread_mutex_lock(&w->lock);
                        struct watch **pp = find(w, key);
                        if (!pp) {
                                pthread_mutex_unlock(&w->lock);
                                continue;
                        }
                        struct watch *e = *pp;
                        /* One-shot: a readable pidfd stays readable. */
                        epoll_ctl(w->epfd, EPOLL_CTL_DEL, e->pidfd, NULL);
                        e->firing = true;
                        pthread_mutex_unlock(&w->lock);

                        e->fire(e->arg);

                        pthread_mutex_lock(&w->lock);
                        pp = find(w, key);
                        if (pp)
                                unlink_free(w, pp);
                        pthread_cond_broadcast(&w->cond);
                        pthread_mutex_unlock(&w->lock);
                }
        }
}

int vm_watcher_new(vm_watcher **ret)
{
        int r;
        vm_watcher *w = calloc(1, sizeof *w);
        if (!w)
                return -ENOMEM;
        w->next_key = 1;
        w->epfd = epoll_create1(EPOLL_CLOEXEC);
        if (w->epfd < 0) {
                r = -errno;
                goto out_free;
        }
        w->stopfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (w->stopfd < 0) {
                r = -errno;
                goto out_close_ep;
        }
        struct epoll_event ev = { .events = EPOLLIN, .data.u64 = KEY_STOP };
        if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->stopfd, &ev) < 0) {
                r = -errno;
                goto out_close_stop;
        }
        pthread_mutex_init(&w->lock, NULL);
        pthread_cond_init(&w->cond, NULL);
        r = -pthread_create(&w->thread, NULL, run, w);
        if (r < 0)
                goto out_destroy;
        *ret = w;
        return 0;

out_destroy:
        pthread_cond_destroy(&w->cond);
        pthread_mutex_destroy(&w->lock);
out_close_stop:
        close(w->stopfd);
out_close_ep:
        close(w->epfd);
out_free:
        free(w);
        return r;
}

void vm_watcher_free(vm_watcher *w)
{
        if (!w)
                return;
        uint64_t one = 1;
        ssize_t n = write(w->stopfd, &one, sizeof one);
        (void)n;
        pthread_join(w->thread, NULL);
        while (w->list)
                unlink_free(w, &w->list);
        pthread_cond_destroy(&w->cond);
        pthread_mutex_destroy(&w->lock);
        close(w->stopfd);
        close(w->epfd);
        free(w);
}

int vm_watcher_add(vm_watcher *w, int pidfd, void (*fire)(void *arg), void *arg,
                   uint64_t *ret_key)
{
        struct watch *e = calloc(1, sizeof *e);
        if (!e)
                return -ENOMEM;
        e->pidfd = fcntl(pidfd, F_DUPFD_CLOEXEC, VM_FD_FLOOR);
        if (e->pidfd < 0 && errno == EINVAL)    /* RLIMIT_NOFILE <= VM_FD_FLOOR */
                e->pidfd = fcntl(pidfd, F_DUPFD_CLOEXEC, 3);
        if (e->pidfd < 0) {
                int r = -errno;
                free(e);
                return r;
        }
        e->fire = fire;
        e->arg = arg;
        pthread_mutex_lock(&w->lock);
        e->key = w->next_key++;
        struct epoll_event ev = { .events = EPOLLIN, .data.u64 = e->key };
        if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, e->pidfd, &ev) < 0) {
                int r = -errno;
                pthread_mutex_unlock(&w->lock);
                close(e->pidfd);
                free(e);
                return r;
        }
        e->next = w->list;
        w->list = e;
        *ret_key = e->key;
        pthread_mutex_unlock(&w->lock);
        return 0;
}

void vm_watcher_del(vm_watcher *w, uint64_t key)
{
        if (!w || key == 0)
                return;
        bool self = pthread_equal(pthread_self(), w->thread);
        pthread_mutex_lock(&w->lock);
        for (;;) {
                struct watch **pp = find(w, key);
                if (!pp)
                        break;
                if ((*pp)->firing) {
                        if (self)
                                break; /* from this very fire: freed when it returns */
                        pthread_cond_wait(&w->cond, &w->lock);
                        continue;
                }
                unlink_free(w, pp);
                break;
        }
        pthread_mutex_unlock(&w->lock);
}
