/* err.c - see err.h. */
#include "core/err.h"

#include <stdarg.h>
#include <stdio.h>

/* The parentheses keep err.h's analyzer-only macro out of the definition. */
int (ha_err_set)(struct ha_err *err, int code, const char *fmt, ...)
{
        if (err) {
                va_list ap;
                va_start(ap, fmt);
                vsnprintf(err->msg, sizeof err->msg, fmt, ap);
                va_end(ap);
        }
        return code;
}
