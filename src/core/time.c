/* time.c - see time.h. */
#include "core/time.h"

uint64_t ha_now_ns(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t ha_now_ms(void)
{
        return ha_now_ns() / 1000000u;
}

int64_t ha_wall_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct timespec ha_abs_monotonic(uint64_t deadline_ms)
{
        struct timespec ts = {
                .tv_sec = (time_t)(deadline_ms / 1000),
                .tv_nsec = (long)(deadline_ms % 1000) * 1000000L,
        };
        return ts;
}

int ha_cond_init_monotonic(pthread_cond_t *c)
{
        pthread_condattr_t a;
        int r = pthread_condattr_init(&a);
        if (r)
                return -r;
        pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
        r = pthread_cond_init(c, &a);
        pthread_condattr_destroy(&a);
        return -r;
}
