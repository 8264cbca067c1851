/*
 * fake_backend.h - a test-double sandbox backend for hostagent-testd: no
 * namespaces, no images, and a "VMM" that is a real process (sleep, in its
 * own session, argv[0] "fakevmm:<state-dir>:<id>") so lifetime, restart
 * re-adoption, kill -9 and orphan cleanup are exercised for real through
 * the RPC API. Enabled when the environment has HA_FAKE_VMM=<boot delay ms>.
 */
#ifndef HA_TESTD_FAKE_BACKEND_H
#define HA_TESTD_FAKE_BACKEND_H

#include "service/daemon.h"

int testd_backend_new(struct ha_daemon *d, const struct sbx_backend **ret, struct ha_err *err);
void testd_backend_attach(struct ha_daemon *d, sbx_mgr *m);
void testd_backend_free(struct ha_daemon *d);

#endif
