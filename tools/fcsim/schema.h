/*
 * schema.h - validation of API bodies against tables transcribed from the
 * Firecracker OpenAPI spec (firecracker.yaml, v1.16.1), with the strictness
 * of Firecracker's serde structs: unknown and duplicate fields rejected,
 * required fields enforced, JSON types and integer widths checked, enums
 * matched exactly. Messages follow serde's wording ("missing field `x`").
 *
 * Only shape is checked here; rules that need the VM's state (pre/post
 * boot, IDs that must match, files that must open) live in api.c.
 */
#ifndef FCSIM_SCHEMA_H
#define FCSIM_SCHEMA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "core/err.h"

enum fcsim_jtype {
        FCSIM_J_STR,
        FCSIM_J_BOOL,
        FCSIM_J_UINT, /* unsigned integer up to |max| */
        FCSIM_J_OBJ,  /* nested object checked against |sub| */
        FCSIM_J_ARR,  /* array of objects checked against |sub| */
};

struct fcsim_schema;

struct fcsim_field {
        const char *name;
        enum fcsim_jtype type;
        bool required;
        uint64_t max;                   /* FCSIM_J_UINT: the Rust type's maximum */
        const char *const *enums;       /* FCSIM_J_STR: NULL-terminated, or NULL */
        const struct fcsim_schema *sub; /* FCSIM_J_OBJ / FCSIM_J_ARR */
};

struct fcsim_schema {
        const char *name;
        const struct fcsim_field *fields;
        size_t n_fields;
};

/* The request bodies fcsim accepts. */
extern const struct fcsim_schema fcsim_schema_logger;
extern const struct fcsim_schema fcsim_schema_metrics;
extern const struct fcsim_schema fcsim_schema_machine_config;
extern const struct fcsim_schema fcsim_schema_machine_config_patch;
extern const struct fcsim_schema fcsim_schema_boot_source;
extern const struct fcsim_schema fcsim_schema_drive;
extern const struct fcsim_schema fcsim_schema_drive_patch;
extern const struct fcsim_schema fcsim_schema_network_interface;
extern const struct fcsim_schema fcsim_schema_network_interface_patch;
extern const struct fcsim_schema fcsim_schema_vsock;
extern const struct fcsim_schema fcsim_schema_action;
extern const struct fcsim_schema fcsim_schema_vm;
extern const struct fcsim_schema fcsim_schema_snapshot_create;
extern const struct fcsim_schema fcsim_schema_snapshot_load;

/* Parses |body| (not NUL-terminated) into a cJSON object.
 * Returns 0 and *ret_json (caller frees with cJSON_Delete), or -EINVAL with
 * a message in |err|. */
int fcsim_json_parse(const char *body, size_t len, cJSON **ret_json, struct ha_err *err);

/* Checks |obj| against |s|. Returns 0 or -EINVAL with the serde-style
 * reason in |err| (without Firecracker's "An error occurred..." prefix). */
int fcsim_schema_check(const cJSON *obj, const struct fcsim_schema *s, struct ha_err *err);

/* Accessors for an object already checked: absent fields give the default. */
const char *fcsim_json_str(const cJSON *obj, const char *name, const char *dflt);
bool fcsim_json_bool(const cJSON *obj, const char *name, bool dflt);
uint64_t fcsim_json_uint(const cJSON *obj, const char *name, uint64_t dflt);
bool fcsim_json_has(const cJSON *obj, const char *name);

#endif
