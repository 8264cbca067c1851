/*
 * loopdev.h - attaching a disk image to a loop device that releases itself.
 *
 * The device is configured with LO_FLAGS_AUTOCLEAR: the kernel detaches it
 * when its last opener goes away. The openers are the fd returned here and
 * the guest's mount of it, which lives in the guest's mount namespace. So
 * the caller keeps the fd only until the guest has mounted the device;
 * from then on the loop device lives exactly as long as the guest, however
 * fcsim exits (even SIGKILL), with nothing to undo by hand.
 */
#ifndef FCSIM_LOOPDEV_H
#define FCSIM_LOOPDEV_H

#include <stdbool.h>

#include "core/err.h"

#define FCSIM_LOOP_PATH_MAX 32

/* Attaches |image| (opened read-only when |ro|, the device then read-only
 * too). Returns 0 with *ret_fd (O_CLOEXEC; closing it before anything else
 * opened the device detaches it) and the node path in ret_path; or -errno
 * with a message. Races with other attachers for the same free device are
 * retried. */
int fcsim_loop_attach(const char *image, bool ro, int *ret_fd, char ret_path[FCSIM_LOOP_PATH_MAX],
                      struct ha_err *err);

#endif
