/*
 * Tests of src/sandbox/store.c: rows round-trip with their resources, bad
 * rows are skipped, and the WAL stays bounded under many writes (the
 * background checkpointer does its job).
 */
#include <sqlite3.h>
#include <sys/stat.h>

#include "core/log.h"
#include "helpers.h"
#include "sandbox/sbx_int.h"
#include "sandbox/store.h"

static struct sbx_row row_of(const char *id, int i)
{
        struct sbx_row row;
        memset(&row, 0, sizeof row);
        snprintf(row.rec.id, sizeof row.rec.id, "%s", id);
        snprintf(row.res.id, sizeof row.res.id, "%s", id);
        row.rec.state = SBX_STATE_RUNNING;
        row.rec.spec.image = "base";
        row.rec.spec.vcpus = 2;
        row.rec.spec.memory_mib = 512;
        row.rec.spec.timeout_s = 60;
        row.rec.created_at_ms = 1000 + i;
        row.rec.expires_at_ms = 2000 + i;
        row.res.has_net = true;
        row.res.net.slot = (uint32_t)i;
        snprintf(row.res.net.host_ip, sizeof row.res.net.host_ip, "10.11.0.%d", i % 250);
        snprintf(row.res.net.netns_path, sizeof row.res.net.netns_path, "/run/netns/s%d", i);
        row.res.has_vmm = true;
        row.res.vmm.pid = 4242 + i;
        row.res.vmm.start_time = 987654321ull + (uint64_t)i;
        snprintf(row.res.vmm.vsock_uds, sizeof row.res.vmm.vsock_uds, "/run/x/%s.vsock", id);
        return row;
}

struct loaded {
        int n;
        struct sbx_row last;
};

static int keep(void *ctx, struct sbx_row *row)
{
        struct loaded *l = ctx;
        l->n++;
        sbx_record_done(&l->last.rec);
        l->last = *row;
        return 0;
}

Test(sbx_store, rows_round_trip_with_resources)
{
        struct fix x;
        fix_init(&x, false);
        struct sbx_store *st;
        struct ha_err e = { { 0 } };
        cr_assert_eq(sbx_store_open(x.dir, &st, &e), 0, "%s", e.msg);
        struct sbx_row row = row_of("rt", 7);
        cr_assert_eq(sbx_store_put(st, &row, &e), 0, "%s", e.msg);
        row.rec.state = SBX_STATE_PAUSED;
        row.rec.snapshotted = true;
        row.res.vmm.pid = 0;
        cr_assert_eq(sbx_store_put(st, &row, &e), 0, "upsert");
        struct loaded l = { 0 };
        cr_assert_eq(sbx_store_load(st, keep, &l, &e), 0);
        cr_assert_eq(l.n, 1);
        cr_assert_eq(l.last.rec.state, SBX_STATE_PAUSED);
        cr_assert(l.last.rec.snapshotted);
        cr_assert_eq(l.last.rec.spec.vcpus, 2);
        cr_assert_str_eq(l.last.rec.spec.image, "base");
        cr_assert_eq(l.last.rec.expires_at_ms, 2007);
        cr_assert(l.last.rec.has_slot);
        cr_assert_str_eq(l.last.rec.ip, "10.11.0.7");
        cr_assert_str_eq(l.last.res.net.netns_path, "/run/netns/s7");
        cr_assert_eq(l.last.res.vmm.pid, 0);
        cr_assert_eq(l.last.res.vmm.start_time, 987654328ull);
        cr_assert_str_eq(l.last.res.vmm.vsock_uds, "/run/x/rt.vsock");
        sbx_record_done(&l.last.rec);
        cr_assert_eq(sbx_store_delete(st, "rt", &e), 0);
        cr_assert_eq(sbx_store_delete(st, "rt", &e), 0, "deleting nothing is fine");
        l = (struct loaded){ 0 };
        cr_assert_eq(sbx_store_load(st, keep, &l, &e), 0);
        cr_assert_eq(l.n, 0);
        sbx_store_close(st);
        fix_done(&x);
}

Test(sbx_store, bad_rows_are_skipped_not_fatal)
{
        struct fix x;
        fix_init(&x, false);
        struct sbx_store *st;
        struct ha_err e = { { 0 } };
        cr_assert_eq(sbx_store_open(x.dir, &st, &e), 0, "%s", e.msg);
        struct sbx_row a = row_of("good", 1), b = row_of("bad", 2);
        cr_assert_eq(sbx_store_put(st, &a, &e), 0);
        cr_assert_eq(sbx_store_put(st, &b, &e), 0);
        /* someone corrupts a blob and an id behind our back */
        char path[300];
        snprintf(path, sizeof path, "%s/state.db", x.dir);
        sqlite3 *db;
        cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
        cr_assert_eq(sqlite3_exec(db, "UPDATE sandboxes SET metadata = x'ffffffff01' WHERE id='bad';"
                                      "INSERT INTO sandboxes SELECT 'Not Valid', state, image, vcpus,"
                                      " memory_mib, timeout_s, metadata, env, egress_mode, allow_cidrs,"
                                      " deny_cidrs, created_at_ms, expires_at_ms, failure, snapshotted,"
                                      " has_net, slot, host_ip, netns_path, tap_name, guest_ip, guest_mac,"
                                      " has_rootfs, rootfs_path, has_vmm, vmm_pid, vmm_start_time, api_sock,"
                                      " vsock_uds FROM sandboxes WHERE id='good';",
                                  NULL, NULL, NULL),
                     SQLITE_OK, "%s", sqlite3_errmsg(db));
        sqlite3_close(db);
        struct loaded l = { 0 };
        cr_assert_eq(sbx_store_load(st, keep, &l, &e), 0, "%s", e.msg);
        cr_assert_eq(l.n, 1);
        cr_assert_str_eq(l.last.rec.id, "good");
        sbx_record_done(&l.last.rec);
        sbx_store_close(st);
        fix_done(&x);
}

Test(sbx_store, wal_stays_bounded_under_many_writes)
{
        struct fix x;
        fix_init(&x, false);
        ha_log_setup(HA_LOG_WARN, HA_LOG_TEXT, 2);
        struct sbx_store *st;
        struct ha_err e = { { 0 } };
        cr_assert_eq(sbx_store_open(x.dir, &st, &e), 0, "%s", e.msg);
        char wal[300];
        snprintf(wal, sizeof wal, "%s/state.db-wal", x.dir);
        off_t max = 0;
        for (int i = 0; i < 20000; i++) {
                char id[16];
                snprintf(id, sizeof id, "w%d", i % 500);
                struct sbx_row row = row_of(id, i);
                cr_assert_eq(sbx_store_put(st, &row, &e), 0);
                if (i % 1000 == 0) {
                        struct stat sb;
                        if (stat(wal, &sb) == 0 && sb.st_size > max)
                                max = sb.st_size;
                }
        }
        /* 1000 pages start the checkpointer, 8000 (~33 MB with frame
         * headers) make the writer checkpoint inline; without either the
         * WAL reaches ~250 MB here. */
        cr_assert_lt(max, 40l << 20, "WAL grew to %lld bytes", (long long)max);
        sbx_store_close(st);
        struct stat sb;
        cr_assert_neq(stat(wal, &sb), 0, "the WAL is removed on a clean close");
        fix_done(&x);
}

Test(sbx_store, second_opener_is_refused)
{
        struct fix x;
        fix_init(&x, false);
        struct sbx_store *a, *b;
        struct ha_err e = { { 0 } };
        cr_assert_eq(sbx_store_open(x.dir, &a, &e), 0);
        cr_assert_eq(sbx_store_open(x.dir, &b, &e), -EBUSY);
        sbx_store_close(a);
        cr_assert_eq(sbx_store_open(x.dir, &b, &e), 0);
        sbx_store_close(b);
        fix_done(&x);
}

/* Random bytes in every blob column never crash the loader: each row either
 * decodes within the limits or is skipped. */
Test(sbx_store, garbage_blobs_are_rejected_safely)
{
        struct fix x;
        fix_init(&x, false);
        ha_log_setup(HA_LOG_ERROR + 1, HA_LOG_TEXT, 2);
        struct sbx_store *st;
        struct ha_err e = { { 0 } };
        cr_assert_eq(sbx_store_open(x.dir, &st, &e), 0, "%s", e.msg);
        char path[300];
        snprintf(path, sizeof path, "%s/state.db", x.dir);
        sqlite3 *db;
        cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
        sqlite3_stmt *upd;
        cr_assert_eq(sqlite3_prepare_v2(db,
                                        "UPDATE sandboxes SET metadata = ?1, env = ?2, allow_cidrs = ?3,"
                                        " deny_cidrs = ?4 WHERE id = 'g'",
                                        -1, &upd, NULL),
                     SQLITE_OK);
        unsigned seed = 12345;
        for (int round = 0; round < 300; round++) {
                struct sbx_row row = row_of("g", round);
                cr_assert_eq(sbx_store_put(st, &row, &e), 0);
                uint8_t blob[4][64];
                for (int c = 0; c < 4; c++) {
                        int len = (int)(rand_r(&seed) % sizeof blob[c]);
                        for (int i = 0; i < len; i++)
                                blob[c][i] = (uint8_t)rand_r(&seed);
                        /* small counts and lengths make deep parses likely */
                        if (len >= 4 && rand_r(&seed) % 2)
                                blob[c][1] = blob[c][2] = blob[c][3] = 0;
                        sqlite3_bind_blob(upd, c + 1, blob[c], len, SQLITE_TRANSIENT);
                }
                cr_assert_eq(sqlite3_step(upd), SQLITE_DONE);
                sqlite3_reset(upd);
                struct loaded l = { 0 };
                cr_assert_eq(sbx_store_load(st, keep, &l, &e), 0);
                cr_assert_leq(l.n, 1);
                if (l.n) {
                        cr_assert_leq(l.last.rec.spec.metadata.n, SBX_MAP_MAX_ENTRIES);
                        cr_assert_leq(l.last.rec.spec.egress.allow_cidrs.n, SBX_CIDR_MAX_ENTRIES);
                }
                sbx_record_done(&l.last.rec);
        }
        sqlite3_finalize(upd);
        sqlite3_close(db);
        sbx_store_close(st);
        fix_done(&x);
}
