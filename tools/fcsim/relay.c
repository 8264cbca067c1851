/*
 * relay.c - see relay.h. The control channel is an eventfd: the API thread
 * changes |paused| or |stop| under the lock, bumps the eventfd and waits
 * until the relay thread acknowledges the new generation, so "pause"
 * returns only once no more frames can move.
 */
#include "relay.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "fcsim.h"

/* Largest frame a TAP hands out without offloads (64 KiB GSO frames are
 * not enabled since the TAPs are opened without IFF_VNET_HDR). */
#define FRAME_MAX 65536

struct fcsim_relay {
        pthread_t thread;
        int evfd;
        unsigned n;
        int host[FCSIM_MAX_NETS];  /* borrowed */
        int guest[FCSIM_MAX_NETS]; /* owned */
        pthread_mutex_t lock;
        pthread_cond_t acked;
        bool paused;                    /* guarded_by: lock */
        bool stop;                      /* guarded_by: lock */
        uint64_t gen, ack_gen;          /* guarded_by: lock */
        struct fcsim_relay_stats stats; /* guarded_by: lock */
        uint8_t *buf;                   /* relay thread only */
};

/* Moves every frame currently readable on |from| to |to|. */
static void pump(struct fcsim_relay *r, int from, int to, uint8_t *buf, bool to_guest)
{
        for (int i = 0; i < 256; i++) { /* bounded burst: stay responsive */
                ssize_t n = read(from, buf, FRAME_MAX);
                if (n <= 0)
                        return;
                ssize_t w = write(to, buf, (size_t)n);
                pthread_mutex_lock(&r->lock);
                if (w == n) {
                        if (to_guest)
                                r->stats.to_guest_frames++;
                        else
                                r->stats.to_host_frames++;
                } else {
                        r->stats.dropped_frames++;
                }
                pthread_mutex_unlock(&r->lock);
        }
}

static void *relay_main(void *arg)
{
        struct fcsim_relay *r = arg;
        uint8_t *buf = r->buf;
        struct pollfd pfd[1 + 2 * FCSIM_MAX_NETS];
        bool dead[FCSIM_MAX_NETS] = { false };
        for (;;) {
                pthread_mutex_lock(&r->lock);
                bool paused = r->paused, stop = r->stop;
                r->ack_gen = r->gen;
                pthread_cond_broadcast(&r->acked);
                pthread_mutex_unlock(&r->lock);
                if (stop)
                        break;
                nfds_t nf = 0;
                pfd[nf++] = (struct pollfd){ .fd = r->evfd, .events = POLLIN };
                /* A negative fd is skipped by poll: that is how a pair whose
                 * TAP died (guest gone) stops being polled, so a dead device
                 * cannot make this loop spin. */
                for (unsigned i = 0; !paused && i < r->n; i++) {
                        pfd[nf++] = (struct pollfd){ .fd = dead[i] ? -1 : r->host[i],
                                                     .events = POLLIN };
                        pfd[nf++] = (struct pollfd){ .fd = dead[i] ? -1 : r->guest[i],
                                                     .events = POLLIN };
                }
                if (poll(pfd, nf, -1) < 0)
                        continue;
                if (pfd[0].revents & POLLIN) {
                        uint64_t v;
                        if (read(r->evfd, &v, sizeof v) < 0) {
                                /* nothing: the counter is re-read next round */
                        }
                }
                for (unsigned i = 0; !paused && i < r->n; i++) {
                        short hev = pfd[1 + 2 * i].revents, gev = pfd[2 + 2 * i].revents;
                        if (hev & POLLIN)
                                pump(r, r->host[i], r->guest[i], buf, true);
                        if (gev & POLLIN)
                                pump(r, r->guest[i], r->host[i], buf, false);
                        if ((hev | gev) & (POLLERR | POLLHUP | POLLNVAL))
                                dead[i] = true;
                }
        }
        return NULL;
}

static void signal_and_wait(struct fcsim_relay *r)
{
        uint64_t gen = ++r->gen;
        uint64_t one = 1;
        if (write(r->evfd, &one, sizeof one) < 0) {
                /* eventfd overflow is impossible at these rates */
        }
        while (r->ack_gen < gen)
                pthread_cond_wait(&r->acked, &r->lock);
}

int fcsim_relay_start(const int *host_fds, const int *guest_fds, unsigned n,
                      struct fcsim_relay **ret_relay, struct ha_err *err)
{
        int rc;
        struct fcsim_relay *r = n <= FCSIM_MAX_NETS ? calloc(1, sizeof *r) : NULL;
        if (!r) {
                rc = n <= FCSIM_MAX_NETS ? -ENOMEM : -EINVAL;
                ha_err_set(err, rc, "cannot start the network relay: %s", strerror(-rc));
                goto out_close_guest;
        }
        r->n = n;
        r->buf = malloc(FRAME_MAX);
        if (!r->buf) {
                rc = -ENOMEM;
                ha_err_set(err, rc, "cannot start the network relay: %s", strerror(-rc));
                goto out_free;
        }
        memcpy(r->host, host_fds, n * sizeof(int));
        memcpy(r->guest, guest_fds, n * sizeof(int));
        r->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (r->evfd < 0) {
                rc = -errno;
                ha_err_set(err, rc, "eventfd: %s", strerror(-rc));
                goto out_free;
        }
        pthread_mutex_init(&r->lock, NULL);
        pthread_cond_init(&r->acked, NULL);
        rc = -pthread_create(&r->thread, NULL, relay_main, r);
        if (rc < 0) {
                ha_err_set(err, rc, "cannot start the network relay thread: %s", strerror(-rc));
                goto out_destroy;
        }
        *ret_relay = r;
        return 0;
out_destroy:
        pthread_cond_destroy(&r->acked);
        pthread_mutex_destroy(&r->lock);
        close(r->evfd);
out_free:
        free(r->buf);
        free(r);
out_close_guest:
        for (unsigned i = 0; i < n && i < FCSIM_MAX_NETS; i++)
                close(guest_fds[i]);
        return rc;
}

void fcsim_relay_set_paused(struct fcsim_relay *r, bool paused)
{
        pthread_mutex_lock(&r->lock);
        r->paused = paused;
        signal_and_wait(r);
        pthread_mutex_unlock(&r->lock);
}

void fcsim_relay_get_stats(struct fcsim_relay *r, struct fcsim_relay_stats *ret)
{
        pthread_mutex_lock(&r->lock);
        *ret = r->stats;
        pthread_mutex_unlock(&r->lock);
}

void fcsim_relay_stop(struct fcsim_relay *r)
{
        if (!r)
                return;
        pthread_mutex_lock(&r->lock);
        r->stop = true;
        signal_and_wait(r);
        pthread_mutex_unlock(&r->lock);
        pthread_join(r->thread, NULL);
        pthread_cond_destroy(&r->acked);
        pthread_mutex_destroy(&r->lock);
        close(r->evfd);
        for (unsigned i = 0; i < r->n; i++)
                close(r->guest[i]);
        free(r->buf);
        free(r);
}
