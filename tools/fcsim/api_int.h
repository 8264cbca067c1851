/*
 * api_int.h - shared by api.c, api_config.c and api_run.c only: one call
 * in flight, the response helpers, and the handlers the router dispatches
 * to. Every handler returns 0 (the response, success or fault, is in the
 * call) or -ENOMEM when no response could be built.
 */
#ifndef FCSIM_API_INT_H
#define FCSIM_API_INT_H

#include <cjson/cJSON.h>
#include <stdbool.h>

#include "api.h"
#include "schema.h"

extern const char FCSIM_MSG_PRE_BOOT[];
extern const char FCSIM_MSG_POST_BOOT[];
extern const char FCSIM_MSG_SERDE[];

struct fcsim_call {
        struct fcsim_vm *vm;
        const struct fcsim_http_req *req;
        int status; /* 200, 204 or 400 once answered */
        struct ha_buf *body;
        char fault[HA_ERR_MSG_MAX + 128];
};

/* Answers 400 with the formatted fault message. Returns 0 or -ENOMEM. */
int fcsim_call_fault(struct fcsim_call *c, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));
/* Answers 200 with |o| (consumed, may be NULL after a failed allocation). */
int fcsim_call_json(struct fcsim_call *c, cJSON *o);
/* Answers 204. */
int fcsim_call_ok(struct fcsim_call *c);
/* Parses and schema-checks the body; on failure answers the serde fault
 * and returns -EINVAL. On success the caller owns *ret_json. */
int fcsim_call_body(struct fcsim_call *c, const struct fcsim_schema *s, cJSON **ret_json);
/* Firecracker's checked_id on a path ID; answers the fault on failure. */
int fcsim_call_path_id(struct fcsim_call *c, const char *id);
/* The body's |field| must equal the path ID; answers the fault otherwise. */
int fcsim_call_id_matches(struct fcsim_call *c, const cJSON *j, const char *field,
                          const char *path_id);
/* Phase checks: true when allowed, else the fault is answered. */
bool fcsim_call_preboot(struct fcsim_call *c);
bool fcsim_call_postboot(struct fcsim_call *c);

/* Stops the guest and what serves it (vsock, relay); the instance keeps
 * its configuration. Safe when no guest runs. */
void fcsim_vm_stop_guest(struct fcsim_vm *vm);

/* api_config.c */
int fcsim_api_put_logger(struct fcsim_call *c);
int fcsim_api_put_metrics(struct fcsim_call *c);
int fcsim_api_machine_config(struct fcsim_call *c, bool patch);
int fcsim_api_put_boot_source(struct fcsim_call *c);
int fcsim_api_put_drive(struct fcsim_call *c, const char *id);
int fcsim_api_put_net(struct fcsim_call *c, const char *id);
int fcsim_api_put_vsock(struct fcsim_call *c);
int fcsim_api_patch_drive(struct fcsim_call *c, const char *id);
int fcsim_api_patch_net(struct fcsim_call *c, const char *id);

/* api_run.c */
int fcsim_api_put_actions(struct fcsim_call *c);
int fcsim_api_patch_vm(struct fcsim_call *c);
int fcsim_api_snapshot_create(struct fcsim_call *c);
int fcsim_api_snapshot_load(struct fcsim_call *c);

#endif
