/*
 * time.h - clocks. Deadlines and timers use the monotonic clock in
 * milliseconds; wall-clock time is only for what users see (timestamps).
 */
#ifndef HA_TIME_H
#define HA_TIME_H

#include <stdint.h>
#include <time.h>

/* Monotonic milliseconds (CLOCK_MONOTONIC). */
uint64_t ha_now_ms(void);
/* Monotonic nanoseconds. */
uint64_t ha_now_ns(void);
/* Wall-clock milliseconds since the epoch (CLOCK_REALTIME). */
int64_t ha_wall_ms(void);
/* A timespec |ms| from now on CLOCK_MONOTONIC, for pthread_cond_timedwait
 * on a condition variable set up with ha_cond_init_monotonic(). */
struct timespec ha_abs_monotonic(uint64_t deadline_ms);

#include <pthread.h>
int ha_cond_init_monotonic(pthread_cond_t *c);

#endif
