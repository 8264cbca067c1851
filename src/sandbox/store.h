/*
 * store.h - the crash-safe record store (SQLite, WAL) of the sandbox manager.
 * Internal to src/sandbox/. One row per sandbox: its public record and the
 * resources it holds, so recovery can find and release them after a crash.
 */
#ifndef HA_SBX_STORE_H
#define HA_SBX_STORE_H

#include "sandbox/backend.h"
#include "sandbox/sbx.h"

struct ha_err;
struct sbx_store;

/* A persisted sandbox. rec.spec is owned when loaded. */
struct sbx_row {
        struct sbx_record rec;
        struct sbx_resources res;
};

/* Opens |dir|/state.db (mkdir |dir| 0700 when missing), takes an exclusive
 * flock on |dir|/lock so two agents never manage the same sandboxes, and
 * creates the schema. Returns 0, -EBUSY (another agent holds the lock),
 * -EIO / -EACCES / -ENOMEM with the path in |err|. */
int sbx_store_open(const char *dir, struct sbx_store **ret_store, struct ha_err *err);
void sbx_store_close(struct sbx_store *st);
/* Inserts or replaces the row of row->rec.id. Returns 0 or -EIO. */
int sbx_store_put(struct sbx_store *st, const struct sbx_row *row, struct ha_err *err);
/* Returns 0 (also when absent) or -EIO. */
int sbx_store_delete(struct sbx_store *st, const char *id, struct ha_err *err);
/* Calls |cb| for every row (sorted by id); |cb| owns row->rec afterwards. A
 * row that does not decode is skipped with a log line. Returns 0, -EIO, or
 * the first negative value |cb| returned. */
int sbx_store_load(struct sbx_store *st, int (*cb)(void *ctx, struct sbx_row *row), void *ctx,
                   struct ha_err *err);

#endif
