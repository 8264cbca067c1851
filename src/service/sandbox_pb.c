/* sandbox_pb.c - see sandbox_pb.h. */
#include "service/sandbox_pb.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static void ts(Google__Protobuf__Timestamp *t, int64_t ms)
{
        google__protobuf__timestamp__init(t);
        t->seconds = ms / 1000;
        t->nanos = (int32_t)(ms % 1000) * 1000000;
}

int svc_sandbox_to_pb(const struct sbx_record *rec, struct svc_sandbox_pb *out)
{
        memset(out, 0, sizeof *out);
        Hostagent__V1__Sandbox *m = &out->msg;
        hostagent__v1__sandbox__init(m);
        m->sandbox_id = (char *)rec->id;
        m->state = rec->state == SBX_STATE_GONE ? HOSTAGENT__V1__SANDBOX_STATE__SANDBOX_STATE_UNSPECIFIED
                                                : (Hostagent__V1__SandboxState)rec->state;
        m->image = rec->spec.image ? rec->spec.image : (char *)"";
        m->vcpus = rec->spec.vcpus;
        m->memory_mib = rec->spec.memory_mib;
        m->ip = (char *)rec->ip;
        m->slot = rec->has_slot ? rec->slot : 0;
        m->failure = (char *)rec->failure;
        m->snapshotted = rec->snapshotted;
        if (rec->created_at_ms) {
                ts(&out->created, rec->created_at_ms);
                m->created_at = &out->created;
        }
        if (rec->expires_at_ms) {
                ts(&out->expires, rec->expires_at_ms);
                m->expires_at = &out->expires;
        }
        size_t nm = rec->spec.metadata.n, ne = rec->spec.env.n;
        out->md = calloc(nm ? nm : 1, sizeof *out->md);
        out->mdp = calloc(nm ? nm : 1, sizeof *out->mdp);
        out->env = calloc(ne ? ne : 1, sizeof *out->env);
        out->envp = calloc(ne ? ne : 1, sizeof *out->envp);
        if (!out->md || !out->mdp || !out->env || !out->envp) {
                svc_sandbox_pb_done(out);
                return -ENOMEM;
        }
        for (size_t i = 0; i < nm; i++) {
                hostagent__v1__sandbox__metadata_entry__init(&out->md[i]);
                out->md[i].key = rec->spec.metadata.items[i].key;
                out->md[i].value = rec->spec.metadata.items[i].value;
                out->mdp[i] = &out->md[i];
        }
        for (size_t i = 0; i < ne; i++) {
                hostagent__v1__sandbox__env_entry__init(&out->env[i]);
                out->env[i].key = rec->spec.env.items[i].key;
                out->env[i].value = rec->spec.env.items[i].value;
                out->envp[i] = &out->env[i];
        }
        m->n_metadata = nm;
        m->metadata = out->mdp;
        m->n_env = ne;
        m->env = out->envp;
        hostagent__v1__egress_policy__init(&out->egress);
        out->egress.mode = (Hostagent__V1__EgressPolicy__Mode)rec->spec.egress.mode;
        out->egress.n_allow_cidrs = rec->spec.egress.allow_cidrs.n;
        out->egress.allow_cidrs = rec->spec.egress.allow_cidrs.items;
        out->egress.n_deny_cidrs = rec->spec.egress.deny_cidrs.n;
        out->egress.deny_cidrs = rec->spec.egress.deny_cidrs.items;
        m->egress = &out->egress;
        return 0;
}

void svc_sandbox_pb_done(struct svc_sandbox_pb *out)
{
        free(out->md);
        free(out->mdp);
        free(out->env);
        free(out->envp);
        out->md = NULL;
        out->mdp = NULL;
        out->env = NULL;
        out->envp = NULL;
}

/* Map entries of any map<string,string> field share the key/value layout. */
struct kv_entry {
        ProtobufCMessage base;
        char *key;
        char *value;
};

int svc_map_from_pb(size_t n, ProtobufCMessage *const *entries, struct sbx_map *ret)
{
        ret->n = 0;
        ret->items = n ? calloc(n, sizeof *ret->items) : NULL;
        if (n && !ret->items)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                const struct kv_entry *e = (const struct kv_entry *)entries[i];
                ret->items[i].key = e->key;
                ret->items[i].value = e->value;
        }
        ret->n = n;
        return 0;
}

int svc_spec_from_pb(const Hostagent__V1__CreateSandboxRequest *req, struct sbx_spec *spec)
{
        memset(spec, 0, sizeof *spec);
        spec->id = req->sandbox_id;
        spec->image = req->image;
        spec->vcpus = req->vcpus;
        spec->memory_mib = req->memory_mib;
        spec->timeout_s = req->timeout_seconds;
        int r = svc_map_from_pb(req->n_metadata, (ProtobufCMessage *const *)req->metadata, &spec->metadata);
        if (r == 0)
                r = svc_map_from_pb(req->n_env, (ProtobufCMessage *const *)req->env, &spec->env);
        if (r < 0) {
                svc_spec_done(spec);
                return r;
        }
        if (req->egress) {
                spec->egress.mode = (enum sbx_egress_mode)req->egress->mode;
                spec->egress.allow_cidrs.items = req->egress->allow_cidrs;
                spec->egress.allow_cidrs.n = req->egress->n_allow_cidrs;
                spec->egress.deny_cidrs.items = req->egress->deny_cidrs;
                spec->egress.deny_cidrs.n = req->egress->n_deny_cidrs;
        }
        return 0;
}

void svc_spec_done(struct sbx_spec *spec)
{
        free(spec->metadata.items);
        free(spec->env.items);
        spec->metadata.items = NULL;
        spec->env.items = NULL;
}
