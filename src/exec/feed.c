/*
 * feed.c - exec_feed_stdin(): stdin sent by a background thread.
 *
 * Why: a caller that sends a large stdin before reading any output
 * deadlocks with a command that writes while it reads (cat): output fills
 * the socket, the command blocks, stops reading stdin, stdin fills, and the
 * sender blocks - every buffer on the way is bounded on purpose. Feeding
 * from another thread lets the caller read events at the same time.
 *
 * The thread owns a copy of the bytes, sends them in EXEC_STDIN_CHUNK_MAX
 * frames (one lock per frame, so signals overtake), then close_stdin.
 * exec_conn_free() stops it (stopping flag + shutdown wakes its poll) and
 * joins it. Send failures end the thread silently: the event stream says
 * what happened to the command.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "exec/conn_int.h"

static void *feed_main(void *arg)
{
        exec_conn *c = arg;
        Hostagent__Guest__V1__GuestRequest req = HOSTAGENT__GUEST__V1__GUEST_REQUEST__INIT;
        Hostagent__Guest__V1__StdinData sd = HOSTAGENT__GUEST__V1__STDIN_DATA__INIT;
        Hostagent__Guest__V1__CloseStdin cs = HOSTAGENT__GUEST__V1__CLOSE_STDIN__INIT;
        size_t off = 0;
        int r = 0;

        req.kind_case = HOSTAGENT__GUEST__V1__GUEST_REQUEST__KIND_STDIN;
        req.stdin = &sd;
        while (off < c->feed_len && r == 0) {
                size_t n = c->feed_len - off;

                if (n > EXEC_STDIN_CHUNK_MAX)
                        n = EXEC_STDIN_CHUNK_MAX;
                sd.data.data = c->feed_data + off;
                sd.data.len = n;
                exec_conn_lock(c, EXEC_NO_DEADLINE);
                r = exec_conn_send_request(c, &req, EXEC_NO_DEADLINE);
                pthread_mutex_unlock(&c->send_lock);
                off += n;
        }
        if (r == 0 && c->feed_close) {
                req.kind_case = HOSTAGENT__GUEST__V1__GUEST_REQUEST__KIND_CLOSE_STDIN;
                req.close_stdin = &cs;
                exec_conn_lock(c, EXEC_NO_DEADLINE);
                exec_conn_send_request(c, &req, EXEC_NO_DEADLINE);
                pthread_mutex_unlock(&c->send_lock);
        }
        atomic_store(&c->feed_done, true);
        return NULL;
}

int exec_feed_stdin(exec_conn *c, const void *data, size_t len, bool close_after)
{
        int r;

        if (c->feeding)
                return -EBUSY;
        c->feed_data = malloc(len ? len : 1);
        if (!c->feed_data)
                return -ENOMEM;
        memcpy(c->feed_data, data, len);
        c->feed_len = len;
        c->feed_close = close_after;
        r = pthread_create(&c->feeder, NULL, feed_main, c);
        if (r) {
                free(c->feed_data);
                c->feed_data = NULL;
                return -r;
        }
        c->feeding = true;
        return 0;
}
