/*
 * gzip.h - gzip for message compression (grpc-encoding, Connect
 * content-encoding). Inflation is bounded: the size limit applies after
 * decompression, so a small compressed bomb cannot allocate past it.
 */
#ifndef HA_RPC_GZIP_H
#define HA_RPC_GZIP_H

#include <stddef.h>
#include <stdint.h>

/* Returns 0 with a malloc'd result, -EMSGSIZE (output above |limit|),
 * -EBADMSG (corrupt input) or -ENOMEM. */
int rpc_gzip_inflate(const uint8_t *in, size_t n, size_t limit, uint8_t **ret, size_t *ret_len);
/* Returns 0 with a malloc'd result, or -ENOMEM. */
int rpc_gzip_deflate(const uint8_t *in, size_t n, uint8_t **ret, size_t *ret_len);

#endif
