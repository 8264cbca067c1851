/*
 * err.h - words for an error. Functions return 0 or -errno; where a client
 * deserves more than the code, the layer that knows the detail fills an
 * optional struct ha_err. It adds text, never a second error convention.
 */
#ifndef HA_ERR_H
#define HA_ERR_H

#define HA_ERR_MSG_MAX 256

struct ha_err {
        char msg[HA_ERR_MSG_MAX];
};

/* Formats into |err| when it is not NULL; returns |code| (a -errno), so
 * "return ha_err_set(err, -EINVAL, "bad %s", x);" reads naturally. */
int ha_err_set(struct ha_err *err, int code, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
#ifdef __clang_analyzer__
/* Tells clang's static analyzer (scripts/lint.sh) the contract above, so it
 * does not follow an error path as if it had succeeded. */
#define ha_err_set(err, code, ...) (ha_err_set((err), (code), __VA_ARGS__), (code))
#endif

#endif
