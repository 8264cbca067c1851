/*
 * descset.h - an immutable index over a serialized FileDescriptorSet.
 *
 * protobuf-c's generated descriptors lack what reflection, routing and the
 * JSON codec need: json_name, streaming flags, method options, map-entry
 * markers and the original FileDescriptorProto bytes. The build embeds the
 * FileDescriptorSet of the public API (gen/descriptor_set.c, written by
 * protoc --include_imports); this module walks it once at startup with a
 * small wire reader and answers lookups from hash tables.
 *
 * Thread-safety: construction is single-threaded; afterwards every function
 * here only reads, so any number of threads may share one rpc_descset.
 * Lifetime: every pointer returned borrows from the rpc_descset (and file
 * bytes from the blob given to rpc_descset_new()); valid until
 * rpc_descset_free().
 */
#ifndef RPC_DESCSET_H
#define RPC_DESCSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

struct ha_err;

typedef struct rpc_descset rpc_descset;

/* One .proto file of the set. */
struct rpc_descset_file {
        const char *name;               /* "hostagent/v1/hostagent.proto" */
        const char *package;            /* "hostagent.v1" ("" when none) */
        const uint8_t *data;            /* serialized FileDescriptorProto: */
        size_t len;                     /* a slice of the blob, not a copy */
        /* Transitive imports then the file itself, in dependency order
         * (every file appears after all the files it imports; the last
         * element is this file). What reflection sends for this file. */
        const struct rpc_descset_file *const *closure;
        size_t n_closure;
};

/* One RPC method. Type names are fully qualified without a leading dot. */
struct rpc_descset_method {
        const char *path;               /* "/hostagent.v1.HostAgentService/GetSandbox" */
        const char *full_name;          /* "hostagent.v1.HostAgentService.GetSandbox" */
        const char *service;            /* "hostagent.v1.HostAgentService" */
        const char *name;               /* "GetSandbox" */
        const char *input_type;         /* "hostagent.v1.GetSandboxRequest" */
        const char *output_type;        /* "hostagent.v1.Sandbox" */
        bool client_streaming;
        bool server_streaming;
        bool no_side_effects;           /* idempotency_level = NO_SIDE_EFFECTS */
        bool idempotent;                /* idempotency_level = IDEMPOTENT */
        /* protobuf-c descriptors of the types when they were registered
         * with rpc_descset_new() (always, for rpc_descset_new_embedded()). */
        const ProtobufCMessageDescriptor *input;
        const ProtobufCMessageDescriptor *output;
        const struct rpc_descset_file *file;
};

/* What the JSON codec needs about one message type. */
struct rpc_descset_msg {
        const char *full_name;          /* "hostagent.v1.Sandbox" */
        bool map_entry;                 /* synthetic MapEntry of a map<,> field */
        const struct rpc_descset_file *file; /* NULL: registered C type absent from the set */
        /* The protobuf-c descriptor registered for this type, or NULL. */
        const ProtobufCMessageDescriptor *cdesc;
        /* When cdesc is set: json_names[i] is the JSON name of
         * cdesc->fields[i] (from the set, else computed lowerCamelCase). */
        const char *const *json_names;
};

/*
 * Indexes |blob| (a serialized FileDescriptorSet) and registers the
 * protobuf-c message types reachable from |types| (each one, its message
 * fields recursively). |blob| is borrowed and must outlive the result.
 * Returns 0 and sets *ret, or -EINVAL (malformed set, duplicate file,
 * missing or cyclic import; |err| says which), -ENOMEM.
 */
int rpc_descset_new(const uint8_t *blob, size_t len,
                    const ProtobufCMessageDescriptor *const *types, size_t n_types,
                    rpc_descset **ret, struct ha_err *err);

/* rpc_descset_new() over gen/descriptor_set.c with every message type of
 * gen/ registered (hostagent.v1, grpc.health.v1, grpc.reflection.v1 and
 * v1alpha, google.rpc.Status, google.protobuf.{Any,Timestamp,Duration}). */
int rpc_descset_new_embedded(rpc_descset **ret, struct ha_err *err);

/* NULL is a no-op. */
void rpc_descset_free(rpc_descset *ds);

/* Services in file order; full names ("grpc.health.v1.Health"). */
size_t rpc_descset_service_count(const rpc_descset *ds);
const char *rpc_descset_service_name(const rpc_descset *ds, size_t i);

/* All methods, grouped by service in file order. */
size_t rpc_descset_method_count(const rpc_descset *ds);
const struct rpc_descset_method *rpc_descset_method_at(const rpc_descset *ds, size_t i);

/* The method for an HTTP/2 :path ("/pkg.Service/Method", |len| bytes, no
 * NUL needed), or NULL. Exact, case-sensitive match. */
const struct rpc_descset_method *rpc_descset_method_by_path(const rpc_descset *ds,
                                                            const char *path, size_t len);

/* Files in set order. */
size_t rpc_descset_file_count(const rpc_descset *ds);
const struct rpc_descset_file *rpc_descset_file_at(const rpc_descset *ds, size_t i);

/* The file named |name| ("google/protobuf/duration.proto"), or NULL. */
const struct rpc_descset_file *rpc_descset_file_by_name(const rpc_descset *ds,
                                                        const char *name);

/* The file that defines |symbol|, a fully-qualified name without leading
 * dot: a service, a method ("pkg.Svc.Method"), a message (nested ones as
 * "pkg.Outer.Inner"), a field ("pkg.Msg.field"), an enum, an enum value
 * ("pkg.VALUE" or "pkg.Msg.VALUE", protobuf's scoping) or an extension.
 * NULL when unknown. */
const struct rpc_descset_file *rpc_descset_file_containing_symbol(const rpc_descset *ds,
                                                                  const char *symbol);

/* The file declaring extension |number| of message |type| (full name), or
 * NULL (the public API declares none today). */
const struct rpc_descset_file *rpc_descset_file_containing_extension(const rpc_descset *ds,
                                                                     const char *type,
                                                                     uint32_t number);

/* Extension numbers declared for |type|: writes up to |max| into |out|
 * and returns how many exist (0 for a known type without extensions);
 * -ENOENT when |type| is not a message of the set. */
int rpc_descset_extension_numbers(const rpc_descset *ds, const char *type,
                                  uint32_t *out, size_t max);

/* The message type |full_name| ("hostagent.v1.Sandbox"), or NULL. */
const struct rpc_descset_msg *rpc_descset_msg_by_name(const rpc_descset *ds,
                                                      const char *full_name);

/* The record of a registered protobuf-c type (pointer lookup), or NULL. */
const struct rpc_descset_msg *rpc_descset_msg_by_c(const rpc_descset *ds,
                                                   const ProtobufCMessageDescriptor *d);

/* json_name of field |number| of message |full_name|, or NULL. */
const char *rpc_descset_json_name(const rpc_descset *ds, const char *full_name,
                                  uint32_t number);

#endif
