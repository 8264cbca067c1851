/*
 * timeout.h - request deadlines from grpc-timeout ("1-8 digits" + H M S m u n)
 * and connect-timeout-ms (1-10 digits of milliseconds).
 */
#ifndef HA_RPC_TIMEOUT_H
#define HA_RPC_TIMEOUT_H

#include <stddef.h>
#include <stdint.h>

/* Longest timeout honoured; larger ones are clamped (a 99999999H timeout
 * would otherwise overflow deadline arithmetic). */
#define RPC_TIMEOUT_MAX_MS (100ull * 24 * 3600 * 1000)

/* Returns 0 with the timeout in ms (rounded up, at least 1 for a non-zero
 * value), or -EINVAL for a malformed value. */
int rpc_grpc_timeout_parse(const char *s, size_t n, uint64_t *ret_ms);
int rpc_connect_timeout_parse(const char *s, size_t n, uint64_t *ret_ms);

#endif
