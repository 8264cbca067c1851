/*
 * config.h - turning checked JSON bodies into struct fcsim_config parts
 * (with Firecracker's semantic rules and error messages) and back into
 * JSON (GET /machine-config, GET /vm/config, snapshot files).
 *
 * Every parse function expects a body that already passed its schema
 * (schema.h) and fills its output only on success.
 */
#ifndef FCSIM_CONFIG_H
#define FCSIM_CONFIG_H

#include <cjson/cJSON.h>
#include <stdbool.h>

#include "core/err.h"
#include "fcsim.h"

/* PUT (|patch| false: absent optional fields take their defaults) or
 * PATCH (absent fields keep their value) of the machine configuration. */
int fcsim_config_parse_machine(struct fcsim_machine *m, const cJSON *j, bool patch,
                               struct ha_err *err);
/* Checks that the kernel (and initrd) can be opened, as Firecracker does. */
int fcsim_config_parse_boot(struct fcsim_boot *b, const cJSON *j, struct ha_err *err);
/* Checks that path_on_host opens with the requested access. */
int fcsim_config_parse_drive(struct fcsim_drive *d, const cJSON *j, struct ha_err *err);
/* Parses guest_mac and checks mtu; the TAP itself is opened by the caller. */
int fcsim_config_parse_net(struct fcsim_net *n, const cJSON *j, struct ha_err *err);
int fcsim_config_parse_vsock(struct fcsim_vsock_cfg *v, const cJSON *j, struct ha_err *err);

/* Parses "aa:bb:cc:dd:ee:ff". Returns 0 or -EINVAL. */
int fcsim_mac_parse(const char *s, uint8_t mac[6]);

cJSON *fcsim_machine_to_json(const struct fcsim_machine *m);
/* The FullVmConfiguration shape: machine-config, boot-source, drives,
 * network-interfaces, vsock. NULL on allocation failure. */
cJSON *fcsim_config_to_json(const struct fcsim_config *c);
/* The inverse, for snapshot files: every section is schema-checked and
 * parsed with the functions above. TAP fds are left at -1. */
int fcsim_config_from_json(struct fcsim_config *c, const cJSON *j, struct ha_err *err);

#endif
