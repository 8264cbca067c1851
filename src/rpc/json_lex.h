/*
 * json_lex.h - a pull lexer over a JSON text for the protobuf JSON decoder.
 *
 * No DOM: the decoder asks for the token it expects next (an object
 * opening, a string, a number...) and the lexer checks the RFC 8259
 * grammar as it goes. Strings come back unescaped and UTF-8-validated;
 * when a string has no escape its bytes are returned in place (no copy).
 *
 * Every function returning int gives 0 or -EINVAL (or -ENOMEM when the
 * scratch buffer cannot grow); on -EINVAL lx->why names the problem (a
 * static string) and lx->err_off its byte offset.
 */
#ifndef RPC_JSON_LEX_H
#define RPC_JSON_LEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ha_buf;

struct rpc_jlex {
        const uint8_t *start, *p, *end;
        const char *why;                /* set with -EINVAL */
        size_t err_off;
};

void rpc_jlex_init(struct rpc_jlex *lx, const uint8_t *data, size_t len);

/* Records |why| at the current offset and returns -EINVAL. */
int rpc_jlex_fail(struct rpc_jlex *lx, const char *why);

/* Skips whitespace; returns the next byte, or -1 at the end of input. */
int rpc_jlex_peek(struct rpc_jlex *lx);

/* Skips whitespace; consumes |c| and returns true when it is next. */
bool rpc_jlex_accept(struct rpc_jlex *lx, char c);

/* Like accept, but a missing |c| is an error saying |why|. */
int rpc_jlex_expect(struct rpc_jlex *lx, char c, const char *why);

/* Reads a string (the next token must be one). *ret points either into the
 * input or into |scratch| (reset first), valid until the next call with the
 * same scratch; it is not NUL-terminated and may contain NUL (\u0000). */
int rpc_jlex_string(struct rpc_jlex *lx, struct ha_buf *scratch, const char **ret,
                    size_t *ret_len);

/* Reads a number token, returning its text (grammar checked). */
int rpc_jlex_number(struct rpc_jlex *lx, const char **ret, size_t *ret_len);

/* Reads the literal |word| (true, false or null). */
int rpc_jlex_literal(struct rpc_jlex *lx, const char *word);

/* Skips one value of any kind, nesting at most |depth| levels. */
int rpc_jlex_skip(struct rpc_jlex *lx, struct ha_buf *scratch, unsigned depth);

/* Whether |s| is exactly one JSON number token. */
bool rpc_jlex_is_number(const char *s, size_t n);

/* Length (1-4) of the valid UTF-8 sequence at |p| (at most |n| bytes
 * available), or 0 when the bytes there are not valid UTF-8 (overlong
 * forms, surrogates and values above U+10FFFF are invalid). */
size_t rpc_jlex_utf8_len(const uint8_t *p, size_t n);

#endif
