/*
 * json.h - the small JSON writer that builds Firecracker request bodies, and
 * a reader that pulls one string field (fault_message, state) out of a
 * response object.
 *
 * The writer appends to an ha_buf whose limit is fixed by the caller
 * (Firecracker caps request bodies at 51,200 bytes, VM_JSON_BODY_MAX). Errors
 * are sticky: the first failure (-EMSGSIZE, -ENOMEM) is kept in |err| and
 * later calls do nothing, so a builder checks once at the end. Strings are
 * escaped per RFC 8259: '"', '\\' and control characters; other bytes pass
 * through unchanged (callers hand in UTF-8 paths and names).
 */
#ifndef HA_VM_JSON_H
#define HA_VM_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

/* Firecracker's default --http-api-max-payload-size. */
#define VM_JSON_BODY_MAX 51200
/* Nesting the writer tracks; our bodies use 3. */
#define VM_JSON_DEPTH_MAX 8

struct vm_json {
        struct ha_buf *buf;
        int err;                                /* first error, sticky */
        int depth;
        bool need_comma[VM_JSON_DEPTH_MAX];
};

void vm_json_init(struct vm_json *j, struct ha_buf *buf);
void vm_json_object_begin(struct vm_json *j, const char *key); /* key NULL at top/in arrays */
void vm_json_object_end(struct vm_json *j);
void vm_json_array_begin(struct vm_json *j, const char *key);
void vm_json_array_end(struct vm_json *j);
void vm_json_string(struct vm_json *j, const char *key, const char *val);
void vm_json_uint(struct vm_json *j, const char *key, uint64_t val);
void vm_json_bool(struct vm_json *j, const char *key, bool val);
/* 0, or the first error: -EMSGSIZE (limit), -ENOMEM, -EINVAL (misnested). */
int vm_json_finish(struct vm_json *j);

/* Finds |key| among the top-level members of the JSON object in
 * [json, json+len) and copies its string value, unescaped (\uXXXX to UTF-8),
 * into |out| (|size| bytes, NUL-terminated, truncated to fit).
 * Returns 0, -ENOENT (no such member, or not a string), -EINVAL (not a JSON
 * object / malformed). Never reads past |len|. */
int vm_json_get_string(const char *json, size_t len, const char *key, char *out, size_t size);

#endif
