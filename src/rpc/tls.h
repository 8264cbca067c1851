/*
 * tls.h - OpenSSL server contexts: TLS 1.2+, ALPN "h2" only, optional
 * mandatory client certificates, and the client identity used for
 * authorization (URI SAN, else DNS SAN, else subject CN).
 */
#ifndef HA_RPC_TLS_H
#define HA_RPC_TLS_H

#include <openssl/ssl.h>

#include "core/err.h"

/* Returns a new context or NULL with |err| filled (file, line and reason). */
SSL_CTX *rpc_tls_ctx_new(const char *cert, const char *key, const char *client_ca, struct ha_err *err);
/* The verified peer's identity (malloc'd) or NULL when it sent none. */
char *rpc_tls_peer_identity(SSL *ssl);
/* A short reason for a failed handshake, for the log line. */
const char *rpc_tls_failure_reason(SSL *ssl, char *buf, size_t len);

#endif
