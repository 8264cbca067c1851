/*
 * details.c - error details in each protocol's form: gRPC packs a
 * google.rpc.Status with Any details into grpc-status-details-bin (type URLs
 * "type.googleapis.com/<full name>"); Connect lists {"type", "value"} with
 * the bare type name and unpadded standard base64.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/base64.h"
#include "google/protobuf/any.pb-c.h"
#include "google/rpc/status.pb-c.h"
#include "rpc/rpc_int.h"

int rpc_details_grpc_bin(struct rpc_call *c, char **ret)
{
        if (c->details.n == 0)
                return 1;
        Google__Rpc__Status st = GOOGLE__RPC__STATUS__INIT;
        Google__Protobuf__Any anys[8], *ptrs[8];
        char urls[8][256];
        size_t n = c->details.n < 8 ? c->details.n : 8;
        for (size_t i = 0; i < n; i++) {
                google__protobuf__any__init(&anys[i]);
                snprintf(urls[i], sizeof urls[i], "type.googleapis.com/%s", c->details.v[i].name);
                anys[i].type_url = urls[i];
                anys[i].value.data = c->details.v[i].value;
                anys[i].value.len = c->details.v[i].value_len;
                ptrs[i] = &anys[i];
        }
        st.code = (int32_t)c->status;
        st.message = c->status_msg ? c->status_msg : (char *)"";
        st.n_details = n;
        st.details = ptrs;
        size_t len = google__rpc__status__get_packed_size(&st);
        uint8_t *b = malloc(len ? len : 1);
        char *out = malloc(ha_base64_encoded_len(len));
        if (!b || !out) {
                free(b);
                free(out);
                return -ENOMEM;
        }
        google__rpc__status__pack(&st, b);
        ha_base64_encode(b, len, out, false, false);
        free(b);
        *ret = out;
        return 0;
}

int rpc_details_connect_json(struct rpc_call *c, struct ha_buf *b)
{
        if (c->details.n == 0)
                return 0;
        int r = ha_buf_printf(b, ",\"details\":[");
        for (size_t i = 0; r == 0 && i < c->details.n; i++) {
                const struct rpc_nv *d = &c->details.v[i];
                char *v = malloc(ha_base64_encoded_len(d->value_len));
                if (!v)
                        return -ENOMEM;
                ha_base64_encode(d->value, d->value_len, v, false, false);
                /* Type names are protobuf identifiers: no JSON escaping needed. */
                r = ha_buf_printf(b, "%s{\"type\":\"%s\",\"value\":\"%s\"}", i ? "," : "", d->name, v);
                free(v);
        }
        if (r == 0)
                r = ha_buf_append(b, "]", 1);
        return r;
}
