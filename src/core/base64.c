/* base64.c - see base64.h. */
#include "core/base64.h"

#include <errno.h>

static const char std_alpha[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char url_alpha[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

size_t ha_base64_encoded_len(size_t n)
{
        return (n + 2) / 3 * 4 + 1;
}

size_t ha_base64_encode(const uint8_t *in, size_t n, char *out, bool url, bool pad)
{
        size_t o = ha_base64_encode_raw(in, n, out, url, pad);
        out[o] = '\0';
        return o;
}

size_t ha_base64_encode_raw(const uint8_t *in, size_t n, char *out, bool url, bool pad)
{
        const char *a = url ? url_alpha : std_alpha;
        size_t o = 0, i = 0;
        for (; i + 2 < n; i += 3) {
                uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
                out[o++] = a[v >> 18 & 63];
                out[o++] = a[v >> 12 & 63];
                out[o++] = a[v >> 6 & 63];
                out[o++] = a[v & 63];
        }
        if (i < n) {
                uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0);
                out[o++] = a[v >> 18 & 63];
                out[o++] = a[v >> 12 & 63];
                if (i + 1 < n)
                        out[o++] = a[v >> 6 & 63];
                else if (pad)
                        out[o++] = '=';
                if (pad)
                        out[o++] = '=';
        }
        return o;
}

static int val(unsigned char c)
{
        if (c >= 'A' && c <= 'Z') return c - 'A';
        if (c >= 'a' && c <= 'z') return c - 'a' + 26;
        if (c >= '0' && c <= '9') return c - '0' + 52;
        if (c == '+' || c == '-') return 62;
        if (c == '/' || c == '_') return 63;
        return -1;
}

long ha_base64_decode(const char *in, size_t n, uint8_t *out)
{
        /* Padding, when present, must complete the last quantum exactly. */
        size_t pad = 0;
        while (n > 0 && in[n - 1] == '=' && pad < 2) {
                n--;
                pad++;
        }
        if ((pad && (n + pad) % 4 != 0) || n % 4 == 1)
                return -EINVAL;
        size_t o = 0;
        uint32_t acc = 0;
        unsigned bits = 0;
        for (size_t i = 0; i < n; i++) {
                int v = val((unsigned char)in[i]);
                if (v < 0)
                        return -EINVAL;
                acc = acc << 6 | (uint32_t)v;
                bits += 6;
                if (bits >= 8) {
                        bits -= 8;
                        out[o++] = (uint8_t)(acc >> bits);
                }
        }
        return (long)o;
}
