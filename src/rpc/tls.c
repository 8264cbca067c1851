/*
 * tls.c - see tls.h. The ALPN callback refuses anything but h2: gRPC needs
 * HTTP/2, and a client that cannot speak it should fail at the handshake,
 * not with a confusing HTTP/1 error later.
 */
#include "rpc/tls.h"

#include <errno.h>
#include <nghttp2/nghttp2.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>

static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg)
{
        static const unsigned char h2[] = "\x02h2";
        if (SSL_select_next_proto((unsigned char **)out, outlen, h2, sizeof h2 - 1, in, inlen) !=
            OPENSSL_NPN_NEGOTIATED)
                return SSL_TLSEXT_ERR_ALERT_FATAL;
        return SSL_TLSEXT_ERR_OK;
}

static void openssl_reason(struct ha_err *err, const char *what, const char *file)
{
        unsigned long e = ERR_get_error();
        char buf[160];
        ERR_error_string_n(e, buf, sizeof buf);
        ha_err_set(err, -EINVAL, "%s %s: %s", what, file ? file : "", e ? buf : "unknown error");
        ERR_clear_error();
}

SSL_CTX *rpc_tls_ctx_new(const char *cert, const char *key, const char *client_ca, struct ha_err *err)
{
        SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
        if (!ctx) {
                openssl_reason(err, "SSL_CTX_new", NULL);
                return NULL;
        }
        SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
        SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE);
        /* HTTP/2 (RFC 9113 9.2.2) forbids the weak TLS 1.2 suites. */
        SSL_CTX_set_cipher_list(ctx, "ECDHE+AESGCM:ECDHE+CHACHA20");
        SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
        if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
                openssl_reason(err, "cannot load certificate", cert);
                goto out_free;
        }
        if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
                openssl_reason(err, "cannot load private key", key);
                goto out_free;
        }
        if (SSL_CTX_check_private_key(ctx) != 1) {
                openssl_reason(err, "key does not match certificate", key);
                goto out_free;
        }
        if (client_ca) {
                if (SSL_CTX_load_verify_locations(ctx, client_ca, NULL) != 1) {
                        openssl_reason(err, "cannot load client CA", client_ca);
                        goto out_free;
                }
                STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(client_ca);
                if (names)
                        SSL_CTX_set_client_CA_list(ctx, names);
                SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
                /* Client certificates must be meant for client auth. */
                X509_VERIFY_PARAM *vp = SSL_CTX_get0_param(ctx);
                X509_VERIFY_PARAM_set_purpose(vp, X509_PURPOSE_SSL_CLIENT);
                SSL_CTX_set_verify_depth(ctx, 4);
        }
        SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
        return ctx;
out_free:
        SSL_CTX_free(ctx);
        return NULL;
}

char *rpc_tls_peer_identity(SSL *ssl)
{
        X509 *x = SSL_get1_peer_certificate(ssl);
        if (!x)
                return NULL;
        char *id = NULL;
        GENERAL_NAMES *sans = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
        for (int pass = 0; sans && pass < 2 && !id; pass++) {
                int want = pass == 0 ? GEN_URI : GEN_DNS;
                for (int i = 0; i < sk_GENERAL_NAME_num(sans); i++) {
                        const GENERAL_NAME *g = sk_GENERAL_NAME_value(sans, i);
                        if (g->type != want)
                                continue;
                        const ASN1_IA5STRING *s = want == GEN_URI ? g->d.uniformResourceIdentifier : g->d.dNSName;
                        id = strndup((const char *)ASN1_STRING_get0_data(s), (size_t)ASN1_STRING_length(s));
                        break;
                }
        }
        GENERAL_NAMES_free(sans);
        if (!id) {
                char cn[256];
                if (X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof cn) > 0)
                        id = strdup(cn);
        }
        X509_free(x);
        return id;
}

const char *rpc_tls_failure_reason(SSL *ssl, char *buf, size_t len)
{
        long v = SSL_get_verify_result(ssl);
        unsigned long e = ERR_peek_error();
        if (v != X509_V_OK) {
                snprintf(buf, len, "client certificate: %s", X509_verify_cert_error_string(v));
        } else if (e) {
                char tmp[160];
                ERR_error_string_n(e, tmp, sizeof tmp);
                snprintf(buf, len, "%s", tmp);
        } else {
                snprintf(buf, len, "connection closed during handshake");
        }
        ERR_clear_error();
        return buf;
}
