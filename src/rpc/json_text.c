/*
 * json_text.c - see json_text.h.
 *
 * Dates use Howard Hinnant's days_from_civil / civil_from_days (proleptic
 * Gregorian, exact for any year), so no timegm() or time zone is involved.
 * Integers are converted digit by digit with overflow checks: a uint64 such
 * as 18446744073709551615 does not survive a trip through double.
 */
#include "rpc/json_text.h"

#include "core/base64.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Base64 is core/base64.c's: JSON wants standard, padded output and
 * accepts either alphabet, padded or not. */
size_t rpc_jtext_b64_len(size_t n)
{
        return (n + 2) / 3 * 4;
}

void rpc_jtext_b64_encode(const uint8_t *in, size_t n, char *out)
{
        ha_base64_encode_raw(in, n, out, false, true);
}

int rpc_jtext_b64_decode(const char *in, size_t n, uint8_t *out, size_t *ret_len)
{
        long r = ha_base64_decode(in, n, out);
        if (r < 0)
                return (int)r;
        *ret_len = (size_t)r;
        return 0;
}

int rpc_jtext_parse_integer(const char *s, size_t n, bool *ret_neg, uint64_t *ret_mag)
{
        size_t i = 0;
        bool neg = false;
        char digits[24];
        size_t nd = 0;          /* significant digits kept, leading zeros dropped */
        int64_t exp10 = 0;      /* value = digits * 10^exp10 */
        bool over = false;

        if (i < n && s[i] == '-') {
                neg = true;
                i++;
        }
        size_t start = i;
        for (; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
                if (nd == 0 && s[i] == '0')
                        continue;
                if (nd < sizeof digits)
                        digits[nd++] = s[i];
                else if (s[i] == '0')
                        exp10++;        /* "1000...0e-12": zeros past the cap */
                else
                        over = true;    /* a 25th significant digit: beyond uint64 */
        }
        if (i == start)
                return -EINVAL;
        if (i < n && s[i] == '.') {
                size_t f = ++i;
                for (; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
                        if (nd == 0 && s[i] == '0') {
                                exp10--;
                                continue;
                        }
                        if (nd < sizeof digits) {
                                digits[nd++] = s[i];
                                exp10--;
                        } else if (s[i] != '0') {
                                return -EINVAL; /* a fraction digit beyond 24 digits */
                        }
                }
                if (i == f)
                        return -EINVAL;
        }
        if (i < n && (s[i] == 'e' || s[i] == 'E')) {
                i++;
                bool eneg = false;
                if (i < n && (s[i] == '+' || s[i] == '-'))
                        eneg = s[i++] == '-';
                size_t e0 = i;
                int64_t e = 0;
                for (; i < n && s[i] >= '0' && s[i] <= '9'; i++)
                        if (e < 100000)         /* saturate: beyond is out of range anyway */
                                e = e * 10 + (s[i] - '0');
                if (i == e0)
                        return -EINVAL;
                exp10 += eneg ? -e : e;
        }
        if (i != n)
                return -EINVAL;
        while (nd > 0 && digits[nd - 1] == '0') {
                nd--;
                exp10++;
        }
        if (nd == 0) {
                *ret_neg = false;
                *ret_mag = 0;
                return 0;
        }
        if (exp10 < 0)
                return -EINVAL;
        if (over || (int64_t)nd + exp10 > 20)
                return -ERANGE;
        uint64_t v = 0;
        for (size_t k = 0; k < nd; k++)
                if (__builtin_mul_overflow(v, 10, &v) ||
                    __builtin_add_overflow(v, (uint64_t)(digits[k] - '0'), &v))
                        return -ERANGE;
        for (int64_t k = 0; k < exp10; k++)
                if (__builtin_mul_overflow(v, 10, &v))
                        return -ERANGE;
        *ret_neg = neg;
        *ret_mag = v;
        return 0;
}

int rpc_jtext_format_double(double d, bool single, char out[RPC_JTEXT_NUM_MAX])
{
        int n = 0;
        for (int prec = single ? 6 : 15; prec <= (single ? 9 : 17); prec++) {
                n = snprintf(out, RPC_JTEXT_NUM_MAX, "%.*g", prec, d);
                double back = strtod(out, NULL);
                if (single ? (float)back == (float)d : back == d)
                        break;
        }
        return n;
}

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
        y -= m <= 2;
        int64_t era = (y >= 0 ? y : y - 399) / 400;
        unsigned yoe = (unsigned)(y - era * 400);
        unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
        unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
        z += 719468;
        int64_t era = (z >= 0 ? z : z - 146096) / 146097;
        unsigned doe = (unsigned)(z - era * 146097);
        unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
        unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        unsigned mp = (5 * doy + 2) / 153;
        *d = doy - (153 * mp + 2) / 5 + 1;
        *m = mp < 10 ? mp + 3 : mp - 9;
        *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

/* Writes |v| as exactly |w| digits (zero-padded). */
static void put_digits(char *out, unsigned v, unsigned w)
{
        for (unsigned i = w; i-- > 0;) {
                out[i] = (char)('0' + v % 10);
                v /= 10;
        }
}

/* Fraction digits for |nanos|: none, 3, 6 or 9 (what protobuf emits). */
static int format_frac(int32_t nanos, char *out)
{
        if (nanos == 0)
                return 0;
        out[0] = '.';
        if (nanos % 1000000 == 0) {
                put_digits(out + 1, (unsigned)nanos / 1000000, 3);
                return 4;
        }
        if (nanos % 1000 == 0) {
                put_digits(out + 1, (unsigned)nanos / 1000, 6);
                return 7;
        }
        put_digits(out + 1, (unsigned)nanos, 9);
        return 10;
}

int rpc_jtext_format_timestamp(int64_t seconds, int32_t nanos, char out[RPC_JTEXT_TS_MAX])
{
        if (seconds < RPC_JTEXT_TS_MIN_SECONDS || seconds > RPC_JTEXT_TS_MAX_SECONDS ||
            nanos < 0 || nanos > 999999999)
                return -EINVAL;
        int64_t days = seconds / 86400, rem = seconds % 86400;
        if (rem < 0) {
                rem += 86400;
                days--;
        }
        int64_t y;
        unsigned mo, d;
        civil_from_days(days, &y, &mo, &d);
        /* Hand-formatted: this runs for every Timestamp of every response. */
        put_digits(out, (unsigned)y, 4);
        out[4] = '-';
        put_digits(out + 5, mo, 2);
        out[7] = '-';
        put_digits(out + 8, d, 2);
        out[10] = 'T';
        put_digits(out + 11, (unsigned)(rem / 3600), 2);
        out[13] = ':';
        put_digits(out + 14, (unsigned)(rem / 60 % 60), 2);
        out[16] = ':';
        put_digits(out + 17, (unsigned)(rem % 60), 2);
        int n = 19;
        n += format_frac(nanos, out + n);
        out[n++] = 'Z';
        out[n] = '\0';
        return n;
}

/* Reads exactly |w| digits at s[*i]. */
static bool digits_at(const char *s, size_t n, size_t *i, unsigned w, unsigned *ret)
{
        unsigned v = 0;
        if (n - *i < w)
                return false;
        for (unsigned k = 0; k < w; k++) {
                char c = s[*i + k];
                if (c < '0' || c > '9')
                        return false;
                v = v * 10 + (unsigned)(c - '0');
        }
        *i += w;
        *ret = v;
        return true;
}

/* ".d{1,9}" at s[*i], if any, into nanoseconds. */
static bool frac_at(const char *s, size_t n, size_t *i, int32_t *ret)
{
        *ret = 0;
        if (*i >= n || s[*i] != '.')
                return true;
        size_t k = ++*i;
        int32_t v = 0;
        while (*i < n && s[*i] >= '0' && s[*i] <= '9' && *i - k < 9)
                v = v * 10 + (s[(*i)++] - '0');
        size_t nd = *i - k;
        if (nd == 0 || (*i < n && s[*i] >= '0' && s[*i] <= '9'))
                return false;           /* no digit, or more than 9 */
        for (; nd < 9; nd++)
                v *= 10;
        *ret = v;
        return true;
}

int rpc_jtext_parse_timestamp(const char *s, size_t n, int64_t *ret_seconds,
                              int32_t *ret_nanos)
{
        static const unsigned mdays[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
        unsigned y, mo, d, h, mi, sec, oh = 0, om = 0;
        size_t i = 0;
        int32_t nanos;
        int sign = 0;

        if (!digits_at(s, n, &i, 4, &y) || i >= n || s[i++] != '-' ||
            !digits_at(s, n, &i, 2, &mo) || i >= n || s[i++] != '-' ||
            !digits_at(s, n, &i, 2, &d) || i >= n || (s[i] != 'T' && s[i] != 't') ||
            (i++, !digits_at(s, n, &i, 2, &h)) || i >= n || s[i++] != ':' ||
            !digits_at(s, n, &i, 2, &mi) || i >= n || s[i++] != ':' ||
            !digits_at(s, n, &i, 2, &sec) || !frac_at(s, n, &i, &nanos) || i >= n)
                return -EINVAL;
        if (s[i] == 'Z' || s[i] == 'z') {
                i++;
        } else if (s[i] == '+' || s[i] == '-') {
                sign = s[i++] == '-' ? -1 : 1;
                if (!digits_at(s, n, &i, 2, &oh) || i >= n || s[i++] != ':' ||
                    !digits_at(s, n, &i, 2, &om) || oh > 23 || om > 59)
                        return -EINVAL;
        } else {
                return -EINVAL;
        }
        if (i != n || y < 1 || mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || sec > 59)
                return -EINVAL;
        bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        if (d > mdays[mo - 1] + (mo == 2 && leap))
                return -EINVAL;
        int64_t t = days_from_civil(y, mo, d) * 86400 + (int64_t)h * 3600 + (int64_t)mi * 60 + sec;
        t -= sign * (int64_t)(oh * 3600 + om * 60);
        if (t < RPC_JTEXT_TS_MIN_SECONDS || t > RPC_JTEXT_TS_MAX_SECONDS)
                return -EINVAL;
        *ret_seconds = t;
        *ret_nanos = nanos;
        return 0;
}

int rpc_jtext_format_duration(int64_t seconds, int32_t nanos, char out[RPC_JTEXT_DUR_MAX])
{
        if (seconds < -RPC_JTEXT_DUR_MAX_SECONDS || seconds > RPC_JTEXT_DUR_MAX_SECONDS ||
            nanos <= -1000000000 || nanos >= 1000000000 || (seconds > 0 && nanos < 0) ||
            (seconds < 0 && nanos > 0))
                return -EINVAL;
        bool neg = seconds < 0 || nanos < 0;
        int n = snprintf(out, RPC_JTEXT_DUR_MAX, "%s%lld", neg ? "-" : "",
                         (long long)(seconds < 0 ? -seconds : seconds));
        n += format_frac(nanos < 0 ? -nanos : nanos, out + n);
        out[n++] = 's';
        out[n] = '\0';
        return n;
}

int rpc_jtext_parse_duration(const char *s, size_t n, int64_t *ret_seconds, int32_t *ret_nanos)
{
        size_t i = 0;
        bool neg = false;
        int64_t secs = 0;
        int32_t nanos;

        if (i < n && s[i] == '-') {
                neg = true;
                i++;
        }
        size_t d0 = i;
        for (; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
                secs = secs * 10 + (s[i] - '0');
                if (secs > RPC_JTEXT_DUR_MAX_SECONDS)
                        return -EINVAL;
        }
        if (i == d0 || !frac_at(s, n, &i, &nanos) || i + 1 != n || s[i] != 's')
                return -EINVAL;
        *ret_seconds = neg ? -secs : secs;
        *ret_nanos = neg ? -nanos : nanos;
        return 0;
}
