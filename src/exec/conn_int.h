/*
 * conn_int.h - the body of exec_conn, shared by the files of src/exec/
 * only (conn.c, feed.c). Nothing outside the folder includes it.
 */
#ifndef EXEC_CONN_INT_H
#define EXEC_CONN_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "exec/exec.h"
#include "exec/frame.h"
#include "guest/v1/guest.pb-c.h"

struct exec_conn {
        int fd;                         /* immutable after open */
        char path[108];                 /* immutable after open: the vsock uds_path */
        atomic_int pid;                 /* atomic: the command's pid once STARTED arrived */
        pthread_mutex_t send_lock;      /* serializes whole frames on fd */
        bool started;                   /* guarded_by: send_lock */
        atomic_bool stopping;           /* atomic: set by exec_conn_free to end sends */
        atomic_bool tx_blocked;         /* atomic: a send timed out (the guest stopped reading) */
        bool terminal;                  /* reader thread only: EXITED or ERROR seen */
        struct exec_frame_reader rd;    /* reader thread only */
        Hostagent__Guest__V1__GuestEvent *last; /* reader thread only: backs ret->data */
        bool eof;                       /* reader thread only */
        int final;                      /* reader thread only: sticky error */

        /* exec_feed_stdin(): set before the thread starts, joined in free. */
        bool feeding;
        atomic_bool feed_done;          /* atomic: the feeder has finished */
        pthread_t feeder;
        uint8_t *feed_data;
        size_t feed_len;
        bool feed_close;
};

/* Takes send_lock, waiting at most until |deadline_ms|. Returns 0 or
 * -ETIMEDOUT (another sender is blocked on a full socket). */
int exec_conn_lock(exec_conn *c, uint64_t deadline_ms);

/* Packs and sends one request. The caller holds send_lock. Returns 0,
 * -EMSGSIZE, -ENOMEM, -ETIMEDOUT, -EPIPE, -ECANCELED (freeing). */
int exec_conn_send_request(exec_conn *c, const Hostagent__Guest__V1__GuestRequest *req,
                           uint64_t deadline_ms);

#endif
