/*
 * json_text.h - the text forms of protobuf JSON values that need more than
 * printf: base64 (bytes), RFC 3339 timestamps, "1.5s" durations, exact
 * integers from JSON number text, and shortest round-trip floats.
 *
 * Pure functions with no allocation, so each is tested on its own.
 */
#ifndef RPC_JSON_TEXT_H
#define RPC_JSON_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Room for any output of the *_format functions below, NUL included. */
#define RPC_JTEXT_TS_MAX 40         /* "9999-12-31T23:59:59.999999999Z" */
#define RPC_JTEXT_DUR_MAX 32        /* "-315576000000.999999999s" */
#define RPC_JTEXT_NUM_MAX 32        /* "%.17g" of any double */

/* Seconds bounds of google.protobuf.Timestamp (0001-01-01T00:00:00Z to
 * 9999-12-31T23:59:59Z) and Duration (about 10,000 years), per their .proto. */
#define RPC_JTEXT_TS_MIN_SECONDS (-62135596800LL)
#define RPC_JTEXT_TS_MAX_SECONDS 253402300799LL
#define RPC_JTEXT_DUR_MAX_SECONDS 315576000000LL

/* Length of the standard, padded base64 of |n| bytes. */
size_t rpc_jtext_b64_len(size_t n);
/* Writes rpc_jtext_b64_len(n) characters (no NUL) to |out|. */
void rpc_jtext_b64_encode(const uint8_t *in, size_t n, char *out);
/* Decodes standard or URL-safe base64, padded or not. |out| must hold
 * n / 4 * 3 + 3 bytes. Returns 0 or -EINVAL (bad character or padding). */
int rpc_jtext_b64_decode(const char *in, size_t n, uint8_t *out, size_t *ret_len);

/* Exact value of a JSON number text that must be an integer ("12",
 * "-3", "1e3", "1.50e2"), without going through double. Returns 0 with
 * sign and magnitude, -EINVAL when not integral (or not a number), -ERANGE
 * when the magnitude exceeds UINT64_MAX. */
int rpc_jtext_parse_integer(const char *s, size_t n, bool *ret_neg, uint64_t *ret_mag);

/* Shortest text that reads back to the same double (or float when
 * |single|). |d| must be finite. Returns the length. */
int rpc_jtext_format_double(double d, bool single, char out[RPC_JTEXT_NUM_MAX]);

/* RFC 3339 in UTC with 0, 3, 6 or 9 fractional digits. Returns the length,
 * or -EINVAL when out of the Timestamp range or nanos not in [0, 1e9). */
int rpc_jtext_format_timestamp(int64_t seconds, int32_t nanos, char out[RPC_JTEXT_TS_MAX]);
/* "YYYY-MM-DDTHH:MM:SS[.1-9 digits](Z|+HH:MM|-HH:MM)". Returns 0 or -EINVAL. */
int rpc_jtext_parse_timestamp(const char *s, size_t n, int64_t *ret_seconds,
                              int32_t *ret_nanos);

/* "<seconds>[.frac]s" with 0, 3, 6 or 9 digits. Returns the length, or
 * -EINVAL when out of range or seconds and nanos have different signs. */
int rpc_jtext_format_duration(int64_t seconds, int32_t nanos, char out[RPC_JTEXT_DUR_MAX]);
/* "[-]<digits>[.1-9 digits]s". Returns 0 or -EINVAL. */
int rpc_jtext_parse_duration(const char *s, size_t n, int64_t *ret_seconds, int32_t *ret_nanos);

#endif
