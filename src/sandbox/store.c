/*
 * store.c - sandbox records in SQLite, written before an operation answers.
 *
 * Why SQLite in WAL mode with synchronous=NORMAL: a commit appends to the WAL
 * file with write(2); the WAL is fsynced only at checkpoints. A commit that
 * returned is therefore in the kernel's page cache and survives any death of
 * the agent (kill -9, crash, OOM kill), which is the failure recovery exists
 * for. What NORMAL may lose is the last few commits on power loss or a kernel
 * crash, and then every VMM died too: recovery finds those records' VMMs dead
 * (reported FAILED and cleaned) or finds leftovers with no record (removed as
 * orphans). The database itself is never corrupted in WAL mode. FULL would add
 * an fsync per transition (~ms on real disks) to every create and destroy to
 * protect state that a power loss makes moot anyway.
 *
 * Maps and string lists are stored as length-prefixed blobs (u32 count, then
 * u32 length + bytes per string, little endian), checked against the same
 * limits as requests when read back. One connection, guarded by one mutex
 * (a leaf lock); statements are prepared once.
 *
 * Checkpoints (copying the WAL back into the database, with fsyncs) are
 * taken off the operation path: SQLite's automatic checkpoint would run
 * inside whichever commit crosses the threshold, stalling that operation
 * and, through the store lock, every other one. A WAL hook only flags the
 * size; a checkpointer thread with its own connection runs a PASSIVE
 * checkpoint, which never blocks writers. SQLite rewinds the WAL only after
 * a checkpoint that caught up with the writers, which happens as soon as
 * writes pause; under writes that never pause, the backstop below makes the
 * committing writer checkpoint inline (what SQLite does by default, just
 * 8x less often). Measured with the fake backend (sbx_bench_mgr): this
 * halves create p99 and doubles creates/s against a locked catch-up pass.
 */
#include "sandbox/store.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/log.h"
#include "sandbox/sbx_int.h"

#define STORE_SCHEMA_VERSION 1
/* WAL pages (4 KiB) after which the checkpointer runs: SQLite's default. */
#define STORE_CKPT_PAGES 1000
/* Backstop: past this many pages (~32 MiB) the committing writer checkpoints
 * inline, as SQLite would, so the WAL stays bounded even when the
 * checkpointer thread is starved of CPU. */
#define STORE_WAL_HARD_PAGES 8000
/* A row's blob can never legitimately exceed this (128 x (256 + 4096) + ...). */
#define STORE_BLOB_MAX (1u << 20)

struct sbx_store {
        pthread_mutex_t lock;
        sqlite3 *db;                 /* guarded_by: lock */
        sqlite3_stmt *put, *del;     /* guarded_by: lock */
        int lock_fd;                 /* flock on dir/lock; immutable */
        char path[512];              /* immutable */
        sqlite3 *ckpt_db;            /* checkpointer thread only */
        pthread_t ckpt_thread;
        bool ckpt_started;
        pthread_mutex_t ckpt_run;    /* held while a checkpoint runs (after lock, if both) */
        pthread_mutex_t ckpt_lock;   /* leaf; taken inside commits by the WAL hook */
        pthread_cond_t ckpt_cond;
        bool ckpt_due, ckpt_stop;    /* guarded_by: ckpt_lock */
        unsigned long checkpoints;   /* guarded_by: ckpt_lock */
};

/* Runs inside a commit (store lock held): only flags the work. */
static int wal_hook(void *arg, sqlite3 *db, const char *name, int pages)
{
        struct sbx_store *st = arg;
        if (pages >= STORE_WAL_HARD_PAGES) {
                /* Wait out a background pass (it would make ours return
                 * SQLITE_BUSY), then catch up: writers are held off by the
                 * store lock, so this one completes and the WAL rewinds. */
                pthread_mutex_lock(&st->ckpt_run);
                (void)sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
                pthread_mutex_unlock(&st->ckpt_run);
                return SQLITE_OK;
        }
        if (pages >= STORE_CKPT_PAGES) {
                pthread_mutex_lock(&st->ckpt_lock);
                st->ckpt_due = true;
                pthread_cond_signal(&st->ckpt_cond);
                pthread_mutex_unlock(&st->ckpt_lock);
        }
        return SQLITE_OK;
}

static void *ckpt_main(void *arg)
{
        struct sbx_store *st = arg;
        pthread_mutex_lock(&st->ckpt_lock);
        for (;;) {
                while (!st->ckpt_due && !st->ckpt_stop)
                        pthread_cond_wait(&st->ckpt_cond, &st->ckpt_lock);
                if (st->ckpt_stop)
                        break;
                st->ckpt_due = false;
                pthread_mutex_unlock(&st->ckpt_lock);
                int wal = 0, done = 0;
                pthread_mutex_lock(&st->ckpt_run);
                int rc = sqlite3_wal_checkpoint_v2(st->ckpt_db, NULL, SQLITE_CHECKPOINT_PASSIVE,
                                                   &wal, &done);
                pthread_mutex_unlock(&st->ckpt_run);
                if (rc != SQLITE_OK && rc != SQLITE_BUSY)
                        ha_log_warn("sbx.store.checkpoint_failed", "path=%s error=\"%s\"", st->path,
                                    sqlite3_errmsg(st->ckpt_db));
                pthread_mutex_lock(&st->ckpt_lock);
                st->checkpoints++;
        }
        pthread_mutex_unlock(&st->ckpt_lock);
        return NULL;
}

static const char *const schema_sql =
        "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL);"
        "CREATE TABLE IF NOT EXISTS sandboxes("
        " id TEXT PRIMARY KEY NOT NULL,"
        " state INTEGER NOT NULL,"
        " image TEXT NOT NULL,"
        " vcpus INTEGER NOT NULL,"
        " memory_mib INTEGER NOT NULL,"
        " timeout_s INTEGER NOT NULL,"
        " metadata BLOB, env BLOB,"
        " egress_mode INTEGER NOT NULL, allow_cidrs BLOB, deny_cidrs BLOB,"
        " created_at_ms INTEGER NOT NULL, expires_at_ms INTEGER NOT NULL,"
        " failure TEXT NOT NULL, snapshotted INTEGER NOT NULL,"
        " has_net INTEGER NOT NULL, slot INTEGER NOT NULL, host_ip TEXT NOT NULL,"
        " netns_path TEXT NOT NULL, tap_name TEXT NOT NULL, guest_ip TEXT NOT NULL,"
        " guest_mac TEXT NOT NULL,"
        " has_rootfs INTEGER NOT NULL, rootfs_path TEXT NOT NULL,"
        " has_vmm INTEGER NOT NULL, vmm_pid INTEGER NOT NULL, vmm_start_time INTEGER NOT NULL,"
        " api_sock TEXT NOT NULL, vsock_uds TEXT NOT NULL);"
        "INSERT OR IGNORE INTO meta(key, value) VALUES('schema_version', '1');";

#define COLS "id, state, image, vcpus, memory_mib, timeout_s, metadata, env, egress_mode," \
             " allow_cidrs, deny_cidrs, created_at_ms, expires_at_ms, failure, snapshotted," \
             " has_net, slot, host_ip, netns_path, tap_name, guest_ip, guest_mac," \
             " has_rootfs, rootfs_path, has_vmm, vmm_pid, vmm_start_time, api_sock, vsock_uds"

static const char *const put_sql =
        "INSERT OR REPLACE INTO sandboxes(" COLS ") VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9,"
        " ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26,"
        " ?27, ?28, ?29)";

/* A full disk (or quota) is -ENOSPC, RESOURCE_EXHAUSTED for a client: the
 * operator can act on it, unlike a corrupt database (-EIO, INTERNAL). */
static int db_errno(sqlite3 *db)
{
        if (!db)
                return -EIO;
        int sys = sqlite3_system_errno(db);
        if ((sqlite3_extended_errcode(db) & 0xff) == SQLITE_FULL || sys == ENOSPC || sys == EDQUOT)
                return -ENOSPC;
        return -EIO;
}

static int db_err(struct sbx_store *st, struct ha_err *err, const char *what)
{
        return ha_err_set(err, db_errno(st->db), "state store %s: %s: %s", st->path, what,
                          st->db ? sqlite3_errmsg(st->db) : "not open");
}

int sbx_store_open(const char *dir, struct sbx_store **ret_store, struct ha_err *err)
{
        int r;
        struct sbx_store *st = calloc(1, sizeof *st);
        if (!st)
                return ha_err_set(err, -ENOMEM, "out of memory");
        pthread_mutex_init(&st->lock, NULL);
        pthread_mutex_init(&st->ckpt_lock, NULL);
        pthread_mutex_init(&st->ckpt_run, NULL);
        pthread_cond_init(&st->ckpt_cond, NULL);
        st->lock_fd = -1;

        if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
                r = -errno;
                ha_err_set(err, r, "state dir %s: %s", dir, strerror(-r));
                goto out_free;
        }
        char lock_path[512];
        if (snprintf(lock_path, sizeof lock_path, "%s/lock", dir) >= (int)sizeof lock_path ||
            snprintf(st->path, sizeof st->path, "%s/state.db", dir) >= (int)sizeof st->path) {
                r = ha_err_set(err, -ENAMETOOLONG, "state dir path too long: %s", dir);
                goto out_free;
        }
        st->lock_fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (st->lock_fd < 0) {
                r = -errno;
                ha_err_set(err, r, "%s: %s", lock_path, strerror(-r));
                goto out_free;
        }
        if (flock(st->lock_fd, LOCK_EX | LOCK_NB) < 0) {
                r = errno == EWOULDBLOCK ? -EBUSY : -errno;
                ha_err_set(err, r, "%s is held by another agent (%s)", lock_path, strerror(errno));
                goto out_close_lock;
        }

        if (sqlite3_open_v2(st->path, &st->db,
                            SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                            NULL) != SQLITE_OK) {
                r = db_err(st, err, "open");
                goto out_close_db;
        }
        sqlite3_extended_result_codes(st->db, 1);
        sqlite3_busy_timeout(st->db, 5000);
        char *emsg = NULL;
        if (sqlite3_exec(st->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;", NULL, NULL,
                         &emsg) != SQLITE_OK ||
            sqlite3_exec(st->db, schema_sql, NULL, NULL, &emsg) != SQLITE_OK) {
                r = ha_err_set(err, -EIO, "state store %s: schema: %s", st->path,
                               emsg ? emsg : "?");
                sqlite3_free(emsg);
                goto out_close_db;
        }
        if (sqlite3_prepare_v2(st->db, put_sql, -1, &st->put, NULL) != SQLITE_OK ||
            sqlite3_prepare_v2(st->db, "DELETE FROM sandboxes WHERE id = ?1", -1, &st->del,
                               NULL) != SQLITE_OK) {
                r = db_err(st, err, "prepare");
                goto out_close_db;
        }
        if (sqlite3_open_v2(st->path, &st->ckpt_db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
                            NULL) != SQLITE_OK) {
                r = ha_err_set(err, -EIO, "state store %s: open for checkpoints: %s", st->path,
                               st->ckpt_db ? sqlite3_errmsg(st->ckpt_db) : "?");
                goto out_close_db;
        }
        /* A fresh connection learns the database is in WAL mode only when
         * it first reads it; until then checkpoints are silent no-ops. */
        if (sqlite3_exec(st->ckpt_db, "PRAGMA journal_mode=WAL;", NULL, NULL, NULL) != SQLITE_OK) {
                r = ha_err_set(err, -EIO, "state store %s: checkpoint connection: %s", st->path,
                               sqlite3_errmsg(st->ckpt_db));
                goto out_close_db;
        }
        if ((r = -pthread_create(&st->ckpt_thread, NULL, ckpt_main, st)) < 0) {
                ha_err_set(err, r, "state store: checkpointer thread: %s", strerror(-r));
                goto out_close_db;
        }
        st->ckpt_started = true;
        sqlite3_wal_hook(st->db, wal_hook, st);   /* replaces the automatic checkpoint */
        *ret_store = st;
        return 0;

out_close_db:
        sqlite3_close(st->ckpt_db);
        sqlite3_finalize(st->put);
        sqlite3_finalize(st->del);
        sqlite3_close(st->db);
out_close_lock:
        close(st->lock_fd);
out_free:
        pthread_cond_destroy(&st->ckpt_cond);
        pthread_mutex_destroy(&st->ckpt_lock);
        pthread_mutex_destroy(&st->ckpt_run);
        pthread_mutex_destroy(&st->lock);
        free(st);
        return r;
}

void sbx_store_close(struct sbx_store *st)
{
        if (!st)
                return;
        if (st->ckpt_started) {
                pthread_mutex_lock(&st->ckpt_lock);
                st->ckpt_stop = true;
                pthread_cond_signal(&st->ckpt_cond);
                pthread_mutex_unlock(&st->ckpt_lock);
                pthread_join(st->ckpt_thread, NULL);
        }
        sqlite3_close(st->ckpt_db);
        /* The last connection to close checkpoints and removes the WAL. */
        sqlite3_finalize(st->put);
        sqlite3_finalize(st->del);
        sqlite3_close(st->db);
        close(st->lock_fd);
        pthread_cond_destroy(&st->ckpt_cond);
        pthread_mutex_destroy(&st->ckpt_lock);
        pthread_mutex_destroy(&st->ckpt_run);
        pthread_mutex_destroy(&st->lock);
        free(st);
}

static int put_u32(struct ha_buf *b, uint32_t v)
{
        uint8_t le[4] = { (uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24) };
        return ha_buf_append(b, le, sizeof le);
}

static int put_str(struct ha_buf *b, const char *s)
{
        size_t n = s ? strlen(s) : 0;
        int r = put_u32(b, (uint32_t)n);
        return r < 0 ? r : ha_buf_append(b, s ? s : "", n);
}

static int encode_map(struct ha_buf *b, const struct sbx_map *m)
{
        int r = put_u32(b, (uint32_t)m->n);
        for (size_t i = 0; r == 0 && i < m->n; i++) {
                r = put_str(b, m->items[i].key);
                if (r == 0)
                        r = put_str(b, m->items[i].value);
        }
        return r;
}

static int encode_strv(struct ha_buf *b, const struct sbx_strv *v)
{
        int r = put_u32(b, (uint32_t)v->n);
        for (size_t i = 0; r == 0 && i < v->n; i++)
                r = put_str(b, v->items[i]);
        return r;
}

struct rd {
        const uint8_t *p;
        size_t left;
};

static int get_u32(struct rd *d, uint32_t *v)
{
        if (d->left < 4)
                return -EIO;
        *v = (uint32_t)d->p[0] | (uint32_t)d->p[1] << 8 | (uint32_t)d->p[2] << 16 |
             (uint32_t)d->p[3] << 24;
        d->p += 4;
        d->left -= 4;
        return 0;
}

static int get_str(struct rd *d, size_t max, char **ret)
{
        uint32_t n;
        if (get_u32(d, &n) < 0 || n > max || n > d->left)
                return -EIO;
        char *s = malloc((size_t)n + 1);
        if (!s)
                return -ENOMEM;
        memcpy(s, d->p, n);
        s[n] = '\0';
        d->p += n;
        d->left -= n;
        *ret = s;
        return 0;
}

static int decode_map(const void *blob, size_t len, struct sbx_map *m)
{
        struct rd d = { blob, len };
        uint32_t n;
        m->n = 0;
        m->items = NULL;
        if (len == 0)
                return 0;
        if (get_u32(&d, &n) < 0 || n > SBX_MAP_MAX_ENTRIES)
                return -EIO;
        if (n == 0)
                return 0;
        m->items = calloc(n, sizeof *m->items);
        if (!m->items)
                return -ENOMEM;
        for (uint32_t i = 0; i < n; i++) {
                int r = get_str(&d, SBX_KEY_MAX, &m->items[i].key);
                if (r == 0 && (r = get_str(&d, SBX_VALUE_MAX, &m->items[i].value)) < 0) {
                        free(m->items[i].key);
                        m->items[i].key = NULL;
                }
                if (r < 0)
                        return r;   /* caller frees the |m->n| complete items */
                m->n++;
        }
        return 0;
}

static int decode_strv(const void *blob, size_t len, struct sbx_strv *v)
{
        struct rd d = { blob, len };
        uint32_t n;
        v->n = 0;
        v->items = NULL;
        if (len == 0)
                return 0;
        if (get_u32(&d, &n) < 0 || n > SBX_CIDR_MAX_ENTRIES)
                return -EIO;
        if (n == 0)
                return 0;
        v->items = calloc(n, sizeof *v->items);
        if (!v->items)
                return -ENOMEM;
        for (uint32_t i = 0; i < n; i++) {
                int r = get_str(&d, 128, &v->items[i]);
                if (r < 0)
                        return r;
                v->n++;
        }
        return 0;
}

/* Binds one encoded blob; the buffer is reset first. SQLITE_TRANSIENT copies. */
static int bind_blob(sqlite3_stmt *stmt, int col, struct ha_buf *b)
{
        return sqlite3_bind_blob(stmt, col, b->data ? (const void *)b->data : "", (int)b->len,
                                 SQLITE_TRANSIENT);
}

int sbx_store_put(struct sbx_store *st, const struct sbx_row *row, struct ha_err *err)
{
        const struct sbx_record *rec = &row->rec;
        const struct sbx_resources *res = &row->res;
        struct ha_buf b;
        int r = 0;
        ha_buf_init(&b, STORE_BLOB_MAX);

        pthread_mutex_lock(&st->lock);
        sqlite3_stmt *s = st->put;
        sqlite3_reset(s);
        sqlite3_clear_bindings(s);
        sqlite3_bind_text(s, 1, rec->id, -1, SQLITE_STATIC);
        sqlite3_bind_int(s, 2, (int)rec->state);
        sqlite3_bind_text(s, 3, rec->spec.image ? rec->spec.image : "", -1, SQLITE_STATIC);
        sqlite3_bind_int64(s, 4, rec->spec.vcpus);
        sqlite3_bind_int64(s, 5, rec->spec.memory_mib);
        sqlite3_bind_int64(s, 6, rec->spec.timeout_s);
        if ((r = encode_map(&b, &rec->spec.metadata)) < 0)
                goto out_unlock;
        bind_blob(s, 7, &b);
        ha_buf_reset(&b);
        if ((r = encode_map(&b, &rec->spec.env)) < 0)
                goto out_unlock;
        bind_blob(s, 8, &b);
        ha_buf_reset(&b);
        sqlite3_bind_int(s, 9, (int)rec->spec.egress.mode);
        if ((r = encode_strv(&b, &rec->spec.egress.allow_cidrs)) < 0)
                goto out_unlock;
        bind_blob(s, 10, &b);
        ha_buf_reset(&b);
        if ((r = encode_strv(&b, &rec->spec.egress.deny_cidrs)) < 0)
                goto out_unlock;
        bind_blob(s, 11, &b);
        sqlite3_bind_int64(s, 12, rec->created_at_ms);
        sqlite3_bind_int64(s, 13, rec->expires_at_ms);
        sqlite3_bind_text(s, 14, rec->failure, -1, SQLITE_STATIC);
        sqlite3_bind_int(s, 15, rec->snapshotted);
        sqlite3_bind_int(s, 16, res->has_net);
        sqlite3_bind_int64(s, 17, res->net.slot);
        sqlite3_bind_text(s, 18, res->net.host_ip, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 19, res->net.netns_path, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 20, res->net.tap_name, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 21, res->net.guest_ip, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 22, res->net.guest_mac, -1, SQLITE_STATIC);
        sqlite3_bind_int(s, 23, res->has_rootfs);
        sqlite3_bind_text(s, 24, res->rootfs_path, -1, SQLITE_STATIC);
        sqlite3_bind_int(s, 25, res->has_vmm);
        sqlite3_bind_int64(s, 26, res->vmm.pid);
        /* start times are clock ticks since boot: far below INT64_MAX */
        sqlite3_bind_int64(s, 27, (sqlite3_int64)res->vmm.start_time);
        sqlite3_bind_text(s, 28, res->vmm.api_sock, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 29, res->vmm.vsock_uds, -1, SQLITE_STATIC);
        if (sqlite3_step(s) != SQLITE_DONE)
                r = db_err(st, err, "write");
        sqlite3_reset(s);
        sqlite3_clear_bindings(s);
out_unlock:
        pthread_mutex_unlock(&st->lock);
        ha_buf_done(&b);
        if (r == -EMSGSIZE || r == -ENOMEM)
                r = ha_err_set(err, r, "state store: record of %s too large to encode", rec->id);
        return r;
}

int sbx_store_delete(struct sbx_store *st, const char *id, struct ha_err *err)
{
        int r = 0;
        pthread_mutex_lock(&st->lock);
        sqlite3_reset(st->del);
        sqlite3_bind_text(st->del, 1, id, -1, SQLITE_STATIC);
        if (sqlite3_step(st->del) != SQLITE_DONE)
                r = db_err(st, err, "delete");
        sqlite3_reset(st->del);
        sqlite3_clear_bindings(st->del);
        pthread_mutex_unlock(&st->lock);
        return r;
}

static void copy_col(sqlite3_stmt *s, int col, char *dst, size_t size)
{
        const unsigned char *t = sqlite3_column_text(s, col);
        snprintf(dst, size, "%s", t ? (const char *)t : "");
}

/* Decodes the current row. Returns 0, -EIO (bad row), -ENOMEM. */
static int decode_row(sqlite3_stmt *s, struct sbx_row *row)
{
        memset(row, 0, sizeof *row);
        struct sbx_record *rec = &row->rec;
        struct sbx_resources *res = &row->res;
        const unsigned char *id = sqlite3_column_text(s, 0);
        if (!id || !sbx_id_valid((const char *)id))
                return -EIO;
        snprintf(rec->id, sizeof rec->id, "%s", (const char *)id);
        snprintf(res->id, sizeof res->id, "%s", (const char *)id);
        int state = sqlite3_column_int(s, 1);
        if (state < SBX_STATE_CREATING || state > SBX_STATE_FAILED)
                return -EIO;
        rec->state = (enum sbx_state)state;
        rec->spec.id = strdup(rec->id);
        const unsigned char *img = sqlite3_column_text(s, 2);
        rec->spec.image = strdup(img ? (const char *)img : "");
        if (!rec->spec.id || !rec->spec.image)
                return -ENOMEM;
        rec->spec.vcpus = (uint32_t)sqlite3_column_int64(s, 3);
        rec->spec.memory_mib = (uint32_t)sqlite3_column_int64(s, 4);
        rec->spec.timeout_s = (uint32_t)sqlite3_column_int64(s, 5);
        int r;
        if ((r = decode_map(sqlite3_column_blob(s, 6), (size_t)sqlite3_column_bytes(s, 6),
                            &rec->spec.metadata)) < 0 ||
            (r = decode_map(sqlite3_column_blob(s, 7), (size_t)sqlite3_column_bytes(s, 7),
                            &rec->spec.env)) < 0)
                return r;
        rec->spec.egress.mode = (enum sbx_egress_mode)sqlite3_column_int(s, 8);
        if ((r = decode_strv(sqlite3_column_blob(s, 9), (size_t)sqlite3_column_bytes(s, 9),
                             &rec->spec.egress.allow_cidrs)) < 0 ||
            (r = decode_strv(sqlite3_column_blob(s, 10), (size_t)sqlite3_column_bytes(s, 10),
                             &rec->spec.egress.deny_cidrs)) < 0)
                return r;
        rec->created_at_ms = sqlite3_column_int64(s, 11);
        rec->expires_at_ms = sqlite3_column_int64(s, 12);
        copy_col(s, 13, rec->failure, sizeof rec->failure);
        rec->snapshotted = sqlite3_column_int(s, 14) != 0;
        res->has_net = sqlite3_column_int(s, 15) != 0;
        res->net.slot = (uint32_t)sqlite3_column_int64(s, 16);
        copy_col(s, 17, res->net.host_ip, sizeof res->net.host_ip);
        copy_col(s, 18, res->net.netns_path, sizeof res->net.netns_path);
        copy_col(s, 19, res->net.tap_name, sizeof res->net.tap_name);
        copy_col(s, 20, res->net.guest_ip, sizeof res->net.guest_ip);
        copy_col(s, 21, res->net.guest_mac, sizeof res->net.guest_mac);
        res->has_rootfs = sqlite3_column_int(s, 22) != 0;
        copy_col(s, 23, res->rootfs_path, sizeof res->rootfs_path);
        res->has_vmm = sqlite3_column_int(s, 24) != 0;
        res->vmm.pid = (int)sqlite3_column_int64(s, 25);
        res->vmm.start_time = (uint64_t)sqlite3_column_int64(s, 26);
        copy_col(s, 27, res->vmm.api_sock, sizeof res->vmm.api_sock);
        copy_col(s, 28, res->vmm.vsock_uds, sizeof res->vmm.vsock_uds);
        if (res->has_net) {
                rec->has_slot = true;
                rec->slot = res->net.slot;
                snprintf(rec->ip, sizeof rec->ip, "%s", res->net.host_ip);
        }
        return 0;
}

int sbx_store_load(struct sbx_store *st, int (*cb)(void *ctx, struct sbx_row *row), void *ctx,
                   struct ha_err *err)
{
        sqlite3_stmt *s = NULL;
        struct sbx_row *rows = NULL;
        size_t n = 0, cap = 0, i = 0;
        int r = 0, rc;

        /* Read everything first, then call |cb| unlocked: recovery writes to
         * the store from the callback, and a cursor must not see its own
         * connection's writes. */
        pthread_mutex_lock(&st->lock);
        if (sqlite3_prepare_v2(st->db, "SELECT " COLS " FROM sandboxes ORDER BY id", -1, &s,
                               NULL) != SQLITE_OK) {
                r = db_err(st, err, "load");
                pthread_mutex_unlock(&st->lock);
                return r;
        }
        while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
                if (n == cap) {
                        size_t ncap = cap ? cap * 2 : 64;
                        struct sbx_row *nrows = reallocarray(rows, ncap, sizeof *rows);
                        if (!nrows) {
                                r = ha_err_set(err, -ENOMEM, "out of memory loading state");
                                break;
                        }
                        rows = nrows;
                        cap = ncap;
                }
                int d = decode_row(s, &rows[n]);
                if (d < 0) {
                        const unsigned char *id = sqlite3_column_text(s, 0);
                        ha_log_error("sbx.store.bad_row", "sbx=%.70s error=%d path=%s",
                                     id ? (const char *)id : "?", d, st->path);
                        sbx_record_done(&rows[n].rec);
                        if (d == -ENOMEM) {
                                r = ha_err_set(err, d, "out of memory loading state");
                                break;
                        }
                        continue;
                }
                n++;
        }
        if (r == 0 && rc != SQLITE_DONE)
                r = db_err(st, err, "load");
        sqlite3_finalize(s);
        pthread_mutex_unlock(&st->lock);

        for (i = 0; r == 0 && i < n; i++) {
                r = cb(ctx, &rows[i]);   /* owns rows[i].rec now */
                rows[i].rec.spec = (struct sbx_spec){ 0 };
        }
        for (; i < n; i++)
                sbx_record_done(&rows[i].rec);
        free(rows);
        return r;
}
