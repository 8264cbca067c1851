/*
 * base64.h - RFC 4648 base64, standard and URL-safe alphabets.
 * Decoding accepts both alphabets, with or without padding, because gRPC
 * metadata, gRPC-Web text, Connect GET and protobuf JSON all meet clients
 * that differ on both points.
 */
#ifndef HA_BASE64_H
#define HA_BASE64_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Bytes needed to encode |n| bytes, padded, plus a NUL. */
size_t ha_base64_encoded_len(size_t n);
/* Encodes into |out| (size >= ha_base64_encoded_len(n)); NUL-terminates.
 * Returns the length without the NUL. */
size_t ha_base64_encode(const uint8_t *in, size_t n, char *out, bool url, bool pad);
/* The same without the NUL: writes exactly the returned number of chars. */
size_t ha_base64_encode_raw(const uint8_t *in, size_t n, char *out, bool url, bool pad);
/* Decodes |n| chars into |out| (size >= n * 3 / 4 + 3). Padding is
 * optional, but when present it must complete the last quantum. Returns the
 * decoded length, or -EINVAL on a bad character or impossible length. */
long ha_base64_decode(const char *in, size_t n, uint8_t *out);

#endif
